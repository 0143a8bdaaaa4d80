//! Times on the command line: `--at 2027-03-01T09:00:00` (read in the
//! configured `timezone`), `--at 2026-12-01T09:00:00Z`, `--at now`, or
//! `--in 90s` / `5m` / `1h30m` / `2d` / `1.5h`; and times shown to people.
//!
//! The zone is the process's `timezone` setting, set once by `main` after
//! the config is read ([`set_zone`]), so every `--at` of every command and
//! every time printed by the CLI use it without passing it around.

use std::sync::OnceLock;

use anyhow::{anyhow, bail};
use chrono::{DateTime, Utc};
use clarion_core::time::Tz;

static ZONE: OnceLock<Tz> = OnceLock::new();

/// Sets the zone for this process (the first call wins).
pub fn set_zone(zone: Tz) {
    let _ = ZONE.set(zone);
}

/// The configured `timezone` (UTC until set).
pub fn zone() -> Tz {
    ZONE.get().copied().unwrap_or(Tz::UTC)
}

/// Epoch milliseconds as people read them: `2027-03-01 09:00:00 CET`, in
/// the configured zone.
pub fn show(ms: i64) -> String {
    clarion_core::time::display_time(ms, zone())
}

/// What every refused `--in` says.
pub const IN_EXAMPLES: &str =
    "give a positive duration: a number and a unit (s, m, h, d), e.g. 90s, 5m, 1h30m, 2d or 1.5h";

/// Longest `--in`: ten years.
const MAX_IN_MS: f64 = 3650.0 * 86_400_000.0;

/// `now`, a time with an offset, or a wall-clock time in `zone`.
pub fn parse_at(value: &str, zone: Tz) -> anyhow::Result<DateTime<Utc>> {
    if value.trim() == "now" {
        return Ok(Utc::now());
    }
    clarion_core::time::parse_time(value, zone).map_err(|e| anyhow!("--at: {e}"))
}

/// The one `--in` parser: numbers (decimals allowed) each with a unit,
/// `90s`, `5m`, `1h30m`, `2d`, `1.5h`. Zero, negative or unreadable
/// durations all get the same message with examples.
pub fn parse_in(value: &str) -> anyhow::Result<chrono::Duration> {
    parse_duration(value).ok_or_else(|| anyhow!("--in `{value}`: {IN_EXAMPLES}"))
}

pub fn parse_duration(value: &str) -> Option<chrono::Duration> {
    let mut rest = value.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total_ms = 0.0_f64;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let letters = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit_ms = match &rest[..letters] {
            "s" => 1_000.0,
            "m" => 60_000.0,
            "h" => 3_600_000.0,
            "d" => 86_400_000.0,
            _ => return None,
        };
        rest = rest[letters..].trim_start();
        total_ms += number * unit_ms;
    }
    (total_ms.is_finite() && (1.0..=MAX_IN_MS).contains(&total_ms))
        .then(|| chrono::Duration::milliseconds(total_ms.round() as i64))
}

/// Resolves `--at`/`--in` (at most one) into a time; `--at` without an
/// offset is read in the configured zone.
pub fn resolve(at: Option<&str>, within: Option<&str>) -> anyhow::Result<Option<DateTime<Utc>>> {
    resolve_in(at, within, zone())
}

/// [`resolve`] with the zone given.
pub fn resolve_in(
    at: Option<&str>,
    within: Option<&str>,
    zone: Tz,
) -> anyhow::Result<Option<DateTime<Utc>>> {
    match (at, within) {
        (Some(_), Some(_)) => bail!("give --at or --in, not both"),
        (Some(at), None) => parse_at(at, zone).map(Some),
        (None, Some(d)) => Ok(Some(Utc::now() + parse_in(d)?)),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_combine_units_and_decimals() {
        let d = |s| parse_in(s).unwrap();
        assert_eq!(d("90s"), chrono::Duration::seconds(90));
        assert_eq!(d("5m"), chrono::Duration::minutes(5));
        assert_eq!(d("1h30m"), chrono::Duration::minutes(90));
        assert_eq!(d("1h 30m"), chrono::Duration::minutes(90));
        assert_eq!(d("2d"), chrono::Duration::days(2));
        assert_eq!(d("1.5h"), chrono::Duration::minutes(90));
        assert_eq!(d("0.5s"), chrono::Duration::milliseconds(500));
    }

    #[test]
    fn every_bad_duration_gets_the_one_message_with_examples() {
        for bad in [
            "-5m", "0s", "0", "10", "3w", "", "h", "1.2.3h", "5m-", "99999d", "--5m",
        ] {
            let err = parse_in(bad).unwrap_err().to_string();
            assert_eq!(err, format!("--in `{bad}`: {IN_EXAMPLES}"));
        }
        assert!(IN_EXAMPLES.contains("90s, 5m, 1h30m, 2d or 1.5h"));
    }

    #[test]
    fn at_without_offset_is_read_in_the_zone() {
        let paris = clarion_core::time::parse_zone("Europe/Paris").unwrap();
        assert_eq!(
            parse_at("2027-03-01T09:00:00", paris).unwrap().to_rfc3339(),
            "2027-03-01T08:00:00+00:00"
        );
        assert_eq!(
            parse_at("2026-12-01T09:00:00Z", paris)
                .unwrap()
                .to_rfc3339(),
            "2026-12-01T09:00:00+00:00"
        );
        let err = parse_at("2027-03-28T02:30:00", paris)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--at: 2027-03-28T02:30:00 does not exist in Europe/Paris"),
            "{err}"
        );
        let err = parse_at("tomorrow", paris).unwrap_err().to_string();
        assert!(err.contains("RFC 3339"), "{err}");
        let err = resolve_in(Some("now"), Some("5m"), paris).unwrap_err();
        assert_eq!(err.to_string(), "give --at or --in, not both");
    }
}
