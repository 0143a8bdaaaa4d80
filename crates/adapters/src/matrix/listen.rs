//! Listening on Matrix: long polling `/sync` for the bot's mentions and
//! replies in every room it has joined.
//!
//! ```toml
//! [[channels]]
//! name = "matrix-announce"
//! kind = "matrix"
//! listen = true          # no other keys: the channel's homeserver and token are used
//! ```
//!
//! Each call is one `GET /_matrix/client/v3/sync?since=<cursor>&timeout=25000`
//! with an inline filter: `m.room.message` timeline events (up to 100 per
//! room and call) plus the lazy-loaded member events that name their
//! senders; no presence, receipts, typing or account data. The cursor is
//! the answer's `next_batch`. The first run (no cursor) is an initial sync
//! with `timeout=0` whose history is dropped: only its `next_batch` is kept,
//! so listening starts from now instead of flooding the inbox with old
//! messages. If more than 100 messages arrived in one room between two calls
//! the homeserver marks that timeline `limited`; the older ones are not
//! fetched, and the batch says so in `skipped`.
//!
//! Captured in joined rooms:
//! - replies to the bot's own events (`m.in_reply_to`, or the thread root
//!   when the reply is only a thread fallback): `reply`. The parent's sender
//!   is read from the same batch, else fetched once with
//!   `GET /rooms/{roomId}/event/{eventId}`. A reply whose `m.mentions` leaves
//!   the bot out is not to the bot (clients add the replied-to sender), and
//!   is not fetched;
//! - events that mention the bot: `m.mentions.user_ids` holds its user id,
//!   or, for events without `m.mentions` (older clients; the spec forbids
//!   the fallback otherwise), the body holds its user id, display name or
//!   localpart as a word: `mention`.
//!
//! Ignored: the bot's own events, `m.notice` (the convention for bots),
//! edits (`m.replace`), redacted events, and encrypted rooms (events stay
//! `m.room.encrypted`: listen in unencrypted rooms). Invites are not
//! accepted and direct messages are not captured.
//!
//! Ids: events of the configured room use the plain event id (`$event`), as
//! the adapter's receipts do; events of other rooms `"<room id>/<event id>"`,
//! which the adapter's publish understands as "reply in that room".
//! `root_id` is the thread root (`m.thread`), else the replied-to event,
//! else the event itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use clarion_core::{
    ChannelConfig, ConfigError, Engagement, EngagementAuthor, EngagementKind, ErrorClass,
    ListenBatch, Listener, PublishError,
};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use super::{MatrixAdapter, encode};

/// How long the homeserver may hold a `/sync` call open.
const POLL: Duration = Duration::from_secs(25);
/// Timeline events per room and call.
const TIMELINE_LIMIT: u32 = 100;
/// Parent senders remembered between calls (then forgotten all at once).
const SENDER_CACHE: usize = 1000;

pub(super) fn build(config: &ChannelConfig) -> Result<Option<Arc<dyn Listener>>, ConfigError> {
    Ok(Some(Arc::new(MatrixListener {
        adapter: super::configure(config)?,
        me: OnceCell::new(),
        senders: Mutex::default(),
    })))
}

#[derive(Debug)]
pub(super) struct MatrixListener {
    /// The channel's adapter: homeserver, token and configured room.
    adapter: MatrixAdapter,
    me: OnceCell<Me>,
    /// Who sent an event, by event id: parents fetched or seen before.
    senders: Mutex<HashMap<String, String>>,
}

#[derive(Debug)]
struct Me {
    user_id: String,
    /// Lower case, for legacy mention matching.
    localpart: String,
    display_name: Option<String>,
}

/// The sync filter: room messages only (`limit` per room), with the member
/// events that name their senders.
fn filter(limit: u32) -> String {
    json!({
        "presence": {"types": []},
        "account_data": {"types": []},
        "room": {
            "timeline": {"types": ["m.room.message"], "limit": limit},
            "state": {"types": ["m.room.member"], "lazy_load_members": true},
            "ephemeral": {"types": []},
            "account_data": {"types": []}
        }
    })
    .to_string()
}

impl MatrixListener {
    /// A read: an answer that cannot be read or a timeout changed nothing,
    /// so it is worth another try, never "outcome unknown".
    async fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
        timeout: Duration,
    ) -> Result<Value, PublishError> {
        let request = self
            .adapter
            .request(Method::GET, path)
            .query(query)
            .timeout(timeout);
        self.adapter
            .call(request, ErrorClass::Transient)
            .await
            .map_err(crate::http::for_check)
    }

    async fn me(&self) -> Result<&Me, PublishError> {
        self.me
            .get_or_try_init(|| async {
                #[derive(Deserialize)]
                struct WhoAmI {
                    user_id: String,
                }
                let who: Value = self
                    .get(
                        "/_matrix/client/v3/account/whoami",
                        &[],
                        self.adapter.timeout,
                    )
                    .await?;
                let who: WhoAmI = serde_json::from_value(who).map_err(|e| {
                    PublishError::new(ErrorClass::Transient, format!("whoami: {e}"))
                })?;
                let path = format!(
                    "/_matrix/client/v3/profile/{}/displayname",
                    encode(&who.user_id)
                );
                let display_name = match self.get(&path, &[], self.adapter.timeout).await {
                    Ok(profile) => profile
                        .get("displayname")
                        .and_then(Value::as_str)
                        .filter(|n| !n.trim().is_empty())
                        .map(str::to_owned),
                    // No display name set.
                    Err(e) if matches!(e.status, Some(403 | 404)) => None,
                    Err(e) => return Err(e),
                };
                let localpart = localpart(&who.user_id).to_lowercase();
                Ok(Me {
                    user_id: who.user_id,
                    localpart,
                    display_name,
                })
            })
            .await
    }

    /// An event id in the adapter's form: plain in the configured room,
    /// `room/event` elsewhere.
    fn id_of(&self, room: &str, event: &str) -> String {
        if room == self.adapter.room_id {
            event.to_owned()
        } else {
            format!("{room}/{event}")
        }
    }

    /// Who sent `event_id`: from this batch, from memory, or asked.
    async fn sender_of(
        &self,
        room: &str,
        event_id: &str,
        batch: &HashMap<&str, &str>,
    ) -> Result<Option<String>, PublishError> {
        if let Some(sender) = batch.get(event_id) {
            return Ok(Some((*sender).to_owned()));
        }
        if let Some(sender) = self.cached(event_id) {
            return Ok(Some(sender));
        }
        let path = format!(
            "/_matrix/client/v3/rooms/{}/event/{}",
            encode(room),
            encode(event_id)
        );
        let event = match self.get(&path, &[], self.adapter.timeout).await {
            Ok(event) => event,
            // Gone, or from before the bot joined: not an answer to it.
            Err(e) if matches!(e.status, Some(403 | 404)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let sender = event
            .get("sender")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let Some(sender) = &sender {
            let mut cache = self.senders.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= SENDER_CACHE {
                cache.clear();
            }
            cache.insert(event_id.to_owned(), sender.clone());
        }
        Ok(sender)
    }

    fn cached(&self, event_id: &str) -> Option<String> {
        let cache = self.senders.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(event_id).cloned()
    }

    /// The engagement in one timeline event: `Ok(None)` when it is none,
    /// `Err` (a short reason) when it cannot be read.
    async fn read(
        &self,
        me: &Me,
        room: &str,
        event: &Value,
        names: &HashMap<&str, &str>,
        batch: &HashMap<&str, &str>,
    ) -> Result<Result<Option<Engagement>, String>, PublishError> {
        let Some(event_id) = event.get("event_id").and_then(Value::as_str) else {
            return Ok(Err(format!("{room}: an event without event_id")));
        };
        if event.get("type").and_then(Value::as_str) != Some("m.room.message") {
            return Ok(Ok(None));
        }
        let Some(sender) = event.get("sender").and_then(Value::as_str) else {
            return Ok(Err(format!("{room} {event_id}: no sender")));
        };
        if sender == me.user_id {
            return Ok(Ok(None));
        }
        let content = event.get("content").and_then(Value::as_object);
        let Some(content) = content.filter(|c| !c.is_empty()) else {
            return Ok(Ok(None)); // redacted
        };
        let Some(msgtype) = content.get("msgtype").and_then(Value::as_str) else {
            return Ok(Err(format!("{room} {event_id}: no msgtype")));
        };
        let relates = content.get("m.relates_to");
        let rel_type = relates
            .and_then(|r| r.get("rel_type"))
            .and_then(Value::as_str);
        if msgtype == "m.notice" || rel_type == Some("m.replace") {
            return Ok(Ok(None));
        }
        let Some(body) = content.get("body").and_then(Value::as_str) else {
            return Ok(Err(format!("{room} {event_id}: no body")));
        };
        let Some(created_at_ms) = event.get("origin_server_ts").and_then(Value::as_i64) else {
            return Ok(Err(format!("{room} {event_id}: no origin_server_ts")));
        };
        let thread_root = relates
            .filter(|_| rel_type == Some("m.thread"))
            .and_then(|r| r.get("event_id"))
            .and_then(Value::as_str);
        let falling_back = relates
            .and_then(|r| r.get("is_falling_back"))
            .and_then(Value::as_bool)
            == Some(true);
        let in_reply_to = relates
            .and_then(|r| r.pointer("/m.in_reply_to/event_id"))
            .and_then(Value::as_str)
            .filter(|_| !(thread_root.is_some() && falling_back));
        let parent = in_reply_to.or(thread_root);

        let mentions = content.get("m.mentions");
        let mentioned = match mentions {
            Some(mentions) => mentions
                .get("user_ids")
                .and_then(Value::as_array)
                .is_some_and(|ids| ids.iter().any(|id| id.as_str() == Some(&me.user_id))),
            None => legacy_mention(body, me),
        };
        // With `m.mentions`, clients name the sender of the replied-to event:
        // leaving the bot out means the parent is not the bot's.
        let could_be_ours = mentions.is_none() || mentioned;
        let kind = match parent {
            Some(parent)
                if could_be_ours
                    && self.sender_of(room, parent, batch).await?.as_deref()
                        == Some(me.user_id.as_str()) =>
            {
                EngagementKind::Reply
            }
            _ if mentioned => EngagementKind::Mention,
            _ => return Ok(Ok(None)),
        };
        let item_id = self.id_of(room, event_id);
        let root_id = thread_root
            .or(parent)
            .map(|root| self.id_of(room, root))
            .unwrap_or_else(|| item_id.clone());
        let display_name = names
            .get(sender)
            .map(|n| (*n).to_owned())
            .unwrap_or_else(|| localpart(sender).to_owned());
        Ok(Ok(Some(Engagement {
            item_id,
            kind,
            author: EngagementAuthor {
                id: sender.to_owned(),
                handle: sender.to_owned(),
                display_name,
                roles: Vec::new(),
            },
            text: body.to_owned(),
            url: Some(format!(
                "https://matrix.to/#/{}/{}",
                encode(room),
                encode(event_id)
            )),
            parent_id: parent.map(|p| self.id_of(room, p)),
            root_id,
            place: Some(room.to_owned()),
            created_at_ms,
        })))
    }
}

/// `@name:server` -> `name`.
fn localpart(user_id: &str) -> &str {
    let name = user_id.strip_prefix('@').unwrap_or(user_id);
    name.split_once(':').map_or(name, |(local, _)| local)
}

/// The pre-`m.mentions` way: the body names the bot by user id, display
/// name or localpart (as a whole word, any case).
fn legacy_mention(body: &str, me: &Me) -> bool {
    let body = body.to_lowercase();
    body.contains(&me.user_id.to_lowercase())
        || me
            .display_name
            .as_deref()
            .is_some_and(|name| contains_word(&body, &name.to_lowercase()))
        || contains_word(&body, &me.localpart)
}

fn contains_word(haystack: &str, word: &str) -> bool {
    if word.is_empty() {
        return false;
    }
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    haystack.match_indices(word).any(|(at, _)| {
        let before = haystack[..at].chars().next_back();
        let after = haystack[at + word.len()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

#[async_trait]
impl Listener for MatrixListener {
    fn kind(&self) -> &'static str {
        "matrix"
    }

    async fn next_batch(&self, cursor: Option<&str>) -> Result<ListenBatch, PublishError> {
        let me = self.me().await?;
        let path = "/_matrix/client/v3/sync";
        let Some(since) = cursor else {
            // The first run: where "now" is, without the history.
            let query = [("filter", filter(1)), ("timeout", "0".to_owned())];
            let initial = self.get(path, &query, self.adapter.timeout).await?;
            return Ok(ListenBatch {
                cursor: Some(next_batch(&initial)?),
                ..ListenBatch::default()
            });
        };
        let query = [
            ("filter", filter(TIMELINE_LIMIT)),
            ("timeout", POLL.as_millis().to_string()),
            ("since", since.to_owned()),
        ];
        let sync = self.get(path, &query, POLL + self.adapter.timeout).await?;
        let cursor = next_batch(&sync)?;
        let mut batch = ListenBatch {
            cursor: Some(cursor),
            ..ListenBatch::default()
        };
        let empty = serde_json::Map::new();
        let rooms = sync
            .pointer("/rooms/join")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        // Senders of every event in this batch, so replies to an event of
        // the same batch need no lookup.
        let events_of = |room: &Value| -> Vec<Value> {
            room.pointer("/timeline/events")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        // In room id order, whatever order the answer had.
        let mut timelines: Vec<(&String, &Value, Vec<Value>)> = rooms
            .iter()
            .map(|(id, room)| (id, room, events_of(room)))
            .collect();
        timelines.sort_by(|a, b| a.0.cmp(b.0));
        let senders: HashMap<&str, &str> = timelines
            .iter()
            .flat_map(|(_, _, events)| events.iter())
            .filter_map(|e| Some((e.get("event_id")?.as_str()?, e.get("sender")?.as_str()?)))
            .collect();
        for (room_id, room, events) in &timelines {
            let names: HashMap<&str, &str> = ["/state/events", "/timeline/events"]
                .iter()
                .filter_map(|p| room.pointer(p).and_then(Value::as_array))
                .flatten()
                .filter(|e| e.get("type").and_then(Value::as_str) == Some("m.room.member"))
                .filter_map(|e| {
                    Some((
                        e.get("state_key")?.as_str()?,
                        e.pointer("/content/displayname")?.as_str()?,
                    ))
                })
                .collect();
            if room.pointer("/timeline/limited").and_then(Value::as_bool) == Some(true) {
                batch.skipped.push(format!(
                    "{room_id}: more than {TIMELINE_LIMIT} messages since the last sync; older ones were not fetched"
                ));
            }
            for event in events {
                match self.read(me, room_id, event, &names, &senders).await? {
                    Ok(Some(engagement)) => batch.events.push(engagement),
                    Ok(None) => {}
                    Err(reason) => batch.skipped.push(reason),
                }
            }
        }
        Ok(batch)
    }
}

fn next_batch(sync: &Value) -> Result<String, PublishError> {
    sync.get("next_batch")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| {
            PublishError::new(
                ErrorClass::Transient,
                "the homeserver's sync answer has no next_batch",
            )
        })
}

#[cfg(test)]
mod tests {
    use axum::extract::{OriginalUri, Path, Query, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use axum::routing::{get, put};
    use clarion_core::{
        AdapterContext, AdapterFactory, ChannelAdapter, OutboundPost, PublishRequest, ReplyTo,
    };

    use super::super::Factory;
    use super::*;

    const TOKEN: &str = "syt_SECRET_listen_token";
    const ROOM: &str = "!room:example.org";
    const OTHER: &str = "!other:example.org";
    const BOT: &str = "@clarion:example.org";

    /// What the fake saw: path, query, body.
    type Seen = Arc<Mutex<Vec<(String, HashMap<String, String>, String)>>>;

    fn error(status: StatusCode, body: Value) -> Response {
        (status, axum::Json(body)).into_response()
    }

    fn denied(headers: &HeaderMap) -> Option<Response> {
        (headers.get("authorization").is_none_or(|v| v != &format!("Bearer {TOKEN}"))).then(|| {
            error(
                StatusCode::UNAUTHORIZED,
                json!({"errcode": "M_UNKNOWN_TOKEN", "error": "Invalid access token passed.", "soft_logout": false}),
            )
        })
    }

    fn message(id: &str, sender: &str, content: Value) -> Value {
        json!({
            "type": "m.room.message", "event_id": id, "sender": sender,
            "origin_server_ts": 1_764_158_400_000_i64, "content": content,
            "unsigned": {"age": 1234}
        })
    }

    fn text(body: &str) -> Value {
        json!({"msgtype": "m.text", "body": body})
    }

    fn with(mut content: Value, key: &str, value: Value) -> Value {
        content[key] = value;
        content
    }

    fn mentions(ids: &[&str]) -> Value {
        json!({"user_ids": ids})
    }

    fn reply_to(event: &str) -> Value {
        json!({"m.in_reply_to": {"event_id": event}})
    }

    fn sync_answer(since: Option<&str>) -> Response {
        match since {
            None => axum::Json(json!({
                "next_batch": "s1",
                "rooms": {"join": {ROOM: {"timeline": {"events": [
                    message("$history", "@alice:example.org", with(text("old @clarion"), "m.mentions", mentions(&[BOT])))
                ], "limited": true, "prev_batch": "p0"}}}}
            }))
            .into_response(),
            Some("s1") => axum::Json(json!({
                "next_batch": "s2",
                "rooms": {"join": {
                    ROOM: {
                        "state": {"events": [{
                            "type": "m.room.member", "state_key": "@alice:example.org",
                            "sender": "@alice:example.org", "event_id": "$m",
                            "origin_server_ts": 1, "content": {"membership": "join", "displayname": "Alice A."}
                        }]},
                        "timeline": {"limited": false, "events": [
                            message("$m1", "@alice:example.org", with(text("hey bot"), "m.mentions", mentions(&[BOT]))),
                            message("$own1", BOT, text("our post")),
                            message("$r1", "@bob:example.org", with(with(text("> our post\n\nthanks"), "m.relates_to", reply_to("$own1")), "m.mentions", mentions(&[BOT]))),
                            message("$r2", "@carol:example.org", with(text("old client answer"), "m.relates_to", reply_to("$ours_old"))),
                            message("$n1", "@helper:example.org", with(json!({"msgtype": "m.notice", "body": "ping"}), "m.mentions", mentions(&[BOT]))),
                            message("$x1", "@dave:example.org", with(with(text("to erin"), "m.relates_to", reply_to("$theirs")), "m.mentions", mentions(&["@erin:example.org"]))),
                            {"type": "m.room.message", "event_id": "$broken", "origin_server_ts": 1, "content": text("who sent me?")},
                            message("$legacy", "@erin:example.org", text("Clarion Bot: ping")),
                            message("$robot", "@erin:example.org", text("a robot named clarionette")),
                            message("$edit", "@alice:example.org", with(with(text("* hey bot"), "m.relates_to", json!({"rel_type": "m.replace", "event_id": "$m1"})), "m.mentions", mentions(&[BOT]))),
                        ]}
                    },
                    OTHER: {"timeline": {"events": [
                        message("$o1", "@frank:example.org", with(text("hi @clarion"), "m.mentions", mentions(&[BOT]))),
                        message("$t2", "@gina:example.org", with(with(text("in thread"), "m.relates_to", json!({
                            "rel_type": "m.thread", "event_id": "$o1", "is_falling_back": true,
                            "m.in_reply_to": {"event_id": "$o1"}
                        })), "m.mentions", mentions(&[BOT]))),
                    ]}}
                }}
            }))
            .into_response(),
            Some("busy") => error(
                StatusCode::TOO_MANY_REQUESTS,
                json!({"errcode": "M_LIMIT_EXCEEDED", "error": "Too many requests", "retry_after_ms": 2000}),
            ),
            Some(other) => {
                let next = format!("{other}+");
                axum::Json(json!({"next_batch": next, "rooms": {"join": {}}})).into_response()
            }
        }
    }

    async fn homeserver() -> (String, Seen) {
        let seen: Seen = Arc::default();
        let record =
            |seen: &Seen, uri: &axum::http::Uri, query: &HashMap<String, String>, body: String| {
                seen.lock()
                    .unwrap()
                    .push((uri.path().to_owned(), query.clone(), body));
            };
        let app = axum::Router::new()
            .route(
                "/_matrix/client/v3/account/whoami",
                get(|headers: HeaderMap| async move {
                    denied(&headers).unwrap_or_else(|| {
                        axum::Json(json!({"user_id": BOT, "device_id": "LISTEN"})).into_response()
                    })
                }),
            )
            .route(
                "/_matrix/client/v3/profile/{user}/displayname",
                get(|Path(user): Path<String>| async move {
                    assert_eq!(user, BOT);
                    axum::Json(json!({"displayname": "Clarion Bot"})).into_response()
                }),
            )
            .route(
                "/_matrix/client/v3/sync",
                get(
                    move |State(seen): State<Seen>, OriginalUri(uri): OriginalUri, Query(query): Query<HashMap<String, String>>, headers: HeaderMap| async move {
                        record(&seen, &uri, &query, String::new());
                        if let Some(denied) = denied(&headers) {
                            return denied;
                        }
                        sync_answer(query.get("since").map(String::as_str))
                    },
                ),
            )
            .route(
                "/_matrix/client/v3/rooms/{room}/event/{event}",
                get(
                    move |State(seen): State<Seen>, OriginalUri(uri): OriginalUri, Path((room, event)): Path<(String, String)>| async move {
                        record(&seen, &uri, &HashMap::new(), String::new());
                        match (room.as_str(), event.as_str()) {
                            (ROOM, "$ours_old") => axum::Json(json!({
                                "type": "m.room.message", "event_id": "$ours_old", "sender": BOT,
                                "room_id": ROOM, "origin_server_ts": 1, "content": text("an old post")
                            }))
                            .into_response(),
                            _ => error(
                                StatusCode::NOT_FOUND,
                                json!({"errcode": "M_NOT_FOUND", "error": "Event not found."}),
                            ),
                        }
                    },
                ),
            )
            .route(
                "/_matrix/client/v3/rooms/{room}/send/{kind}/{txn}",
                put(
                    move |State(seen): State<Seen>, OriginalUri(uri): OriginalUri, body: String| async move {
                        record(&seen, &uri, &HashMap::new(), body);
                        axum::Json(json!({"event_id": "$sent"})).into_response()
                    },
                ),
            )
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (base, seen)
    }

    fn config(base: &str, env: &str, token: &str) -> ChannelConfig {
        // SAFETY: each test sets its own variable and only reads that one.
        unsafe { std::env::set_var(env, token) };
        serde_json::from_value(json!({
            "name": "room", "kind": "matrix", "listen": true, "homeserver": base,
            "access_token": {"env": env}, "room_id": ROOM, "timeout_secs": 5
        }))
        .unwrap()
    }

    fn listener(base: &str, env: &str, token: &str) -> Arc<dyn Listener> {
        Factory
            .build_listener(&config(base, env, token), &AdapterContext::default())
            .unwrap()
            .expect("matrix listens")
    }

    fn syncs(seen: &Seen) -> Vec<HashMap<String, String>> {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|(path, _, _)| path == "/_matrix/client/v3/sync")
            .map(|(_, query, _)| query.clone())
            .collect()
    }

    #[tokio::test]
    async fn the_first_run_takes_only_the_position_and_the_next_sync_the_news() {
        let (base, seen) = homeserver().await;
        let listener = listener(&base, "CLARION_TEST_MATRIX_LISTEN_RUN", TOKEN);
        let first = listener.next_batch(None).await.unwrap();
        assert_eq!(first.events, vec![], "history is not captured");
        assert_eq!(first.skipped, Vec::<String>::new());
        assert_eq!(first.cursor.as_deref(), Some("s1"));

        let batch = listener.next_batch(Some("s1")).await.unwrap();
        assert_eq!(batch.cursor.as_deref(), Some("s2"));
        assert_eq!(batch.wait, Duration::ZERO);
        let summary: Vec<_> = batch
            .events
            .iter()
            .map(|e| {
                (
                    e.kind,
                    e.item_id.as_str(),
                    e.parent_id.as_deref(),
                    e.root_id.as_str(),
                )
            })
            .collect();
        let o = |id: &str| format!("{OTHER}/{id}");
        assert_eq!(
            summary,
            [
                // Rooms in id order: `!other` before `!room`.
                (
                    EngagementKind::Mention,
                    o("$o1").as_str(),
                    None,
                    o("$o1").as_str()
                ),
                (
                    EngagementKind::Mention,
                    o("$t2").as_str(),
                    Some(o("$o1").as_str()),
                    o("$o1").as_str()
                ),
                (EngagementKind::Mention, "$m1", None, "$m1"),
                (EngagementKind::Reply, "$r1", Some("$own1"), "$own1"),
                (EngagementKind::Reply, "$r2", Some("$ours_old"), "$ours_old"),
                (EngagementKind::Mention, "$legacy", None, "$legacy"),
            ]
        );
        assert_eq!(batch.skipped, ["!room:example.org $broken: no sender"]);
        let m1 = &batch.events[2];
        assert_eq!(
            m1.author,
            EngagementAuthor {
                id: "@alice:example.org".into(),
                handle: "@alice:example.org".into(),
                display_name: "Alice A.".into(),
                roles: Vec::new(),
            }
        );
        assert_eq!(m1.text, "hey bot");
        assert_eq!(m1.place.as_deref(), Some(ROOM));
        assert_eq!(m1.created_at_ms, 1_764_158_400_000);
        assert_eq!(
            m1.url.as_deref(),
            Some("https://matrix.to/#/%21room%3Aexample.org/%24m1")
        );
        assert_eq!(batch.events[0].place.as_deref(), Some(OTHER));

        // Only the parent that is neither in the batch nor excluded by
        // `m.mentions` was fetched.
        let fetched: Vec<String> = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(path, _, _)| path.contains("/event/"))
            .map(|(path, _, _)| path.clone())
            .collect();
        assert_eq!(
            fetched,
            ["/_matrix/client/v3/rooms/%21room%3Aexample.org/event/%24ours_old"]
        );

        let again = listener.next_batch(Some("s2")).await.unwrap();
        assert_eq!(again.events, vec![]);
        assert_eq!(again.cursor.as_deref(), Some("s2+"));

        let queries = syncs(&seen);
        assert_eq!(queries.len(), 3);
        assert_eq!(queries[0].get("since"), None);
        assert_eq!(queries[0]["timeout"], "0");
        assert_eq!(queries[1]["since"], "s1");
        assert_eq!(queries[1]["timeout"], "25000");
        assert_eq!(queries[2]["since"], "s2");
        let filter: Value = serde_json::from_str(&queries[1]["filter"]).unwrap();
        assert_eq!(
            filter["room"]["timeline"],
            json!({"types": ["m.room.message"], "limit": 100})
        );
    }

    #[tokio::test]
    async fn a_rate_limit_carries_the_wait_and_a_bad_token_is_auth_expired() {
        let (base, _) = homeserver().await;
        let limited = listener(&base, "CLARION_TEST_MATRIX_LISTEN_BUSY", TOKEN)
            .next_batch(Some("busy"))
            .await
            .unwrap_err();
        assert_eq!(
            (limited.class, limited.retry_after),
            (ErrorClass::RateLimited, Some(Duration::from_secs(2)))
        );

        let revoked = listener(
            &base,
            "CLARION_TEST_MATRIX_LISTEN_REVOKED",
            "syt_SECRET_old",
        );
        let error = revoked.next_batch(Some("s1")).await.unwrap_err();
        assert_eq!(
            (error.class, error.message.as_str()),
            (
                ErrorClass::AuthExpired,
                "HTTP 401: M_UNKNOWN_TOKEN: Invalid access token passed."
            )
        );
        assert!(!error.to_string().contains("SECRET"), "{error}");
        assert!(!format!("{revoked:?}").contains("SECRET"));
    }

    #[test]
    fn legacy_mentions_need_a_whole_word() {
        let me = Me {
            user_id: BOT.into(),
            localpart: "clarion".into(),
            display_name: Some("Clarion Bot".into()),
        };
        assert!(legacy_mention("hey @Clarion:example.org!", &me));
        assert!(legacy_mention("CLARION BOT: status?", &me));
        assert!(legacy_mention("ask clarion.", &me));
        assert!(!legacy_mention("clarionette is not me", &me));
        assert!(!legacy_mention("nothing here", &me));
    }

    async fn publish(adapter: &dyn ChannelAdapter, parent: &str) -> String {
        let post = OutboundPost {
            text: "thanks".into(),
            campaign: None,
            media: vec![],
        };
        adapter
            .publish(PublishRequest {
                post: &post,
                idempotency_key: "k1",
                reply_to: Some(ReplyTo {
                    root: parent,
                    parent,
                }),
                post_id: 1,
                target_id: 2,
                scheduled_at_ms: 0,
                budget: Duration::from_secs(10),
            })
            .await
            .unwrap()
            .platform_post_id
            .unwrap()
    }

    #[tokio::test]
    async fn a_reply_to_a_qualified_parent_goes_to_that_room() {
        let (base, seen) = homeserver().await;
        let adapter = Factory
            .build(
                &config(&base, "CLARION_TEST_MATRIX_LISTEN_REPLY", TOKEN),
                &AdapterContext::default(),
            )
            .unwrap();
        let id = publish(adapter.as_ref(), &format!("{OTHER}/$o1")).await;
        assert_eq!(id, format!("{OTHER}/$sent"));
        let plain = publish(adapter.as_ref(), "$a/b+c").await;
        assert_eq!(plain, "$sent");

        let sent = seen.lock().unwrap().clone();
        assert_eq!(
            sent[0].0,
            "/_matrix/client/v3/rooms/%21other%3Aexample.org/send/m.room.message/k1"
        );
        let body: Value = serde_json::from_str(&sent[0].2).unwrap();
        assert_eq!(body["m.relates_to"], reply_to("$o1"));
        assert_eq!(
            sent[1].0,
            "/_matrix/client/v3/rooms/%21room%3Aexample.org/send/m.room.message/k1"
        );
        let body: Value = serde_json::from_str(&sent[1].2).unwrap();
        assert_eq!(
            body["m.relates_to"],
            reply_to("$a/b+c"),
            "an old-style event id with a slash"
        );
    }
}
