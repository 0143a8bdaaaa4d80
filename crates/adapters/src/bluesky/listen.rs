//! Listening on Bluesky: `mention`, `reply` and `quote` notifications, polled
//! from `app.bsky.notification.listNotifications` every `listen_interval_secs`.
//!
//! The API pages backwards (its `cursor` names older pages) and orders by
//! `indexedAt`, which for posts is the earlier of the post's `createdAt`
//! and the time the appview indexed it. A mention indexed a little late (or
//! written on a device whose clock is slow) therefore lands *below*
//! notifications already read. So the Clarion cursor is a window, not a
//! point: `"<newest indexedAt> <floor> <uri> <uri>..."`, where the floor is
//! [`LOOKBACK`] before the newest and the uris are every notification read
//! at or after the floor. A poll reads pages until one reaches below the
//! floor and yields what is at or after it and not listed. When that takes
//! more than one page, the pages are read one per call; those batches yield
//! their events but leave the stored cursor where it was, and only the call
//! that reaches the floor returns the new one. A restart at any point
//! re-reads (the runtime drops repeats) and never skips. The first run (no
//! cursor) reads the newest page only.
//!
//! `acknowledge` marks notifications up to the cursor's newest time as seen
//! (`app.bsky.notification.updateSeen`).
//!
//! Ids are `"<at-uri> <cid>"`, the publish side's `platform_post_id`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use clarion_core::{
    Engagement, EngagementAuthor, EngagementKind, ErrorClass, ListenBatch, Listener, PublishError,
};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::{BlueskyAdapter, KIND, StrongRef, classify, with_context};
use crate::http::for_check;

const LIST: &str = "app.bsky.notification.listNotifications";
const UPDATE_SEEN: &str = "app.bsky.notification.updateSeen";
/// The most `listNotifications` gives in one page.
const PAGE: &str = "100";
/// How far below the newest notification read a late one is still caught.
const LOOKBACK: chrono::TimeDelta = chrono::TimeDelta::minutes(10);
/// Most uris a cursor lists; a busier window narrows (its floor rises).
const MAX_LISTED: usize = 200;
const REASONS: [&str; 3] = ["mention", "reply", "quote"];

pub(super) fn listener(api: BlueskyAdapter) -> Arc<dyn Listener> {
    Arc::new(BlueskyListener {
        api,
        walk: Mutex::new(None),
        acknowledged: Mutex::new(None),
    })
}

#[derive(Debug)]
struct BlueskyListener {
    api: BlueskyAdapter,
    /// A walk back through older pages that has not reached the cursor yet.
    walk: Mutex<Option<Walk>>,
    /// The cursor last marked seen, so an unchanged one is not sent again.
    acknowledged: Mutex<Option<String>>,
}

#[derive(Debug, Clone)]
struct Walk {
    /// The stored cursor the walk started from.
    from: Option<String>,
    /// The API cursor of the next older page.
    page: String,
    /// The newest notification read so far.
    newest: Option<DateTime<Utc>>,
    /// Every notification read so far, for the next cursor's list.
    read: Vec<(DateTime<Utc>, String)>,
}

/// What has been read: every notification indexed before `floor`, and
/// those listed in `seen`; `newest` is the newest read (the `seenAt`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mark {
    newest: DateTime<Utc>,
    floor: DateTime<Utc>,
    /// Sorted, without repeats.
    seen: Vec<String>,
}

impl Mark {
    fn parse(cursor: &str) -> Option<Self> {
        let mut parts = cursor.split(' ').filter(|p| !p.is_empty());
        let newest = parse_time(parts.next()?)?;
        let floor = parse_time(parts.next()?)?;
        let mut seen: Vec<String> = parts.map(str::to_owned).collect();
        seen.sort();
        seen.dedup();
        Some(Self {
            newest,
            floor,
            seen,
        })
    }

    fn encode(&self) -> String {
        // Every digit the platform gave: a shorter time would read as older
        // than the notifications it stands for.
        let time = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::AutoSi, true);
        let mut cursor = format!("{} {}", time(&self.newest), time(&self.floor));
        for uri in &self.seen {
            cursor.push(' ');
            cursor.push_str(uri);
        }
        cursor
    }

    fn covers(&self, at: DateTime<Utc>, uri: &str) -> bool {
        at < self.floor || self.seen.binary_search_by(|u| u.as_str().cmp(uri)).is_ok()
    }

    /// The mark after reading `read` (everything at or after `previous`'s
    /// floor, when there is one).
    fn after(
        previous: Option<&Mark>,
        newest: DateTime<Utc>,
        mut read: Vec<(DateTime<Utc>, String)>,
    ) -> Self {
        let newest = previous.map_or(newest, |p| p.newest.max(newest));
        let mut floor = newest - LOOKBACK;
        if let Some(previous) = previous {
            floor = floor.max(previous.floor);
        }
        read.retain(|(at, _)| *at >= floor);
        read.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
        if read.len() > MAX_LISTED {
            floor = read[MAX_LISTED - 1].0;
            read.retain(|(at, _)| *at >= floor);
        }
        let mut seen: Vec<String> = read.into_iter().map(|(_, uri)| uri).collect();
        seen.sort();
        seen.dedup();
        Self {
            newest,
            floor,
            seen,
        }
    }
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl BlueskyListener {
    /// One page of notifications, newest first, and the API cursor of the
    /// next older page.
    async fn list(&self, page: Option<&str>) -> Result<(Vec<Value>, Option<String>), PublishError> {
        let (reply, _) = self
            .api
            .call(|_| {
                let mut query = vec![("limit", PAGE)];
                query.extend(REASONS.iter().map(|r| ("reasons", *r)));
                if let Some(page) = page {
                    query.push(("cursor", page));
                }
                self.api.client.get(self.api.xrpc(LIST)).query(&query)
            })
            .await?;
        if !reply.status.is_success() {
            return Err(with_context(classify(&reply), LIST));
        }
        let unreadable = |what: String| {
            PublishError::new(ErrorClass::Transient, format!("{LIST}: {what}"))
                .with_status(reply.status.as_u16())
        };
        let mut answer: Value = serde_json::from_str(&reply.body)
            .map_err(|e| unreadable(format!("unexpected answer ({e})")))?;
        let next = answer
            .get("cursor")
            .and_then(Value::as_str)
            .map(str::to_owned);
        match answer.get_mut("notifications").map(Value::take) {
            Some(Value::Array(items)) => Ok((items, next)),
            _ => Err(unreadable("the answer has no `notifications` list".into())),
        }
    }

    async fn next(&self, cursor: Option<&str>) -> Result<ListenBatch, PublishError> {
        let mut walk = self.walk.lock().await;
        let me = self.api.session().await?.did;
        let seen = cursor.and_then(|c| {
            let mark = Mark::parse(c);
            if mark.is_none() {
                tracing::warn!(channel = %self.api.channel, "bluesky: unreadable listen cursor; reading the newest page");
            }
            mark
        });
        let resume = walk
            .as_ref()
            .filter(|w| w.from.as_deref() == cursor)
            .cloned();
        let page = resume.as_ref().map(|w| w.page.clone());
        let (items, next_page) = self.list(page.as_deref()).await?;

        let (mut newest, mut read) = resume.map_or((None, Vec::new()), |w| (w.newest, w.read));
        let mut below_floor = false;
        let mut events = Vec::new();
        let mut skipped = Vec::new();
        let empty = items.is_empty();
        for item in items {
            let notification = read_notification(item, &me, seen.as_ref());
            if let Some((at, uri)) = notification.key {
                below_floor |= seen.as_ref().is_some_and(|s| at < s.floor);
                newest = newest.max(Some(at));
                read.push((at, uri));
            }
            match notification.outcome {
                Outcome::Seen | Outcome::Ignored => {}
                Outcome::Event(at, event) => events.push((at, *event)),
                Outcome::Malformed(reason) => skipped.push(reason),
            }
        }
        events.sort_by_key(|(at, _)| *at);
        let events: Vec<Engagement> = events.into_iter().map(|(_, e)| e).collect();

        let older = match next_page {
            // The first run reads the newest page only.
            Some(next)
                if seen.is_some()
                    && !below_floor
                    && !empty
                    && page.as_deref() != Some(next.as_str()) =>
            {
                Some(next)
            }
            _ => None,
        };
        if let Some(next) = older {
            // Nothing on this page was below the floor: older pages may hold
            // more. The stored cursor stays until the walk gets there.
            *walk = Some(Walk {
                from: cursor.map(str::to_owned),
                page: next,
                newest,
                read,
            });
            return Ok(ListenBatch {
                events,
                cursor: None,
                skipped,
                wait: Duration::ZERO,
            });
        }
        *walk = None;
        let cursor = newest
            .map(|newest| Mark::after(seen.as_ref(), newest, read).encode())
            .filter(|next| Some(next.as_str()) != cursor);
        Ok(ListenBatch {
            events,
            cursor,
            skipped,
            wait: self.api.listen_interval,
        })
    }

    async fn mark_seen(&self, cursor: &str) -> Result<(), PublishError> {
        let Some(mark) = Mark::parse(cursor) else {
            return Ok(());
        };
        let mut acknowledged = self.acknowledged.lock().await;
        if acknowledged.as_deref() == Some(cursor) {
            return Ok(());
        }
        let seen_at = mark.newest.to_rfc3339_opts(SecondsFormat::AutoSi, true);
        let (reply, _) = self
            .api
            .call(|_| {
                self.api
                    .client
                    .post(self.api.xrpc(UPDATE_SEEN))
                    .json(&json!({"seenAt": seen_at}))
            })
            .await?;
        if !reply.status.is_success() {
            return Err(with_context(classify(&reply), UPDATE_SEEN));
        }
        *acknowledged = Some(cursor.to_owned());
        Ok(())
    }
}

#[async_trait]
impl Listener for BlueskyListener {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn next_batch(&self, cursor: Option<&str>) -> Result<ListenBatch, PublishError> {
        // Reading writes nothing: an unreadable answer or a timeout is a
        // failed read to try again, not an unknown outcome.
        self.next(cursor).await.map_err(for_check)
    }

    async fn acknowledge(&self, cursor: &str) -> Result<(), PublishError> {
        self.mark_seen(cursor).await.map_err(for_check)
    }
}

/// One notification as read: where it sits in the list (when it says),
/// and what it became.
struct Read {
    key: Option<(DateTime<Utc>, String)>,
    outcome: Outcome,
}

enum Outcome {
    /// Below the stored cursor's floor or listed in it: read before.
    Seen,
    Event(DateTime<Utc>, Box<Engagement>),
    /// Not for the inbox: another reason, the account itself or a bot.
    Ignored,
    Malformed(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Notification {
    uri: String,
    cid: String,
    author: Author,
    reason: String,
    record: Post,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Author {
    did: String,
    #[serde(default)]
    handle: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    labels: Vec<Label>,
}

#[derive(Deserialize)]
struct Label {
    val: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Post {
    text: String,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    reply: Option<ReplyRefs>,
    #[serde(default)]
    embed: Option<Value>,
}

#[derive(Deserialize)]
struct ReplyRefs {
    root: StrongRef,
    parent: StrongRef,
}

fn id(r: &StrongRef) -> String {
    format!("{} {}", r.uri, r.cid)
}

/// The post a quote embeds (`app.bsky.embed.record`, or the record part of
/// `app.bsky.embed.recordWithMedia`), as an id.
fn quoted(embed: &Value) -> Option<String> {
    let record = match embed.get("$type")?.as_str()? {
        "app.bsky.embed.record" => embed.get("record")?,
        "app.bsky.embed.recordWithMedia" => embed.get("record")?.get("record")?,
        _ => return None,
    };
    Some(format!(
        "{} {}",
        record.get("uri")?.as_str()?,
        record.get("cid")?.as_str()?
    ))
}

fn read_notification(value: Value, me: &str, seen: Option<&Mark>) -> Read {
    let uri = value.get("uri").and_then(Value::as_str).map(str::to_owned);
    let at = value
        .get("indexedAt")
        .and_then(Value::as_str)
        .and_then(parse_time);
    let key = uri.clone().zip(at).map(|(uri, at)| (at, uri));
    let name = uri.as_deref().unwrap_or("without uri");
    let malformed = |what: String| Outcome::Malformed(what.chars().take(300).collect());
    let outcome = match (&key, seen) {
        (Some((at, uri)), Some(seen)) if seen.covers(*at, uri) => Outcome::Seen,
        (None, _) => malformed(format!(
            "notification {name}: no readable uri and indexedAt"
        )),
        (Some((at, _)), _) => match serde_json::from_value::<Notification>(value) {
            Err(e) => malformed(format!("notification {name}: {e}")),
            Ok(n) if !REASONS.contains(&n.reason.as_str()) => Outcome::Ignored,
            Ok(n) if n.author.did == me || n.author.labels.iter().any(|l| l.val == "bot") => {
                Outcome::Ignored
            }
            Ok(n) => match engagement(n, *at, me) {
                Ok(event) => Outcome::Event(*at, Box::new(event)),
                Err(what) => malformed(format!("notification {name}: {what}")),
            },
        },
    };
    Read { key, outcome }
}

fn engagement(n: Notification, indexed_at: DateTime<Utc>, me: &str) -> Result<Engagement, String> {
    if !n.uri.starts_with("at://") || n.cid.trim().is_empty() {
        return Err("not an at:// uri with a cid".into());
    }
    let ours = format!("at://{me}/");
    let kind = match n.reason.as_str() {
        "reply" => EngagementKind::Reply,
        "quote" => EngagementKind::Quote,
        // A reply that also names the account arrives as a mention.
        _ if n
            .record
            .reply
            .as_ref()
            .is_some_and(|r| r.parent.uri.starts_with(&ours)) =>
        {
            EngagementKind::Reply
        }
        _ => EngagementKind::Mention,
    };
    if n.reason == "reply" && n.record.reply.is_none() {
        return Err("a reply without record.reply".into());
    }
    let item_id = format!("{} {}", n.uri, n.cid);
    let (parent_id, root_id) = match &n.record.reply {
        Some(reply) => (Some(id(&reply.parent)), id(&reply.root)),
        // A quote starts its own thread and points at the quoted post.
        None if kind == EngagementKind::Quote => {
            (n.record.embed.as_ref().and_then(quoted), item_id.clone())
        }
        None => (None, item_id.clone()),
    };
    let rkey = n.uri.rsplit('/').next().unwrap_or_default();
    let profile = if n.author.handle.is_empty() || n.author.handle == "handle.invalid" {
        &n.author.did
    } else {
        &n.author.handle
    };
    let created_at = n
        .record
        .created_at
        .as_deref()
        .and_then(parse_time)
        .unwrap_or(indexed_at);
    Ok(Engagement {
        url: Some(format!("https://bsky.app/profile/{profile}/post/{rkey}")),
        item_id,
        kind,
        author: EngagementAuthor {
            handle: format!("@{profile}"),
            id: n.author.did,
            display_name: n.author.display_name.unwrap_or_default(),
            roles: Vec::new(),
        },
        text: n.record.text,
        parent_id,
        root_id,
        place: None,
        created_at_ms: created_at.timestamp_millis(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex as StdMutex;

    use axum::body::Bytes;
    use axum::extract::{Path, RawQuery, State};
    use axum::http::{HeaderMap as AxumHeaders, StatusCode as AxumStatus};
    use axum::response::{IntoResponse, Response};
    use clarion_core::{AdapterContext, AdapterFactory, ChannelConfig, MemoryAdapterStore};

    use super::super::Factory;
    use super::*;

    const DID: &str = "did:plc:alice";
    const HANDLE: &str = "alice.bsky.social";
    const PASSWORD: &str = "app-pass-SECRET-1234";

    /// One request as the fake PDS received it.
    #[derive(Debug, Clone)]
    struct Call {
        method: String,
        auth: Option<String>,
        query: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Call {
        fn param(&self, name: &str) -> Option<&str> {
            self.query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        }

        fn params(&self, name: &str) -> Vec<&str> {
            self.query
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .collect()
        }
    }

    #[derive(Debug, Default)]
    struct Fake {
        calls: Vec<Call>,
        issued: u32,
        password: Option<String>,
        valid_access: Option<String>,
        valid_refresh: Option<String>,
        /// Newest first, as the appview lists them.
        notifications: Vec<Value>,
        /// Page size cap (the requested `limit` when 0).
        page_size: usize,
        rate_limited: bool,
    }

    type Shared = Arc<StdMutex<Fake>>;

    fn xrpc_error(status: u16, error: &str, message: &str) -> Response {
        (
            AxumStatus::from_u16(status).unwrap(),
            axum::Json(json!({"error": error, "message": message})),
        )
            .into_response()
    }

    fn issue_tokens(fake: &mut Fake) -> Response {
        fake.issued += 1;
        let (access, refresh) = (
            format!("access-{}", fake.issued),
            format!("refresh-{}", fake.issued),
        );
        fake.valid_access = Some(access.clone());
        fake.valid_refresh = Some(refresh.clone());
        axum::Json(json!({"accessJwt": access, "refreshJwt": refresh, "handle": HANDLE, "did": DID, "active": true}))
            .into_response()
    }

    async fn handle(
        State(fake): State<Shared>,
        Path(method): Path<String>,
        RawQuery(query): RawQuery,
        headers: AxumHeaders,
        body: Bytes,
    ) -> Response {
        let call = Call {
            method: method.clone(),
            auth: headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            query: url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .into_owned()
                .collect(),
            body: body.to_vec(),
        };
        let mut fake = fake.lock().unwrap();
        fake.calls.push(call.clone());
        let bearer = call
            .auth
            .as_deref()
            .and_then(|a| a.strip_prefix("Bearer "))
            .map(str::to_owned);
        match method.as_str() {
            "com.atproto.server.createSession" => {
                let body: Value = serde_json::from_slice(&call.body).unwrap();
                let password = fake.password.clone().unwrap_or(PASSWORD.to_owned());
                if body["identifier"] == HANDLE && body["password"] == password.as_str() {
                    issue_tokens(&mut fake)
                } else {
                    xrpc_error(
                        401,
                        "AuthenticationRequired",
                        "Invalid identifier or password",
                    )
                }
            }
            "com.atproto.server.refreshSession" => {
                if bearer.is_some() && bearer == fake.valid_refresh {
                    issue_tokens(&mut fake)
                } else {
                    xrpc_error(400, "ExpiredToken", "Token has expired")
                }
            }
            _ if bearer.is_none() || bearer != fake.valid_access => {
                xrpc_error(400, "ExpiredToken", "Token has expired")
            }
            "app.bsky.notification.listNotifications" if fake.rate_limited => {
                let reset = (chrono::Utc::now().timestamp() + 120).to_string();
                (
                    AxumStatus::TOO_MANY_REQUESTS,
                    [
                        ("RateLimit-Limit", "3000".to_owned()),
                        ("RateLimit-Remaining", "0".to_owned()),
                        ("RateLimit-Reset", reset),
                        ("RateLimit-Policy", "3000;w=300".to_owned()),
                    ],
                    axum::Json(
                        json!({"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"}),
                    ),
                )
                    .into_response()
            }
            "app.bsky.notification.listNotifications" => {
                let reasons = call.params("reasons");
                let limit: usize = call
                    .param("limit")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(50);
                let size = if fake.page_size == 0 {
                    limit
                } else {
                    fake.page_size.min(limit)
                };
                let start: usize = call
                    .param("cursor")
                    .and_then(|c| c.strip_prefix("page-"))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                let matching: Vec<Value> = fake
                    .notifications
                    .iter()
                    .filter(|n| {
                        reasons.is_empty() || reasons.contains(&n["reason"].as_str().unwrap_or(""))
                    })
                    .cloned()
                    .collect();
                let page: Vec<Value> = matching.iter().skip(start).take(size).cloned().collect();
                let mut answer = json!({"notifications": page, "priority": false});
                // Like the appview: a cursor with every non-empty page.
                if !page.is_empty() {
                    answer["cursor"] = json!(format!("page-{}", start + page.len()));
                }
                axum::Json(answer).into_response()
            }
            "app.bsky.notification.updateSeen" => AxumStatus::OK.into_response(),
            _ => xrpc_error(501, "MethodNotImplemented", "Method Not Implemented"),
        }
    }

    async fn fake_pds() -> (String, Shared) {
        let fake: Shared = Arc::default();
        let app = axum::Router::new()
            .route("/xrpc/{method}", axum::routing::any(handle))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (base, fake)
    }

    fn calls(fake: &Shared, method: &str) -> Vec<Call> {
        fake.lock()
            .unwrap()
            .calls
            .iter()
            .filter(|c| c.method == method)
            .cloned()
            .collect()
    }

    fn config(base: &str, env: &str) -> ChannelConfig {
        // SAFETY: each test sets its own variable and only reads that one.
        unsafe { std::env::set_var(env, PASSWORD) };
        serde_json::from_value(json!({
            "name": "sky",
            "kind": "bluesky",
            "listen": true,
            "identifier": HANDLE,
            "app_password": {"env": env},
            "service": base,
            "timeout_secs": 5,
        }))
        .unwrap()
    }

    fn listener(base: &str, env: &str) -> Arc<dyn Listener> {
        let context = AdapterContext {
            state: Arc::new(MemoryAdapterStore::default()),
        };
        Factory
            .build_listener(&config(base, env), &context)
            .unwrap()
            .expect("bluesky can listen")
    }

    fn bob() -> Value {
        json!({"did": "did:plc:bob", "handle": "bob.test", "displayName": "Bob", "labels": []})
    }

    fn post_ref(did: &str, rkey: &str) -> Value {
        json!({"uri": format!("at://{did}/app.bsky.feed.post/{rkey}"), "cid": format!("bafy{rkey}")})
    }

    fn our(rkey: &str) -> Value {
        post_ref(DID, rkey)
    }

    fn our_id(rkey: &str) -> String {
        format!("at://{DID}/app.bsky.feed.post/{rkey} bafy{rkey}")
    }

    /// A notification in the documented shape; `extra` goes into the record.
    fn notification(
        rkey: &str,
        reason: &str,
        indexed_at: &str,
        author: Value,
        extra: Value,
    ) -> Value {
        let did = author["did"].as_str().unwrap().to_owned();
        let mut record = json!({
            "$type": "app.bsky.feed.post",
            "text": format!("@{HANDLE} hi from {rkey}"),
            "createdAt": "2025-03-01T12:00:00.000Z",
            "langs": ["en"],
        });
        record
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({
            "uri": format!("at://{did}/app.bsky.feed.post/{rkey}"),
            "cid": format!("bafy{rkey}"),
            "author": author,
            "reason": reason,
            "record": record,
            "isRead": false,
            "indexedAt": indexed_at,
            "labels": [],
        })
    }

    fn at(second: u32) -> String {
        format!("2025-03-01T12:00:{second:02}.123Z")
    }

    /// The cursor after reading up to `newest`, listing `uris`.
    fn cursor(newest: &str, uris: &[&str]) -> String {
        let newest = parse_time(newest).unwrap();
        let mut seen: Vec<String> = uris.iter().map(|u| u.to_string()).collect();
        seen.sort();
        Mark {
            newest,
            floor: newest - LOOKBACK,
            seen,
        }
        .encode()
    }

    /// Long before any cursor's window: reading it ends a poll.
    fn ancient() -> Value {
        notification(
            "ancient",
            "mention",
            "2025-02-01T00:00:00.000Z",
            bob(),
            json!({}),
        )
    }

    fn bob_uri(rkey: &str) -> String {
        format!("at://did:plc:bob/app.bsky.feed.post/{rkey}")
    }

    fn ids(batch: &ListenBatch) -> Vec<String> {
        batch.events.iter().map(|e| e.item_id.clone()).collect()
    }

    fn bob_id(rkey: &str) -> String {
        format!("{} bafy{rkey}", bob_uri(rkey))
    }

    #[tokio::test]
    async fn mentions_replies_and_quotes_become_engagements() {
        let (base, fake) = fake_pds().await;
        fake.lock().unwrap().notifications = vec![
            notification(
                "q1",
                "quote",
                &at(6),
                bob(),
                json!({"embed": {"$type": "app.bsky.embed.recordWithMedia",
                    "record": {"$type": "app.bsky.embed.record", "record": our("ours1")},
                    "media": {"$type": "app.bsky.embed.images", "images": []}}}),
            ),
            notification(
                "self1",
                "mention",
                &at(5),
                json!({"did": DID, "handle": HANDLE}),
                json!({}),
            ),
            notification(
                "bot1",
                "reply",
                &at(4),
                json!({"did": "did:plc:robot", "handle": "robot.test",
                       "labels": [{"src": "did:plc:robot", "uri": "at://did:plc:robot/app.bsky.actor.profile/self", "val": "bot", "cts": "2025-01-01T00:00:00Z"}]}),
                json!({"reply": {"root": our("ours1"), "parent": our("ours1")}}),
            ),
            notification(
                "r1",
                "reply",
                &at(3),
                bob(),
                json!({"text": "great thread", "reply": {"root": our("ours1"), "parent": our("ours2")}}),
            ),
            notification("m1", "mention", &at(2), bob(), json!({})),
            notification(
                "m2",
                "mention",
                &at(1),
                json!({"did": "did:plc:carol", "handle": "handle.invalid"}),
                json!({"createdAt": "not a time",
                       "reply": {"root": our("ours1"), "parent": our("ours3")}}),
            ),
            notification("like1", "like", &at(7), bob(), json!({})),
        ];
        let listener = listener(&base, "CLARION_TEST_BLUESKY_LISTEN_KINDS");
        assert_eq!(listener.kind(), "bluesky");

        let batch = listener.next_batch(None).await.unwrap();

        // Oldest first; not our own, not the bot's, not the like.
        assert_eq!(
            ids(&batch),
            [
                "at://did:plc:carol/app.bsky.feed.post/m2 bafym2".to_owned(),
                bob_id("m1"),
                bob_id("r1"),
                bob_id("q1"),
            ]
        );
        assert!(batch.skipped.is_empty(), "{:?}", batch.skipped);
        assert_eq!(
            batch.cursor,
            Some(cursor(
                &at(6),
                &[
                    &bob_uri("q1"),
                    &format!("at://{DID}/app.bsky.feed.post/self1"),
                    "at://did:plc:robot/app.bsky.feed.post/bot1",
                    &bob_uri("r1"),
                    &bob_uri("m1"),
                    "at://did:plc:carol/app.bsky.feed.post/m2",
                ]
            ))
        );
        assert_eq!(batch.wait, Duration::from_secs(30));

        // A mention that replies to our post is a reply; no handle: the DID.
        let carol = &batch.events[0];
        assert_eq!(carol.kind, EngagementKind::Reply);
        assert_eq!(carol.parent_id, Some(our_id("ours3")));
        assert_eq!(carol.root_id, our_id("ours1"));
        assert_eq!(carol.author.handle, "@did:plc:carol");
        assert_eq!(
            carol.url.as_deref(),
            Some("https://bsky.app/profile/did:plc:carol/post/m2")
        );
        assert_eq!(
            carol.created_at_ms, 1_740_830_401_123,
            "indexedAt stands in"
        );

        assert_eq!(
            batch.events[1],
            Engagement {
                item_id: bob_id("m1"),
                kind: EngagementKind::Mention,
                author: EngagementAuthor {
                    id: "did:plc:bob".into(),
                    handle: "@bob.test".into(),
                    display_name: "Bob".into(),
                    roles: Vec::new(),
                },
                text: format!("@{HANDLE} hi from m1"),
                url: Some("https://bsky.app/profile/bob.test/post/m1".into()),
                parent_id: None,
                root_id: bob_id("m1"),
                place: None,
                created_at_ms: 1_740_830_400_000,
            }
        );
        let reply = &batch.events[2];
        assert_eq!(
            (reply.kind, reply.text.as_str()),
            (EngagementKind::Reply, "great thread")
        );
        assert_eq!(reply.parent_id, Some(our_id("ours2")));
        assert_eq!(reply.root_id, our_id("ours1"));
        let quote = &batch.events[3];
        assert_eq!(quote.kind, EngagementKind::Quote);
        assert_eq!(quote.parent_id, Some(our_id("ours1")));
        assert_eq!(quote.root_id, bob_id("q1"));

        let lists = calls(&fake, LIST);
        assert_eq!(lists.len(), 1);
        assert_eq!(lists[0].param("limit"), Some("100"));
        assert_eq!(lists[0].params("reasons"), ["mention", "reply", "quote"]);
        assert_eq!(lists[0].param("cursor"), None);
        assert_eq!(lists[0].auth.as_deref(), Some("Bearer access-1"));
    }

    #[tokio::test]
    async fn the_cursor_advances_and_a_second_call_yields_nothing_new() {
        let (base, fake) = fake_pds().await;
        fake.lock().unwrap().notifications = vec![
            notification("m2", "mention", &at(2), bob(), json!({})),
            notification("m1", "mention", &at(1), bob(), json!({})),
            ancient(),
        ];
        let listener = listener(&base, "CLARION_TEST_BLUESKY_LISTEN_CURSOR");
        let first = listener.next_batch(None).await.unwrap();
        assert_eq!(ids(&first), [bob_id("ancient"), bob_id("m1"), bob_id("m2")]);
        let stored = first.cursor.unwrap();
        assert_eq!(stored, cursor(&at(2), &[&bob_uri("m1"), &bob_uri("m2")]));

        let again = listener.next_batch(Some(&stored)).await.unwrap();
        assert!(again.events.is_empty(), "{:?}", again.events);
        assert_eq!(again.cursor, None);
        assert_eq!(again.wait, Duration::from_secs(30));

        {
            let mut fake = fake.lock().unwrap();
            // At the very instant of the newest read, but not read yet.
            fake.notifications
                .insert(0, notification("m3", "mention", &at(2), bob(), json!({})));
            // Written a minute earlier, indexed only now: it sorts below
            // what was read, and is still caught.
            let late = notification(
                "late",
                "reply",
                "2025-03-01T11:59:00.000Z",
                bob(),
                json!({"reply": {"root": our("ours1"), "parent": our("ours1")}}),
            );
            fake.notifications.insert(3, late);
            // Older than the window: taken as read (the documented limit).
            let stale = notification(
                "stale",
                "mention",
                "2025-03-01T11:45:00.000Z",
                bob(),
                json!({}),
            );
            fake.notifications.insert(4, stale);
        }
        let new = listener.next_batch(Some(&stored)).await.unwrap();
        assert_eq!(ids(&new), [bob_id("late"), bob_id("m3")]);
        let stored = new.cursor.unwrap();
        assert_eq!(
            stored,
            cursor(
                &at(2),
                &[
                    &bob_uri("late"),
                    &bob_uri("m1"),
                    &bob_uri("m2"),
                    &bob_uri("m3")
                ]
            )
        );
        let none = listener.next_batch(Some(&stored)).await.unwrap();
        assert_eq!((none.events.len(), none.cursor), (0, None));

        let lists = calls(&fake, LIST);
        assert_eq!(lists.len(), 4);
        assert!(
            lists.iter().all(|c| c.param("cursor").is_none()),
            "one page each time"
        );
    }

    #[tokio::test]
    async fn older_pages_are_walked_back_to_the_cursor_before_it_moves() {
        let (base, fake) = fake_pds().await;
        let old_at = "2025-03-01T11:40:00.000Z";
        {
            let mut fake = fake.lock().unwrap();
            fake.page_size = 2;
            fake.notifications = (1..=5)
                .rev()
                .map(|n| notification(&format!("m{n}"), "mention", &at(n), bob(), json!({})))
                .collect();
            fake.notifications
                .push(notification("old", "mention", old_at, bob(), json!({})));
            fake.notifications.push(ancient());
        }
        let listener = listener(&base, "CLARION_TEST_BLUESKY_LISTEN_WALK");
        let stored = cursor(old_at, &[&bob_uri("old")]);

        let newest = listener.next_batch(Some(&stored)).await.unwrap();
        assert_eq!(ids(&newest), [bob_id("m4"), bob_id("m5")]);
        assert_eq!(newest.cursor, None, "not yet back to the stored cursor");
        assert_eq!(newest.wait, Duration::ZERO);

        let older = listener.next_batch(Some(&stored)).await.unwrap();
        assert_eq!(ids(&older), [bob_id("m2"), bob_id("m3")]);
        assert_eq!(older.cursor, None);

        let listed = listener.next_batch(Some(&stored)).await.unwrap();
        assert_eq!(ids(&listed), [bob_id("m1")], "`old` was read before");
        assert_eq!(listed.cursor, None, "nothing below the floor yet");

        let last = listener.next_batch(Some(&stored)).await.unwrap();
        assert!(last.events.is_empty(), "{:?}", last.events);
        let moved = last.cursor.unwrap();
        assert_eq!(
            moved,
            cursor(
                &at(5),
                &[
                    &bob_uri("m1"),
                    &bob_uri("m2"),
                    &bob_uri("m3"),
                    &bob_uri("m4"),
                    &bob_uri("m5")
                ]
            )
        );
        assert_eq!(last.wait, Duration::from_secs(30));

        let lists = calls(&fake, LIST);
        let pages: Vec<Option<&str>> = lists.iter().map(|c| c.param("cursor")).collect();
        assert_eq!(
            pages,
            [None, Some("page-2"), Some("page-4"), Some("page-6")]
        );

        // Interrupted walks start over from the stored cursor.
        let restart = listener.next_batch(Some(&stored)).await.unwrap();
        assert_eq!(ids(&restart), [bob_id("m4"), bob_id("m5")]);
        assert_eq!(calls(&fake, LIST).last().unwrap().param("cursor"), None);
    }

    #[tokio::test]
    async fn a_429_waits_until_ratelimit_reset() {
        let (base, fake) = fake_pds().await;
        fake.lock().unwrap().rate_limited = true;
        let listener = listener(&base, "CLARION_TEST_BLUESKY_LISTEN_429");
        let error = listener.next_batch(None).await.unwrap_err();
        assert_eq!(error.class, ErrorClass::RateLimited);
        assert_eq!(error.status, Some(429));
        let wait = error.retry_after.unwrap();
        assert!(
            wait > Duration::from_secs(115) && wait <= Duration::from_secs(120),
            "{wait:?}"
        );
        assert!(error.message.contains("RateLimitExceeded"), "{error}");
    }

    #[tokio::test]
    async fn an_expired_token_is_refreshed_and_the_poll_retried() {
        let (base, fake) = fake_pds().await;
        fake.lock().unwrap().notifications =
            vec![notification("m1", "mention", &at(1), bob(), json!({}))];
        let listener = listener(&base, "CLARION_TEST_BLUESKY_LISTEN_REFRESH");
        listener.next_batch(None).await.unwrap();

        // The access token expires.
        fake.lock().unwrap().valid_access = Some("access-gone".into());
        let batch = listener.next_batch(None).await.unwrap();
        assert_eq!(ids(&batch), [bob_id("m1")]);

        let refreshes = calls(&fake, "com.atproto.server.refreshSession");
        assert_eq!(refreshes.len(), 1);
        assert_eq!(refreshes[0].auth.as_deref(), Some("Bearer refresh-1"));
        let lists = calls(&fake, LIST);
        let auths: Vec<_> = lists.iter().map(|c| c.auth.as_deref().unwrap()).collect();
        assert_eq!(
            auths,
            ["Bearer access-1", "Bearer access-1", "Bearer access-2"]
        );
        assert_eq!(calls(&fake, "com.atproto.server.createSession").len(), 1);
    }

    #[tokio::test]
    async fn a_failed_refresh_and_login_is_auth_expired() {
        let (base, fake) = fake_pds().await;
        let listener = listener(&base, "CLARION_TEST_BLUESKY_LISTEN_EXPIRED");
        listener.next_batch(None).await.unwrap();
        {
            // Both tokens die, and the app password was revoked.
            let mut fake = fake.lock().unwrap();
            fake.valid_access = None;
            fake.valid_refresh = None;
            fake.password = Some("another".into());
        }
        let error = listener.next_batch(None).await.unwrap_err();
        assert_eq!(error.class, ErrorClass::AuthExpired, "{error}");
        assert_eq!(calls(&fake, "com.atproto.server.refreshSession").len(), 1);
        assert_eq!(calls(&fake, "com.atproto.server.createSession").len(), 2);
        for text in [error.to_string(), format!("{listener:?}")] {
            assert!(!text.contains("SECRET"), "{text}");
            assert!(!text.contains("refresh-1"), "{text}");
        }
    }

    #[tokio::test]
    async fn a_malformed_notification_is_skipped_and_the_others_yielded() {
        let (base, fake) = fake_pds().await;
        let mut no_text = notification("bad1", "mention", &at(4), bob(), json!({}));
        no_text["record"].as_object_mut().unwrap().remove("text");
        let mut no_uri = notification("bad2", "mention", &at(3), bob(), json!({}));
        no_uri.as_object_mut().unwrap().remove("uri");
        fake.lock().unwrap().notifications = vec![
            notification("m5", "mention", &at(5), bob(), json!({})),
            no_text,
            no_uri,
            notification("bad3", "reply", &at(2), bob(), json!({})),
            notification("m1", "mention", &at(1), bob(), json!({})),
        ];
        let listener = listener(&base, "CLARION_TEST_BLUESKY_LISTEN_BAD");
        let batch = listener.next_batch(None).await.unwrap();
        assert_eq!(ids(&batch), [bob_id("m1"), bob_id("m5")]);
        // Skipped ones are listed too: reported once, not on every poll.
        assert_eq!(
            batch.cursor,
            Some(cursor(
                &at(5),
                &[
                    &bob_uri("m5"),
                    &bob_uri("bad1"),
                    &bob_uri("bad3"),
                    &bob_uri("m1")
                ]
            ))
        );
        assert_eq!(
            batch.skipped,
            [
                format!("notification {}: missing field `text`", bob_uri("bad1")),
                "notification without uri: no readable uri and indexedAt".to_owned(),
                format!(
                    "notification {}: a reply without record.reply",
                    bob_uri("bad3")
                ),
            ]
        );
    }

    #[tokio::test]
    async fn acknowledge_calls_update_seen_once_per_cursor() {
        let (base, fake) = fake_pds().await;
        let listener = listener(&base, "CLARION_TEST_BLUESKY_LISTEN_ACK");
        let cursor = "2025-03-01T12:00:05.123456Z 2025-03-01T11:50:05.123456Z \
                      at://did:plc:bob/app.bsky.feed.post/m5";
        listener.acknowledge(cursor).await.unwrap();
        listener.acknowledge(cursor).await.unwrap();
        listener.acknowledge("not a cursor").await.unwrap();

        let seen = calls(&fake, UPDATE_SEEN);
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].auth.as_deref(), Some("Bearer access-1"));
        let body: Value = serde_json::from_slice(&seen[0].body).unwrap();
        assert_eq!(body, json!({"seenAt": "2025-03-01T12:00:05.123456Z"}));
    }

    #[test]
    fn marks_keep_every_digit_and_a_window_of_uris() {
        let mark =
            Mark::parse("2025-03-01T12:00:05.123456+00:00 2025-03-01T11:50:05Z at://b at://a")
                .unwrap();
        assert_eq!(
            mark.encode(),
            "2025-03-01T12:00:05.123456Z 2025-03-01T11:50:05Z at://a at://b"
        );
        let time = |t: &str| parse_time(t).unwrap();
        assert!(mark.covers(time("2025-03-01T11:50:04.999Z"), "at://c"));
        assert!(mark.covers(time("2025-03-01T12:00:06Z"), "at://a"));
        assert!(!mark.covers(time("2025-03-01T11:50:05Z"), "at://c"));
        assert_eq!(Mark::parse("yesterday today at://a"), None);
        assert_eq!(Mark::parse("2025-03-01T12:00:05Z"), None);

        // The floor follows the newest read, never goes back, and rises
        // when the window holds more than a cursor lists.
        let read = |n: usize| -> Vec<(DateTime<Utc>, String)> {
            (0..n)
                .map(|i| {
                    (
                        time("2025-03-01T12:00:00Z") + chrono::TimeDelta::seconds(i as i64),
                        format!("at://{i:04}"),
                    )
                })
                .collect()
        };
        let newest = time("2025-03-01T12:20:00Z");
        let next = Mark::after(Some(&mark), newest, read(3));
        assert_eq!(next.floor, newest - LOOKBACK);
        assert!(next.seen.is_empty(), "all older than the new floor");
        let busy = Mark::after(None, time("2025-03-01T12:05:00Z"), read(250));
        assert_eq!(busy.seen.len(), MAX_LISTED);
        assert_eq!(busy.floor, time("2025-03-01T12:00:50Z"));
        assert_eq!(busy.seen[0], "at://0050");
    }

    #[test]
    fn the_listen_interval_is_checked() {
        let mut config = config(
            "https://bsky.social",
            "CLARION_TEST_BLUESKY_LISTEN_INTERVAL",
        );
        config
            .settings
            .insert("listen_interval_secs".into(), json!(4000));
        let error = Factory
            .build_listener(&config, &AdapterContext::default())
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "channel `sky` listen_interval_secs: must be between 5 and 3600 seconds"
        );
    }
}
