use std::time::Duration;

use serde::Deserialize;

/// `[scheduler]` in clarion.toml. Every field has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerConfig {
    /// A post whose time passed while Clarion was down is still published
    /// if it is at most this late; older ones fail with a clear reason.
    pub grace_period_secs: u64,
    /// Attempts per target before a rate-limited or transient error fails it.
    pub max_attempts: i32,
    /// First retry delay; doubles per attempt, with jitter.
    pub retry_base_ms: u64,
    /// Longest retry delay.
    pub retry_max_secs: u64,
    /// How long one publish call may take; also bounds how long a crashed
    /// worker's claim blocks a retry.
    pub publish_timeout_secs: u64,
    /// Longest an idle dispatcher sleeps before looking at the store again;
    /// also the apalis wake worker's poll interval.
    pub poll_interval_ms: u64,
    /// Publish calls in flight per process.
    pub concurrency: usize,
    /// Wake-up jobs fetched from the queue per poll.
    pub batch_size: usize,
    /// How often the sweeper takes over expired claims.
    pub sweep_interval_secs: u64,
    /// `/readyz` fails when a due target has waited longer than this.
    pub stuck_after_secs: u64,
    /// Finished queue jobs are deleted after this long (the publish history
    /// lives in `publish_attempts`, not in the queue).
    pub job_retention_hours: u64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            grace_period_secs: 3600,
            max_attempts: 8,
            retry_base_ms: 2_000,
            retry_max_secs: 900,
            publish_timeout_secs: 30,
            poll_interval_ms: 100,
            concurrency: 64,
            batch_size: 100,
            sweep_interval_secs: 5,
            stuck_after_secs: 60,
            job_retention_hours: 24,
        }
    }
}

impl SchedulerConfig {
    pub fn grace_period(&self) -> Duration {
        Duration::from_secs(self.grace_period_secs)
    }

    pub fn publish_timeout(&self) -> Duration {
        Duration::from_secs(self.publish_timeout_secs.max(1))
    }

    /// A claim outlives the publish call by this margin, so a slow but
    /// healthy worker is never mistaken for a dead one.
    pub fn lease(&self) -> Duration {
        self.publish_timeout() + Duration::from_secs(2)
    }
}
