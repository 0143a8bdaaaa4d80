//! Turning HTTP outcomes into Clarion's error classes. Shared by every
//! adapter that speaks HTTP, so a 429 means the same thing everywhere.

use std::time::Duration;

use clarion_core::{ErrorClass, PublishError};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// Longest platform message kept on an attempt.
const MAX_MESSAGE: usize = 500;

/// Classifies a transport error. A connection that never opened sent
/// nothing (transient); anything later may have reached the platform.
pub fn classify_transport(error: reqwest::Error) -> PublishError {
    // `without_url`: webhook URLs are often the credential itself.
    let connect = error.is_connect();
    let timeout = error.is_timeout();
    let message = error.without_url().to_string();
    if connect {
        PublishError::new(
            ErrorClass::Transient,
            format!("could not connect: {message}"),
        )
    } else if timeout {
        PublishError::new(
            ErrorClass::OutcomeUnknown,
            format!("timed out waiting for the platform: {message}"),
        )
    } else {
        PublishError::new(ErrorClass::OutcomeUnknown, message)
    }
}

/// A failure of a read-only check (`channels check`). Nothing was posted,
/// so "outcome unknown" does not apply: a timeout or an answer that cannot
/// be read is a failed check that may pass later (transient), with the
/// platform's words kept.
pub fn for_check(mut error: PublishError) -> PublishError {
    if matches!(
        error.class,
        ErrorClass::OutcomeUnknown | ErrorClass::Unfinished
    ) {
        error.class = ErrorClass::Transient;
    }
    error
}

/// Classifies a non-success HTTP response by status code.
pub fn classify_status(status: StatusCode, headers: &HeaderMap, body: &str) -> PublishError {
    let message = platform_message(status, body);
    let class = match status.as_u16() {
        429 => ErrorClass::RateLimited,
        401 | 403 => ErrorClass::AuthExpired,
        408 | 500..=599 => ErrorClass::Transient,
        _ => ErrorClass::Permanent,
    };
    PublishError::new(class, message)
        .with_status(status.as_u16())
        .with_retry_after(retry_after(headers))
}

/// `Retry-After` as delta-seconds (fractions allowed) or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = date.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// The platform's own words: a JSON `message`/`error`/`description`/`detail`
/// field when there is one, else the start of the body.
fn platform_message(status: StatusCode, body: &str) -> String {
    let from_json = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            [
                "message",
                "error_description",
                "error",
                "description",
                "detail",
            ]
            .iter()
            .find_map(|k| v.get(*k).and_then(|m| m.as_str()).map(str::to_owned))
        });
    let text = from_json.unwrap_or_else(|| body.trim().to_owned());
    let mut text: String = text.chars().take(MAX_MESSAGE).collect();
    if text.is_empty() {
        text = status.canonical_reason().unwrap_or("no message").to_owned();
    }
    format!("HTTP {}: {text}", status.as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(retry: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(retry).unwrap());
        h
    }

    #[test]
    fn status_codes_map_to_classes() {
        let none = HeaderMap::new();
        let class = |code| classify_status(StatusCode::from_u16(code).unwrap(), &none, "").class;
        assert_eq!(class(429), ErrorClass::RateLimited);
        assert_eq!(class(401), ErrorClass::AuthExpired);
        assert_eq!(class(503), ErrorClass::Transient);
        assert_eq!(class(422), ErrorClass::Permanent);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(retry_after(&headers("2")), Some(Duration::from_secs(2)));
        assert_eq!(
            retry_after(&headers("1.5")),
            Some(Duration::from_millis(1500))
        );
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        let wait = retry_after(&headers(&soon)).unwrap();
        assert!(
            wait > Duration::from_secs(25) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        assert_eq!(retry_after(&headers("soon")), None);
    }

    #[test]
    fn the_platform_message_is_kept() {
        let e = classify_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &HeaderMap::new(),
            r#"{"error":"Validation failed: Text character limit of 500 exceeded"}"#,
        );
        assert_eq!(
            e.message,
            "HTTP 422: Validation failed: Text character limit of 500 exceeded"
        );
        let e = classify_status(StatusCode::BAD_GATEWAY, &HeaderMap::new(), "");
        assert_eq!(e.message, "HTTP 502: Bad Gateway");
    }
}
