//! `/inbox`: conversations (filtered like `GET /api/v1/inbox`), one
//! conversation with its items, notes and replies, and `/inbox/events`, the
//! live-update feed `inbox.js` listens to. Every change is a call to the
//! inbox API (`/api/v1/inbox/{id}/...`); these pages only read.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use clarion_core::Action;
use clarion_engage::InboxQuery;
use clarion_store::ConversationStatus;
use maud::{Markup, html};
use serde::Deserialize;

use super::{PageResult, layout, local_time};
use crate::AppState;
use crate::team::Actor;

/// The list's filters, as the GET form sends them ("" means any).
#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    status: Option<String>,
    assignee: Option<String>,
    label: Option<String>,
    channel: Option<String>,
}

fn given(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != "all")
        .map(str::to_owned)
}

/// Longest excerpt of an item's text in the list.
const EXCERPT_CHARS: usize = 80;

fn excerpt(text: &str) -> String {
    let mut out: String = text.chars().take(EXCERPT_CHARS).collect();
    if text.chars().nth(EXCERPT_CHARS).is_some() {
        out.push('…');
    }
    out
}

pub async fn page(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Query(f): Query<Filters>,
) -> PageResult {
    let status = given(&f.status);
    // The same listing as the API (one read for the page, batched counts).
    let list = state
        .inbox
        .list(&InboxQuery {
            status: status.clone(),
            platform: None,
            channel: given(&f.channel),
            campaign: None,
            label: given(&f.label),
            assignee: given(&f.assignee),
            limit: Some(500),
        })
        .await?;
    let channels: BTreeSet<String> = state
        .service
        .registry()
        .iter()
        .map(|(name, _)| name.to_owned())
        .collect();
    let selected = status.as_deref().unwrap_or("all");
    let text_value = |v: &Option<String>| given(v).unwrap_or_default();
    let body = html! {
        form #filters method="get" action="/inbox" {
            div.filters {
                label for="f-status" { "Status" }
                select #f-status name="status" {
                    @for s in ["all", "open", "pending", "resolved", "snoozed"] {
                        option value=(s) selected[s == selected] { (s) }
                    }
                }
                label for="f-assignee" { "Assignee" }
                input #f-assignee type="text" name="assignee" value=(text_value(&f.assignee));
                label for="f-label" { "Label" }
                input #f-label type="text" name="label" value=(text_value(&f.label));
                label for="f-channel" { "Channel" }
                select #f-channel name="channel" {
                    option value="" { "any" }
                    @for c in &channels {
                        option value=(c) selected[given(&f.channel).as_deref() == Some(c.as_str())] { (c) }
                    }
                }
                button type="submit" { "Filter" }
            }
        }
        p.muted #inbox-help { "Keys: j / k move between conversations, Enter opens one. The list updates by itself." }
        table #conversations {
            caption { (list.len()) " conversations" }
            thead { tr {
                th scope="col" { "Conversation" }
                th scope="col" { "Channel" }
                th scope="col" { "Items" }
                th scope="col" { "Status" }
                th scope="col" { "Assignee" }
                th scope="col" { "Labels" }
                th scope="col" { "Last activity" }
            } }
            tbody #conversation-rows {
                @for s in &list {
                    @let c = &s.conversation;
                    tr {
                        td {
                            a.conversation data-id=(c.id) href=(format!("/inbox/{}", c.id)) {
                                @if let Some(e) = &s.latest {
                                    strong.author { (e.author_handle) } " "
                                    span.excerpt { (excerpt(&e.text)) }
                                } @else {
                                    "Conversation " (c.id)
                                }
                            }
                        }
                        td { (c.channel) }
                        td { (s.items) }
                        td { span class=(format!("badge status-{}", c.status)) { (c.status) } }
                        td { (c.assignee.as_deref().unwrap_or("—")) }
                        td { (c.labels().join(", ")) }
                        td { (local_time(c.last_item_at_ms, state.timezone)) }
                    }
                }
            }
        }
        @if list.is_empty() { p #inbox-empty { "No conversation matches." } }
    };
    Ok(layout("Inbox", &actor, "/inbox", &["inbox.js"], body))
}

pub async fn conversation_page(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<i32>,
) -> PageResult {
    let d = state.inbox.show(id).await?;
    let c = &d.conversation;
    let users = state.service.store().users().await?;
    let tz = state.timezone;
    let may_publish = actor.role.may(Action::Publish);
    let may_draft = actor.role.may(Action::Draft);
    let api = format!("/api/v1/inbox/{id}");
    let labels = c.labels();
    let body = html! {
        p.muted {
            "Channel " (c.channel) " · "
            span #conversation-status class=(format!("badge status-{}", c.status)) { (c.status) }
            " · assignee " span #conversation-assignee { (c.assignee.as_deref().unwrap_or("nobody")) }
            " · labels " span #conversation-labels { @if labels.is_empty() { "none" } @else { (labels.join(", ")) } }
            @if let Some(until) = c.snoozed_until_ms { " · snoozed until " (local_time(until, tz)) }
            " · " a href="/inbox" { "All conversations" }
        }
        section #live data-id=(id) aria-live="polite" {
            h2 { "Items" }
            ol #items {
                @for e in &d.items {
                    li.item data-id=(e.id) {
                        span.kind { (e.kind) } " · "
                        strong.author { (e.author_name) " " (e.author_handle) } " · "
                        time { (local_time(e.created_at_ms, tz)) }
                        @if let Some(url) = &e.url { " · " a href=(url) rel="noopener noreferrer" { "original" } }
                        p.text { (e.text) }
                    }
                }
            }
            h2 { "Our replies" }
            @if d.replies.is_empty() { p.muted { "No reply yet." } }
            ol #replies {
                @for r in &d.replies {
                    @let status = r.target.as_ref().map(|t| t.status.as_str()).unwrap_or("unknown");
                    li.reply data-id=(r.reply.id) data-status=(status) {
                        span class=(format!("badge status-{status}")) { (status) } " · "
                        (r.reply.author) " via " (r.reply.via) " · "
                        time { (local_time(r.reply.created_at_ms, tz)) }
                        @if let Some(url) = r.target.as_ref().and_then(|t| t.platform_url.as_deref()) {
                            " · " a href=(url) rel="noopener noreferrer" { "on the platform" }
                        }
                        @if let Some(t) = &r.target {
                            p.text { (t.rendered_text) }
                            @if let Some(err) = &t.last_error { p.error { (err) } }
                        }
                    }
                }
            }
            h2 { "Notes" }
            @if d.notes.is_empty() { p.muted { "No note yet." } }
            ul #notes {
                @for n in &d.notes {
                    li.note { strong { (n.author) } " · " time { (local_time(n.created_at_ms, tz)) } p.text { (n.text) } }
                }
            }
        }
        @if may_publish {
            form #reply data-api-path=(format!("{api}/reply")) data-done="Reply queued." {
                label for="reply-text" { "Reply" }
                textarea #reply-text name="text" rows="4" required {}
                input type="hidden" name="author" value=(actor.name);
                p { button type="submit" { "Send reply" } }
            }
            (status_buttons(&api, &c.status))
            form #assign data-api-path=(format!("{api}/assign")) data-done="Assigned." {
                label for="assignee" { "Assignee (pick or type; empty: nobody)" }
                input #assignee type="text" name="assignee" list="assignee-users" value=(c.assignee.as_deref().unwrap_or(""));
                datalist #assignee-users { @for u in &users { option value=(u.email) {} } }
                p { button type="submit" { "Assign" } }
            }
            form #labels data-labels-path=(format!("{api}/labels")) {
                label for="label-add" { "Add labels (comma-separated)" }
                input #label-add type="text" name="add";
                label for="label-remove" { "Remove labels (comma-separated)" }
                input #label-remove type="text" name="remove";
                p { button type="submit" { "Save labels" } }
            }
        }
        @if may_draft {
            form #note data-api-path=(format!("{api}/note")) data-done="Note saved." {
                label for="note-text" { "Internal note" }
                textarea #note-text name="text" rows="3" required {}
                input type="hidden" name="author" value=(actor.name);
                p { button type="submit" { "Save note" } }
            }
        }
        @if !may_draft { p.muted { "You may read this conversation; an editor answers it." } }
    };
    Ok(layout(
        &format!("Conversation {id}"),
        &actor,
        "/inbox",
        &["inbox.js"],
        body,
    ))
}

/// Resolve / reopen / snooze: buttons calling the status API.
fn status_buttons(api: &str, status: &str) -> Markup {
    let path = format!("{api}/status");
    html! {
        div #status-actions {
            @if status != ConversationStatus::Resolved.as_str() {
                button type="button" data-api-path=(path) data-api-body=r#"{"status":"resolved"}"# data-done="Resolved." { "Resolve" }
            }
            @if status != ConversationStatus::Open.as_str() {
                button type="button" data-api-path=(path) data-api-body=r#"{"status":"open"}"# data-done="Reopened." { "Reopen" }
            }
            form #snooze data-api-path=(path) data-done="Snoozed." {
                input type="hidden" name="status" value="snoozed";
                label for="snooze-until" { "Snooze until (e.g. 2026-12-01 09:00)" }
                input #snooze-until type="text" name="until" required;
                button type="submit" { "Snooze" }
            }
        }
    }
}

/// How often the feed looks for a change, and how long one response waits.
const CHECK_EVERY: Duration = Duration::from_secs(2);
const LONGEST_WAIT: Duration = Duration::from_secs(25);

#[derive(Debug, Default, Deserialize)]
pub struct Since {
    since: Option<String>,
}

/// `GET /inbox/events`: server-sent events, one per response. The reply
/// waits (checking a cheap marker every 2 s) until the inbox differs from
/// `Last-Event-ID` (or `?since=`, or the state when it was asked), then
/// sends `id: <marker>` + `data: {"latest": "<marker>"}` and ends; after
/// 25 s without change it ends with only the id. EventSource reconnects by
/// itself (`retry`) and sends the id back, so nothing is missed between
/// responses, and no request outlives 25 s if the client goes away.
pub async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Since>,
) -> Response {
    let store = state.service.store().clone();
    let since = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(q.since);
    let start = store.inbox_marker().await;
    let baseline = match (since, start) {
        (Some(s), _) => s,
        (None, Ok(m)) => m,
        (None, Err(e)) => return crate::ApiError::from(e).into_response(),
    };
    let mut tick = tokio::time::interval(CHECK_EVERY);
    let deadline = tokio::time::Instant::now() + LONGEST_WAIT;
    let mut body = String::from("retry: 1000\n");
    let mut current = baseline.clone();
    while tokio::time::Instant::now() < deadline {
        tick.tick().await;
        match store.inbox_marker().await {
            Ok(m) if m != baseline => {
                body.push_str(&format!("id: {m}\ndata: {{\"latest\":\"{m}\"}}\n\n"));
                current = m;
                break;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "inbox events: marker read failed"),
        }
    }
    if current == baseline {
        body.push_str(&format!("id: {baseline}\n\n"));
    }
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}
