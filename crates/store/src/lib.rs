//! Clarion's store: the database is the source of truth for every post and
//! target; the job queue only says *when* to look at a target.
//!
//! Invariants: never calls a platform; every status change of a target is a
//! conditional update (`WHERE status = ...`), so two processes sharing one
//! database can never both move the same target forward.

mod adapter_state;
mod connect;
pub mod entity;
mod error;
mod posts;
mod secret_key;
mod targets;

pub use adapter_state::DbAdapterStore;
pub use connect::{DbPool, Store};
pub use entity::{channel, post, publish_attempt, target};
pub use error::StoreError;
pub use posts::{NewPost, NewTarget, PostDetail, PostFilter, SyncOutcome, SyncResult};
pub use secret_key::{KEY_FILE_NAME, META_SCOPE, SecretKey};
pub use targets::{AttemptRecord, Claim, ClaimBatch, Enqueue, ErrorClassName, Finish, StatusCount};

/// Milliseconds since the Unix epoch, the unit of every time column.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
