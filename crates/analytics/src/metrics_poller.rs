//! Post analytics: polls each published target's public counts on a
//! decaying schedule (by default 1 h, 6 h, 24 h, 72 h and 7 days after it
//! was published) and stores a snapshot per step. Platforms are reached only
//! through `ChannelAdapter::post_counts`; a platform that exposes nothing
//! gets an empty snapshot, so it is not asked again. Several processes may
//! poll the same target: one snapshot per step is kept.

use std::sync::Arc;
use std::time::Duration;

use clarion_core::{AdapterRegistry, ErrorClass, PostCounts};
use clarion_store::{Store, now_ms};
use tokio::sync::watch;
use tracing::{info, warn};

/// Most snapshots taken in one round.
const ROUND: usize = 200;

/// Takes the due snapshots, round after round.
#[derive(Debug, Clone)]
pub struct MetricsPoller {
    store: Store,
    registry: Arc<AdapterRegistry>,
    steps_ms: Vec<i64>,
    every: Duration,
}

impl MetricsPoller {
    pub fn new(
        store: Store,
        registry: Arc<AdapterRegistry>,
        steps_secs: &[u64],
        every: Duration,
    ) -> Self {
        let mut steps_ms: Vec<i64> = steps_secs
            .iter()
            .map(|s| {
                i64::try_from(*s)
                    .unwrap_or(i64::MAX / 2_000)
                    .saturating_mul(1000)
            })
            .collect();
        steps_ms.sort_unstable();
        Self {
            store,
            registry,
            steps_ms,
            every,
        }
    }

    /// Polls until `stop`.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            let taken = self.poll_once().await;
            if taken > 0 {
                info!(snapshots = taken, "post metrics: snapshots taken");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.every) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// One round; returns how many snapshots were stored.
    pub async fn poll_once(&self) -> usize {
        let due = match self
            .store
            .due_snapshots(&self.steps_ms, now_ms(), ROUND)
            .await
        {
            Ok(due) => due,
            Err(e) => {
                warn!(error = %e, "post metrics: cannot read due targets");
                return 0;
            }
        };
        let mut taken = 0;
        let mut limited: Vec<String> = Vec::new();
        for snapshot in due {
            if limited.contains(&snapshot.channel) {
                continue;
            }
            // A channel no longer configured: nothing to ask.
            let counts = match self.registry.get(&snapshot.channel) {
                None => Ok(None),
                Some(adapter) => adapter.post_counts(&snapshot.platform_post_id).await,
            };
            let counts = match counts {
                Ok(counts) => counts.unwrap_or_default(),
                Err(e) if e.class == ErrorClass::RateLimited => {
                    warn!(
                        channel = snapshot.channel,
                        "post metrics: rate limited; next round"
                    );
                    limited.push(snapshot.channel.clone());
                    continue;
                }
                Err(e) if e.class == ErrorClass::Permanent => {
                    // A deleted post: an empty snapshot, never asked again.
                    warn!(channel = snapshot.channel, error = %e, "post metrics: no counts");
                    PostCounts::default()
                }
                Err(e) => {
                    warn!(channel = snapshot.channel, error = %e, "post metrics: will retry");
                    continue;
                }
            };
            match self
                .store
                .record_snapshot(&snapshot, counts, now_ms())
                .await
            {
                Ok(()) => taken += 1,
                Err(e) => warn!(error = %e, "post metrics: cannot store a snapshot"),
            }
        }
        taken
    }
}
