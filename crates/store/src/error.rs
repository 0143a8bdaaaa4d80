use clarion_core::StatusError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("database error: {0}")]
    Sqlx(#[from] sea_orm::sqlx::Error),
    #[error("invalid database URL `{url}`: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("post {0} not found")]
    PostNotFound(i32),
    #[error("conversation {0} not found")]
    ConversationNotFound(i32),
    #[error("post {id}: {reason}")]
    Conflict { id: i32, reason: String },
    #[error(transparent)]
    Status(#[from] StatusError),
    /// The adapter-state key: a missing or unreadable key file, a bad passphrase setup.
    #[error("secret key: {0}")]
    Key(String),
    /// A user, token or session operation that cannot be done as asked
    /// (unknown user, email taken, the last owner).
    #[error("{0}")]
    Team(String),
    /// The database answered something Clarion's own writes cannot explain.
    #[error("database returned an unexpected result: {0}")]
    Inconsistent(String),
}
