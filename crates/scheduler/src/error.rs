use clarion_content::ContentError;
use clarion_core::StatusError;
use clarion_store::StoreError;

/// Failures of the publish machinery itself (not of a platform: those are
/// classified and stored on the attempt).
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Status(#[from] StatusError),
    #[error("job queue: {0}")]
    Queue(String),
}

/// Why the post service refused a request. Every variant names what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{}", join(.0))]
    Invalid(Vec<ContentError>),
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
}

fn join(errors: &[ContentError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}
