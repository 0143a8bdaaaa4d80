//! Durable, exactly-once-intent scheduled publishing.
//!
//! Invariants: the scheduler never knows a platform by name (it sees
//! `dyn ChannelAdapter` from the registry); it never publishes a target it
//! has not claimed in the store; it never publishes before `not_before_ms`.
//! The apalis queue only says when to look at a target; the store decides
//! whether anything happens.

mod config;
mod error;
mod metrics;
mod pauses;
mod queue;
mod retry;
mod service;
mod sweeper;
mod worker;

pub use config::SchedulerConfig;
pub use error::{SchedulerError, ServiceError};
pub use metrics::Metrics;
pub use queue::{PublishQueue, QUEUE_NAME};
pub use service::{PostInput, PostService, SyncReport};
pub use sweeper::Health;
pub use worker::{Runtime, run_workers};
