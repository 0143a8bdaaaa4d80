//! Listening on Mastodon: `mention` notifications, which also cover replies
//! to the account's statuses and direct messages.
//!
//! Streaming first: `GET /api/v1/streaming/user/notification` (server-sent
//! events on the instance's streaming host, `configuration.urls.streaming`
//! of `GET /api/v2/instance`, else the instance itself). Every (re)connect
//! first catches up by polling, so nothing said while disconnected is
//! missed. When the stream cannot be opened the listener polls
//! `GET /api/v1/notifications?types[]=mention&min_id=<cursor>&limit=80`
//! every `listen_interval_secs` and tries streaming again after five minutes.
//!
//! Cursor: the id of the newest notification read (ids are numeric strings,
//! compared numerically). Polls ask for `min_id`, the page right after the
//! cursor, not `since_id`, the newest page: after a long outage with more
//! than 80 new mentions, `since_id` would skip the older ones, while
//! `min_id` walks forward a page per call. The first run (no cursor) reads
//! the newest page the instance holds.
//!
//! Ids are status ids, as the publish side returns and accepts them.

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use clarion_core::{
    Engagement, EngagementAuthor, EngagementKind, ErrorClass, ListenBatch, Listener, PublishError,
};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

use super::{MastodonAdapter, classify};
use crate::http::{classify_transport, for_check};

/// `limit` of a notifications poll: the most the API gives in one page.
const PAGE: usize = 80;
/// Longest a `next_batch` waits on a quiet stream, so the runtime can renew
/// its lease in between.
const BATCH_WAIT: Duration = Duration::from_secs(25);
/// The streaming server sends a `:thump` heartbeat every 15 seconds; this
/// long without a byte means the connection is dead.
const STALL: Duration = Duration::from_secs(45);
/// After streaming failed, poll this long before trying it again.
const STREAM_RETRY: Duration = Duration::from_secs(5 * 60);
/// A stream that ends sooner than this after opening counts as failing
/// (reconnecting at once could hammer a proxy that closes every stream).
const STREAM_MIN_LIFE: Duration = Duration::from_secs(30);
/// Largest event (or unterminated line) accepted from the stream.
const MAX_EVENT_BYTES: usize = 1 << 20;

pub(super) fn listener(api: MastodonAdapter) -> Arc<dyn Listener> {
    Arc::new(MastodonListener::new(api))
}

#[derive(Debug)]
struct MastodonListener {
    api: MastodonAdapter,
    batch_wait: Duration,
    stall: Duration,
    /// The open stream and what goes with it; held across `next_batch`
    /// calls so they continue one stream.
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The account's own id (`verify_credentials`), to drop its own statuses.
    me: Option<String>,
    /// Where the streaming API is, once the instance said so.
    streaming_base: Option<String>,
    stream: Option<SseStream>,
    /// No streaming attempt before this (after a failure).
    stream_retry_at: Option<Instant>,
    /// A poll must run before reading the stream: it was just opened, or
    /// the last catch-up page was full.
    catch_up: bool,
    /// The cursor the runtime holds after our last batch. A call with any
    /// other cursor (it did not store a batch) catches up from that one.
    held: Option<String>,
}

impl MastodonListener {
    fn new(api: MastodonAdapter) -> Self {
        Self {
            api,
            batch_wait: BATCH_WAIT,
            stall: STALL,
            state: Mutex::default(),
        }
    }

    /// The account's id, asked once.
    async fn me(&self, state: &mut State) -> Result<String, PublishError> {
        if let Some(id) = &state.me {
            return Ok(id.clone());
        }
        #[derive(Deserialize)]
        struct Me {
            id: String,
        }
        let (_, body) = self
            .api
            .send(
                self.api
                    .request(reqwest::Method::GET, "/api/v1/accounts/verify_credentials"),
            )
            .await?;
        let me: Me = serde_json::from_str(&body).map_err(|e| {
            PublishError::new(
                ErrorClass::Transient,
                format!("verify_credentials answer is not an Account: {e}"),
            )
        })?;
        state.me = Some(me.id.clone());
        Ok(me.id)
    }

    /// `configuration.urls.streaming` of the instance, as an http(s) base.
    async fn streaming_base(&self) -> Option<String> {
        let (_, body) = self
            .api
            .send(self.api.request(reqwest::Method::GET, "/api/v2/instance"))
            .await
            .ok()?;
        let instance: Value = serde_json::from_str(&body).ok()?;
        let url = instance
            .pointer("/configuration/urls/streaming")?
            .as_str()?;
        let mut url = reqwest::Url::parse(url).ok()?;
        let scheme = match url.scheme() {
            "wss" | "https" => "https",
            "ws" | "http" => "http",
            _ => return None,
        };
        url.set_scheme(scheme).ok()?;
        Some(url.as_str().trim_end_matches('/').to_owned())
    }

    async fn open_stream(&self, state: &mut State) -> Result<SseStream, PublishError> {
        let base = match &state.streaming_base {
            Some(base) => base.clone(),
            None => match self.streaming_base().await {
                Some(found) => {
                    state.streaming_base = Some(found.clone());
                    found
                }
                // Asked again on the next attempt.
                None => self.api.base.clone(),
            },
        };
        // No overall timeout: the body is the stream. Opening it is bounded.
        let request = self
            .api
            .client
            .get(format!("{base}/api/v1/streaming/user/notification"))
            .bearer_auth(self.api.token.expose())
            .header(ACCEPT, "text/event-stream");
        let response = tokio::time::timeout(self.api.timeout, request.send())
            .await
            .map_err(|_| PublishError::new(ErrorClass::Transient, "timed out opening the stream"))?
            .map_err(classify_transport)?;
        let status = response.status();
        if !status.is_success() {
            return Err(classify(status, response.headers(), ""));
        }
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !content_type.starts_with("text/event-stream") {
            return Err(PublishError::new(
                ErrorClass::Permanent,
                format!("the streaming API answered `{content_type}`, not an event stream"),
            ));
        }
        let now = Instant::now();
        Ok(SseStream {
            response,
            parser: SseParser::default(),
            opened: now,
            last_bytes: now,
        })
    }

    /// One page of mention notifications after `cursor` (the newest page
    /// when there is none).
    async fn poll(&self, cursor: Option<&str>, me: &str) -> Result<Page, PublishError> {
        let limit = PAGE.to_string();
        let mut query = vec![("types[]", "mention"), ("limit", limit.as_str())];
        if let Some(cursor) = cursor {
            query.push(("min_id", cursor));
        }
        let (_, body) = self
            .api
            .send(
                self.api
                    .request(reqwest::Method::GET, "/api/v1/notifications")
                    .query(&query),
            )
            .await?;
        let items: Vec<Value> = serde_json::from_str(&body).map_err(|e| {
            PublishError::new(
                ErrorClass::Transient,
                format!("notifications answer is not a list: {e}"),
            )
        })?;
        let mut page = Page {
            full: items.len() >= PAGE,
            ..Page::default()
        };
        for item in items {
            page.add(read_notification(item, me));
        }
        Ok(page)
    }

    async fn next(&self, cursor: Option<&str>) -> Result<ListenBatch, PublishError> {
        let mut state = self.state.lock().await;
        let me = self.me(&mut state).await?;

        if state.stream.is_none() && state.stream_retry_at.is_none_or(|at| Instant::now() >= at) {
            match self.open_stream(&mut state).await {
                Ok(stream) => {
                    state.stream = Some(stream);
                    state.stream_retry_at = None;
                    state.catch_up = true;
                }
                Err(e) => {
                    tracing::info!(
                        instance = %self.api.host,
                        "mastodon: streaming unavailable ({e}); polling every {}s",
                        self.api.listen_interval.as_secs()
                    );
                    state.stream_retry_at = Some(Instant::now() + STREAM_RETRY);
                }
            }
        }

        if state.stream.is_none() {
            let page = self.poll(cursor, &me).await?;
            let wait = if page.full {
                Duration::ZERO
            } else {
                self.api.listen_interval
            };
            return Ok(page.into_batch(cursor, wait));
        }

        // Streaming: first what the stream cannot have (said before it
        // opened, or after a cursor the runtime did not store).
        if state.catch_up || state.held.as_deref() != cursor {
            let page = self.poll(cursor, &me).await?;
            state.catch_up = page.full;
            let full = page.full;
            let batch = page.into_batch(cursor, Duration::ZERO);
            state.held = batch.cursor.clone().or(cursor.map(str::to_owned));
            if full
                || batch.cursor.is_some()
                || !batch.events.is_empty()
                || !batch.skipped.is_empty()
            {
                return Ok(batch);
            }
        }

        let mut page = Page::default();
        let deadline = Instant::now() + self.batch_wait;
        while let Some(stream) = state.stream.as_mut() {
            let read_by = deadline.min(stream.last_bytes + self.stall);
            let end = match tokio::time::timeout_at(read_by.into(), stream.next_event()).await {
                Ok(Ok(Some(event))) => {
                    let mut event = Some(event);
                    // Everything that already arrived goes in this batch.
                    while let Some(SseEvent { name, data }) = event {
                        if name == "notification" {
                            page.add(read_notification_data(&data, &me));
                        }
                        event = stream.parser.events.pop_front();
                    }
                    if page.is_empty() {
                        continue;
                    }
                    break;
                }
                Err(_) if Instant::now() >= deadline => break,
                Err(_) => format!("no data (not even a heartbeat) for {:?}", self.stall),
                Ok(Ok(None)) => "the server closed it".to_owned(),
                Ok(Err(reason)) => reason,
            };
            // The stream is gone: the next call reconnects (or polls) and
            // catches up from the cursor.
            let lived = stream.opened.elapsed();
            tracing::info!(instance = %self.api.host, "mastodon: stream ended: {end}");
            state.stream = None;
            if lived < STREAM_MIN_LIFE {
                state.stream_retry_at = Some(Instant::now() + STREAM_RETRY);
            }
            break;
        }
        let batch = page.into_batch(cursor, Duration::ZERO);
        state.held = batch.cursor.clone().or(cursor.map(str::to_owned));
        Ok(batch)
    }
}

#[async_trait]
impl Listener for MastodonListener {
    fn kind(&self) -> &'static str {
        "mastodon"
    }

    async fn next_batch(&self, cursor: Option<&str>) -> Result<ListenBatch, PublishError> {
        // Nothing is written by listening: an unreadable answer or timeout
        // is a failed read to try again, not an unknown outcome.
        self.next(cursor).await.map_err(for_check)
    }
}

/// What a page (or a run of stream events) held.
#[derive(Debug, Default)]
struct Page {
    /// Engagements by notification id.
    events: Vec<(String, Engagement)>,
    skipped: Vec<String>,
    /// The newest notification id read, yielded or not.
    newest: Option<String>,
    /// As many as asked for: more may follow at once.
    full: bool,
}

impl Page {
    fn add(&mut self, read: Read) {
        if let Some(id) = read.id
            && self
                .newest
                .as_deref()
                .is_none_or(|n| compare_ids(&id, n) == Ordering::Greater)
        {
            self.newest = Some(id.clone());
        }
        match read.outcome {
            Outcome::Event(id, event) => self.events.push((id, *event)),
            Outcome::Ignored => {}
            Outcome::Malformed(reason) => self.skipped.push(reason),
        }
    }

    fn is_empty(&self) -> bool {
        self.events.is_empty() && self.skipped.is_empty() && self.newest.is_none()
    }

    /// Oldest first; the cursor moves only forward.
    fn into_batch(mut self, cursor: Option<&str>, wait: Duration) -> ListenBatch {
        self.events.sort_by(|(a, _), (b, _)| compare_ids(a, b));
        let cursor = self
            .newest
            .filter(|n| cursor.is_none_or(|c| compare_ids(n, c) == Ordering::Greater));
        ListenBatch {
            events: self.events.into_iter().map(|(_, e)| e).collect(),
            cursor,
            skipped: self.skipped,
            wait,
        }
    }
}

/// Orders snowflake ids: numerically for digit strings (longer is larger),
/// which is also right for the fixed-width ids some other servers use.
fn compare_ids(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// One notification as read: its id when it has one, and what it became.
struct Read {
    id: Option<String>,
    outcome: Outcome,
}

enum Outcome {
    Event(String, Box<Engagement>),
    /// Not for the inbox: another type, the account's own or a bot's status.
    Ignored,
    Malformed(String),
}

#[derive(Deserialize)]
struct Notification {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    status: Option<Status>,
}

#[derive(Deserialize)]
struct Status {
    id: String,
    created_at: String,
    in_reply_to_id: Option<String>,
    #[serde(default)]
    visibility: String,
    #[serde(default)]
    spoiler_text: String,
    #[serde(default)]
    content: String,
    url: Option<String>,
    uri: Option<String>,
    account: Account,
}

#[derive(Deserialize)]
struct Account {
    id: String,
    acct: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    bot: bool,
}

fn read_notification_data(data: &str, me: &str) -> Read {
    match serde_json::from_str(data) {
        Ok(value) => read_notification(value, me),
        Err(e) => Read {
            id: None,
            outcome: Outcome::Malformed(format!("stream event is not JSON: {e}")),
        },
    }
}

fn read_notification(value: Value, me: &str) -> Read {
    let id = value.get("id").and_then(Value::as_str).map(str::to_owned);
    let malformed = |what: String| Outcome::Malformed(what.chars().take(300).collect());
    let outcome = match serde_json::from_value::<Notification>(value) {
        Err(e) => malformed(format!(
            "notification {}: {e}",
            id.as_deref().unwrap_or("without id")
        )),
        // Other types neither yield nor move the cursor (polls see mentions only).
        Ok(n) if n.kind != "mention" => {
            return Read {
                id: None,
                outcome: Outcome::Ignored,
            };
        }
        Ok(Notification {
            id: nid,
            status: None,
            ..
        }) => malformed(format!("notification {nid}: a mention without a status")),
        Ok(Notification {
            id: nid,
            status: Some(status),
            ..
        }) => match chrono::DateTime::parse_from_rfc3339(&status.created_at) {
            Err(e) => malformed(format!(
                "notification {nid}: created_at `{}`: {e}",
                status.created_at
            )),
            Ok(_) if status.account.id == me || status.account.bot => Outcome::Ignored,
            Ok(at) => Outcome::Event(nid, Box::new(engagement(status, at.timestamp_millis()))),
        },
    };
    Read { id, outcome }
}

fn engagement(status: Status, created_at_ms: i64) -> Engagement {
    let kind = if status.visibility == "direct" {
        EngagementKind::Dm
    } else if status.in_reply_to_id.is_some() {
        EngagementKind::Reply
    } else {
        EngagementKind::Mention
    };
    let mut text = html_to_text(&status.content);
    if !status.spoiler_text.trim().is_empty() {
        text = format!("CW: {}\n\n{text}", status.spoiler_text.trim());
    }
    Engagement {
        // Statuses carry no thread root: the parent stands for it (the
        // runtime joins a known parent's conversation).
        root_id: status
            .in_reply_to_id
            .clone()
            .unwrap_or_else(|| status.id.clone()),
        parent_id: status.in_reply_to_id,
        item_id: status.id,
        kind,
        author: EngagementAuthor {
            id: status.account.id,
            handle: format!("@{}", status.account.acct),
            display_name: status.account.display_name,
            roles: Vec::new(),
        },
        text,
        url: status.url.or(status.uri),
        place: None,
        created_at_ms,
    }
}

/// Status HTML as plain text: tags dropped (the hidden parts of shortened
/// links included, so links come out whole), entities decoded, `<br>` as
/// a line break and paragraphs separated by a blank line.
fn html_to_text(html: &str) -> String {
    fn paragraph(out: &mut String) {
        let kept = out.trim_end_matches([' ', '\n']).len();
        out.truncate(kept);
        if !out.is_empty() {
            out.push_str("\n\n");
        }
    }
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        out.push_str(&decode_entities(&rest[..open]));
        let Some(close) = rest[open..].find('>') else {
            rest = &rest[open..];
            break;
        };
        let tag = rest[open + 1..open + close].trim().to_ascii_lowercase();
        rest = &rest[open + close + 1..];
        let closing = tag.starts_with('/');
        let name = tag
            .trim_start_matches('/')
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or_default();
        match (name, closing) {
            ("br", _) => out.push('\n'),
            ("p" | "blockquote" | "pre" | "ul" | "ol", _) => paragraph(&mut out),
            ("li", false) if !out.is_empty() && !out.ends_with('\n') => out.push('\n'),
            _ => {}
        }
    }
    out.push_str(&decode_entities(rest));
    out.trim().to_owned()
}

/// Decodes the character references Mastodon's sanitizer emits (named
/// basics and numeric ones); anything else stays as written.
fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest[1..]
            .find(';')
            .filter(|&end| end <= 10)
            .and_then(|end| Some((entity(&rest[1..=end])?, end + 2)));
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        _ => {
            let number = name.strip_prefix('#')?;
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            char::from_u32(code)?
        }
    })
}

/// An open `text/event-stream` response.
#[derive(Debug)]
struct SseStream {
    response: reqwest::Response,
    parser: SseParser,
    opened: Instant,
    last_bytes: Instant,
}

impl SseStream {
    /// The next event; `Ok(None)` when the server closed the stream.
    /// Cancel-safe: a chunk is parsed in the same poll that received it.
    async fn next_event(&mut self) -> Result<Option<SseEvent>, String> {
        loop {
            if let Some(event) = self.parser.events.pop_front() {
                return Ok(Some(event));
            }
            match self.response.chunk().await {
                Ok(Some(bytes)) => {
                    self.last_bytes = Instant::now();
                    self.parser.feed(&bytes)?;
                }
                Ok(None) => return Ok(None),
                Err(e) => return Err(classify_transport(e).message),
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
struct SseEvent {
    name: String,
    data: String,
}

/// The server-sent events wire format: `field: value` lines, an empty line
/// ends an event, lines starting with `:` are comments (`:thump`).
#[derive(Debug, Default)]
struct SseParser {
    buffer: Vec<u8>,
    name: String,
    data: Option<String>,
    events: VecDeque<SseEvent>,
}

impl SseParser {
    fn feed(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.buffer.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(end) = self.buffer[start..].iter().position(|&b| b == b'\n') {
            let mut line = &self.buffer[start..start + end];
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            let line = String::from_utf8_lossy(line).into_owned();
            self.line(&line);
            start += end + 1;
        }
        self.buffer.drain(..start);
        let pending = self.buffer.len() + self.data.as_ref().map_or(0, String::len);
        if pending > MAX_EVENT_BYTES {
            return Err(format!("an event longer than {MAX_EVENT_BYTES} bytes"));
        }
        Ok(())
    }

    fn line(&mut self, line: &str) {
        if line.is_empty() {
            let name = std::mem::take(&mut self.name);
            if let Some(data) = self.data.take() {
                let name = if name.is_empty() {
                    "message".to_owned()
                } else {
                    name
                };
                self.events.push_back(SseEvent { name, data });
            }
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.name = value.to_owned(),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex as StdMutex;

    use axum::extract::{RawQuery, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use axum::routing::get;
    use clarion_core::{AdapterContext, AdapterFactory, ChannelConfig};
    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::mpsc;

    use super::super::Factory;
    use super::*;

    const TOKEN: &str = "tok-SECRET-listen-1234";

    /// The fake instance: its notifications (newest first, as it keeps
    /// them) and what it was asked.
    #[derive(Clone, Default)]
    struct Fake(Arc<StdMutex<Inner>>);

    #[derive(Default)]
    struct Inner {
        notifications: Vec<Value>,
        /// Query pairs of every notifications poll.
        polls: Vec<Vec<(String, String)>>,
        /// Request line and authorization of every stream opened.
        streams: Vec<(String, Option<String>)>,
        /// `configuration.urls.streaming`; `/api/v2/instance` is 404 without.
        streaming_url: Option<String>,
        /// The next poll fails this way.
        fail: Option<&'static str>,
    }

    impl Fake {
        fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
            self.0.lock().unwrap()
        }

        /// Adds notifications, newest first.
        fn push(&self, items: Vec<Value>) {
            let mut inner = self.inner();
            for item in items.into_iter().rev() {
                inner.notifications.insert(0, item);
            }
        }

        fn polls(&self) -> Vec<Vec<(String, String)>> {
            self.inner().polls.clone()
        }

        fn streams(&self) -> Vec<(String, Option<String>)> {
            self.inner().streams.clone()
        }
    }

    fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn authorised(headers: &HeaderMap) -> bool {
        headers
            .get("authorization")
            .is_some_and(|v| v == &format!("Bearer {TOKEN}"))
    }

    fn invalid_token() -> Response {
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "The access token is invalid"})),
        )
            .into_response()
    }

    async fn verify(headers: HeaderMap) -> Response {
        if !authorised(&headers) {
            return invalid_token();
        }
        axum::Json(json!({"id": "1", "username": "bot", "acct": "bot", "display_name": "Bot"}))
            .into_response()
    }

    async fn instance_info(State(fake): State<Fake>) -> Response {
        match fake.inner().streaming_url.clone() {
            Some(url) => axum::Json(json!({
                "domain": "social.test",
                "configuration": {"urls": {"streaming": url}},
            }))
            .into_response(),
            None => (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"error": "Record not found"})),
            )
                .into_response(),
        }
    }

    /// The streaming endpoint on the instance itself: failing.
    async fn broken_stream(State(fake): State<Fake>, headers: HeaderMap) -> Response {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        fake.inner()
            .streams
            .push(("GET /api/v1/streaming/user/notification".to_owned(), auth));
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"error": "Streaming is unavailable"})),
        )
            .into_response()
    }

    /// `GET /api/v1/notifications`: `types[]`, `limit`, `min_id` (the page
    /// right after it) and `since_id` (the newest page after it), newest
    /// first, as Mastodon pages them.
    async fn notifications(
        State(fake): State<Fake>,
        headers: HeaderMap,
        RawQuery(query): RawQuery,
    ) -> Response {
        let query: Vec<(String, String)> =
            url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        let mut inner = fake.inner();
        inner.polls.push(query.clone());
        if !authorised(&headers) {
            return invalid_token();
        }
        match inner.fail.take() {
            Some("reset") => {
                let reset = (chrono::Utc::now() + chrono::Duration::seconds(2))
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [
                        ("X-RateLimit-Limit", "300".to_owned()),
                        ("X-RateLimit-Remaining", "0".to_owned()),
                        ("X-RateLimit-Reset", reset),
                    ],
                    axum::Json(json!({"error": "Too many requests"})),
                )
                    .into_response();
            }
            Some("retry-after") => {
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("Retry-After", "7")],
                    axum::Json(json!({"error": "Too many requests"})),
                )
                    .into_response();
            }
            _ => {}
        }
        let types: Vec<&str> = query
            .iter()
            .filter(|(k, _)| k == "types[]")
            .map(|(_, v)| v.as_str())
            .collect();
        let limit: usize = param(&query, "limit")
            .and_then(|l| l.parse().ok())
            .unwrap_or(40);
        let id = |n: &Value| n["id"].as_str().unwrap_or_default().to_owned();
        let mut items: Vec<Value> = inner
            .notifications
            .iter()
            .filter(|n| types.is_empty() || types.contains(&n["type"].as_str().unwrap_or("")))
            .cloned()
            .collect();
        if let Some(after) = param(&query, "min_id").or(param(&query, "since_id")) {
            items.retain(|n| compare_ids(&id(n), after) == Ordering::Greater);
        }
        if param(&query, "min_id").is_some() {
            // The oldest `limit` after min_id, answered newest first.
            let skip = items.len().saturating_sub(limit);
            items.drain(..skip);
        } else {
            items.truncate(limit);
        }
        axum::Json(items).into_response()
    }

    async fn instance() -> (String, Fake) {
        let fake = Fake::default();
        let app = axum::Router::new()
            .route("/api/v1/accounts/verify_credentials", get(verify))
            .route("/api/v2/instance", get(instance_info))
            .route("/api/v1/notifications", get(notifications))
            .route("/api/v1/streaming/user/notification", get(broken_stream))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (base, fake)
    }

    /// A streaming server speaking raw HTTP/1.1 server-sent events: it
    /// writes what the test sends, as it is sent, and closes the stream
    /// on `CLOSE`. Its URL is given as `ws://`, as instances announce it.
    async fn streaming_server(fake: Fake) -> (String, mpsc::UnboundedSender<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::unbounded_channel::<String>();
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (fake, rx) = (fake.clone(), rx.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let line = head.lines().next().unwrap_or_default();
                    let line = line.trim_end_matches(" HTTP/1.1").to_owned();
                    let auth = head.lines().find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("authorization")
                            .then(|| value.trim().to_owned())
                    });
                    fake.inner().streams.push((line, auth));
                    let opening = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                                   cache-control: no-cache\r\nconnection: close\r\n\r\n:)\n";
                    if socket.write_all(opening.as_bytes()).await.is_err() {
                        return;
                    }
                    let mut rx = rx.lock().await;
                    while let Some(chunk) = rx.recv().await {
                        if chunk == "CLOSE" || socket.write_all(chunk.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (url, tx)
    }

    fn config(env: &str, token: &str, settings: Value) -> ChannelConfig {
        // SAFETY: each test sets its own variable and only reads that one.
        unsafe { std::env::set_var(env, token) };
        let mut config = json!({
            "name": "fedi",
            "kind": "mastodon",
            "listen": true,
            "access_token": {"env": env},
        });
        config
            .as_object_mut()
            .unwrap()
            .extend(settings.as_object().unwrap().clone());
        serde_json::from_value(config).unwrap()
    }

    /// A listener built directly, so a test can shorten its waits.
    fn listener(env: &str, token: &str, base: &str) -> MastodonListener {
        let config = config(env, token, json!({"instance": base}));
        MastodonListener::new(Factory::configure(&config).unwrap())
    }

    fn account(id: &str, acct: &str, name: &str, bot: bool) -> Value {
        json!({"id": id, "username": acct.split('@').next(), "acct": acct, "display_name": name, "bot": bot})
    }

    fn alice() -> Value {
        account("7", "alice@remote.test", "Alice", false)
    }

    /// A `mention` notification in the documented shape; `status` fields
    /// in `over` replace the defaults.
    fn mention(id: &str, status_id: &str, author: Value, over: Value) -> Value {
        let acct = author["username"].as_str().unwrap_or_default().to_owned();
        let mut status = json!({
            "id": status_id,
            "created_at": "2025-03-01T12:00:00.000Z",
            "in_reply_to_id": null,
            "in_reply_to_account_id": null,
            "visibility": "public",
            "spoiler_text": "",
            "content": "<p>hello</p>",
            "uri": format!("https://remote.test/users/{acct}/statuses/{status_id}"),
            "url": format!("https://remote.test/@{acct}/{status_id}"),
            "account": author,
            "mentions": [{"id": "1", "username": "bot", "acct": "bot"}],
        });
        status
            .as_object_mut()
            .unwrap()
            .extend(over.as_object().unwrap().clone());
        json!({
            "id": id,
            "type": "mention",
            "created_at": "2025-03-01T12:00:01.000Z",
            "account": status["account"].clone(),
            "status": status,
        })
    }

    fn favourite(id: &str) -> Value {
        json!({"id": id, "type": "favourite", "created_at": "2025-03-01T12:00:00.000Z",
               "account": alice(), "status": {"id": "1000", "created_at": "2025-03-01T12:00:00.000Z",
               "content": "<p>ours</p>", "account": account("1", "bot", "Bot", false)}})
    }

    fn ids(batch: &ListenBatch) -> Vec<&str> {
        batch.events.iter().map(|e| e.item_id.as_str()).collect()
    }

    #[tokio::test]
    async fn mentions_replies_and_dms_become_engagements() {
        let (base, fake) = instance().await;
        fake.push(vec![
            mention(
                "120",
                "1120",
                alice(),
                json!({"visibility": "direct", "content": "<p>psst &lt;3</p>"}),
            ),
            mention(
                "115",
                "1115",
                account("8", "newsbot@remote.test", "News", true),
                json!({}),
            ),
            mention("112", "1112", account("1", "bot", "Bot", false), json!({})),
            mention(
                "110",
                "1110",
                alice(),
                json!({
                    "in_reply_to_id": "1100",
                    "content": "<p><span class=\"h-card\" translate=\"no\"><a href=\"https://social.test/@bot\" class=\"u-url mention\">@<span>bot</span></a></span> thanks &amp; see <a href=\"https://example.com/a/long/path\" rel=\"nofollow noopener\" target=\"_blank\"><span class=\"invisible\">https://</span><span class=\"ellipsis\">example.com/a/lo</span><span class=\"invisible\">ng/path</span></a></p><p>second<br />third</p>",
                    "spoiler_text": "",
                }),
            ),
            favourite("108"),
            mention("99", "1099", alice(), json!({"url": null})),
        ]);
        let config = config(
            "CLARION_TEST_MASTODON_LISTEN_KINDS",
            TOKEN,
            json!({"instance": base}),
        );
        let listener = Factory
            .build_listener(&config, &AdapterContext::default())
            .unwrap()
            .expect("mastodon can listen");
        assert_eq!(listener.kind(), "mastodon");

        let batch = listener.next_batch(None).await.unwrap();

        // Oldest first; the bot's and our own statuses are not yielded,
        // and "99" < "110" < "120" numerically.
        assert_eq!(ids(&batch), ["1099", "1110", "1120"]);
        assert_eq!(batch.cursor.as_deref(), Some("120"));
        assert!(batch.skipped.is_empty(), "{:?}", batch.skipped);
        assert_eq!(batch.wait, Duration::from_secs(30));
        let alice = EngagementAuthor {
            id: "7".into(),
            handle: "@alice@remote.test".into(),
            display_name: "Alice".into(),
            roles: Vec::new(),
        };
        assert_eq!(
            batch.events[0],
            Engagement {
                item_id: "1099".into(),
                kind: EngagementKind::Mention,
                author: alice.clone(),
                text: "hello".into(),
                url: Some("https://remote.test/users/alice/statuses/1099".into()),
                parent_id: None,
                root_id: "1099".into(),
                place: None,
                created_at_ms: 1_740_830_400_000,
            }
        );
        assert_eq!(
            batch.events[1],
            Engagement {
                item_id: "1110".into(),
                kind: EngagementKind::Reply,
                author: alice.clone(),
                text: "@bot thanks & see https://example.com/a/long/path\n\nsecond\nthird".into(),
                url: Some("https://remote.test/@alice/1110".into()),
                parent_id: Some("1100".into()),
                root_id: "1100".into(),
                place: None,
                created_at_ms: 1_740_830_400_000,
            }
        );
        assert_eq!(batch.events[2].kind, EngagementKind::Dm);
        assert_eq!(batch.events[2].text, "psst <3");
        assert_eq!(batch.events[2].root_id, "1120");

        let polls = fake.polls();
        assert_eq!(polls.len(), 1);
        assert_eq!(param(&polls[0], "types[]"), Some("mention"));
        assert_eq!(param(&polls[0], "limit"), Some("80"));
        assert_eq!(param(&polls[0], "min_id"), None);
    }

    #[tokio::test]
    async fn the_cursor_moves_forward_and_the_next_poll_asks_after_it() {
        let (base, fake) = instance().await;
        fake.push(vec![
            mention("205", "2205", alice(), json!({})),
            mention("201", "2201", alice(), json!({})),
        ]);
        let listener = listener("CLARION_TEST_MASTODON_LISTEN_CURSOR", TOKEN, &base);

        let first = listener.next_batch(None).await.unwrap();
        assert_eq!(ids(&first), ["2201", "2205"]);
        assert_eq!(first.cursor.as_deref(), Some("205"));

        let again = listener.next_batch(Some("205")).await.unwrap();
        assert!(again.events.is_empty(), "{:?}", again.events);
        assert_eq!(again.cursor, None, "nothing new keeps the stored cursor");

        fake.push(vec![mention("1000", "3000", alice(), json!({}))]);
        let new = listener.next_batch(Some("205")).await.unwrap();
        assert_eq!(ids(&new), ["3000"]);
        assert_eq!(new.cursor.as_deref(), Some("1000"));

        let polls = fake.polls();
        assert_eq!(polls.len(), 3);
        assert_eq!(param(&polls[1], "min_id"), Some("205"));
        assert_eq!(param(&polls[2], "min_id"), Some("205"));
    }

    #[tokio::test]
    async fn a_backlog_is_read_a_page_at_a_time_from_the_cursor() {
        let (base, fake) = instance().await;
        let backlog: Vec<Value> = (1..=100)
            .rev()
            .map(|n| {
                mention(
                    &format!("{}", 5000 + n),
                    &format!("{}", 9000 + n),
                    alice(),
                    json!({}),
                )
            })
            .collect();
        fake.push(backlog);
        let listener = listener("CLARION_TEST_MASTODON_LISTEN_BACKLOG", TOKEN, &base);

        let first = listener.next_batch(Some("5000")).await.unwrap();
        assert_eq!(first.events.len(), 80);
        assert_eq!(
            first.events[0].item_id, "9001",
            "the oldest after the cursor"
        );
        assert_eq!(first.cursor.as_deref(), Some("5080"));
        assert_eq!(
            first.wait,
            Duration::ZERO,
            "a full page is followed at once"
        );

        let rest = listener.next_batch(Some("5080")).await.unwrap();
        assert_eq!(rest.events.len(), 20);
        assert_eq!(rest.cursor.as_deref(), Some("5100"));
        assert_eq!(rest.wait, Duration::from_secs(30));
    }

    #[tokio::test]
    async fn rate_limits_wait_until_the_reset_time_or_retry_after() {
        let (base, fake) = instance().await;
        fake.push(vec![mention("301", "3301", alice(), json!({}))]);
        let listener = listener("CLARION_TEST_MASTODON_LISTEN_429", TOKEN, &base);

        fake.inner().fail = Some("reset");
        let limited = listener.next_batch(Some("300")).await.unwrap_err();
        assert_eq!(limited.class, ErrorClass::RateLimited);
        assert_eq!(limited.status, Some(429));
        let wait = limited.retry_after.unwrap();
        assert!(
            wait > Duration::from_millis(1000) && wait <= Duration::from_secs(2),
            "{wait:?}"
        );

        fake.inner().fail = Some("retry-after");
        let header = listener.next_batch(Some("300")).await.unwrap_err();
        assert_eq!(header.class, ErrorClass::RateLimited);
        assert_eq!(header.retry_after, Some(Duration::from_secs(7)));

        // The failed polls moved nothing: the mention is still there.
        let batch = listener.next_batch(Some("300")).await.unwrap();
        assert_eq!(ids(&batch), ["3301"]);
    }

    #[tokio::test]
    async fn a_rejected_token_is_auth_expired_and_never_printed() {
        let (base, _) = instance().await;
        let listener = listener(
            "CLARION_TEST_MASTODON_LISTEN_401",
            "tok-SECRET-wrong-5678",
            &base,
        );
        let error = listener.next_batch(Some("1")).await.unwrap_err();
        assert_eq!(
            (error.class, error.message.as_str()),
            (
                ErrorClass::AuthExpired,
                "HTTP 401: The access token is invalid"
            )
        );
        for text in [error.to_string(), format!("{listener:?}")] {
            assert!(!text.contains("SECRET"), "{text}");
        }
    }

    #[tokio::test]
    async fn a_malformed_notification_is_skipped_and_the_others_yielded() {
        let (base, fake) = instance().await;
        fake.push(vec![
            mention("404", "4404", alice(), json!({})),
            mention("403", "4403", alice(), json!({"created_at": "yesterday"})),
            json!({"id": "402", "type": "mention", "status": {"id": "4402"}}),
            json!({"type": "mention", "status": null}),
            mention("401", "4401", alice(), json!({})),
        ]);
        let listener = listener("CLARION_TEST_MASTODON_LISTEN_BAD", TOKEN, &base);
        let batch = listener.next_batch(None).await.unwrap();
        assert_eq!(ids(&batch), ["4401", "4404"]);
        assert_eq!(batch.cursor.as_deref(), Some("404"));
        assert_eq!(batch.skipped.len(), 3, "{:?}", batch.skipped);
        assert!(
            batch.skipped[0].starts_with("notification 403: created_at `yesterday`"),
            "{:?}",
            batch.skipped
        );
        assert!(
            batch.skipped[1].starts_with("notification 402: missing field"),
            "{:?}",
            batch.skipped
        );
        assert!(
            batch.skipped[2].starts_with("notification without id:"),
            "{:?}",
            batch.skipped
        );
    }

    #[tokio::test]
    async fn the_stream_delivers_notifications_on_one_connection_and_catches_up_after() {
        let (base, fake) = instance().await;
        let (streaming, events) = streaming_server(fake.clone()).await;
        fake.inner().streaming_url = Some(streaming);
        // Said before the stream opened: the catch-up poll finds it.
        fake.push(vec![mention("500", "5500", alice(), json!({}))]);
        let mut listener = listener("CLARION_TEST_MASTODON_LISTEN_SSE", TOKEN, &base);
        listener.batch_wait = Duration::from_millis(500);

        let first = listener.next_batch(Some("490")).await.unwrap();
        assert_eq!(ids(&first), ["5500"]);
        assert_eq!(first.cursor.as_deref(), Some("500"));
        assert_eq!(first.wait, Duration::ZERO);

        let reply = mention("510", "5510", alice(), json!({"in_reply_to_id": "5000"}));
        let data = serde_json::to_string(&reply).unwrap();
        events.send(":thump\n".into()).unwrap();
        events
            .send("event: update\ndata: {\"id\":\"1\"}\n\n".into())
            .unwrap();
        events
            .send(format!(
                "event: notification\ndata: {}\n\n",
                serde_json::to_string(&favourite("505")).unwrap()
            ))
            .unwrap();
        // One event split across writes.
        let (head, tail) = data.split_at(40);
        events
            .send(format!("event: notification\r\ndata: {head}"))
            .unwrap();
        events.send(format!("{tail}\r\n\r\n")).unwrap();

        let streamed = listener.next_batch(Some("500")).await.unwrap();
        assert_eq!(ids(&streamed), ["5510"]);
        assert_eq!(streamed.events[0].kind, EngagementKind::Reply);
        assert_eq!(streamed.events[0].parent_id.as_deref(), Some("5000"));
        assert_eq!(streamed.cursor.as_deref(), Some("510"));

        // Quiet: an empty batch after the wait, on the same stream.
        let started = Instant::now();
        let quiet = listener.next_batch(Some("510")).await.unwrap();
        assert_eq!(quiet, ListenBatch::default());
        assert!(started.elapsed() >= Duration::from_millis(450));

        assert_eq!(
            fake.streams(),
            [(
                "GET /api/v1/streaming/user/notification".to_owned(),
                Some(format!("Bearer {TOKEN}"))
            )],
            "one connection, on the announced streaming host"
        );
        assert_eq!(fake.polls().len(), 1, "only the catch-up poll");

        // The stream ends; what is said meanwhile is polled from the cursor.
        events.send("CLOSE".into()).unwrap();
        let closed = listener.next_batch(Some("510")).await.unwrap();
        assert!(closed.events.is_empty() && closed.cursor.is_none());
        fake.push(vec![mention("520", "5520", alice(), json!({}))]);
        let caught_up = listener.next_batch(Some("510")).await.unwrap();
        assert_eq!(ids(&caught_up), ["5520"]);
        let polls = fake.polls();
        assert_eq!(polls.len(), 2);
        assert_eq!(param(&polls[1], "min_id"), Some("510"));
    }

    #[tokio::test]
    async fn when_streaming_fails_polling_still_yields_the_mentions() {
        let (base, fake) = instance().await;
        fake.push(vec![mention("601", "6601", alice(), json!({}))]);
        let listener = listener("CLARION_TEST_MASTODON_LISTEN_NOSTREAM", TOKEN, &base);

        let batch = listener.next_batch(None).await.unwrap();
        assert_eq!(ids(&batch), ["6601"]);
        assert_eq!(batch.wait, Duration::from_secs(30), "polling waits");
        // No streaming host announced: the instance itself was tried.
        assert_eq!(
            fake.streams(),
            [(
                "GET /api/v1/streaming/user/notification".to_owned(),
                Some(format!("Bearer {TOKEN}"))
            )]
        );

        fake.push(vec![mention("602", "6602", alice(), json!({}))]);
        let next = listener.next_batch(Some("601")).await.unwrap();
        assert_eq!(ids(&next), ["6602"]);
        assert_eq!(
            fake.streams().len(),
            1,
            "streaming is retried later, not per poll"
        );
        assert_eq!(fake.polls().len(), 2);
    }

    #[test]
    fn the_listen_interval_is_checked() {
        let bad = config(
            "CLARION_TEST_MASTODON_LISTEN_INTERVAL",
            TOKEN,
            json!({"instance": "https://social.test", "listen_interval_secs": 1}),
        );
        let error = Factory
            .build_listener(&bad, &AdapterContext::default())
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "channel `fedi` listen_interval_secs: must be between 5 and 3600 seconds"
        );
        let good = config(
            "CLARION_TEST_MASTODON_LISTEN_INTERVAL",
            TOKEN,
            json!({"instance": "https://social.test", "listen_interval_secs": 120}),
        );
        let adapter = Factory::configure(&good).unwrap();
        assert_eq!(adapter.listen_interval, Duration::from_secs(120));
    }

    #[test]
    fn status_html_becomes_plain_text() {
        assert_eq!(
            html_to_text("<p>one &amp; two</p><p>three<br>four<br/>five</p>"),
            "one & two\n\nthree\nfour\nfive"
        );
        assert_eq!(
            html_to_text(
                "<p>&lt;b&gt; &quot;q&quot; &#39;s&#39; &#x1F600; &#8212; &bogus; a&b</p>"
            ),
            "<b> \"q\" 's' 😀 — &bogus; a&b"
        );
        assert_eq!(
            html_to_text("<ul><li>a</li><li>b</li></ul><p>after</p>"),
            "a\nb\n\nafter"
        );
        assert_eq!(html_to_text("plain <unclosed"), "plain <unclosed");
    }

    #[test]
    fn event_stream_lines_make_events() {
        let mut parser = SseParser::default();
        parser
            .feed(b":)\n:thump\n\nevent: notification\ndata: {\"a\":")
            .unwrap();
        assert!(parser.events.is_empty());
        parser
            .feed(b"1}\n\ndata: x\r\ndata: y\r\n\r\nevent: delete\n")
            .unwrap();
        assert_eq!(
            parser.events.drain(..).collect::<Vec<_>>(),
            [
                SseEvent {
                    name: "notification".into(),
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    name: "message".into(),
                    data: "x\ny".into()
                },
            ]
        );
        let huge = vec![b'x'; MAX_EVENT_BYTES + 1];
        assert!(parser.feed(&huge).is_err());
    }

    #[test]
    fn ids_compare_as_numbers() {
        assert_eq!(compare_ids("99", "105"), Ordering::Less);
        assert_eq!(
            compare_ids("110000000000000042", "109999999999999999"),
            Ordering::Greater
        );
        assert_eq!(compare_ids("120", "120"), Ordering::Equal);
    }
}
