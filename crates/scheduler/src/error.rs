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
    /// Posts of a batch (bulk request, import) refused, each by index and field.
    #[error("{}", join(.0))]
    InvalidItems(Vec<ItemError>),
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
}

/// One refused post of a batch: `posts[17].channels: ...`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("posts[{index}].{field}: {message}")]
pub struct ItemError {
    /// Position in the batch, from 0.
    pub index: usize,
    /// The input field at fault: `channels`, `at`, `body`, `overrides.NAME`, ...
    pub field: String,
    pub message: String,
}

fn join(errors: &[impl ToString]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}
