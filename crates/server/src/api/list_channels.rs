//! `GET /api/v1/channels`: each configured channel's health: kind, the last
//! publish outcome and error, the listener's state, and what to renew when
//! the last error was about credentials. The queue page renders the same
//! rows ([`channel_rows`]), so the page and the API never disagree.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use clarion_store::{PostFilter, now_ms};
use serde::Serialize;
use serde_json::{Value, json};

use crate::{ApiError, AppState, format_time};

/// How many recent posts are read for each channel's last outcome: enough
/// for a busy week, bounded so the page stays cheap.
const RECENT_POSTS: u64 = 500;

/// One channel's health, as the API answers it and the page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelRow {
    pub channel: String,
    pub kind: String,
    /// The newest target that reached an end (published, failed, unknown).
    pub last_status: Option<String>,
    pub last_outcome: Option<String>,
    pub last_at_ms: Option<i64>,
    pub last_at: Option<String>,
    pub last_error: Option<String>,
    /// `listening`, `failing`, `stopped`, or None when it does not listen.
    pub listener: Option<String>,
    pub listener_error: Option<String>,
    /// Set when the last error says the credentials were refused.
    pub reconnect: Option<String>,
}

/// Whether an outcome or error text means the platform refused our
/// credentials (the `auth_expired` class, or its 401/403 words).
pub fn auth_related(outcome: Option<&str>, error: Option<&str>) -> bool {
    if outcome == Some(clarion_core::ErrorClass::AuthExpired.as_str()) {
        return true;
    }
    error.is_some_and(|e| {
        let e = e.to_lowercase();
        // Words platforms use for refused credentials; "token" alone is too
        // broad (a webhook URL may carry one in its path).
        [
            "401",
            "403",
            "unauthorized",
            "forbidden",
            "invalid token",
            "invalid_token",
            "expired",
        ]
        .iter()
        .any(|w| e.contains(w))
    })
}

/// What to renew for a channel whose credentials were refused. It names
/// the setting, never its value: secrets live in the environment or files.
pub fn reconnect_hint(channel: &str, kind: &str) -> String {
    let setting = match kind {
        "mastodon" | "discord" | "telegram" | "linkedin" | "facebook" | "threads" | "instagram"
        | "weibo" | "matrix" => "access_token",
        "bluesky" => "app_password",
        "x" => "the OAuth tokens (access_token / refresh_token)",
        "email" => "password",
        "wechat_oa" => "app_secret",
        _ => "its credential (url or token)",
    };
    format!(
        "Renew {setting} of channel `{channel}` ({kind}) on the platform, put the new value \
         where its `{{ env = … }}` or `{{ file = … }}` reference points in clarion.toml, \
         restart `clarion run`, then press Check now."
    )
}

/// The rows for every configured channel, in the registry's order.
pub async fn channel_rows(state: &AppState) -> Result<Vec<ChannelRow>, ApiError> {
    let store = state.service.store();
    let recent = store
        .list_posts(&PostFilter {
            status: None,
            campaign: None,
            limit: RECENT_POSTS,
        })
        .await?;
    // The newest finished target per channel: published, failed or unknown.
    let mut last: HashMap<&str, &clarion_store::target::Model> = HashMap::new();
    for t in recent.iter().flat_map(|d| &d.targets) {
        let finished = t.published_at_ms.is_some() || t.last_outcome.is_some();
        if !finished || t.status == "scheduled" && t.last_error.is_none() {
            continue;
        }
        let at = t.published_at_ms.unwrap_or(t.updated_at_ms);
        let newer = last
            .get(t.channel.as_str())
            .is_none_or(|o| o.published_at_ms.unwrap_or(o.updated_at_ms) < at);
        if newer {
            last.insert(t.channel.as_str(), t);
        }
    }
    let now = now_ms();
    let listeners: HashMap<String, clarion_store::listener::Model> = store
        .listeners()
        .await?
        .into_iter()
        .map(|l| (l.channel.clone(), l))
        .collect();
    let mut rows = Vec::new();
    for (name, adapter) in state.service.registry().iter() {
        let t = last.get(name);
        let l = listeners.get(name);
        let last_at_ms = t.map(|t| t.published_at_ms.unwrap_or(t.updated_at_ms));
        let last_outcome = t.and_then(|t| t.last_outcome.clone());
        let last_error = t.and_then(|t| t.last_error.clone());
        let listener_error = l.and_then(|l| l.last_error.clone());
        let listener = l.map(|l| {
            if l.failing_since_ms.is_some() {
                "failing"
            } else if l.lease_until_ms.is_some_and(|u| u >= now) {
                "listening"
            } else {
                "stopped"
            }
            .to_owned()
        });
        let auth = auth_related(last_outcome.as_deref(), last_error.as_deref())
            || l.is_some_and(|l| l.failing_since_ms.is_some())
                && auth_related(None, listener_error.as_deref());
        rows.push(ChannelRow {
            channel: name.to_owned(),
            kind: adapter.kind().to_owned(),
            last_status: t.map(|t| t.status.clone()),
            last_outcome,
            last_at: last_at_ms.and_then(format_time),
            last_at_ms,
            last_error,
            listener,
            listener_error,
            reconnect: auth.then(|| reconnect_hint(name, adapter.kind())),
        });
    }
    Ok(rows)
}

pub async fn handler(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "channels": channel_rows(&state).await? })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_errors_are_recognised_and_hints_name_no_value() {
        assert!(auth_related(Some("auth_expired"), None));
        assert!(auth_related(None, Some("HTTP 401: bad token")));
        assert!(!auth_related(
            Some("permanent"),
            Some("HTTP 404: not found")
        ));
        let hint = reconnect_hint("masto", "mastodon");
        assert!(hint.contains("access_token") && hint.contains("`masto`"));
    }
}
