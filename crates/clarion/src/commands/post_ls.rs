//! `clarion post ls --from DATE --to DATE`: the schedule sorted by time and
//! grouped by day, in the configured time zone.

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clarion_core::time::{Tz, in_zone, parse_day, parse_time, start_of_day};
use clarion_store::{PostDetail, PostFilter};

use crate::app::App;
use crate::time;

/// Default span when only `--from` is given.
const DEFAULT_DAYS: i64 = 7;

pub async fn by_day(
    app: &App,
    from: Option<&str>,
    to: Option<&str>,
    filter: &PostFilter,
) -> anyhow::Result<()> {
    let zone = time::zone();
    let start = match from {
        Some(from) => bound(from, zone, false).context("--from")?,
        None => Utc::now(),
    };
    let end = match to {
        Some(to) => bound(to, zone, true).context("--to")?,
        None => start + chrono::Duration::days(DEFAULT_DAYS),
    };
    if end <= start {
        bail!(
            "--to ({}) is not after --from ({})",
            time::show(end.timestamp_millis()),
            time::show(start.timestamp_millis())
        );
    }
    let posts = app
        .store
        .posts_between(start.timestamp_millis(), end.timestamp_millis(), filter)
        .await?;
    print!("{}", render(&posts, start, end, zone));
    Ok(())
}

/// `2027-03-01` (the day's start; with `end`, the next day's start, so the
/// day is included) or a time (`2027-03-01T09:00`, with or without offset).
fn bound(text: &str, zone: Tz, end: bool) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(day) = parse_day(text, zone) {
        let day = if end {
            day.succ_opt()
                .context("that day is the last one there is")?
        } else {
            day
        };
        return Ok(start_of_day(day, zone));
    }
    parse_time(text, zone).map_err(|e| match e {
        clarion_core::time::TimeError::Invalid { .. } => anyhow::anyhow!(
            "`{text}` is not a day or a time: write e.g. 2027-03-01 or 2027-03-01T09:00 (in {})",
            zone.name()
        ),
        e => e.into(),
    })
}

/// The listing: a heading per day, then one line per post in time order.
fn render(posts: &[PostDetail], start: DateTime<Utc>, end: DateTime<Utc>, zone: Tz) -> String {
    let mut out = String::new();
    let span = format!(
        "{} to {}",
        time::show(start.timestamp_millis()),
        time::show(end.timestamp_millis())
    );
    if posts.is_empty() {
        out.push_str(&format!("nothing scheduled from {span}\n"));
        return out;
    }
    out.push_str(&format!("{} post(s) from {span}\n", posts.len()));
    let mut day = None;
    for detail in posts {
        let Some(at) = detail.post.scheduled_at_ms.and_then(|ms| in_zone(ms, zone)) else {
            continue;
        };
        if day != Some(at.date_naive()) {
            day = Some(at.date_naive());
            out.push_str(&format!("\n{}\n", at.format("%a %Y-%m-%d")));
        }
        let statuses: Vec<String> = detail
            .targets
            .iter()
            .map(|t| format!("{}:{}", t.channel, t.status))
            .collect();
        let text = clarion_core::truncate_graphemes(&detail.post.body.replace('\n', " "), 40);
        out.push_str(&format!(
            "  {}  {:>6}  {text:<40}  {}\n",
            at.format("%H:%M:%S %Z"),
            detail.post.id,
            statuses.join(" ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paris() -> Tz {
        clarion_core::time::parse_zone("Europe/Paris").unwrap()
    }

    #[test]
    fn a_day_bound_covers_the_whole_local_day() {
        let from = bound("2027-03-01", paris(), false).unwrap();
        let to = bound("2027-03-01", paris(), true).unwrap();
        assert_eq!(from.to_rfc3339(), "2027-02-28T23:00:00+00:00");
        assert_eq!(to.to_rfc3339(), "2027-03-01T23:00:00+00:00");
        let at = bound("2027-03-01T09:30", paris(), true).unwrap();
        assert_eq!(at.to_rfc3339(), "2027-03-01T08:30:00+00:00");
        let err = format!("{:#}", bound("next week", paris(), false).unwrap_err());
        assert!(err.contains("is not a day or a time"), "{err}");
    }
}
