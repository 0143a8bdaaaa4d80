//! `/calendar`: the schedule by month or week, in the configured time zone.
//!
//! Reads one range from the store (three queries however many posts) and
//! renders a grid. Moving a post is the script's job (`calendar.js`): drag
//! an item to another day, or select it (click or Enter) and pick a date in
//! the move form; both call `POST /api/v1/posts/{id}/schedule`, which
//! refuses a post already publishing. Failed and unknown-outcome targets
//! are marked and carry a Retry button (`POST /api/v1/posts/{id}/retry`).

use std::collections::{BTreeMap, HashMap};

use axum::Extension;
use axum::extract::{Query, State};
use chrono::{Datelike, Duration, NaiveDate, TimeZone};
use clarion_core::{Action, TargetStatus};
use clarion_store::{CalendarFilter, post, target};
use maud::{Markup, html};
use serde::Deserialize;

use super::{PageError, PageResult, encode_component, layout};
use crate::team::Actor;
use crate::{ApiError, AppState};

/// Items shown per day in the month view; the rest are a link to the week.
const MONTH_CELL_ITEMS: usize = 8;
/// Targets read for one view, at most.
const MAX_TARGETS: u64 = 20_000;

#[derive(Debug, Deserialize)]
pub struct CalendarQuery {
    view: Option<String>,
    date: Option<String>,
    channel: Option<String>,
    campaign: Option<String>,
    status: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    Month,
    Week,
}

/// One thing on the calendar: a target at its local moment.
struct Item<'a> {
    target: &'a target::Model,
    local: chrono::NaiveDateTime,
    /// `status` as shown: a pending post's drafts read `pending_approval`.
    status: &'a str,
}

fn bad(message: String) -> PageError {
    PageError(ApiError::bad_request(message))
}

fn empty(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

pub async fn page(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
    Query(q): Query<CalendarQuery>,
) -> PageResult {
    let zone = state.timezone;
    let view = match q.view.as_deref().unwrap_or("month") {
        "month" | "" => View::Month,
        "week" => View::Week,
        other => return Err(bad(format!("view: `{other}` is not month or week"))),
    };
    let today = chrono::Utc::now().with_timezone(&zone).date_naive();
    let date = match empty(&q.date) {
        None => today,
        Some(d) => NaiveDate::parse_from_str(&d, "%Y-%m-%d")
            .map_err(|_| bad(format!("date: `{d}` is not a date like 2026-03-01")))?,
    };
    let status = empty(&q.status);
    if let Some(s) = &status
        && s != "pending_approval"
        && TargetStatus::parse(s).is_err()
    {
        return Err(bad(format!("status: unknown status `{s}`")));
    }
    let (first, days) = match view {
        View::Month => {
            let start = date.with_day(1).unwrap_or(date);
            let next = start + chrono::Months::new(1);
            let grid_start = start - Duration::days(start.weekday().num_days_from_monday() as i64);
            let last = next - Duration::days(1);
            let grid_end = last + Duration::days(6 - last.weekday().num_days_from_monday() as i64);
            (grid_start, (grid_end - grid_start).num_days() + 1)
        }
        View::Week => (
            date - Duration::days(date.weekday().num_days_from_monday() as i64),
            7,
        ),
    };
    let midnight = |d: NaiveDate| {
        zone.from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
            .earliest()
            .map(|t| t.timestamp_millis())
            .ok_or_else(|| bad(format!("date: no midnight on {d} in {zone}")))
    };
    let (from_ms, to_ms) = (midnight(first)?, midnight(first + Duration::days(days))?);
    let filter = CalendarFilter {
        channel: empty(&q.channel),
        campaign: empty(&q.campaign),
        // Pending posts are drafts with a flag on the post: filtered below.
        status: status.clone().filter(|s| s != "pending_approval"),
    };
    let store = state.service.store();
    let range = store
        .calendar_range(from_ms, to_ms, &filter, MAX_TARGETS)
        .await?;
    let posts: HashMap<i32, &post::Model> = range.posts.iter().map(|p| (p.id, p)).collect();
    let mut by_day: BTreeMap<NaiveDate, Vec<Item>> = BTreeMap::new();
    for t in &range.targets {
        let post = posts.get(&t.post_id).copied();
        let pending = post
            .is_some_and(|p| p.approval.as_deref() == Some(clarion_store::team::PENDING_APPROVAL))
            && t.status == TargetStatus::Draft.as_str();
        let at = if pending {
            post.and_then(|p| p.requested_at_ms)
        } else if t.status == TargetStatus::Published.as_str() {
            t.published_at_ms.or(t.not_before_ms)
        } else {
            t.not_before_ms.or(t.scheduled_at_ms)
        };
        let Some(local) = at
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| t.with_timezone(&zone).naive_local())
        else {
            continue;
        };
        let shown = if pending {
            "pending_approval"
        } else {
            t.status.as_str()
        };
        if status.as_deref().is_some_and(|s| s != shown) {
            continue;
        }
        by_day.entry(local.date()).or_default().push(Item {
            target: t,
            local,
            status: shown,
        });
    }
    for items in by_day.values_mut() {
        items.sort_by_key(|i| (i.local, i.target.id));
    }
    let campaigns = store.target_campaigns().await?;
    let channels: Vec<&str> = state.service.registry().names().collect();
    let can_move = actor.role.may(Action::Publish);

    let link = |view: View, d: NaiveDate| {
        let mut url = format!(
            "/calendar?view={}&date={}",
            if view == View::Month { "month" } else { "week" },
            d.format("%Y-%m-%d")
        );
        for (k, v) in [
            ("channel", &filter.channel),
            ("campaign", &filter.campaign),
            ("status", &status),
        ] {
            if let Some(v) = v {
                url.push_str(&format!("&{k}={}", encode_component(v)));
            }
        }
        url
    };
    let (prev, next, heading) = match view {
        View::Month => {
            let start = date.with_day(1).unwrap_or(date);
            (
                start - chrono::Months::new(1),
                start + chrono::Months::new(1),
                start.format("%B %Y").to_string(),
            )
        }
        View::Week => (
            first - Duration::days(7),
            first + Duration::days(7),
            format!("Week of {}", first.format("%-d %B %Y")),
        ),
    };
    let statuses = [
        "scheduled",
        "publishing",
        "published",
        "failed",
        "outcome_unknown",
        "draft",
        "cancelled",
        "pending_approval",
    ];
    let body = html! {
        style { (STYLE) }
        form #filters method="get" action="/calendar" .filters {
            input type="hidden" name="date" value=(date.format("%Y-%m-%d").to_string());
            div { label for="f-view" { "View" }
                select #f-view name="view" {
                    option value="month" selected[view == View::Month] { "Month" }
                    option value="week" selected[view == View::Week] { "Week" }
                } }
            div { label for="f-channel" { "Channel" }
                select #f-channel name="channel" {
                    option value="" { "All channels" }
                    @for c in &channels { option value=(c) selected[filter.channel.as_deref() == Some(*c)] { (c) } }
                } }
            div { label for="f-campaign" { "Campaign" }
                select #f-campaign name="campaign" {
                    option value="" { "All campaigns" }
                    @for c in &campaigns { option value=(c) selected[filter.campaign.as_deref() == Some(c.as_str())] { (c) } }
                } }
            div { label for="f-status" { "Status" }
                select #f-status name="status" {
                    option value="" { "Any status" }
                    @for s in statuses { option value=(s) selected[status.as_deref() == Some(s)] { (s.replace('_', " ")) } }
                } }
            button type="submit" { "Show" }
        }
        nav.cal-nav aria-label="Calendar pages" {
            a href=(link(view, prev)) rel="prev" { "← Previous" }
            " "
            a href=(link(view, today)) { "Today" }
            " "
            a href=(link(view, next)) rel="next" { "Next →" }
            " "
            strong #cal-heading { (heading) }
            " "
            span.muted { "Times in " (zone.name()) }
        }
        @if can_move {
            form #move-form .filters data-zone=(zone.name()) {
                p #move-selected .muted { "Drag a scheduled post to another day, or select it (click or Enter) and pick a date here." }
                input type="hidden" id="move-post" name="post";
                input type="hidden" id="move-time" name="time";
                div { label for="move-date" { "Move the selected post to" }
                    input #move-date type="date" name="date" disabled; }
                button #move-submit type="submit" disabled { "Move" }
            }
        }
        table #calendar .cal data-view=(if view == View::Month { "month" } else { "week" }) data-writable=(can_move) {
            caption.sr-only { (heading) ", times in " (zone.name()) }
            thead { tr { @for d in ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"] { th scope="col" { (d) } } } }
            tbody {
                @for week in 0..(days / 7) {
                    tr {
                        @for wd in 0..7 {
                            @let d = first + Duration::days(week * 7 + wd);
                            (cell(d, by_day.get(&d), view, date, today, can_move, &link(View::Week, d)))
                        }
                    }
                }
            }
        }
    };
    Ok(layout(
        "Calendar",
        &actor,
        "/calendar",
        &["calendar.js"],
        body,
    ))
}

fn cell(
    d: NaiveDate,
    items: Option<&Vec<Item>>,
    view: View,
    shown: NaiveDate,
    today: NaiveDate,
    can_move: bool,
    week_link: &str,
) -> Markup {
    let other = view == View::Month && d.month() != shown.month();
    let items: &[Item] = items.map_or(&[], |v| v.as_slice());
    let cap = if view == View::Month {
        MONTH_CELL_ITEMS
    } else {
        usize::MAX
    };
    html! {
        td.cal-day.other-month[other].today[d == today] data-date=(d.format("%Y-%m-%d").to_string()) {
            div.day-number { (d.day()) @if d.day() == 1 { " " (d.format("%b")) } }
            @for i in items.iter().take(cap) { (item(i, can_move)) }
            @if items.len() > cap {
                a.more href=(week_link) { "+" (items.len() - cap) " more" }
            }
        }
    }
}

fn item(i: &Item, can_move: bool) -> Markup {
    let t = i.target;
    let excerpt = clarion_core::truncate_graphemes(&t.rendered_text.replace('\n', " "), 40);
    let problem = t.status == TargetStatus::Failed.as_str()
        || t.status == TargetStatus::OutcomeUnknown.as_str();
    let movable = can_move && t.status == TargetStatus::Scheduled.as_str();
    let label = if i.status == "pending_approval" {
        "pending approval".to_owned()
    } else {
        i.status.replace('_', " ")
    };
    html! {
        div class=(format!("cal-item status-{}", i.status))
            data-post-id=(t.post_id) data-target-id=(t.id) data-status=(i.status)
            data-time=(i.local.format("%H:%M").to_string()) data-movable=(movable)
            tabindex="0" {
            span.time { (i.local.format("%H:%M").to_string()) }
            " " span.channel { (t.channel) }
            " " span class=(format!("badge status-{}", i.status)) { (label) }
            div.excerpt { (excerpt) }
            @if let Some(c) = &t.campaign { div.muted { (c) } }
            @if problem && can_move {
                button.retry type="button" data-api-path=(format!("/api/v1/posts/{}/retry", t.post_id))
                    data-api-body=(serde_json::json!({"channel": t.channel}).to_string())
                    data-done="Queued again." { "Retry " span.sr-only { "post " (t.post_id) " on " (t.channel) } }
            }
        }
    }
}

const STYLE: &str = "
.cal { table-layout: fixed; }
.cal td { height: 7.5rem; padding: .25rem; }
.cal td.other-month { background: #fafbfc; color: var(--muted); }
.cal td.today .day-number { background: var(--accent); color: #fff; border-radius: 3px; padding: 0 .3rem; display: inline-block; }
.cal td.drop-target { outline: 3px dashed var(--accent); outline-offset: -3px; }
.day-number { font-size: .8rem; font-weight: 600; margin-bottom: .2rem; }
.cal-item { font-size: .8rem; border: 1px solid var(--line); border-left: 4px solid var(--accent); border-radius: 3px; padding: .15rem .3rem; margin-bottom: .2rem; background: #fff; overflow: hidden; cursor: default; touch-action: none; }
.cal-item[data-movable=true] { cursor: grab; }
.cal-item.selected { box-shadow: 0 0 0 3px #f5b400; }
.cal-item.dragging { opacity: .5; }
.cal-item.status-failed, .cal-item.status-outcome_unknown { border-left-color: var(--bad); background: #fbe9e7; }
.cal-item.status-published { border-left-color: var(--ok); }
.cal-item.status-pending_approval { border-left-color: var(--warn); border-style: dashed; }
.cal-item .excerpt { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.cal-item .badge { font-size: .7rem; }
.cal-item button.retry { font-size: .75rem; padding: .05rem .4rem; margin-top: .15rem; }
.cal-nav { margin: .5rem 0 1rem; display: flex; gap: .75rem; align-items: baseline; flex-wrap: wrap; }
a.more { font-size: .8rem; }
";
