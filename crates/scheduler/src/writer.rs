//! The result writer: one task per process that records finished attempts
//! in batches. Whatever has finished while the previous batch was being
//! written goes into the next one, so under load a single transaction
//! records hundreds of results, and when idle a result is written at once.
//!
//! A claim stays in [`crate::worker::InFlight`] (its lease renewed) until its
//! result is written; if the process dies first, the lease runs out and the
//! sweeper takes the claim over as an attempt of unknown outcome.

use std::sync::Arc;
use std::time::Duration;

use clarion_store::{Claim, Enqueue, Finish};
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use crate::Runtime;
use crate::worker::InFlightGuard;

/// Results written per transaction, at most.
const MAX_BATCH: usize = 1_000;

/// One finished claim on its way to the store.
#[derive(Debug)]
pub(crate) struct Finished {
    pub finish: Finish,
    pub channel: String,
    pub scheduled_at_ms: Option<i64>,
    /// Dropped once written: the claim leaves `InFlight`.
    pub _in_flight: InFlightGuard,
}

#[derive(Debug)]
pub(crate) enum WriterMsg {
    Finished(Box<Finished>),
    /// Answered once everything sent before it is written.
    Flush(oneshot::Sender<()>),
}

pub(crate) async fn run(runtime: Arc<Runtime>, mut rx: mpsc::Receiver<WriterMsg>) {
    let mut batch: Vec<Finished> = Vec::new();
    let mut flushes = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                WriterMsg::Finished(f) => batch.push(*f),
                WriterMsg::Flush(done) => flushes.push(done),
            }
            if batch.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        write(&runtime, std::mem::take(&mut batch)).await;
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

async fn write(runtime: &Runtime, batch: Vec<Finished>) {
    if batch.is_empty() {
        return;
    }
    let finishes: Vec<Finish> = batch.iter().map(|f| f.finish.clone()).collect();
    let mut delay = Duration::from_millis(50);
    let applied = loop {
        match runtime.store.finish_attempts(finishes.clone()).await {
            Ok(applied) => break applied,
            Err(e) if delay < Duration::from_secs(5) => {
                warn!(error = %e, count = batch.len(), "could not record publish results; trying again");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => {
                // The claims stay `publishing`; their leases run out and the
                // sweeper takes them over (resend only where deduplicated).
                warn!(error = %e, count = batch.len(), "could not record publish results; the sweeper will take these claims over");
                return;
            }
        }
    };
    let mut wakes = Vec::new();
    for (f, applied) in batch.iter().zip(applied) {
        if !applied {
            warn!(
                target_id = f.finish.attempt.target_id,
                "claim was taken over while publishing; result recorded on the attempt only"
            );
            continue;
        }
        runtime.report(f);
        if let Claim::Retry { not_before_ms, .. } = f.finish.next {
            wakes.push(Enqueue {
                target_id: f.finish.attempt.target_id,
                not_before_ms,
            });
        }
    }
    if let Err(e) = runtime.queue.enqueue(&wakes).await {
        warn!(error = %e, "could not queue retry wake-ups; the dispatcher's poll will find them");
    }
}
