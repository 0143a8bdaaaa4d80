//! `/healthz` (the process answers), `/readyz` (it is doing its job: the
//! database answers, the scheduler loop runs, no due post is stuck) and
//! `/metrics`. A stuck queue must turn readiness red, never stay green.

use std::fmt::Write;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use clarion_store::now_ms;
use serde_json::json;

use crate::AppState;
use crate::view::format_time;

pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let (reasons, behind) = not_ready_reasons(&state).await;
    if reasons.is_empty() {
        let mut body = json!({ "ready": true });
        if let Some(behind) = behind {
            body["behind"] = json!(behind);
        }
        (StatusCode::OK, Json(body))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "ready": false, "reasons": reasons })),
        )
    }
}

/// Why the process is not ready, and (when ready) whether it is behind: a
/// due backlog that is draining (the dispatcher claimed something recently)
/// is "behind", not stuck; due work with no claim for a while is stuck.
async fn not_ready_reasons(state: &AppState) -> (Vec<String>, Option<String>) {
    let store = state.service.store();
    if let Err(e) = store.ping().await {
        return (vec![format!("database unreachable: {e}")], None);
    }
    let mut reasons = Vec::new();
    let now = now_ms();
    if let Some(health) = &state.health {
        let allowed_ms = (state.scheduler.sweep_interval_secs.max(1) * 3 + 10) as i64 * 1000;
        let last = health.last_sweep_ms();
        if last == 0 || now - last > allowed_ms {
            reasons.push(format!(
                "the scheduler loop has not completed a pass in the last {}s",
                allowed_ms / 1000
            ));
        }
    }
    let stuck_ms = state.scheduler.stuck_after_secs as i64 * 1000;
    let mut behind = None;
    match store.overdue(now - stuck_ms, 1).await {
        Ok(stuck) => {
            if let Some(t) = stuck.first() {
                let due = t.not_before_ms.unwrap_or(now);
                let draining = state
                    .health
                    .as_ref()
                    .is_some_and(|h| now - h.last_claim_ms() <= stuck_ms);
                let what = format!(
                    "target {} (post {}, channel `{}`) was due at {}, {}s ago",
                    t.id,
                    t.post_id,
                    t.channel,
                    format_time(due).unwrap_or_default(),
                    (now - due) / 1000
                );
                if draining {
                    behind = Some(format!("draining a backlog: {what}"));
                } else {
                    reasons.push(format!("queue stuck: {what}, and has not been picked up"));
                }
            }
        }
        Err(e) => reasons.push(format!("could not read the queue: {e}")),
    }
    // A listener that keeps failing (expired token, platform down) must
    // not hide behind a green check: name it once it has lasted too long.
    let failing_ms = state.listen.failing_after_secs as i64 * 1000;
    match store.listeners().await {
        Ok(rows) => {
            for l in rows {
                if let Some(since) = l.failing_since_ms
                    && now - since > failing_ms
                {
                    reasons.push(format!(
                        "listener `{}` has been failing for {}s: {}",
                        l.channel,
                        (now - since) / 1000,
                        l.last_error.as_deref().unwrap_or("unknown error")
                    ));
                }
            }
        }
        Err(e) => reasons.push(format!("could not read the listeners: {e}")),
    }
    (reasons, behind)
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut extra = String::new();
    let name = "clarion_targets";
    let _ = writeln!(
        extra,
        "# HELP {name} Targets by status.\n# TYPE {name} gauge"
    );
    if let Ok(counts) = state.service.store().status_counts().await {
        for c in counts {
            let _ = writeln!(extra, "{name}{{status=\"{}\"}} {}", c.status, c.count);
        }
    }
    if let Ok(rows) = state.service.store().listeners().await {
        let now = now_ms();
        let _ = writeln!(
            extra,
            "# HELP clarion_listener_events_total Engagements stored per listening channel.\n\
             # TYPE clarion_listener_events_total counter"
        );
        for l in &rows {
            let _ = writeln!(
                extra,
                "clarion_listener_events_total{{channel=\"{}\"}} {}",
                l.channel, l.events_total
            );
        }
        let _ = writeln!(
            extra,
            "# HELP clarion_listener_failing Whether a listener's last call failed.\n\
             # TYPE clarion_listener_failing gauge"
        );
        for l in &rows {
            let _ = writeln!(
                extra,
                "clarion_listener_failing{{channel=\"{}\"}} {}",
                l.channel,
                u8::from(l.failing_since_ms.is_some())
            );
        }
        let _ = writeln!(
            extra,
            "# HELP clarion_listener_lag_seconds Seconds since the platform last answered a listener.\n\
             # TYPE clarion_listener_lag_seconds gauge"
        );
        for l in &rows {
            if let Some(t) = l.last_batch_at_ms {
                let _ = writeln!(
                    extra,
                    "clarion_listener_lag_seconds{{channel=\"{}\"}} {}",
                    l.channel,
                    (now - t) as f64 / 1000.0
                );
            }
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(&extra),
    )
}
