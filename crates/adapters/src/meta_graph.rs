//! What Meta's Graph APIs (Facebook Pages, Instagram, Threads) share: the
//! error shape `{"error":{"message","type","code","error_subcode",
//! "fbtrace_id"}}` and its classification, reading answers, and mapping a
//! media file to the public URL Instagram and Threads fetch it from.
//!
//! The access token travels in the `Authorization: Bearer` header, never in
//! a URL, so no error or log line can carry it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clarion_core::{ErrorClass, Media, PublishError, ValidationError};
use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode};
use serde_json::Value;

use crate::http::{classify_transport, retry_after};

/// Longest platform message kept on an attempt.
const MAX_MESSAGE: usize = 500;

/// An HTTP answer read to the end.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

pub(crate) async fn read(request: RequestBuilder) -> Result<Answer, PublishError> {
    let response = request.send().await.map_err(classify_transport)?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.text().await.map_err(classify_transport)?;
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// The JSON of a successful answer, or the classified failure. `creates`:
/// the request makes a post, so a server error may have posted.
/// `permission`: what to tell an operator whose token lacks a permission.
pub(crate) fn success(
    answer: &Answer,
    creates: bool,
    permission: &str,
) -> Result<Value, PublishError> {
    if !answer.status.is_success() {
        return Err(classify(answer, creates, permission));
    }
    serde_json::from_str(&answer.body).map_err(|e| {
        PublishError::new(
            if creates {
                ErrorClass::OutcomeUnknown
            } else {
                ErrorClass::Transient
            },
            format!("unexpected answer (HTTP {}): {e}", answer.status.as_u16()),
        )
    })
}

/// Classifies a failed Graph answer by its error code (the HTTP status
/// says little: most Graph errors are 400).
pub(crate) fn classify(answer: &Answer, creates: bool, permission: &str) -> PublishError {
    let status = answer.status.as_u16();
    let value: Value = serde_json::from_str(&answer.body).unwrap_or_default();
    let error = value.get("error");
    let field = |k: &str| error.and_then(|e| e.get(k));
    let code = field("code").and_then(Value::as_i64);
    let subcode = field("error_subcode").and_then(Value::as_i64);
    let transient_flag = field("is_transient").and_then(Value::as_bool) == Some(true);
    let text: String = field("error_user_msg")
        .or_else(|| field("message"))
        .and_then(Value::as_str)
        .unwrap_or_else(|| answer.body.trim())
        .chars()
        .take(MAX_MESSAGE)
        .collect();
    let text = if text.is_empty() {
        answer
            .status
            .canonical_reason()
            .unwrap_or("no message")
            .to_owned()
    } else {
        text
    };
    let mut label = match (code, subcode) {
        (Some(c), Some(s)) => format!("HTTP {status}, code {c}/{s}: {text}"),
        (Some(c), None) => format!("HTTP {status}, code {c}: {text}"),
        _ => format!("HTTP {status}: {text}"),
    };
    if let Some(trace) = field("fbtrace_id").and_then(Value::as_str) {
        label.push_str(&format!(" (fbtrace_id {trace})"));
    }
    let server = || {
        if creates {
            ErrorClass::OutcomeUnknown
        } else {
            ErrorClass::Transient
        }
    };
    let (class, message) = match code {
        Some(4 | 17 | 32 | 613) | Some(80001..=80014) => (ErrorClass::RateLimited, label),
        Some(190 | 102) => {
            let why = match subcode {
                Some(463) => "the access token expired",
                Some(460) => "the access token was invalidated by a password change",
                Some(458) => "the app was removed from the account",
                Some(467) => "the access token is invalid",
                _ => "the access token was rejected",
            };
            (
                ErrorClass::AuthExpired,
                format!("{why}; create a new one ({label})"),
            )
        }
        Some(10) | Some(200..=299) => (
            ErrorClass::Permanent,
            format!("missing permission: the token needs {permission} ({label})"),
        ),
        Some(368) => (
            ErrorClass::Permanent,
            format!("blocked by Meta's policies ({label})"),
        ),
        Some(1 | 2) => (server(), label),
        // "The media is not ready for publishing": nothing was published.
        Some(9007) => (ErrorClass::Transient, label),
        _ if transient_flag => (server(), label),
        _ if status == 429 => (ErrorClass::RateLimited, label),
        _ if status >= 500 => (server(), label),
        _ => (ErrorClass::Permanent, label),
    };
    let wait = if class == ErrorClass::RateLimited {
        retry_after(&answer.headers).or_else(|| regain_access(&answer.headers))
    } else {
        None
    };
    PublishError::new(class, message)
        .with_status(status)
        .with_retry_after(wait)
}

/// How long a poller should hold back, from the usage headers Meta sends
/// with every answer (`X-App-Usage`, `X-Business-Use-Case-Usage`): the
/// announced time to regain access when the limit is already hit, else
/// `busy_wait` once any counter (percent of the quota) reaches 90, so the
/// listener slows down before Meta starts refusing it. `None`: go on.
pub(crate) fn usage_wait(headers: &HeaderMap, busy_wait: Duration) -> Option<Duration> {
    if let Some(wait) = regain_access(headers) {
        return Some(wait);
    }
    let mut highest = 0u64;
    let mut visit = |v: &Value| {
        for key in ["call_count", "total_time", "total_cputime"] {
            if let Some(n) = v.get(key).and_then(Value::as_u64) {
                highest = highest.max(n);
            }
        }
    };
    for name in ["x-app-usage", "x-business-use-case-usage"] {
        let Some(value) = headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| serde_json::from_str::<Value>(v).ok())
        else {
            continue;
        };
        visit(&value);
        // The business header nests its counters by object id.
        if let Value::Object(map) = &value {
            for v in map.values() {
                match v {
                    Value::Array(items) => items.iter().for_each(&mut visit),
                    other => visit(other),
                }
            }
        }
    }
    (highest >= 90).then_some(busy_wait)
}

/// `estimated_time_to_regain_access` (minutes) of the business use case
/// usage header Meta sends with rate-limit answers: the longest one.
fn regain_access(headers: &HeaderMap) -> Option<Duration> {
    let value: Value = serde_json::from_str(
        headers
            .get("x-business-use-case-usage")
            .or_else(|| headers.get("x-ad-account-usage"))?
            .to_str()
            .ok()?,
    )
    .ok()?;
    let mut minutes: Vec<u64> = Vec::new();
    let mut visit = |v: &Value| {
        if let Some(m) = v
            .get("estimated_time_to_regain_access")
            .and_then(Value::as_u64)
        {
            minutes.push(m);
        }
    };
    match &value {
        Value::Object(map) => {
            for v in map.values() {
                match v {
                    Value::Array(items) => items.iter().for_each(&mut visit),
                    other => visit(other),
                }
            }
        }
        other => visit(other),
    }
    minutes
        .into_iter()
        .max()
        .filter(|m| *m > 0)
        .map(|m| Duration::from_secs(m * 60))
}

/// Where a channel's media folder is served publicly (Instagram and
/// Threads fetch images by URL; they take no uploads).
#[derive(Debug, Clone)]
pub(crate) struct PublicMedia {
    pub base: Option<String>,
    pub dir: PathBuf,
}

impl PublicMedia {
    pub fn new(base: Option<String>, dir: Option<PathBuf>) -> Result<Self, String> {
        let base = match base {
            Some(b) => {
                let url = reqwest::Url::parse(b.trim())
                    .map_err(|e| format!("public_media_url: not a URL: {e}"))?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err("public_media_url: must be http or https".to_owned());
                }
                Some(b.trim().trim_end_matches('/').to_owned())
            }
            None => None,
        };
        Ok(Self {
            base,
            dir: dir.unwrap_or_else(|| PathBuf::from("content/media")),
        })
    }

    /// The public URL of `media`, or why it has none.
    pub fn url(&self, media: &Media) -> Result<String, ValidationError> {
        let Some(base) = &self.base else {
            return Err(ValidationError::new(format!(
                "{}: this channel takes images only by public URL; set public_media_url to where the media folder is served",
                media.path.display()
            )));
        };
        let relative = relative_to(&media.path, &self.dir).ok_or_else(|| {
            ValidationError::new(format!(
                "{}: not inside the channel's media_dir ({}), so it has no public URL",
                media.path.display(),
                self.dir.display()
            ))
        })?;
        let mut url = base.clone();
        for part in relative.components() {
            url.push('/');
            url.push_str(
                &url::form_urlencoded::byte_serialize(
                    part.as_os_str().to_string_lossy().as_bytes(),
                )
                .collect::<String>()
                .replace('+', "%20"),
            );
        }
        Ok(url)
    }
}

/// `path` relative to `dir`: as given when relative, else with the
/// (canonical) folder stripped.
fn relative_to(path: &Path, dir: &Path) -> Option<PathBuf> {
    if path.is_relative() {
        let stripped = path.strip_prefix(dir).unwrap_or(path);
        if stripped
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return None;
        }
        return Some(stripped.to_owned());
    }
    if let Ok(r) = path.strip_prefix(dir) {
        return Some(r.to_owned());
    }
    let canonical = dir.canonicalize().ok()?;
    path.strip_prefix(canonical).ok().map(Path::to_owned)
}

/// A small fake Graph server for the Meta adapters' tests: every request
/// is recorded (with its headers and raw body), `answer` picks the reply.
#[cfg(test)]
pub(crate) mod fake {
    use std::sync::{Arc, Mutex};

    #[derive(Debug, Clone)]
    pub struct Seen {
        pub method: String,
        pub path: String,
        pub query: String,
        pub auth: String,
        pub body: String,
    }

    impl Seen {
        /// A form (or query) parameter, decoded.
        pub fn param(&self, name: &str) -> Option<String> {
            url::form_urlencoded::parse(self.body.as_bytes())
                .chain(url::form_urlencoded::parse(self.query.as_bytes()))
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        }
    }

    pub type Reply = (u16, Vec<(&'static str, String)>, String);

    pub struct Fake {
        pub base: String,
        pub seen: Arc<Mutex<Vec<Seen>>>,
    }

    impl Fake {
        pub fn requests(&self) -> Vec<Seen> {
            self.seen.lock().unwrap().clone()
        }
    }

    pub fn json(status: u16, body: serde_json::Value) -> Reply {
        (status, vec![], body.to_string())
    }

    pub async fn start(answer: impl Fn(&Seen, &[Seen]) -> Reply + Send + Sync + 'static) -> Fake {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let record = seen.clone();
        let answer = Arc::new(answer);
        let app = axum::Router::new().fallback(
            move |method: axum::http::Method,
                  uri: axum::http::Uri,
                  headers: axum::http::HeaderMap,
                  body: axum::body::Bytes| {
                let record = record.clone();
                let answer = answer.clone();
                async move {
                    let request = Seen {
                        method: method.to_string(),
                        path: uri.path().to_owned(),
                        query: uri.query().unwrap_or_default().to_owned(),
                        auth: headers
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned(),
                        body: String::from_utf8_lossy(&body).into_owned(),
                    };
                    let earlier = record.lock().unwrap().clone();
                    let (status, extra, body) = answer(&request, &earlier);
                    record.lock().unwrap().push(request);
                    let mut response = axum::response::Response::new(axum::body::Body::from(body));
                    *response.status_mut() = axum::http::StatusCode::from_u16(status).unwrap();
                    response.headers_mut().insert(
                        axum::http::header::CONTENT_TYPE,
                        axum::http::HeaderValue::from_static("application/json"),
                    );
                    for (k, v) in extra {
                        response
                            .headers_mut()
                            .insert(k, axum::http::HeaderValue::from_str(&v).unwrap());
                    }
                    response
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Fake { base, seen }
    }

    /// A secret reference to a file holding `value`.
    pub fn secret(value: &str) -> serde_json::Value {
        let dir = std::env::temp_dir().join(format!("clarion-meta-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(value);
        std::fs::write(&path, value).unwrap();
        serde_json::json!({ "file": path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: serde_json::Value, headers: &[(&'static str, &str)]) -> Answer {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, v.parse().unwrap());
        }
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers: h,
            body: body.to_string(),
        }
    }

    fn graph(code: i64, subcode: Option<i64>, message: &str) -> serde_json::Value {
        serde_json::json!({"error": {"message": message, "type": "OAuthException", "code": code,
            "error_subcode": subcode, "fbtrace_id": "AbC123"}})
    }

    #[test]
    fn graph_codes_map_to_classes() {
        let class = |code, sub| classify(&answer(400, graph(code, sub, "m"), &[]), true, "p").class;
        for code in [4, 17, 32, 613, 80001] {
            assert_eq!(class(code, None), ErrorClass::RateLimited, "{code}");
        }
        assert_eq!(class(190, Some(463)), ErrorClass::AuthExpired);
        assert_eq!(class(190, Some(460)), ErrorClass::AuthExpired);
        assert_eq!(class(200, None), ErrorClass::Permanent);
        assert_eq!(class(368, None), ErrorClass::Permanent);
        assert_eq!(class(100, None), ErrorClass::Permanent);
        assert_eq!(class(2, None), ErrorClass::OutcomeUnknown);
        assert_eq!(class(9007, Some(2207027)), ErrorClass::Transient);
    }

    #[test]
    fn messages_explain_and_keep_metas_words() {
        let e = classify(
            &answer(403, graph(200, None, "(#200) Permissions error"), &[]),
            true,
            "pages_manage_posts",
        );
        assert!(e.message.contains("pages_manage_posts"), "{}", e.message);
        assert!(
            e.message.contains("(#200) Permissions error"),
            "{}",
            e.message
        );
        assert!(e.message.contains("fbtrace_id AbC123"), "{}", e.message);
        let e = classify(
            &answer(400, graph(190, Some(463), "Session has expired"), &[]),
            false,
            "p",
        );
        assert!(
            e.message.starts_with("the access token expired"),
            "{}",
            e.message
        );
    }

    #[test]
    fn the_business_usage_header_gives_the_wait() {
        let e = classify(
            &answer(
                400,
                graph(
                    80001,
                    None,
                    "There have been too many calls to this Page account",
                ),
                &[(
                    "x-business-use-case-usage",
                    r#"{"112233":[{"type":"pages","call_count":100,"total_cputime":5,"total_time":5,"estimated_time_to_regain_access":3}]}"#,
                )],
            ),
            true,
            "p",
        );
        assert_eq!(e.class, ErrorClass::RateLimited);
        assert_eq!(e.retry_after, Some(Duration::from_secs(180)));
    }

    #[test]
    fn usage_headers_slow_a_poller_down() {
        let headers =
            |pairs: &[(&'static str, &str)]| answer(200, serde_json::json!({}), pairs).headers;
        let busy = Duration::from_secs(60);
        assert_eq!(usage_wait(&headers(&[]), busy), None);
        assert_eq!(
            usage_wait(
                &headers(&[(
                    "x-app-usage",
                    r#"{"call_count":12,"total_time":3,"total_cputime":2}"#
                )]),
                busy
            ),
            None
        );
        assert_eq!(
            usage_wait(
                &headers(&[(
                    "x-app-usage",
                    r#"{"call_count":95,"total_time":3,"total_cputime":2}"#
                )]),
                busy
            ),
            Some(busy)
        );
        assert_eq!(
            usage_wait(
                &headers(&[(
                    "x-business-use-case-usage",
                    r#"{"1122":[{"type":"pages","call_count":91,"total_cputime":1,"total_time":1,"estimated_time_to_regain_access":0}]}"#
                )]),
                busy
            ),
            Some(busy)
        );
        assert_eq!(
            usage_wait(
                &headers(&[(
                    "x-business-use-case-usage",
                    r#"{"1122":[{"type":"pages","call_count":100,"total_cputime":1,"total_time":1,"estimated_time_to_regain_access":2}]}"#
                )]),
                busy
            ),
            Some(Duration::from_secs(120))
        );
    }

    #[test]
    fn public_urls_follow_the_media_folder() {
        let media = |p: &str| Media {
            path: PathBuf::from(p),
            alt: String::new(),
            mime: "image/jpeg".into(),
            bytes: 1,
        };
        let public = PublicMedia::new(
            Some("https://cdn.example.com/media/".into()),
            Some(PathBuf::from("/srv/clarion/media")),
        )
        .unwrap();
        assert_eq!(
            public
                .url(&media("/srv/clarion/media/uploads/a b.jpg"))
                .unwrap(),
            "https://cdn.example.com/media/uploads/a%20b.jpg"
        );
        assert_eq!(
            public.url(&media("launch.jpg")).unwrap(),
            "https://cdn.example.com/media/launch.jpg"
        );
        assert!(public.url(&media("/etc/passwd")).is_err());
        assert!(public.url(&media("../x.jpg")).is_err());
        let none = PublicMedia::new(None, None).unwrap();
        let e = none.url(&media("launch.jpg")).unwrap_err();
        assert!(e.to_string().contains("public_media_url"), "{e}");
    }
}
