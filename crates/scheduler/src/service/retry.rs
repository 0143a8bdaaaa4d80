//! `PostService::retry` and `PostService::settle`: what a person does with
//! a target the scheduler left for them (`failed`, `outcome_unknown`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use clarion_core::{Idempotency, TargetStatus};
use clarion_store::{Enqueue, PostDetail, Settlement, StoreError, now_ms, target};

use super::{PostService, scheduled_time};
use crate::ServiceError;

/// Which targets to retry, and when.
#[derive(Debug, Clone, Default)]
pub struct RetryRequest {
    /// Only this channel's target; None: every failed or outcome_unknown one.
    pub channel: Option<String>,
    /// When to send; None: now.
    pub at: Option<DateTime<Utc>>,
    /// Resend a target of unknown outcome although the platform may not
    /// deduplicate it (it may post twice).
    pub force: bool,
}

/// What a retry did.
#[derive(Debug, Clone)]
pub struct RetryReport {
    pub detail: PostDetail,
    /// The targets moved back to `scheduled`.
    pub retried: Vec<i32>,
    /// Targets of unknown outcome resent on a person's word (`force`).
    pub forced: Vec<i32>,
}

impl PostService {
    /// Moves the post's `failed`/`outcome_unknown` targets (or the one of
    /// `request.channel`) back to `scheduled`: same idempotency key,
    /// attempts reset, due at `request.at` (now by default), and queues a
    /// wake-up. A target of unknown outcome whose platform would not
    /// deduplicate the resend (no idempotency, or the key's dedupe window
    /// over by then) needs `force`: nothing is retried without it.
    pub async fn retry(&self, id: i32, request: RetryRequest) -> Result<RetryReport, ServiceError> {
        let at_ms = scheduled_time(request.at, false)
            .map_err(|m| ServiceError::BadRequest(format!("at: {m}")))?
            .unwrap_or_else(now_ms)
            .max(now_ms());
        let detail = self.store.post_detail(id).await?;
        let candidates: Vec<&target::Model> = match &request.channel {
            Some(channel) => {
                let t = target_on(&detail, channel)?;
                let status = status_of(t)?;
                if !status.awaits_person() {
                    return Err(conflict(
                        id,
                        format!(
                            "target {} on `{channel}` is {status}: only failed or outcome_unknown targets can be retried",
                            t.id
                        ),
                    ));
                }
                vec![t]
            }
            None => {
                let waiting: Vec<_> = detail
                    .targets
                    .iter()
                    .filter(|t| t.status().is_ok_and(TargetStatus::awaits_person))
                    .collect();
                if waiting.is_empty() {
                    let statuses: Vec<String> = detail
                        .targets
                        .iter()
                        .map(|t| format!("`{}` {}", t.channel, t.status))
                        .collect();
                    return Err(conflict(
                        id,
                        format!(
                            "nothing to retry: no target is failed or outcome_unknown ({})",
                            statuses.join(", ")
                        ),
                    ));
                }
                waiting
            }
        };

        // Check every target before changing any.
        let mut plan = Vec::with_capacity(candidates.len());
        for t in candidates {
            let Some(adapter) = self.registry.get(&t.channel) else {
                return Err(ServiceError::BadRequest(format!(
                    "channel: `{}` is not configured in this Clarion, so target {} cannot be sent",
                    t.channel, t.id
                )));
            };
            let unsafe_resend = status_of(t)? == TargetStatus::OutcomeUnknown && {
                let first_sent = t.first_sent_at_ms.unwrap_or(at_ms);
                let elapsed = Duration::from_millis((at_ms - first_sent).max(0) as u64);
                !adapter.idempotency().dedupes_after(elapsed)
            };
            if unsafe_resend && !request.force {
                let why = match adapter.idempotency() {
                    Idempotency::None => {
                        format!("`{}` cannot deduplicate a resend", adapter.kind())
                    }
                    Idempotency::Honoured { .. } => format!(
                        "the platform's dedupe window for the key (first used at {}) is over",
                        t.first_sent_at_ms
                            .and_then(format_ms)
                            .unwrap_or_else(|| "an unknown time".into())
                    ),
                };
                return Err(conflict(
                    id,
                    format!(
                        "target {} on `{}`: the outcome of its last attempt is unknown and {why}, so a retry may post it twice. \
                         Check the channel: if the post is there, record it with `post settle --published URL`; \
                         if not, retry with force (`--force`, or \"force\": true)",
                        t.id, t.channel
                    ),
                ));
            }
            plan.push((t, unsafe_resend));
        }

        let mut retried = Vec::new();
        let mut forced = Vec::new();
        for (t, unsafe_resend) in plan {
            if self.store.retry_target(t, at_ms, unsafe_resend).await? {
                retried.push(t.id);
                if unsafe_resend {
                    forced.push(t.id);
                }
            }
        }
        if retried.is_empty() {
            return Err(conflict(
                id,
                "nothing retried: the targets changed meanwhile (retried or settled by someone else)"
                    .into(),
            ));
        }
        let wakes: Vec<Enqueue> = retried
            .iter()
            .map(|&target_id| Enqueue {
                target_id,
                not_before_ms: at_ms,
            })
            .collect();
        self.queue_or_leave_to_sweeper(&wakes).await;
        Ok(RetryReport {
            detail: self.store.post_detail(id).await?,
            retried,
            forced,
        })
    }

    /// Records what a person checked on the platform for the target of
    /// `channel`: published (with its URL) or not. The target must be
    /// `failed` or `outcome_unknown`; `by` names who settled it in the
    /// target's history (`cli`, `api`).
    pub async fn settle(
        &self,
        id: i32,
        channel: &str,
        settlement: Settlement,
        by: &str,
    ) -> Result<PostDetail, ServiceError> {
        if let Settlement::Published { url, .. } = &settlement {
            let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
            if !scheme_ok || url.chars().any(char::is_whitespace) {
                return Err(ServiceError::BadRequest(format!(
                    "published: `{url}` is not a link; give the post's http(s) URL"
                )));
            }
        }
        let detail = self.store.post_detail(id).await?;
        let t = target_on(&detail, channel)?;
        let status = status_of(t)?;
        if !status.awaits_person() {
            return Err(conflict(
                id,
                format!(
                    "target {} on `{channel}` is {status}: only failed or outcome_unknown targets can be settled",
                    t.id
                ),
            ));
        }
        if !self.store.settle_target(t, &settlement, by).await? {
            return Err(conflict(
                id,
                format!(
                    "target {} on `{channel}` changed meanwhile; look again",
                    t.id
                ),
            ));
        }
        Ok(self.store.post_detail(id).await?)
    }
}

fn target_on<'a>(detail: &'a PostDetail, channel: &str) -> Result<&'a target::Model, ServiceError> {
    detail
        .targets
        .iter()
        .find(|t| t.channel == channel)
        .ok_or_else(|| {
            let on: Vec<&str> = detail.targets.iter().map(|t| t.channel.as_str()).collect();
            ServiceError::BadRequest(format!(
                "channel: post {} has no target on `{channel}` (its channels: {})",
                detail.post.id,
                on.join(", ")
            ))
        })
}

fn conflict(id: i32, reason: String) -> ServiceError {
    StoreError::Conflict { id, reason }.into()
}

fn format_ms(ms: i64) -> Option<String> {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

pub(super) fn status_of(t: &target::Model) -> Result<TargetStatus, ServiceError> {
    Ok(t.status().map_err(StoreError::from)?)
}
