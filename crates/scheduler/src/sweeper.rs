//! The sweeper: the safety net under the queue. It takes over claims of
//! workers that stopped mid-publish and re-queues due targets whose job was
//! lost, so a scheduled post can be late but never silently stuck.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use clarion_store::{Enqueue, now_ms};
use tracing::{info, warn};

use crate::Runtime;

/// What `/readyz` needs to know about the scheduler loop.
#[derive(Debug, Default)]
pub struct Health {
    /// When the sweeper last completed a pass (0 = never).
    pub last_sweep_ms: AtomicI64,
}

impl Health {
    pub fn last_sweep_ms(&self) -> i64 {
        self.last_sweep_ms.load(Ordering::Relaxed)
    }
}

const BATCH: u64 = 1_000;

/// Finished jobs are pruned at most this often.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

pub(crate) async fn run(runtime: Arc<Runtime>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let interval = Duration::from_secs(runtime.config.sweep_interval_secs.max(1));
    // At start every due target is re-queued at once: jobs may have been lost
    // with the previous process. Later passes only re-queue targets that have
    // waited a whole stuck threshold, so normal draining is not doubled.
    let mut requeue_after_ms = 0;
    let mut last_prune: Option<std::time::Instant> = None;
    loop {
        if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            last_prune = Some(std::time::Instant::now());
            let retention = Duration::from_secs(runtime.config.job_retention_hours * 3600);
            match runtime.queue.prune_finished(retention, 10_000).await {
                Ok(0) => {}
                Ok(n) => info!(deleted = n, "pruned finished queue jobs"),
                Err(e) => warn!(error = %e, "could not prune finished queue jobs"),
            }
        }
        if let Err(e) = sweep(&runtime, requeue_after_ms).await {
            warn!(error = %e, "sweep failed; will try again");
        } else {
            runtime
                .health
                .last_sweep_ms
                .store(now_ms(), Ordering::Relaxed);
        }
        requeue_after_ms = (runtime.config.stuck_after_secs as i64 * 1000) / 2;
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn sweep(runtime: &Runtime, requeue_after_ms: i64) -> Result<(), crate::SchedulerError> {
    let now = now_ms();
    for target in runtime.store.expired_leases(now, BATCH).await? {
        let id = target.id;
        if let Err(e) = runtime.recover(target).await {
            warn!(target_id = id, error = %e, "could not recover an expired claim");
        }
    }
    let overdue = runtime.store.overdue(now - requeue_after_ms, BATCH).await?;
    if !overdue.is_empty() {
        let jobs: Vec<Enqueue> = overdue
            .iter()
            .filter_map(|t| {
                t.not_before_ms.map(|not_before_ms| Enqueue {
                    target_id: t.id,
                    not_before_ms,
                })
            })
            .collect();
        info!(count = jobs.len(), "re-queueing due targets");
        runtime.queue.enqueue(&jobs).await?;
    }
    Ok(())
}
