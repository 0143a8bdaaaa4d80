//! JSON shapes of posts and targets, shared by the API and `clarion post show`.

use clarion_store::{PostDetail, publish_attempt, target};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct PostView {
    pub id: i32,
    pub source: Option<String>,
    pub body: String,
    pub template: Option<String>,
    pub vars: serde_json::Value,
    pub campaign: Option<String>,
    pub author: Option<String>,
    pub scheduled_at: Option<String>,
    /// `pending_approval`, `approved` or `rejected` (contributors' posts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<String>,
    /// The time a post waiting for approval asks for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review_comment: Option<String>,
    pub targets: Vec<TargetView>,
}

#[derive(Debug, Serialize)]
pub struct TargetView {
    pub id: i32,
    pub channel: String,
    pub status: String,
    pub scheduled_at: Option<String>,
    pub not_before: Option<String>,
    pub attempts: i32,
    pub text: String,
    pub platform_post_id: Option<String>,
    pub platform_url: Option<String>,
    pub published_at: Option<String>,
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<AttemptView>,
}

#[derive(Debug, Serialize)]
pub struct AttemptView {
    pub attempt: i32,
    pub worker: String,
    pub started_at: Option<String>,
    pub duration_ms: i64,
    pub outcome: String,
    pub http_status: Option<i32>,
    pub retry_after_ms: Option<i64>,
    pub platform_post_id: Option<String>,
    pub message: Option<String>,
}

pub fn format_time(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

impl PostView {
    pub fn new(detail: &PostDetail, attempts: &[publish_attempt::Model]) -> Self {
        let p = &detail.post;
        Self {
            id: p.id,
            source: p.source_key.clone(),
            body: p.body.clone(),
            template: p.template.clone(),
            vars: serde_json::from_str(&p.vars).unwrap_or_default(),
            campaign: p.campaign.clone(),
            author: p.author.clone(),
            scheduled_at: p.scheduled_at_ms.and_then(format_time),
            approval: p.approval.clone(),
            requested_at: p.requested_at_ms.and_then(format_time),
            review_comment: p.review_comment.clone(),
            targets: detail
                .targets
                .iter()
                .map(|t| TargetView::new(t, attempts))
                .collect(),
        }
    }
}

impl TargetView {
    fn new(t: &target::Model, attempts: &[publish_attempt::Model]) -> Self {
        Self {
            id: t.id,
            channel: t.channel.clone(),
            status: t.status.clone(),
            scheduled_at: t.scheduled_at_ms.and_then(format_time),
            not_before: t.not_before_ms.and_then(format_time),
            attempts: t.attempts,
            text: t.rendered_text.clone(),
            platform_post_id: t.platform_post_id.clone(),
            platform_url: t.platform_url.clone(),
            published_at: t.published_at_ms.and_then(format_time),
            last_error: t.last_error.clone(),
            history: attempts
                .iter()
                .filter(|a| a.target_id == t.id)
                .map(|a| AttemptView {
                    attempt: a.attempt_no,
                    worker: a.worker.clone(),
                    started_at: format_time(a.started_at_ms),
                    duration_ms: a.finished_at_ms - a.started_at_ms,
                    outcome: a.outcome.clone(),
                    http_status: a.http_status,
                    retry_after_ms: a.retry_after_ms,
                    platform_post_id: a.platform_post_id.clone(),
                    message: a.message.clone(),
                })
                .collect(),
        }
    }
}
