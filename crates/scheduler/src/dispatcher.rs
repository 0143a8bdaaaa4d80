//! The dispatcher: one loop per process that claims due targets from the
//! store in batches and starts a task per claim.
//!
//! It claims only as many targets as it has free publish slots, and only
//! for channels that can send within [`LOOKAHEAD_MS`]: unpaced channels in
//! one batch statement, each paced channel (Telegram, Mastodon, ...) one
//! target at a time when its pacer has a slot. So a backlog of 1,000 posts
//! on one Telegram chat waits in the store, not in claims whose lease runs
//! out while they queue for the pacer.
//!
//! When nothing is due it sleeps until the next due target, a wake-up
//! (apalis `Wake` job, a post created in this process, the sweeper), or the
//! poll interval, whichever comes first.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use apalis::prelude::*;
use clarion_store::{ClaimBatch, now_ms, target};
use tokio::sync::{OwnedSemaphorePermit, watch};
use tracing::{debug, info, warn};

use crate::queue::{Wake, WorkerBackend};
use crate::worker::Claimed;
use crate::{Runtime, SchedulerError};

/// Targets are claimed this long before their moment (and their task waits
/// out the rest), so the claim's round trip is not added to lateness.
pub(crate) const LOOKAHEAD_MS: i64 = 20;

/// Claims per statement, at most.
const CLAIM_BATCH: usize = 256;

pub(crate) async fn run(runtime: Arc<Runtime>, mut stop: watch::Receiver<bool>) {
    let poll = Duration::from_millis(runtime.config.poll_interval_ms.max(10));
    // While a backlog drains, wait until half the claim window is free
    // before claiming again, so each claim statement takes a batch instead
    // of the one target whose send just finished; the other half is still
    // sending meanwhile.
    let refill = (crate::worker::claim_window(&runtime.config) / 2).clamp(1, CLAIM_BATCH) as u32;
    let mut backlog = false;
    // The registry is fixed for the life of the process: so is this list.
    let paced = paced_channels(&runtime);
    loop {
        if *stop.borrow() {
            return;
        }
        let first = tokio::select! {
            permit = runtime.permits.clone().acquire_many_owned(if backlog { refill } else { 1 }) => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = stop.changed() => return,
        };
        let mut permits = Vec::with_capacity(CLAIM_BATCH);
        permits.extend(split_permits(first));
        while permits.len() < CLAIM_BATCH {
            match runtime.permits.clone().try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
        let wanted = permits.len();
        let claimed = match claim_round(&runtime, &paced, &mut permits).await {
            Ok(n) => n,
            Err(e) => {
                warn!(error = %e, "could not claim due targets; trying again");
                drop(permits);
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    _ = stop.changed() => return,
                }
                continue;
            }
        };
        drop(permits);
        backlog = claimed == wanted;
        if backlog {
            // All slots filled: more may be due; go again once slots free.
            continue;
        }
        let sleep = idle_sleep(&runtime, &paced, poll).await;
        if sleep.is_zero() {
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = runtime.wake().notified() => {}
            _ = stop.changed() => return,
        }
    }
}

/// One permit per claim, so each task returns its own slot when it is done.
fn split_permits(mut many: OwnedSemaphorePermit) -> Vec<OwnedSemaphorePermit> {
    let mut one_each = Vec::with_capacity(many.num_permits());
    while many.num_permits() > 1 {
        if let Some(one) = many.split(1) {
            one_each.push(one);
        }
    }
    one_each.push(many);
    one_each
}

/// One round of claims; spends permits from `permits` on what it claimed.
async fn claim_round(
    runtime: &Arc<Runtime>,
    paced: &[String],
    permits: &mut Vec<OwnedSemaphorePermit>,
) -> Result<usize, SchedulerError> {
    let now = now_ms();
    let horizon = Instant::now() + Duration::from_millis(LOOKAHEAD_MS as u64);
    let paused = runtime.pauses.paused();
    let mut skip: Vec<String> = paced.to_vec();
    skip.extend(paused.iter().cloned());
    let batch = uuid::Uuid::new_v4().simple().to_string();
    let claim = ClaimBatch {
        worker: &runtime.worker_id,
        batch: &batch[..16],
        now_ms: now,
        lease_until_ms: now + runtime.config.lease().as_millis() as i64,
    };
    let mut claimed: Vec<(target::Model, Option<Instant>)> = runtime
        .store
        .claim_due(
            &claim,
            now + LOOKAHEAD_MS,
            permits.len() as u64,
            &skip,
            None,
        )
        .await?
        .into_iter()
        .map(|t| (t, None))
        .collect();
    // Paced channels: one target each, and only when the pacer has a slot,
    // which is reserved here so the next round sees the channel busy. One
    // read first says which free channels have due work at all.
    let free: Vec<String> = paced
        .iter()
        .filter(|c| !paused.contains(*c) && runtime.pacer.free_by(c, horizon))
        .cloned()
        .collect();
    let due = if free.is_empty() || claimed.len() >= permits.len() {
        Vec::new()
    } else {
        runtime
            .store
            .channels_with_due(now + LOOKAHEAD_MS, &free)
            .await?
    };
    for channel in paced.iter().filter(|c| due.contains(c)) {
        if claimed.len() >= permits.len() {
            break;
        }
        if paused.contains(channel) || !runtime.pacer.free_by(channel, horizon) {
            continue;
        }
        for target in runtime
            .store
            .claim_due(&claim, now + LOOKAHEAD_MS, 1, &[], Some(channel))
            .await?
        {
            let slot = runtime.pacer.reserve(channel, runtime.pace(channel));
            claimed.push((target, slot));
        }
    }
    let n = claimed.len();
    if n > 0 {
        runtime.health.last_claim_ms.store(now, Ordering::Relaxed);
        debug!(count = n, "claimed due targets");
    }
    for (target, slot) in claimed {
        let Some(permit) = permits.pop() else { break };
        let token = claim.token_for(target.id);
        let guard = runtime.in_flight.register(token.clone());
        let claim = Claimed {
            token,
            first_slot: slot,
        };
        tokio::spawn(runtime.clone().run_claim(target, claim, guard, permit));
    }
    Ok(n)
}

fn paced_channels(runtime: &Runtime) -> Vec<String> {
    runtime
        .registry
        .names()
        .filter(|name| runtime.pace(name).is_paced())
        .map(str::to_owned)
        .collect()
}

/// How long to sleep when a round claimed less than it could.
async fn idle_sleep(runtime: &Runtime, paced: &[String], poll: Duration) -> Duration {
    let now = now_ms();
    let mut skip: Vec<String> = runtime.pauses.paused();
    let horizon = Instant::now() + Duration::from_millis(LOOKAHEAD_MS as u64);
    // A paced channel without a slot cannot be claimed now: do not wake for it.
    let mut earliest_slot: Option<Instant> = None;
    for channel in paced {
        if !runtime.pacer.free_by(channel, horizon) {
            if let Some(t) = runtime.pacer.next_free(channel) {
                earliest_slot = Some(earliest_slot.map_or(t, |e| e.min(t)));
            }
            skip.push(channel.clone());
        }
    }
    let mut sleep = poll;
    match runtime.store.next_due_ms(&skip).await {
        Ok(Some(due)) => {
            let until = (due - LOOKAHEAD_MS - now).max(0) as u64;
            sleep = sleep.min(Duration::from_millis(until));
        }
        Ok(None) => {}
        Err(e) => warn!(error = %e, "could not read the next due time"),
    }
    if let Some(slot) = earliest_slot {
        sleep = sleep.min(slot.saturating_duration_since(Instant::now()));
    }
    sleep
}

/// Extends the leases of this process's live claims, so a long thread or a
/// slow platform never loses its claim to the sweeper while it works.
pub(crate) async fn renew_leases(runtime: Arc<Runtime>, mut stop: watch::Receiver<bool>) {
    let lease = runtime.config.lease();
    let every = (lease / 4).max(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => if *stop.borrow() && runtime.in_flight.snapshot().is_empty() { return },
        }
        let tokens = runtime.in_flight.snapshot();
        if tokens.is_empty() {
            if *stop.borrow() {
                return;
            }
            continue;
        }
        let until = now_ms() + lease.as_millis() as i64;
        if let Err(e) = runtime.store.renew_leases(&tokens, until).await {
            warn!(error = %e, count = tokens.len(), "could not renew claim leases");
        }
    }
}

/// apalis entry point: a wake-up for targets due at `at_ms`.
async fn handle(job: Wake, runtime: Data<Arc<Runtime>>) -> Result<(), BoxDynError> {
    let wait = job.at_ms - LOOKAHEAD_MS - now_ms();
    if wait > 0 {
        // apalis stores whole seconds and the job is queued a second early.
        tokio::time::sleep(Duration::from_millis(wait.min(5_000) as u64)).await;
    }
    runtime.wake().notify_one();
    Ok(())
}

/// Runs the dispatcher, the apalis wake worker, the result writer, lease
/// renewal and the sweeper until `shutdown` resolves; then stops claiming,
/// lets every claim in flight finish and writes its result.
pub async fn run_workers(
    runtime: Arc<Runtime>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SchedulerError> {
    let Some(results) = runtime.results_rx.lock().ok().and_then(|mut rx| rx.take()) else {
        return Err(SchedulerError::Queue(
            "run_workers was already started for this runtime".into(),
        ));
    };
    let writer = tokio::spawn(crate::writer::run(runtime.clone(), results));
    let (stop_tx, stop_rx) = watch::channel(false);
    let sweeper = tokio::spawn(crate::sweeper::run(runtime.clone(), stop_rx.clone()));
    let renewer = tokio::spawn(renew_leases(runtime.clone(), stop_rx.clone()));
    let dispatcher = tokio::spawn(run(runtime.clone(), stop_rx.clone()));
    let mut stop = stop_rx.clone();
    let signal = async move {
        let _ = stop.wait_for(|s| *s).await;
        Ok::<(), std::io::Error>(())
    };
    let poll = Duration::from_millis(runtime.config.poll_interval_ms.max(10));
    let name = format!("{}-wake", runtime.worker_id);
    let data = runtime.clone();
    let wake_worker = match runtime.queue.worker_backend() {
        WorkerBackend::Sqlite(storage) => tokio::spawn(
            WorkerBuilder::new(name)
                .backend(storage.clone().poll_with_interval(poll))
                .concurrency(4)
                .data(data)
                .build(handle)
                .run_until(signal),
        ),
        WorkerBackend::Postgres(storage) => tokio::spawn(
            WorkerBuilder::new(name)
                .backend(storage.clone().poll_with_interval(poll))
                .concurrency(4)
                .data(data)
                .build(handle)
                .run_until(signal),
        ),
    };
    shutdown.await;
    info!("shutting down: finishing publishes in flight");
    let _ = stop_tx.send(true);
    let _ = dispatcher.await;
    // Every permit back means every claim task has handed over its result.
    let all = crate::worker::claim_window(&runtime.config) as u32;
    if let Ok(permits) = runtime.permits.acquire_many(all).await {
        drop(permits);
    }
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    if runtime
        .results
        .send(crate::writer::WriterMsg::Flush(done_tx))
        .await
        .is_ok()
    {
        let _ = done_rx.await;
    }
    writer.abort();
    let _ = renewer.await;
    match wake_worker.await {
        Ok(Err(e)) => warn!(error = %e, "wake worker stopped with an error"),
        Err(e) => warn!(error = %e, "wake worker task panicked"),
        Ok(Ok(())) => {}
    }
    let _ = sweeper.await;
    Ok(())
}
