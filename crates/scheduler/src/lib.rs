//! Durable, exactly-once-intent scheduled publishing.
//!
//! Invariants: the scheduler never knows a platform by name (it sees
//! `dyn ChannelAdapter` from the registry); it never publishes a target it
//! has not claimed in the store; it never publishes before `not_before_ms`.
//! The apalis queue only says when to look (wake-ups); the store's claim
//! decides whether anything happens.

pub mod alerts;
mod config;
mod create_writer;
mod dispatcher;
mod error;
mod metrics;
mod pauses;
mod queue;
mod retry;
mod service;
mod sweeper;
mod worker;
mod writer;

pub use alerts::AlertsConfig;
pub use config::SchedulerConfig;
pub use dispatcher::run_workers;
pub use error::{ItemError, SchedulerError, ServiceError};
pub use metrics::Metrics;
pub use queue::{PublishQueue, QUEUE_NAME, Wake};
pub use retry::{History, after_failure};
pub use service::content_sync::{
    CancelPlan, CancelReport, ContentPlan, ContentSync, FileAction, FilePlan, TargetChange,
    TargetPlan, new_post_id, plan_content,
};
pub use service::edit::{EditReport, PostChanges};
pub use service::retry::{RetryReport, RetryRequest};
pub use service::{
    ImportPost, KnownLinks, PostInput, PostService, SyncReport, ValidPost, import_key,
};
pub use sweeper::Health;
pub use worker::Runtime;
