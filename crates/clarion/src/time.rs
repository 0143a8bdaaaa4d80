//! Times on the command line: `--at 2026-12-01T09:00:00Z` or `--in 10m`.

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};

pub fn parse_at(value: &str) -> anyhow::Result<DateTime<Utc>> {
    if value == "now" {
        return Ok(Utc::now());
    }
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .with_context(|| format!("--at `{value}`: expected an RFC 3339 time with an offset, e.g. 2026-12-01T09:00:00Z"))
}

/// `30s`, `10m`, `2h`, `1d`, or a combination like `1h30m`.
pub fn parse_in(value: &str) -> anyhow::Result<chrono::Duration> {
    let mut total = chrono::Duration::zero();
    let mut digits = String::new();
    for c in value.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: i64 = digits
            .parse()
            .with_context(|| format!("--in `{value}`: expected e.g. 90s, 10m, 2h, 1d"))?;
        digits.clear();
        total += match c {
            's' => chrono::Duration::seconds(n),
            'm' => chrono::Duration::minutes(n),
            'h' => chrono::Duration::hours(n),
            'd' => chrono::Duration::days(n),
            _ => bail!("--in `{value}`: unknown unit `{c}` (use s, m, h or d)"),
        };
    }
    if !digits.is_empty() {
        bail!("--in `{value}`: a number needs a unit, e.g. {digits}s");
    }
    if total <= chrono::Duration::zero() {
        bail!("--in `{value}`: expected e.g. 90s, 10m, 2h, 1d");
    }
    Ok(total)
}

/// Resolves `--at`/`--in` (at most one) into a time.
pub fn resolve(at: Option<&str>, within: Option<&str>) -> anyhow::Result<Option<DateTime<Utc>>> {
    match (at, within) {
        (Some(_), Some(_)) => bail!("give --at or --in, not both"),
        (Some(at), None) => parse_at(at).map(Some),
        (None, Some(d)) => Ok(Some(Utc::now() + parse_in(d)?)),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_combine_units() {
        assert_eq!(parse_in("90s").unwrap(), chrono::Duration::seconds(90));
        assert_eq!(parse_in("1h30m").unwrap(), chrono::Duration::minutes(90));
        assert!(
            parse_in("10")
                .unwrap_err()
                .to_string()
                .contains("needs a unit")
        );
        assert!(
            parse_in("3w")
                .unwrap_err()
                .to_string()
                .contains("unknown unit `w`")
        );
    }

    #[test]
    fn at_needs_an_offset() {
        assert!(parse_at("2026-12-01T09:00:00Z").is_ok());
        let err = parse_at("2026-12-01 09:00").unwrap_err().to_string();
        assert!(err.contains("RFC 3339"), "{err}");
    }
}
