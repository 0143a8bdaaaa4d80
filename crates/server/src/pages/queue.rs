//! `/queue`: what is due, publishing and stuck; targets that failed or whose
//! outcome is unknown (with Retry); each channel's health with a "Check
//! now" button. Reads the same store calls as `GET /api/v1/queue`,
//! `/readyz` (stuck: due longer than `stuck_after_secs`, not picked up)
//! and `GET /api/v1/channels`.

use std::collections::HashMap;

use axum::Extension;
use axum::extract::State;
use clarion_core::{Action, TargetStatus};
use clarion_store::{PostFilter, now_ms};
use maud::html;

use super::{PageResult, layout, local_time};
use crate::AppState;
use crate::api::list_channels::channel_rows;
use crate::team::Actor;

/// At most this many failed (or unknown) targets are listed; the counts say
/// how many there are in all.
const LISTED: u64 = 200;

pub async fn page(State(state): State<AppState>, Extension(actor): Extension<Actor>) -> PageResult {
    let store = state.service.store();
    let now = now_ms();
    let counts: HashMap<String, u64> = store
        .status_counts()
        .await?
        .into_iter()
        .map(|c| (c.status, c.count as u64))
        .collect();
    let count = |s: TargetStatus| counts.get(s.as_str()).copied().unwrap_or(0);
    let due_now = store.due_count(now, 0).await?;
    let due_hour = store.due_count(now, 3_600_000).await?;
    let stuck_ms = state.scheduler.stuck_after_secs as i64 * 1000;
    let stuck = store.overdue(now - stuck_ms, 20).await?;

    let mut problems = Vec::new();
    for status in [TargetStatus::Failed, TargetStatus::OutcomeUnknown] {
        let posts = store
            .list_posts(&PostFilter {
                status: Some(status),
                campaign: None,
                limit: LISTED,
            })
            .await?;
        for d in posts {
            for t in d.targets {
                if t.status == status.as_str() {
                    problems.push(t);
                }
            }
        }
    }
    problems.sort_by_key(|t| std::cmp::Reverse(t.updated_at_ms));
    let channels = channel_rows(&state).await?;
    let can_write = actor.role.may(Action::Publish);
    let zone = state.timezone;

    let body = html! {
        section aria-labelledby="counts-h" {
            h2 #counts-h { "Queue" }
            dl #counts .counts {
                dt { "Due now" } dd data-count="due" { (due_now) }
                dt { "Due within the hour" } dd data-count="due_next_hour" { (due_hour) }
                dt { "Publishing" } dd data-count="publishing" { (count(TargetStatus::Publishing)) }
                dt { "Scheduled" } dd data-count="scheduled" { (count(TargetStatus::Scheduled)) }
                dt { "Failed" } dd data-count="failed" { (count(TargetStatus::Failed)) }
                dt { "Outcome unknown" } dd data-count="outcome_unknown" { (count(TargetStatus::OutcomeUnknown)) }
            }
        }
        section aria-labelledby="stuck-h" {
            h2 #stuck-h { "Stuck" }
            @if stuck.is_empty() {
                p #stuck { "Nothing is stuck: every due post was picked up within "
                    (state.scheduler.stuck_after_secs) "s." }
            } @else {
                p { "Due for longer than " (state.scheduler.stuck_after_secs)
                    "s and not picked up: is `clarion run` running? See /readyz." }
                table #stuck {
                    thead { tr {
                        th scope="col" { "Target" } th scope="col" { "Post" }
                        th scope="col" { "Channel" } th scope="col" { "Due" }
                    } }
                    tbody { @for t in &stuck { tr {
                        td { (t.id) } td { (t.post_id) } td { (t.channel) }
                        td { (t.not_before_ms.map(|ms| local_time(ms, zone)).unwrap_or_default()) }
                    } } }
                }
            }
        }
        section aria-labelledby="failed-h" {
            h2 #failed-h { "Failed or of unknown outcome" }
            @if problems.is_empty() {
                p #failed-none { "No failed target." }
            }
            // Kept when empty (hidden) so the table's shape is the same for scripts.
            table #failed hidden[problems.is_empty()] {
                thead { tr {
                    th scope="col" { "Post" } th scope="col" { "Channel" }
                    th scope="col" { "Status" } th scope="col" { "Attempts" }
                    th scope="col" { "Last error" } th scope="col" { "When" }
                    @if can_write { th scope="col" { "Action" } }
                } }
                tbody {
                    @for t in &problems {
                        tr data-target=(t.id) {
                            td { (t.post_id) }
                            td { (t.channel) }
                            td { span class=(format!("badge status-{}", t.status)) { (t.status) } }
                            td { (t.attempts) }
                            td { (t.last_error.as_deref().unwrap_or("")) }
                            td { (local_time(t.updated_at_ms, zone)) }
                            @if can_write {
                                td {
                                    // Unknown outcomes may post twice: the API refuses
                                    // those (409) unless forced, and says why.
                                    button type="button"
                                        data-api-path=(format!("/api/v1/posts/{}/retry", t.post_id))
                                        data-api-body=(serde_json::json!({"channel": t.channel}).to_string())
                                        data-done="Sent back to the queue."
                                        aria-label=(format!("Retry post {} on {}", t.post_id, t.channel)) { "Retry" }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="channels-h" {
            h2 #channels-h { "Channels" }
            table #channels {
                thead { tr {
                    th scope="col" { "Channel" } th scope="col" { "Kind" }
                    th scope="col" { "Last publish" } th scope="col" { "Last error" }
                    th scope="col" { "Listener" }
                    @if can_write { th scope="col" { "Check" } }
                } }
                tbody {
                    @for c in &channels {
                        tr data-channel=(c.channel) {
                            th scope="row" { (c.channel) }
                            td { (c.kind) }
                            td {
                                @match (&c.last_status, c.last_at_ms) {
                                    (Some(s), Some(ms)) => { (s) " · " (local_time(ms, zone)) }
                                    _ => { span.muted { "nothing sent yet" } }
                                }
                            }
                            td {
                                (c.last_error.as_deref().unwrap_or(""))
                                @if let Some(hint) = &c.reconnect {
                                    p.reconnect { strong { "Reconnect: " } (hint) }
                                }
                            }
                            td {
                                (c.listener.as_deref().unwrap_or("does not listen"))
                                @if let Some(e) = &c.listener_error { br; span.muted { (e) } }
                            }
                            @if can_write {
                                td {
                                    button type="button" data-check=(c.channel)
                                        aria-describedby=(format!("check-{}", c.channel)) { "Check now" }
                                    " "
                                    span.check-result id=(format!("check-{}", c.channel))
                                        role="status" aria-live="polite" {}
                                }
                            }
                        }
                    }
                }
            }
            @if !can_write { p.muted { "An editor or owner retries posts and checks channels." } }
        }
    };
    Ok(layout(
        "Queue & channels",
        &actor,
        "/queue",
        &["queue.js"],
        body,
    ))
}
