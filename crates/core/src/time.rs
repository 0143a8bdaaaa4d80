//! Times as people write them, read in the installation's time zone
//! (`timezone` in the config, an IANA name, default UTC).
//!
//! A time with an offset (`2027-03-01T09:00:00Z`, `…+01:00`) is that
//! instant. A time without one (`2027-03-01T09:00:00`, `2027-03-01 09:00`)
//! is a wall-clock time in the zone. Daylight saving makes two cases:
//! - a *gap* (spring forward: 02:30 does not exist in Europe/Paris on
//!   2027-03-28) is refused, naming the time and the zone;
//! - an *overlap* (fall back: 02:30 happens twice) takes the earlier instant.
//!
//! Pure functions: no clock, no I/O.

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
pub use chrono_tz::Tz;

/// How every time is shown to people: `2027-03-01 09:00:00 CET`.
pub const DISPLAY_FORMAT: &str = "%Y-%m-%d %H:%M:%S %Z";

/// Wall-clock forms accepted without an offset.
const LOCAL_FORMATS: [&str; 4] = [
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error(
        "`{0}` is not a time zone: give an IANA name such as Europe/Paris, America/New_York or UTC"
    )]
    UnknownZone(String),
    #[error(
        "`{text}` is not an RFC 3339 time: write e.g. 2027-03-01T09:00:00Z, \
         2027-03-01T09:00:00+01:00, or 2027-03-01T09:00:00 (read in {zone})"
    )]
    Invalid { text: String, zone: Tz },
    #[error("`{text}` is not a date: write e.g. 2027-03-01 (a day in {zone})")]
    InvalidDay { text: String, zone: Tz },
    #[error(
        "{local} does not exist in {zone}: the clocks skip it for daylight saving time; \
         pick another time or give an offset"
    )]
    Nonexistent { local: String, zone: Tz },
}

/// An IANA zone name (`Europe/Paris`, `UTC`).
pub fn parse_zone(name: &str) -> Result<Tz, TimeError> {
    name.trim()
        .parse::<Tz>()
        .map_err(|_| TimeError::UnknownZone(name.to_owned()))
}

/// A time with an offset, or a wall-clock time read in `zone`.
pub fn parse_time(text: &str, zone: Tz) -> Result<DateTime<Utc>, TimeError> {
    let trimmed = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(trimmed) {
        return Ok(at.with_timezone(&Utc));
    }
    let local = LOCAL_FORMATS
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(trimmed, format).ok())
        .ok_or_else(|| TimeError::Invalid {
            text: text.to_owned(),
            zone,
        })?;
    resolve_local(local, zone)
}

/// The instant a wall-clock time in `zone` names: a daylight-saving gap is
/// refused, an overlap takes the earlier instant.
pub fn resolve_local(local: NaiveDateTime, zone: Tz) -> Result<DateTime<Utc>, TimeError> {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(at) => Ok(at.with_timezone(&Utc)),
        LocalResult::Ambiguous(a, b) => Ok(a.min(b).with_timezone(&Utc)),
        LocalResult::None => Err(TimeError::Nonexistent {
            local: local.format("%Y-%m-%dT%H:%M:%S").to_string(),
            zone,
        }),
    }
}

/// `2027-03-01`: a calendar day in `zone`.
pub fn parse_day(text: &str, zone: Tz) -> Result<NaiveDate, TimeError> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| TimeError::InvalidDay {
        text: text.to_owned(),
        zone,
    })
}

/// The first instant of `day` in `zone` (a day starting in a gap starts
/// at the end of the gap).
pub fn start_of_day(day: NaiveDate, zone: Tz) -> DateTime<Utc> {
    let mut local = day.and_time(chrono::NaiveTime::MIN);
    // Gaps last at most a few hours; step past one.
    for _ in 0..48 {
        if let Ok(at) = resolve_local(local, zone) {
            return at;
        }
        local += chrono::Duration::minutes(30);
    }
    Utc.from_utc_datetime(&day.and_time(chrono::NaiveTime::MIN))
}

/// Epoch milliseconds in `zone`.
pub fn in_zone(ms: i64, zone: Tz) -> Option<DateTime<Tz>> {
    DateTime::from_timestamp_millis(ms).map(|t| t.with_timezone(&zone))
}

/// Epoch milliseconds shown in [`DISPLAY_FORMAT`] in `zone`.
pub fn display_time(ms: i64, zone: Tz) -> String {
    in_zone(ms, zone).map_or_else(
        || format!("{ms} ms"),
        |t| t.format(DISPLAY_FORMAT).to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paris() -> Tz {
        parse_zone("Europe/Paris").unwrap()
    }

    #[test]
    fn a_time_without_offset_is_read_in_the_zone() {
        let at = parse_time("2027-03-01T09:00:00", paris()).unwrap();
        assert_eq!(at.to_rfc3339(), "2027-03-01T08:00:00+00:00");
        let at = parse_time("2027-07-01 09:00", paris()).unwrap();
        assert_eq!(at.to_rfc3339(), "2027-07-01T07:00:00+00:00");
        let at = parse_time("2027-03-01T09:00:00", Tz::UTC).unwrap();
        assert_eq!(at.to_rfc3339(), "2027-03-01T09:00:00+00:00");
    }

    #[test]
    fn an_offset_wins_over_the_zone() {
        let at = parse_time("2027-03-01T09:00:00-05:00", paris()).unwrap();
        assert_eq!(at.to_rfc3339(), "2027-03-01T14:00:00+00:00");
    }

    #[test]
    fn a_daylight_saving_gap_is_refused_by_name() {
        let err = parse_time("2027-03-28T02:30:00", paris()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "2027-03-28T02:30:00 does not exist in Europe/Paris: the clocks skip it for \
             daylight saving time; pick another time or give an offset"
        );
    }

    #[test]
    fn an_overlap_takes_the_earlier_instant() {
        // 2027-10-31 02:30 happens at +02:00 and again at +01:00.
        let at = parse_time("2027-10-31T02:30:00", paris()).unwrap();
        assert_eq!(at.to_rfc3339(), "2027-10-31T00:30:00+00:00");
    }

    #[test]
    fn unknown_zones_and_bad_times_say_what_is_expected() {
        let err = parse_zone("Europe/Pariss").unwrap_err().to_string();
        assert!(err.contains("`Europe/Pariss` is not a time zone"), "{err}");
        assert!(err.contains("Europe/Paris"), "{err}");
        let err = parse_time("tomorrow", paris()).unwrap_err().to_string();
        assert!(err.contains("is not an RFC 3339 time"), "{err}");
        assert!(err.contains("(read in Europe/Paris)"), "{err}");
    }

    #[test]
    fn times_display_in_one_format_in_the_zone() {
        let ms = parse_time("2027-03-01T09:00:00Z", Tz::UTC)
            .unwrap()
            .timestamp_millis();
        assert_eq!(display_time(ms, paris()), "2027-03-01 10:00:00 CET");
        assert_eq!(display_time(ms, Tz::UTC), "2027-03-01 09:00:00 UTC");
    }

    #[test]
    fn days_start_at_local_midnight() {
        let day = parse_day("2027-03-01", paris()).unwrap();
        assert_eq!(
            start_of_day(day, paris()).to_rfc3339(),
            "2027-02-28T23:00:00+00:00"
        );
        // Santiago springs forward at midnight: the day starts at 01:00.
        let chile: Tz = parse_zone("America/Santiago").unwrap();
        let day = parse_day("2026-09-06", chile).unwrap();
        assert_eq!(
            start_of_day(day, chile).to_rfc3339(),
            "2026-09-06T04:00:00+00:00"
        );
        assert!(parse_day("March 1", paris()).is_err());
    }
}
