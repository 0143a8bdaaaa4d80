//! Clarion's store: the database is the source of truth for every post and
//! target; the job queue only says *when* to look at a target.
//!
//! Invariants: never calls a platform; every status change of a target is a
//! conditional update (`WHERE status = ...`), so two processes sharing one
//! database can never both move the same target forward.

mod adapter_state;
mod attribution;
mod calendar;
pub use calendar::{CalendarFilter, CalendarRange};
mod connect;
mod edits;
pub mod entity;
mod error;
mod file_posts;
mod inbox;
mod listeners;
mod post_metrics;
mod posts;
mod rollups;
mod secret_key;
mod targets;
pub mod team;

pub use adapter_state::DbAdapterStore;
pub use attribution::{
    AttributionClick, ClickCount, CreditGroup, CreditSum, EngagementTouch, NewClick, NewCredit,
    NewLink, NewOrder, NewRefund, OrderIngest,
};
pub use connect::{DbPool, Store};
pub use edits::{
    EditOutcome, FORCED_RETRY, LeftAlone, NOT_PUBLISHED, PostEdit, SETTLED, Settlement,
    TargetChange,
};
pub use entity::{
    api_token, audit_entry, bridge_message, bridge_thread, channel, click, conversation,
    conversation_note, engagement, inbox_reply, link, listener, login_link, order_credit, post,
    post_metric, publish_attempt, refund, session, shop_order, target, user, webhook_delivery,
};
pub use error::StoreError;
pub use inbox::{
    ConversationDetail, ConversationStatus, ConversationSummary, InboxFilter, IngestOutcome,
    NewInboxReply, ReplyState,
};
pub use post_metrics::DueSnapshot;
pub use posts::{
    NewPost, NewTarget, NewTargetLink, PostDetail, PostFilter, ReplyRef, SyncOutcome, SyncResult,
};
pub use secret_key::{KEY_FILE_NAME, KEY_MODE_LOG_TARGET, META_SCOPE, SecretKey};
pub use targets::{AttemptRecord, Claim, ClaimBatch, Enqueue, Finish, StatusCount};

/// Milliseconds since the Unix epoch, the unit of every time column.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
