//! One claimed target, from its claim to its result: wait for its moment,
//! check it may still go out, send it (part by part for a thread), and hand
//! the result to the writer. The dispatcher decides what to claim; this
//! module decides what happens to a claim.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clarion_core::{
    AdapterRegistry, ChannelAdapter, ErrorClass, OutboundPost, PublishError, PublishReceipt,
    PublishRequest, ReplyTo, ThreadStyle,
};
use clarion_store::{AttemptRecord, Claim, Finish, Store, now_ms, target};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tracing::{debug, info, warn};

use crate::metrics::Metrics;
use crate::pauses::{ChannelPauses, Pace, Pacer};
use crate::retry::after_failure;
use crate::sweeper::Health;
use crate::writer::{Finished, WriterMsg};
use crate::{PublishQueue, SchedulerConfig};

/// Everything the dispatcher, the claim tasks, the writer and the sweeper
/// of one process share.
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
    pub(crate) pauses: ChannelPauses,
    pub(crate) pacer: Pacer,
    /// Claims held by this process: twice `concurrency`, so the next batch
    /// is claimed while the current one is still sending and a claim's
    /// round trip never leaves the send slots idle.
    pub(crate) permits: Arc<Semaphore>,
    /// Publish calls in flight (the `concurrency` setting).
    pub(crate) send_permits: Arc<Semaphore>,
    /// Claims this process is working on, by token: renewed while alive,
    /// and never "recovered" from under a live task.
    pub(crate) in_flight: InFlight,
    pub(crate) results: mpsc::Sender<WriterMsg>,
    pub(crate) results_rx: Mutex<Option<mpsc::Receiver<WriterMsg>>>,
}

impl Runtime {
    pub fn new(
        store: Store,
        queue: PublishQueue,
        registry: Arc<AdapterRegistry>,
        config: SchedulerConfig,
        worker_id: String,
    ) -> Self {
        let (results, results_rx) = mpsc::channel(4096);
        Self {
            store,
            queue,
            registry,
            permits: Arc::new(Semaphore::new(claim_window(&config))),
            send_permits: Arc::new(Semaphore::new(config.concurrency.max(1))),
            config,
            worker_id,
            metrics: Arc::default(),
            health: Arc::default(),
            pauses: ChannelPauses::default(),
            pacer: Pacer::default(),
            in_flight: InFlight::default(),
            results,
            results_rx: Mutex::new(Some(results_rx)),
        }
    }

    pub(crate) fn wake(&self) -> &Arc<Notify> {
        self.queue.local_wake()
    }

    /// How the adapter of `channel` must be paced (unpaced if unknown).
    pub(crate) fn pace(&self, channel: &str) -> Pace {
        self.registry
            .get(channel)
            .map(|a| Pace {
                min_interval: a.min_interval(),
                window: a.rate_window(),
            })
            .unwrap_or_default()
    }

    /// Works one claim to its end. Holds `permit` while sending and
    /// `guard` (the claim's place in [`InFlight`]) until the result is written.
    pub(crate) async fn run_claim(
        self: Arc<Self>,
        target: target::Model,
        claim: Claimed,
        guard: InFlightGuard,
        permit: OwnedSemaphorePermit,
    ) {
        let finished = match self.send_permits.acquire().await {
            Ok(_sending) => self.work(&target, &claim).await,
            // Closed only if the runtime is torn down: the lease will lapse.
            Err(_) => None,
        };
        let token = claim.token;
        drop(permit);
        if let Some((attempt, next)) = finished {
            let msg = WriterMsg::Finished(Box::new(Finished {
                finish: Finish {
                    token,
                    attempt,
                    next,
                },
                channel: target.channel.clone(),
                scheduled_at_ms: target.scheduled_at_ms,
                _in_flight: guard,
            }));
            if self.results.send(msg).await.is_err() {
                warn!(
                    target_id = target.id,
                    "result writer stopped; the claim's lease will run out and the sweeper will take it over"
                );
            }
        }
    }

    /// Returns the attempt to record and where the target goes, or None when
    /// the claim was handed back untried.
    async fn work(
        &self,
        target: &target::Model,
        claim: &Claimed,
    ) -> Option<(AttemptRecord, Claim)> {
        let token = claim.token.as_str();
        // Never early: a claim may be taken a little before the target's moment.
        if let Some(at) = target.not_before_ms {
            let wait = at - now_ms();
            if wait > 0 {
                tokio::time::sleep(Duration::from_millis(wait as u64)).await;
            }
            while now_ms() < at {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        let now = now_ms();
        if let Some(next) = self.too_late(target, now) {
            return Some((self.untried(target, "missed", &next, now), next));
        }
        let Some(adapter) = self.registry.get(&target.channel).cloned() else {
            let next = Claim::Failed {
                error: format!(
                    "channel `{}` is not configured in this Clarion",
                    target.channel
                ),
            };
            return Some((self.untried(target, "permanent", &next, now), next));
        };
        if let Some(pause) = self.pauses.remaining(&target.channel) {
            // The platform already told us to wait: don't spend an attempt on a sure 429.
            let not_before_ms = now + pause.as_millis() as i64;
            debug!(
                target_id = target.id,
                ?pause,
                "channel paused; handing the claim back"
            );
            match self
                .store
                .release_claim(target.id, token, not_before_ms)
                .await
            {
                Ok(true) => {
                    let wake = [clarion_store::Enqueue {
                        target_id: target.id,
                        not_before_ms,
                    }];
                    if let Err(e) = self.queue.enqueue(&wake).await {
                        warn!(target_id = target.id, error = %e, "could not queue a wake-up; the dispatcher's poll will find it");
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    warn!(target_id = target.id, error = %e, "could not hand a claim back; its lease will run out")
                }
            }
            return None;
        }
        if let Some(next) = self.unsafe_resend(target, adapter.as_ref(), now) {
            return Some((
                self.untried(target, ErrorClass::OutcomeUnknown.as_str(), &next, now),
                next,
            ));
        }
        Some(self.attempt(target, claim, adapter.as_ref()).await)
    }

    /// A target whose moment is more than the grace period ago is not sent:
    /// a first attempt was missed (Clarion was down); a retry would go out
    /// arbitrarily late, so a person decides.
    fn too_late(&self, target: &target::Model, now: i64) -> Option<Claim> {
        let scheduled = target.scheduled_at_ms.unwrap_or(now);
        let grace_ms = self.config.grace_period().as_millis() as i64;
        let late = now - scheduled;
        // A newsletter that is part-way through continues however long it takes.
        if late <= grace_ms
            || target.last_outcome.as_deref() == Some(ErrorClass::Unfinished.as_str())
        {
            return None;
        }
        let due = format_ms(scheduled);
        let (late, grace) = (human_duration(late), human_duration(grace_ms));
        Metrics::inc(&self.metrics.missed);
        // `attempts` counts this claim: 1 means nothing was tried before.
        Some(if target.attempts <= 1 {
            Claim::Failed {
                error: format!(
                    "missed: due at {due}, Clarion was not running until {late} late, beyond the {grace} grace period"
                ),
            }
        } else if target.last_outcome.as_deref() == Some(ErrorClass::OutcomeUnknown.as_str()) {
            Claim::OutcomeUnknown {
                error: format!(
                    "the last attempt's outcome is unknown and a resend now would be {late} late \
                     (due at {due}, grace {grace}): check the channel, then reschedule if it is missing"
                ),
            }
        } else {
            Claim::Failed {
                error: format!(
                    "not retried: a retry now would be {late} late (due at {due}, grace {grace}); \
                     last error: {}",
                    target.last_error.as_deref().unwrap_or("none recorded")
                ),
            }
        })
    }

    /// After an attempt whose outcome is unknown (a timeout, or a worker
    /// that died mid-publish), a resend is safe only while the platform
    /// still remembers the key. Outside that window it is treated like a
    /// platform without idempotency: reported, never blindly resent.
    fn unsafe_resend(
        &self,
        target: &target::Model,
        adapter: &dyn ChannelAdapter,
        now: i64,
    ) -> Option<Claim> {
        if target.last_outcome.as_deref() != Some(ErrorClass::OutcomeUnknown.as_str()) {
            return None;
        }
        let first_sent = target.first_sent_at_ms.unwrap_or(now);
        let elapsed = Duration::from_millis((now - first_sent).max(0) as u64);
        if adapter.idempotency().dedupes_after(elapsed) {
            return None;
        }
        Some(Claim::OutcomeUnknown {
            error: match adapter.idempotency() {
                clarion_core::Idempotency::None => format!(
                    "{}: the outcome is unknown and `{}` cannot deduplicate a resend, so Clarion \
                     will not post again on its own: check the channel",
                    target
                        .last_error
                        .as_deref()
                        .unwrap_or("an earlier attempt was cut short"),
                    adapter.kind()
                ),
                clarion_core::Idempotency::Honoured { window } => format!(
                    "{}: the outcome is unknown and `{}` only deduplicates a resend for {}; the key \
                     was first used {} ago, so a resend could post twice: check the channel",
                    target
                        .last_error
                        .as_deref()
                        .unwrap_or("an earlier attempt was cut short"),
                    adapter.kind(),
                    human_duration(window.as_millis().min(i64::MAX as u128) as i64),
                    human_duration(elapsed.as_millis() as i64)
                ),
            },
        })
    }

    fn untried(
        &self,
        target: &target::Model,
        outcome: &str,
        next: &Claim,
        now: i64,
    ) -> AttemptRecord {
        AttemptRecord {
            target_id: target.id,
            attempt_no: target.attempts,
            worker: self.worker_id.clone(),
            started_at_ms: now,
            finished_at_ms: now,
            outcome: outcome.to_owned(),
            http_status: None,
            retry_after_ms: None,
            platform_post_id: None,
            message: match next {
                Claim::Failed { error } | Claim::OutcomeUnknown { error } => Some(error.clone()),
                _ => None,
            },
        }
    }

    /// One publish call (or one thread) for a claimed target.
    async fn attempt(
        &self,
        target: &target::Model,
        claim: &Claimed,
        adapter: &dyn ChannelAdapter,
    ) -> (AttemptRecord, Claim) {
        let started = now_ms();
        let result = self.send_all_parts(target, claim, adapter).await;
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
                    target,
                    finished,
                )
            }
        };
        (record, next)
    }

    /// Sends the target's message, or its thread part by part. Each part
    /// that goes out is recorded before the next is sent, so a retry after a
    /// failure (or a crash) resumes at the first part not yet published and
    /// never posts an earlier part again. Returns the first part's receipt.
    async fn send_all_parts(
        &self,
        target: &target::Model,
        claim: &Claimed,
        adapter: &dyn ChannelAdapter,
    ) -> Result<PublishReceipt, PublishError> {
        let token = claim.token.as_str();
        let mut reserved = claim.first_slot;
        let parts = target.parts();
        let media = target.media();
        let messages = match adapter.thread_style() {
            ThreadStyle::Native => parts,
            ThreadStyle::Joined => vec![parts.join("\n\n")],
        };
        let mut progress = target.thread_progress();
        let count = messages.len();
        let pace = self.pace(&target.channel);
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
            // An inbox reply threads under the platform message it answers;
            // its later parts keep that thread's root (Bluesky needs it).
            let answered = target.reply_parent.as_deref();
            let reply_to = match (ids.first(), ids.last()) {
                (Some(root), Some(parent)) if index > 0 => Some(ReplyTo {
                    root: target.reply_root.as_deref().unwrap_or(root),
                    parent,
                }),
                _ => answered.map(|parent| ReplyTo {
                    root: target.reply_root.as_deref().unwrap_or(parent),
                    parent,
                }),
            };
            if index > 0 && reply_to.is_none() {
                return Err(PublishError::new(
                    ErrorClass::Permanent,
                    "the platform returned no id for the previous part, so the thread cannot continue",
                ));
            }
            let timeout = self.config.publish_timeout();
            let request = PublishRequest {
                post: &post,
                idempotency_key: &key,
                reply_to,
                post_id: i64::from(target.post_id),
                target_id: i64::from(target.id),
                scheduled_at_ms: target.scheduled_at_ms.unwrap_or_default(),
                budget: timeout,
            };
            // The claim is renewed while this waits (see `InFlight`), so a
            // long thread on a paced channel never outlives its lease.
            match reserved.take() {
                Some(slot) => tokio::time::sleep_until(slot.into()).await,
                None => self.pacer.wait_turn(&target.channel, pace).await,
            }
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
                    .record_thread_progress(target.id, token, &progress)
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

    /// Counts and logs a result once it is written.
    pub(crate) fn report(&self, f: &Finished) {
        let finished = f.finish.attempt.finished_at_ms;
        let (id, channel) = (f.finish.attempt.target_id, f.channel.as_str());
        match &f.finish.next {
            Claim::Published {
                platform_post_id, ..
            } => {
                let scheduled = f.scheduled_at_ms.unwrap_or(finished);
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
        // Failure alerts, if configured: handed off, never waited on.
        crate::alerts::on_report(self, f);
    }
}

/// How many claims one process may hold at once (see `Runtime::permits`).
pub(crate) fn claim_window(config: &SchedulerConfig) -> usize {
    config.concurrency.max(1) * 2
}

/// A claim as its task gets it: the token that fences its writes, and the
/// pacer slot the dispatcher reserved for its first send (paced channels).
#[derive(Debug)]
pub(crate) struct Claimed {
    pub token: String,
    pub first_slot: Option<std::time::Instant>,
}

/// The claim tokens this process is working on.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    tokens: Arc<Mutex<HashSet<String>>>,
}

impl InFlight {
    pub(crate) fn register(&self, token: String) -> InFlightGuard {
        if let Ok(mut set) = self.tokens.lock() {
            set.insert(token.clone());
        }
        InFlightGuard {
            tokens: self.tokens.clone(),
            token,
        }
    }

    pub(crate) fn contains(&self, token: &str) -> bool {
        self.tokens.lock().is_ok_and(|set| set.contains(token))
    }

    pub(crate) fn snapshot(&self) -> Vec<String> {
        self.tokens
            .lock()
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Removes its token from [`InFlight`] when dropped: after the result is
/// written, or when the task ends in any other way.
#[derive(Debug)]
pub(crate) struct InFlightGuard {
    tokens: Arc<Mutex<HashSet<String>>>,
    token: String,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if let Ok(mut set) = self.tokens.lock() {
            set.remove(&self.token);
        }
    }
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
