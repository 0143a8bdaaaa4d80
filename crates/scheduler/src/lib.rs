//! Durable, exactly-once-intent scheduled publishing.
//!
//! Invariants: the scheduler never knows a platform by name (it sees
//! `dyn ChannelAdapter` from the registry); it never publishes a target it
//! has not claimed in the store; it never publishes before `not_before_ms`.
//! The apalis queue only says when to look (wake-ups); the store's claim
//! decides whether anything happens.

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

pub use config::SchedulerConfig;
pub use dispatcher::run_workers;
pub use error::{ItemError, SchedulerError, ServiceError};
pub use metrics::Metrics;
pub use queue::{PublishQueue, QUEUE_NAME, Wake};
pub use retry::{History, after_failure};
pub use service::{PostInput, PostService, SyncReport, ValidPost};
pub use sweeper::Health;
pub use worker::Runtime;
