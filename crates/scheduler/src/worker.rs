//! The publish worker: what happens when a target's job comes up.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use clarion_core::{
    AdapterRegistry, ChannelAdapter, ErrorClass, Idempotency, OutboundPost, PublishError,
    PublishReceipt, PublishRequest, ReplyTo, TargetStatus, ThreadStyle,
};
use clarion_store::{AttemptRecord, Claim, Enqueue, Store, now_ms, target};
use tracing::{debug, info, warn};

use crate::metrics::Metrics;
use crate::pauses::{ChannelPauses, Pacer};
use crate::retry::after_failure;
use crate::sweeper::Health;
use crate::{PublishQueue, SchedulerConfig, SchedulerError};

/// A job further ahead than this is put back instead of waited for in memory.
const MAX_IN_MEMORY_WAIT_MS: i64 = 5_000;

/// Everything a worker needs, shared by all its jobs.
#[derive(Debug)]
pub struct Runtime {
    pub store: Store,
    pub queue: PublishQueue,
    pub registry: Arc<AdapterRegistry>,
    pub config: SchedulerConfig,
    /// Unique per process: claims and attempts say who made them.
    pub worker_id: String,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pauses: ChannelPauses,
    pacer: Pacer,
}

impl Runtime {
    pub fn new(
        store: Store,
        queue: PublishQueue,
        registry: Arc<AdapterRegistry>,
        config: SchedulerConfig,
        worker_id: String,
    ) -> Self {
        Self {
            store,
            queue,
            registry,
            config,
            worker_id,
            metrics: Arc::default(),
            health: Arc::default(),
            pauses: ChannelPauses::default(),
            pacer: Pacer::default(),
        }
    }

    /// Handles one job. Safe to call any number of times for the same job:
    /// only the worker whose conditional claim succeeds publishes.
    pub async fn process(&self, job: Enqueue) -> Result<(), SchedulerError> {
        // Never early: apalis may hand the job over up to a second before its time.
        let wait = job.not_before_ms - now_ms();
        if wait > MAX_IN_MEMORY_WAIT_MS {
            return self.queue.enqueue(&[job]).await;
        }
        if wait > 0 {
            tokio::time::sleep(Duration::from_millis(wait as u64)).await;
        }
        while now_ms() < job.not_before_ms {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Claim first: on the hot path that is the only statement before the
        // platform call. Everything else is checked on the claimed row.
        let lease_until = now_ms() + self.config.lease().as_millis() as i64;
        match self
            .store
            .claim(
                job.target_id,
                job.not_before_ms,
                &self.worker_id,
                lease_until,
            )
            .await?
        {
            Some(target) => self.publish_claimed(target).await,
            None => self.unclaimable(job).await,
        }
    }

    /// The claim failed: the job is stale (rescheduled, cancelled, done,
    /// claimed by a live worker), or a dead worker's lease has run out.
    async fn unclaimable(&self, job: Enqueue) -> Result<(), SchedulerError> {
        match self.store.target(job.target_id).await? {
            Some(t)
                if t.status()? == TargetStatus::Publishing
                    && t.lease_until_ms.is_some_and(|l| l < now_ms()) =>
            {
                self.recover(t).await
            }
            _ => Ok(()),
        }
    }

    async fn publish_claimed(&self, target: target::Model) -> Result<(), SchedulerError> {
        let now = now_ms();
        let scheduled = target.scheduled_at_ms.unwrap_or(now);
        let grace_ms = self.config.grace_period().as_millis() as i64;
        // `attempts` counts this claim: 1 means nothing was tried before.
        if target.attempts == 1 && now - scheduled > grace_ms {
            let reason = format!(
                "missed: due at {}, Clarion was not running until {} late, beyond the {} grace period",
                format_ms(scheduled),
                human_duration(now - scheduled),
                human_duration(grace_ms),
            );
            Metrics::inc(&self.metrics.missed);
            return self
                .finish_untried(&target, "missed", Claim::Failed { error: reason })
                .await;
        }
        let Some(adapter) = self.registry.get(&target.channel).cloned() else {
            let error = format!(
                "channel `{}` is not configured in this Clarion",
                target.channel
            );
            return self
                .finish_untried(
                    &target,
                    ErrorClass::Permanent.as_str(),
                    Claim::Failed { error },
                )
                .await;
        };
        if let Some(pause) = self.pauses.remaining(&target.channel) {
            // The platform already told us to wait: don't spend an attempt on a sure 429.
            let not_before_ms = now_ms() + pause.as_millis() as i64;
            debug!(target_id = target.id, ?pause, "channel paused; deferring");
            if self
                .store
                .release_claim(target.id, &self.worker_id, not_before_ms)
                .await?
            {
                self.queue
                    .enqueue(&[Enqueue {
                        target_id: target.id,
                        not_before_ms,
                    }])
                    .await?;
            }
            return Ok(());
        }
        self.attempt(target, adapter.as_ref()).await
    }

    /// Ends a claimed target without calling the platform, keeping a record of why.
    async fn finish_untried(
        &self,
        target: &target::Model,
        outcome: &str,
        next: Claim,
    ) -> Result<(), SchedulerError> {
        let now = now_ms();
        let message = match &next {
            Claim::Failed { error } | Claim::OutcomeUnknown { error } => Some(error.clone()),
            _ => None,
        };
        let record = AttemptRecord {
            target_id: target.id,
            attempt_no: target.attempts,
            worker: self.worker_id.clone(),
            started_at_ms: now,
            finished_at_ms: now,
            outcome: outcome.to_owned(),
            http_status: None,
            retry_after_ms: None,
            platform_post_id: None,
            message,
        };
        if self.store.finish_attempt(record, next.clone()).await? {
            self.report(target, &next, now);
        }
        Ok(())
    }

    /// One publish call for a target this worker has claimed.
    async fn attempt(
        &self,
        target: target::Model,
        adapter: &dyn ChannelAdapter,
    ) -> Result<(), SchedulerError> {
        let started = now_ms();
        let result = self.send_all_parts(&target, adapter).await;
        let finished = now_ms();
        let mut record = AttemptRecord {
            target_id: target.id,
            attempt_no: target.attempts,
            worker: self.worker_id.clone(),
            started_at_ms: started,
            finished_at_ms: finished,
            outcome: "published".into(),
            http_status: None,
            retry_after_ms: None,
            platform_post_id: None,
            message: None,
        };
        let next = match result {
            Ok(receipt) => {
                record.platform_post_id = receipt.platform_post_id.clone();
                Claim::Published {
                    platform_post_id: receipt.platform_post_id,
                    url: receipt.url,
                }
            }
            Err(error) => {
                record.outcome = error.class.as_str().into();
                record.http_status = error.status.map(i32::from);
                record.retry_after_ms = error.retry_after.map(|d| d.as_millis() as i64);
                record.message = Some(error.message.clone());
                if error.class == ErrorClass::RateLimited
                    && let Some(wait) = error.retry_after
                {
                    self.pauses.pause(&target.channel, wait);
                }
                after_failure(
                    &self.config,
                    &error,
                    adapter.idempotency(),
                    target.attempts,
                    finished,
                )
            }
        };
        let applied = self.store.finish_attempt(record, next.clone()).await?;
        if !applied {
            warn!(
                target_id = target.id,
                "claim was taken over while publishing; result recorded on the attempt only"
            );
            return Ok(());
        }
        self.report(&target, &next, finished);
        if let Claim::Retry { not_before_ms, .. } = next {
            self.queue
                .enqueue(&[Enqueue {
                    target_id: target.id,
                    not_before_ms,
                }])
                .await?;
        }
        Ok(())
    }

    /// Sends the target's message, or its thread part by part. Each part
    /// that goes out is recorded before the next is sent, so a retry after a
    /// failure (or a crash) resumes at the first part not yet published and
    /// never posts an earlier part again. Returns the first part's receipt.
    async fn send_all_parts(
        &self,
        target: &target::Model,
        adapter: &dyn ChannelAdapter,
    ) -> Result<PublishReceipt, PublishError> {
        let parts = target.parts();
        let media = target.media();
        let messages = match adapter.thread_style() {
            ThreadStyle::Native => parts,
            ThreadStyle::Joined => vec![parts.join("\n\n")],
        };
        let mut progress = target.thread_progress();
        let count = messages.len();
        for (index, text) in messages.into_iter().enumerate().skip(progress.len()) {
            let post = OutboundPost {
                text,
                campaign: target.campaign.clone(),
                media: if index == 0 {
                    media.clone()
                } else {
                    Vec::new()
                },
            };
            // Part 1 uses the target's key; later parts derive theirs, stable across retries.
            let key = match index {
                0 => target.idempotency_key.clone(),
                n => format!("{}.{n}", target.idempotency_key),
            };
            let ids: Vec<&str> = progress
                .iter()
                .filter_map(|r| r.platform_post_id.as_deref())
                .collect();
            let reply_to = match (ids.first(), ids.last()) {
                (Some(root), Some(parent)) if index > 0 => Some(ReplyTo { root, parent }),
                _ => None,
            };
            if index > 0 && reply_to.is_none() {
                return Err(PublishError::new(
                    ErrorClass::Permanent,
                    "the platform returned no id for the previous part, so the thread cannot continue",
                ));
            }
            let request = PublishRequest {
                post: &post,
                idempotency_key: &key,
                reply_to,
                post_id: i64::from(target.post_id),
                target_id: i64::from(target.id),
                scheduled_at_ms: target.scheduled_at_ms.unwrap_or_default(),
            };
            self.pacer
                .wait_turn(&target.channel, adapter.min_interval())
                .await;
            let timeout = self.config.publish_timeout();
            let receipt = tokio::time::timeout(timeout, adapter.publish(request))
                .await
                .unwrap_or_else(|_| {
                    Err(PublishError::new(
                        ErrorClass::OutcomeUnknown,
                        format!("no answer within {}s", timeout.as_secs()),
                    ))
                })
                .map_err(|mut e| {
                    if count > 1 {
                        e.message = format!("part {} of {count}: {}", index + 1, e.message);
                    }
                    e
                })?;
            progress.push(receipt);
            if count > 1 {
                let recorded = self
                    .store
                    .record_thread_progress(target.id, &self.worker_id, &progress)
                    .await
                    .map_err(|e| {
                        PublishError::new(
                            ErrorClass::OutcomeUnknown,
                            format!("could not record thread progress: {e}"),
                        )
                    })?;
                if !recorded {
                    return Err(PublishError::new(
                        ErrorClass::OutcomeUnknown,
                        "claim lost while publishing a thread",
                    ));
                }
            }
        }
        progress
            .into_iter()
            .next()
            .ok_or_else(|| PublishError::new(ErrorClass::Permanent, "the post has no parts"))
    }

    fn report(&self, target: &target::Model, next: &Claim, finished: i64) {
        let (id, channel) = (target.id, target.channel.as_str());
        match next {
            Claim::Published {
                platform_post_id, ..
            } => {
                let scheduled = target.scheduled_at_ms.unwrap_or(finished);
                self.metrics.observe_lateness(finished - scheduled);
                Metrics::inc(&self.metrics.published);
                debug!(
                    target_id = id,
                    channel,
                    platform_post_id,
                    lateness_ms = finished - scheduled,
                    "published"
                );
            }
            Claim::Retry {
                not_before_ms,
                error,
            } => {
                Metrics::inc(&self.metrics.retried);
                info!(target_id = id, channel, retry_in_ms = not_before_ms - finished, %error, "will retry");
            }
            Claim::Failed { error } => {
                Metrics::inc(&self.metrics.failed);
                warn!(target_id = id, channel, %error, "publish failed");
            }
            Claim::OutcomeUnknown { error } => {
                Metrics::inc(&self.metrics.outcome_unknown);
                warn!(target_id = id, channel, %error, "outcome unknown; not resending");
            }
        }
    }

    /// A worker stopped while publishing this target (its lease ran out).
    /// Resend with the same key where the platform deduplicates; otherwise
    /// report the target as `outcome_unknown` instead of risking a duplicate.
    pub async fn recover(&self, target: target::Model) -> Result<(), SchedulerError> {
        let now = now_ms();
        let lease_until = now + self.config.lease().as_millis() as i64;
        let previous_worker = target.claimed_by.clone().unwrap_or_default();
        let Some(claimed) = self
            .store
            .reclaim_expired(target.id, now, &self.worker_id, lease_until)
            .await?
        else {
            return Ok(());
        };
        Metrics::inc(&self.metrics.recovered);
        match self.registry.get(&claimed.channel).cloned() {
            Some(adapter) if adapter.idempotency() == Idempotency::Honoured => {
                info!(
                    target_id = claimed.id,
                    previous_worker,
                    "resending with the same idempotency key after a stopped worker"
                );
                self.attempt(claimed, adapter.as_ref()).await
            }
            _ => {
                let error = format!(
                    "worker {previous_worker} stopped while publishing; the channel cannot deduplicate \
                     a resend, so Clarion will not post again on its own: check the channel"
                );
                self.finish_untried(
                    &claimed,
                    ErrorClass::OutcomeUnknown.as_str(),
                    Claim::OutcomeUnknown { error },
                )
                .await
            }
        }
    }
}

/// apalis entry point.
async fn handle(job: Enqueue, runtime: Data<Arc<Runtime>>) -> Result<(), BoxDynError> {
    runtime.process(job).await.map_err(|e| {
        warn!(target_id = job.target_id, error = %e, "publish job failed; apalis will retry it");
        Box::new(e) as BoxDynError
    })
}

/// Runs the apalis workers and the sweeper until `shutdown` resolves.
pub async fn run_workers(
    runtime: Arc<Runtime>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SchedulerError> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let sweeper = tokio::spawn(crate::sweeper::run(runtime.clone(), stop_rx.clone()));
    let mut workers = Vec::new();
    for n in 0..runtime.config.workers.max(1) {
        let name = format!("{}-{n}", runtime.worker_id);
        let mut stop = stop_rx.clone();
        let signal = async move {
            let _ = stop.wait_for(|s| *s).await;
            Ok::<(), std::io::Error>(())
        };
        let poll = Duration::from_millis(runtime.config.poll_interval_ms.max(10));
        let concurrency = runtime.config.concurrency.max(1);
        let data = runtime.clone();
        workers.push(match &runtime.queue {
            PublishQueue::Sqlite(storage) => tokio::spawn(
                WorkerBuilder::new(name)
                    .backend(storage.clone().poll_with_interval(poll))
                    .concurrency(concurrency)
                    .data(data)
                    .build(handle)
                    .run_until(signal),
            ),
            PublishQueue::Postgres(storage) => tokio::spawn(
                WorkerBuilder::new(name)
                    .backend(storage.clone().poll_with_interval(poll))
                    .concurrency(concurrency)
                    .data(data)
                    .build(handle)
                    .run_until(signal),
            ),
        });
    }
    shutdown.await;
    info!("shutting down: finishing publishes in flight");
    let _ = stop_tx.send(true);
    for worker in workers {
        match worker.await {
            Ok(Err(e)) => warn!(error = %e, "worker stopped with an error"),
            Err(e) => warn!(error = %e, "worker task panicked"),
            Ok(Ok(())) => {}
        }
    }
    let _ = sweeper.await;
    Ok(())
}

pub(crate) fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| ms.to_string())
}

pub(crate) fn human_duration(ms: i64) -> String {
    let secs = ms / 1000;
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}
