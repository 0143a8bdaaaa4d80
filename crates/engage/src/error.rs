use clarion_scheduler::ServiceError;
use clarion_store::StoreError;

/// Why an inbox operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    /// The request names something wrong (an empty reply, an unknown status).
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The reply could not be queued (the post service said why).
    #[error("reply refused: {0}")]
    Reply(#[from] ServiceError),
}
