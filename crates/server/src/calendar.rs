//! `GET /calendar.ics`: the schedule as an iCalendar (RFC 5545) feed a
//! person can subscribe to. One event per scheduled, publishing or
//! published target from the last [`PAST_DAYS`] days on; times in UTC.
//! Protected by the API token (`Authorization: Bearer`, or `?token=` for
//! calendar apps that cannot send headers).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use clarion_core::TargetStatus;
use clarion_store::{now_ms, target};

use crate::{ApiError, AppState};

/// Published posts older than this are left out of the feed.
pub const PAST_DAYS: i64 = 90;
/// At most this many events in one feed.
pub const MAX_EVENTS: u64 = 5_000;
/// RFC 5545 §3.1: lines longer than this many octets are folded.
const LINE_OCTETS: usize = 75;

pub async fn handler(State(state): State<AppState>) -> Result<Response, ApiError> {
    let now = now_ms();
    let targets = state
        .service
        .store()
        .calendar_targets(now - PAST_DAYS * 86_400_000, MAX_EVENTS)
        .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
            (header::CACHE_CONTROL, "private, max-age=60"),
        ],
        feed(&targets),
    )
        .into_response())
}

/// The whole feed: CRLF line ends, long lines folded, text escaped.
pub fn feed(targets: &[target::Model]) -> String {
    let mut out = String::new();
    for line in [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Clarion//Clarion schedule//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        "X-WR-CALNAME:Clarion schedule",
    ] {
        fold(line, &mut out);
    }
    for t in targets {
        event(t, &mut out);
    }
    fold("END:VCALENDAR", &mut out);
    out
}

fn event(t: &target::Model, out: &mut String) {
    let published = t.status == TargetStatus::Published.as_str();
    let start = if published {
        t.published_at_ms.or(t.scheduled_at_ms)
    } else {
        t.scheduled_at_ms.or(t.not_before_ms)
    };
    let Some(start) = start.and_then(utc) else {
        return;
    };
    let stamp = utc(t.updated_at_ms).unwrap_or_else(|| start.clone());
    // Stable per target, and unique across installations (the key is a
    // random UUID fixed at creation; only its hash is shown).
    let uid = format!(
        "target-{}-{:016x}@clarion",
        t.id,
        clarion_core::hash::fnv1a64(t.idempotency_key.as_bytes())
    );
    let summary = format!("{}: {}", t.channel, first_words(&t.rendered_text));
    let description = format!(
        "{} on {} (post {}, target {})\n\n{}",
        t.status, t.channel, t.post_id, t.id, t.rendered_text
    );
    fold("BEGIN:VEVENT", out);
    fold(&format!("UID:{uid}"), out);
    fold(&format!("DTSTAMP:{stamp}"), out);
    fold(&format!("DTSTART:{start}"), out);
    fold(&format!("SUMMARY:{}", escape(&summary)), out);
    fold(&format!("DESCRIPTION:{}", escape(&description)), out);
    fold(&format!("CATEGORIES:{}", escape(&t.channel)), out);
    if let Some(url) = t.platform_url.as_deref().filter(|u| is_plain_url(u)) {
        fold(&format!("URL:{url}"), out);
    }
    fold("TRANSP:TRANSPARENT", out);
    fold("END:VEVENT", out);
}

/// `20270301T090000Z`: a UTC DATE-TIME.
fn utc(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.format("%Y%m%dT%H%M%SZ").to_string())
}

/// The first line's first words, at most 8 words and 60 characters.
fn first_words(text: &str) -> String {
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut summary = words.iter().take(8).copied().collect::<Vec<_>>().join(" ");
    if words.len() > 8 {
        summary.push('…');
    }
    clarion_core::truncate_graphemes(&summary, 60)
}

/// RFC 5545 §3.3.11 TEXT: backslash, semicolon, comma and newline escaped;
/// other control characters dropped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    out.push_str("\\n");
                }
            }
            '\n' => out.push_str("\\n"),
            '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// A URL that can stand in a URI property as it is.
fn is_plain_url(url: &str) -> bool {
    (url.starts_with("https://") || url.starts_with("http://"))
        && !url.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// Appends `line` with CRLF, folded so no physical line exceeds 75 octets:
/// a continuation starts with one space, and a UTF-8 character is never
/// split.
pub fn fold(line: &str, out: &mut String) {
    let mut width = 0;
    for c in line.chars() {
        let n = c.len_utf8();
        if width + n > LINE_OCTETS {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += n;
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(id: i32, status: &str, text: &str) -> target::Model {
        target::Model {
            id,
            post_id: 7,
            channel: "masto".into(),
            status: status.into(),
            scheduled_at_ms: Some(1_803_891_600_000), // 2027-03-01T09:00:00Z
            not_before_ms: Some(1_803_891_600_000),
            override_body: None,
            rendered_text: text.into(),
            parts: "[]".into(),
            media: "[]".into(),
            thread_progress: "[]".into(),
            campaign: None,
            idempotency_key: format!("key-{id}"),
            attempts: 0,
            lease_until_ms: None,
            claimed_by: None,
            claim_token: None,
            first_sent_at_ms: None,
            last_outcome: None,
            platform_post_id: None,
            platform_url: None,
            last_error: None,
            published_at_ms: None,
            updated_at_ms: 1_803_800_000_000,
            reply_root: None,
            reply_parent: None,
            variant: None,
        }
    }

    /// Unfolds (RFC 5545 §3.1) and returns the logical lines.
    fn unfold(feed: &str) -> Vec<String> {
        feed.replace("\r\n ", "")
            .split("\r\n")
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn the_feed_is_crlf_folded_and_escaped() {
        let long = "Launch day, finally; all of it\\here\nsecond line ".repeat(6) + "€€€€€€€€€€";
        let feed = feed(&[
            target(1, "scheduled", &long),
            target(2, "published", "Done"),
        ]);
        assert!(
            feed.starts_with("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"),
            "{feed}"
        );
        assert!(feed.ends_with("END:VCALENDAR\r\n"), "{feed}");
        // Every line ends in CRLF; none is longer than 75 octets.
        assert!(!feed.replace("\r\n", "").contains('\n'), "bare LF");
        assert!(!feed.replace("\r\n", "").contains('\r'), "bare CR");
        for line in feed.split("\r\n") {
            assert!(line.len() <= 75, "{} octets: {line}", line.len());
        }
        let lines = unfold(&feed);
        assert_eq!(lines.iter().filter(|l| *l == "BEGIN:VEVENT").count(), 2);
        assert!(
            lines.contains(&"DTSTART:20270301T090000Z".to_owned()),
            "{lines:?}"
        );
        let summary = lines.iter().find(|l| l.starts_with("SUMMARY:")).unwrap();
        assert_eq!(
            summary,
            "SUMMARY:masto: Launch day\\, finally\\; all of it\\\\here"
        );
        let description = lines
            .iter()
            .find(|l| l.starts_with("DESCRIPTION:"))
            .unwrap();
        assert!(description.contains("\\nsecond line"), "{description}");
        assert!(description.ends_with("€€€€€€€€€€"), "{description}");
        // UIDs are stable per target and distinct.
        let uids: Vec<&String> = lines.iter().filter(|l| l.starts_with("UID:")).collect();
        assert_eq!(uids.len(), 2);
        assert_ne!(uids[0], uids[1]);
        assert_eq!(
            unfold(&super::feed(&[target(1, "scheduled", "x")]))[7],
            *uids[0]
        );
    }

    #[test]
    fn folding_never_splits_a_character() {
        let mut out = String::new();
        fold(&format!("SUMMARY:{}", "é".repeat(100)), &mut out);
        for line in out.split("\r\n") {
            assert!(line.len() <= 75);
            assert!(std::str::from_utf8(line.as_bytes()).is_ok());
        }
        assert_eq!(
            out.replace("\r\n ", ""),
            format!("SUMMARY:{}\r\n", "é".repeat(100))
        );
    }

    #[test]
    fn a_published_target_starts_when_it_went_out_and_links_to_it() {
        let mut t = target(3, "published", "Out");
        t.published_at_ms = Some(1_803_891_661_000);
        t.platform_url = Some("https://masto.example/@a/1".into());
        let lines = unfold(&feed(&[t]));
        assert!(lines.contains(&"DTSTART:20270301T090101Z".to_owned()));
        assert!(lines.contains(&"URL:https://masto.example/@a/1".to_owned()));
    }
}
