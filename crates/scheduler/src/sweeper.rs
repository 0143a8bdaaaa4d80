//! The sweeper: the safety net under the dispatcher. It takes over claims
//! whose lease ran out (their process died or lost the database) and nudges
//! the dispatcher when due work is waiting, so a scheduled post can be late
//! but never silently stuck.
//!
//! There is no per-target job to lose or to re-queue twice: the dispatcher
//! claims whatever is due from the store. A backlog that is draining is
//! "behind"; due work with no claim in a while is "stuck" (see `/readyz`).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use clarion_store::{ClaimBatch, now_ms};
use tracing::{info, warn};

use crate::Runtime;

/// What `/readyz` needs to know about the scheduler loop.
#[derive(Debug, Default)]
pub struct Health {
    /// When the sweeper last completed a pass (0 = never).
    pub last_sweep_ms: AtomicI64,
    /// When the dispatcher last claimed something (0 = never).
    pub last_claim_ms: AtomicI64,
}

impl Health {
    pub fn last_sweep_ms(&self) -> i64 {
        self.last_sweep_ms.load(Ordering::Relaxed)
    }

    pub fn last_claim_ms(&self) -> i64 {
        self.last_claim_ms.load(Ordering::Relaxed)
    }
}

const BATCH: u64 = 1_000;

/// Finished jobs are pruned at most this often.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

pub(crate) async fn run(runtime: Arc<Runtime>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let interval = Duration::from_secs(runtime.config.sweep_interval_secs.max(1));
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
        if let Err(e) = sweep(&runtime).await {
            warn!(error = %e, "sweep failed; will try again");
        } else {
            runtime
                .health
                .last_sweep_ms
                .store(now_ms(), Ordering::Relaxed);
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn sweep(runtime: &Arc<Runtime>) -> Result<(), crate::SchedulerError> {
    recover_expired(runtime).await?;
    // Stuck-post alerts, if configured: the alert task looks, not the sweeper.
    crate::alerts::on_sweep(runtime);
    // Due work the dispatcher has not looked at (a lost wake-up, a post
    // created by another process): nudge it. Nothing is re-queued.
    if let Some(due) = runtime.store.next_due_ms(&[]).await?
        && due <= now_ms()
    {
        runtime.wake().notify_one();
    }
    Ok(())
}

/// Takes over claims whose lease ran out. A claim this process is still
/// working on (its token is in flight) is never taken from under its task:
/// its lease is renewed instead.
pub(crate) async fn recover_expired(runtime: &Arc<Runtime>) -> Result<(), crate::SchedulerError> {
    let now = now_ms();
    let lease_until_ms = now + runtime.config.lease().as_millis() as i64;
    let mut alive = Vec::new();
    for target in runtime.store.expired_leases(now, BATCH).await? {
        if let Some(token) = &target.claim_token
            && runtime.in_flight.contains(token)
        {
            alive.push(token.clone());
            continue;
        }
        let Ok(permit) = runtime.permits.clone().try_acquire_owned() else {
            break; // busy: the next pass takes the rest
        };
        let batch = uuid::Uuid::new_v4().simple().to_string();
        let claim = ClaimBatch {
            worker: &runtime.worker_id,
            batch: &batch[..16],
            now_ms: now,
            lease_until_ms,
        };
        let previous = target.claimed_by.clone().unwrap_or_default();
        let reason = format!("worker {previous} stopped while publishing");
        let Some(claimed) = runtime
            .store
            .reclaim_expired(target.id, &claim, &reason)
            .await?
        else {
            continue;
        };
        crate::Metrics::inc(&runtime.metrics.recovered);
        info!(
            target_id = claimed.id,
            previous_worker = previous,
            "taking over a claim whose worker stopped; its last attempt's outcome is unknown"
        );
        let token = claim.token_for(claimed.id);
        let guard = runtime.in_flight.register(token.clone());
        let claim = crate::worker::Claimed {
            token,
            first_slot: None,
        };
        tokio::spawn(runtime.clone().run_claim(claimed, claim, guard, permit));
    }
    if !alive.is_empty() {
        runtime.store.renew_leases(&alive, lease_until_ms).await?;
    }
    Ok(())
}
