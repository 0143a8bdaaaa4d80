//! The reply bridge end to end with the real binary: a mention on a fake
//! Mastodon is shown in a fake Telegram group; a manager's reply there goes
//! back to Mastodon as a threaded reply (`in_reply_to_id`) and is confirmed
//! in the group; `note:` stays internal; an unauthorized user is refused and
//! nothing is sent. The same flow with Bluesky as the origin: a fan's reply
//! deep in one of our threads is answered with the thread's root and the
//! fan's post as `reply.root` / `reply.parent`. The fakes answer in their
//! documented wire formats (Mastodon REST, Telegram Bot API, Bluesky XRPC)
//! and are shared with `listener_failover.rs`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::harness::*;

const GROUP: i64 = -100_777;
const BOT_ID: i64 = 123_456;
const MANAGER: i64 = 9001;
const STRANGER: i64 = 666;

/// Our Bluesky account, as the fake PDS knows it.
const BSKY_DID: &str = "did:plc:clarion";
const BSKY_HANDLE: &str = "clarion.bsky.test";
const BSKY_PASSWORD: &str = "bsky-app-password";
const BSKY_ACCESS: &str = "bsky-access-1";
const FAN_DID: &str = "did:plc:fan";
const FAN_HANDLE: &str = "fan.bsky.test";

/// One request as the fakes received it.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub path: String,
    pub query: String,
    pub auth: Option<String>,
    pub body: Value,
    pub at: Instant,
}

impl Call {
    /// A query parameter, decoded (the first, when repeated).
    pub fn param(&self, name: &str) -> Option<String> {
        self.params(name).into_iter().next()
    }

    pub fn params(&self, name: &str) -> Vec<String> {
        query_params(&self.query, name)
    }
}

/// The values of `name` in a query string, decoded.
fn query_params(query: &str, name: &str) -> Vec<String> {
    let url = reqwest::Url::parse(&format!("http://fake/?{query}")).unwrap();
    url.query_pairs()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .collect()
}

#[derive(Default)]
struct Fake {
    /// Every request, in arrival order.
    calls: Vec<Call>,
    /// Mastodon notifications (oldest first).
    notifications: Vec<Value>,
    /// Statuses Clarion posted on Mastodon.
    statuses: Vec<Value>,
    /// Telegram updates waiting for `getUpdates`.
    updates: Vec<Value>,
    /// Messages Clarion sent on Telegram.
    sent: Vec<Value>,
    /// `createForumTopic` bodies, in order; topic ids are their message ids.
    topics: Vec<(i64, Value)>,
    /// `getUpdates` calls being answered right now, and how many found
    /// another one running (Telegram answers those 409 Conflict).
    polling: usize,
    conflicts: usize,
    /// Bluesky notifications (newest first, as the appview lists them).
    bsky_notifications: Vec<Value>,
    /// `com.atproto.repo.createRecord` bodies Clarion sent.
    records: Vec<Value>,
    next_id: i64,
}

/// A fake Mastodon instance, Telegram Bot API and Bluesky PDS on one port.
#[derive(Clone)]
pub(crate) struct Fakes {
    pub base: String,
    state: Arc<Mutex<Fake>>,
}

/// Ends a `getUpdates` call's turn, even when the caller hung up (a killed
/// process) and the handler is dropped half-way.
struct Polling(Arc<Mutex<Fake>>);

impl Drop for Polling {
    fn drop(&mut self) {
        self.0.lock().unwrap().polling -= 1;
    }
}

impl Fakes {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(Fake {
            next_id: 5000,
            ..Default::default()
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base, state }
    }

    /// A Mastodon mention; its notification id is `70000 + n` (n counts from 1).
    pub fn mention(&self, status_id: &str, text: &str) {
        self.reply_in_thread(status_id, None, text);
    }

    /// A mention that answers the status `in_reply_to` (None: a new thread).
    pub fn reply_in_thread(&self, status_id: &str, in_reply_to: Option<&str>, text: &str) {
        self.reply_by("fan", status_id, in_reply_to, text);
    }

    /// [`Self::reply_in_thread`] written by `user@masto.test`.
    pub fn reply_by(&self, user: &str, status_id: &str, in_reply_to: Option<&str>, text: &str) {
        let account = json!({"id": "77", "username": user, "acct": format!("{user}@masto.test"), "display_name": "A Fan", "bot": false});
        let mut s = self.state.lock().unwrap();
        let n = s.notifications.len() + 1;
        s.notifications.push(json!({
            "id": format!("{}", 70_000 + n), "type": "mention", "created_at": "2026-11-27T10:00:00.000Z",
            "account": account.clone(),
            "status": {
                "id": status_id, "created_at": "2026-11-27T10:00:00.000Z", "in_reply_to_id": in_reply_to,
                "visibility": "public", "spoiler_text": "", "content": format!("<p>{text}</p>"),
                "url": format!("https://masto.test/@{user}/{status_id}"), "uri": format!("https://masto.test/users/{user}/statuses/{status_id}"),
                "account": account
            }
        }));
    }

    /// A group message from `user` replying to the bot's message `to`.
    pub fn chat_reply(&self, user: i64, to: i64, text: &str) -> i64 {
        let mut s = self.state.lock().unwrap();
        s.next_id += 1;
        let id = s.next_id;
        let update_id = 900 + s.updates.len() as i64;
        s.updates.push(json!({
            "update_id": update_id,
            "message": {
                "message_id": id, "date": 1_764_230_400,
                "chat": {"id": GROUP, "type": "supergroup", "title": "Community"},
                "from": {"id": user, "is_bot": false, "first_name": "Sam", "username": format!("user{user}")},
                "text": text,
                "reply_to_message": {
                    "message_id": to, "date": 1_764_230_000,
                    "chat": {"id": GROUP, "type": "supergroup", "title": "Community"},
                    "from": {"id": BOT_ID, "is_bot": true, "first_name": "Clarion", "username": "clarion_bot"},
                    "text": "bridged"
                }
            }
        }));
        id
    }

    /// A message from `user` written in forum topic `topic` (opened by the
    /// bot), answering nothing in particular: Telegram makes it a reply to
    /// the topic's service message.
    pub fn topic_message(&self, user: i64, topic: i64, text: &str) -> i64 {
        let mut s = self.state.lock().unwrap();
        s.next_id += 1;
        let id = s.next_id;
        let update_id = 900 + s.updates.len() as i64;
        let chat =
            json!({"id": GROUP, "type": "supergroup", "title": "Community", "is_forum": true});
        s.updates.push(json!({
            "update_id": update_id,
            "message": {
                "message_id": id, "date": 1_764_230_400, "chat": chat.clone(),
                "message_thread_id": topic, "is_topic_message": true,
                "from": {"id": user, "is_bot": false, "first_name": "Sam", "username": format!("user{user}")},
                "text": text,
                "reply_to_message": {
                    "message_id": topic, "date": 1_764_230_000, "chat": chat,
                    "message_thread_id": topic, "is_topic_message": true,
                    "from": {"id": BOT_ID, "is_bot": true, "first_name": "Clarion", "username": "clarion_bot"},
                    "forum_topic_created": {"name": "topic", "icon_color": 7_322_096}
                }
            }
        }));
        id
    }

    pub fn topics(&self) -> Vec<(i64, Value)> {
        self.state.lock().unwrap().topics.clone()
    }

    /// A Bluesky notification for a post of the fan's (`at://did:plc:fan/
    /// app.bsky.feed.post/<rkey>`, cid `cid`), replying under `root` to
    /// `parent` (each `(uri, cid)`), indexed now. Returns its `indexedAt`.
    fn bsky_reply(
        &self,
        rkey: &str,
        cid: &str,
        text: &str,
        root: (&str, &str),
        parent: (&str, &str),
    ) -> String {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let notification = json!({
            "uri": format!("at://{FAN_DID}/app.bsky.feed.post/{rkey}"),
            "cid": cid,
            "author": {
                "did": FAN_DID, "handle": FAN_HANDLE, "displayName": "A Fan",
                "avatar": "https://cdn.bsky.test/avatar/fan.jpg", "labels": [],
                "createdAt": "2024-01-01T00:00:00.000Z"
            },
            "reason": "reply",
            "record": {
                "$type": "app.bsky.feed.post",
                "text": text,
                "createdAt": now,
                "langs": ["en"],
                "reply": {
                    "root": {"uri": root.0, "cid": root.1},
                    "parent": {"uri": parent.0, "cid": parent.1}
                }
            },
            "isRead": false,
            "indexedAt": now,
            "labels": []
        });
        self.state
            .lock()
            .unwrap()
            .bsky_notifications
            .insert(0, notification);
        now
    }

    pub fn sent(&self) -> Vec<Value> {
        self.state.lock().unwrap().sent.clone()
    }

    pub fn statuses(&self) -> Vec<Value> {
        self.state.lock().unwrap().statuses.clone()
    }

    fn records(&self) -> Vec<Value> {
        self.state.lock().unwrap().records.clone()
    }

    /// Every request whose path ends with `suffix` (case-insensitive).
    pub fn calls(&self, suffix: &str) -> Vec<Call> {
        let suffix = suffix.to_lowercase();
        self.state
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|c| c.path.to_lowercase().ends_with(&suffix))
            .cloned()
            .collect()
    }

    /// `getUpdates` calls that overlapped another one.
    pub fn conflicts(&self) -> usize {
        self.state.lock().unwrap().conflicts
    }
}

async fn answer(State(state): State<Arc<Mutex<Fake>>>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let auth = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes: Bytes = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    state.lock().unwrap().calls.push(Call {
        path: path.clone(),
        query: query.clone(),
        auth: auth.clone(),
        body: body.clone(),
        at: Instant::now(),
    });
    let lower = path.to_lowercase();
    if lower.ends_with("/getupdates") {
        let _turn = {
            let mut s = state.lock().unwrap();
            s.polling += 1;
            if s.polling > 1 {
                s.conflicts += 1;
            }
            Polling(state.clone())
        };
        if state.lock().unwrap().polling > 1 {
            // What Telegram answers a second consumer of the same bot.
            return (
                StatusCode::CONFLICT,
                Json(json!({
                    "ok": false, "error_code": 409,
                    "description": "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
                })),
            )
                .into_response();
        }
        let offset = body["offset"].as_i64().unwrap_or(0);
        for _ in 0..6 {
            let ready: Vec<Value> = {
                let s = state.lock().unwrap();
                s.updates
                    .iter()
                    .filter(|u| u["update_id"].as_i64().unwrap_or(0) >= offset)
                    .cloned()
                    .collect()
            };
            if !ready.is_empty() {
                return Json(json!({"ok": true, "result": ready})).into_response();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        return Json(json!({"ok": true, "result": []})).into_response();
    }
    let mut s = state.lock().unwrap();
    if let Some(xrpc) = path.strip_prefix("/xrpc/") {
        return bluesky(&mut s, xrpc, &query, auth.as_deref(), &body);
    }
    match (method, path.as_str()) {
        (_, p) if p.to_lowercase().ends_with("/getme") => Json(json!({
            "ok": true,
            "result": {"id": BOT_ID, "is_bot": true, "first_name": "Clarion", "username": "clarion_bot",
                       "can_join_groups": true, "can_read_all_group_messages": false, "supports_inline_queries": false,
                       "can_connect_to_business": false, "has_main_web_app": false}
        }))
        .into_response(),
        (_, p) if p.to_lowercase().ends_with("/createforumtopic") => {
            // The topic's id is the id of its first (service) message.
            s.next_id += 1;
            let id = s.next_id;
            s.topics.push((id, body.clone()));
            Json(json!({
                "ok": true,
                "result": {"message_thread_id": id, "name": body["name"], "icon_color": 7_322_096}
            }))
            .into_response()
        }
        (_, p) if p.to_lowercase().ends_with("/sendmessage") => {
            s.next_id += 1;
            let id = s.next_id;
            s.sent.push(json!({"message_id": id, "request": body.clone()}));
            let mut message = json!({
                "message_id": id, "date": 1_764_230_400,
                "chat": {"id": GROUP, "type": "supergroup", "title": "Community"},
                "from": {"id": BOT_ID, "is_bot": true, "first_name": "Clarion", "username": "clarion_bot"},
                "text": body["text"]
            });
            if let Some(topic) = body["message_thread_id"].as_i64() {
                message["message_thread_id"] = json!(topic);
                message["is_topic_message"] = json!(true);
            }
            Json(json!({"ok": true, "result": message})).into_response()
        }
        (Method::GET, "/api/v1/accounts/verify_credentials") => {
            Json(json!({"id": "1", "username": "clarion", "acct": "clarion", "display_name": "Clarion"}))
                .into_response()
        }
        (Method::GET, "/api/v1/notifications") => {
            let min_id: u64 = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("min_id="))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut page: Vec<Value> = s
                .notifications
                .iter()
                .filter(|n| n["id"].as_str().unwrap().parse::<u64>().unwrap() > min_id)
                .cloned()
                .collect();
            page.reverse(); // newest first, as Mastodon answers
            Json(Value::Array(page)).into_response()
        }
        (Method::POST, "/api/v1/statuses") => {
            s.next_id += 1;
            let id = s.next_id;
            s.statuses.push(body.clone());
            Json(json!({
                "id": id.to_string(), "uri": format!("https://masto.test/users/clarion/statuses/{id}"),
                "url": format!("https://masto.test/@clarion/{id}"), "content": body["status"],
                "in_reply_to_id": body["in_reply_to_id"], "created_at": "2026-11-27T10:01:00.000Z",
                "visibility": "public", "account": {"id": "1", "username": "clarion", "acct": "clarion"}
            }))
            .into_response()
        }
        // A published status with its counts (post analytics).
        (Method::GET, p) if p.starts_with("/api/v1/statuses/") => {
            let id = p.trim_start_matches("/api/v1/statuses/");
            Json(json!({
                "id": id, "uri": format!("https://masto.test/users/clarion/statuses/{id}"),
                "url": format!("https://masto.test/@clarion/{id}"), "content": "",
                "created_at": "2026-11-27T10:01:00.000Z", "visibility": "public",
                "favourites_count": 7, "reblogs_count": 3, "replies_count": 2,
                "account": {"id": "1", "username": "clarion", "acct": "clarion"}
            }))
            .into_response()
        }
        // No streaming API here: the listener falls back to polling.
        _ => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "Record not found"})),
        )
            .into_response(),
    }
}

/// The XRPC methods Clarion's Bluesky adapter and listener call, answered
/// as a PDS does (errors as `{"error", "message"}`).
fn bluesky(s: &mut Fake, method: &str, query: &str, auth: Option<&str>, body: &Value) -> Response {
    let error = |status: StatusCode, name: &str, message: &str| {
        (status, Json(json!({"error": name, "message": message}))).into_response()
    };
    if method == "com.atproto.server.createSession" {
        if body["identifier"] != json!(BSKY_HANDLE) || body["password"] != json!(BSKY_PASSWORD) {
            return error(
                StatusCode::UNAUTHORIZED,
                "AuthenticationRequired",
                "Invalid identifier or password",
            );
        }
        return Json(json!({
            "accessJwt": BSKY_ACCESS, "refreshJwt": "bsky-refresh-1",
            "handle": BSKY_HANDLE, "did": BSKY_DID, "active": true
        }))
        .into_response();
    }
    if auth != Some(&format!("Bearer {BSKY_ACCESS}")) {
        return error(
            StatusCode::UNAUTHORIZED,
            "AuthenticationRequired",
            "Authentication Required",
        );
    }
    match method {
        "com.atproto.server.getSession" => {
            Json(json!({"handle": BSKY_HANDLE, "did": BSKY_DID, "active": true})).into_response()
        }
        "app.bsky.notification.listNotifications" => {
            let reasons = query_params(query, "reasons");
            let limit: usize = query_params(query, "limit")
                .first()
                .and_then(|l| l.parse().ok())
                .unwrap_or(50);
            // Our cursors are offsets into the list; the appview's are opaque.
            let start: usize = query_params(query, "cursor")
                .first()
                .and_then(|c| c.strip_prefix('o').and_then(|n| n.parse().ok()))
                .unwrap_or(0);
            let page: Vec<Value> = s
                .bsky_notifications
                .iter()
                .filter(|n| reasons.is_empty() || reasons.iter().any(|r| n["reason"] == json!(r)))
                .skip(start)
                .take(limit)
                .cloned()
                .collect();
            let mut answer = json!({"notifications": page, "priority": false});
            // Like the appview: a cursor with every non-empty page.
            if !page.is_empty() {
                answer["cursor"] = json!(format!("o{}", start + page.len()));
            }
            Json(answer).into_response()
        }
        "app.bsky.notification.updateSeen" => StatusCode::OK.into_response(),
        "com.atproto.repo.createRecord" => {
            if body["repo"] != json!(BSKY_DID) || body["collection"] != "app.bsky.feed.post" {
                return error(StatusCode::BAD_REQUEST, "InvalidRequest", "unexpected repo");
            }
            s.next_id += 1;
            let n = s.next_id;
            s.records.push(body.clone());
            let rkey = body["rkey"].as_str().unwrap_or("3kreply");
            Json(json!({
                "uri": format!("at://{BSKY_DID}/app.bsky.feed.post/{rkey}"),
                "cid": format!("bafyreply{n}"),
                "commit": {"cid": format!("bafycommit{n}"), "rev": format!("3krev{n}")},
                "validationStatus": "valid"
            }))
            .into_response()
        }
        _ => error(
            StatusCode::NOT_IMPLEMENTED,
            "MethodNotImplemented",
            "Method Not Implemented",
        ),
    }
}

pub(crate) fn channels(base: &str) -> String {
    format!(
        r#"
[[channels]]
name = "masto"
kind = "mastodon"
instance = "{base}"
access_token = {{ env = "E2E_MASTODON_TOKEN" }}
listen = true
listen_interval_secs = 5

[[channels]]
name = "ops"
kind = "telegram"
bot_token = {{ env = "E2E_TELEGRAM_TOKEN" }}
chat_id = "{GROUP}"
api_url = "{base}/"
parse_mode = "plain"
listen = true

[bridge]
channel = "ops"
allow_users = ["{MANAGER}"]
"#
    )
}

async fn mastodon_mention_answered_from_telegram(db: Option<TestDb>) {
    let fakes = Fakes::start().await;
    fakes.mention("110001", "@clarion when does the spring sale start?");
    let sink = Sink::start(SinkRules::default()).await;
    let mut settings = Settings::new(&sink);
    settings.extra_channels = channels(&fakes.base);
    let mut clarion = Clarion::new(db, &settings);
    clarion.env = vec![
        ("E2E_MASTODON_TOKEN".into(), "masto-token".into()),
        ("E2E_TELEGRAM_TOKEN".into(), "123:telegram".into()),
    ];
    let run = clarion.run();
    run.ready().await;

    // The mention is captured and shown in the group.
    let shown = wait_until(Duration::from_secs(30), || async {
        fakes.sent().iter().any(|m| {
            m["request"]["text"]
                .as_str()
                .is_some_and(|t| t.contains("when does the spring sale start?"))
        })
    })
    .await;
    assert!(shown, "the mention reached the bridge:\n{}", run.log());
    let bridged = fakes.sent()[0]["message_id"].as_i64().unwrap();
    let text = fakes.sent()[0]["request"]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(text.contains("masto") && text.contains("A Fan"), "{text}");
    assert!(text.contains("https://masto.test/@fan/110001"), "{text}");
    let listed = clarion.ok(&["inbox", "ls", "--platform", "mastodon"]);
    assert!(
        listed.contains("@fan@masto.test") || listed.contains("fan@masto.test"),
        "{listed}"
    );

    // A stranger is refused; a note stays internal; the manager answers.
    let stranger = fakes.chat_reply(STRANGER, bridged, "I can answer that: never!");
    let note = fakes.chat_reply(MANAGER, bridged, "note: VIP customer, be nice");
    let answer = fakes.chat_reply(MANAGER, bridged, "It starts on Monday at 9!");

    let sent = wait_until(Duration::from_secs(30), || async {
        fakes.statuses().iter().any(|s| {
            s["status"]
                .as_str()
                .is_some_and(|t| t.contains("It starts on Monday"))
        })
    })
    .await;
    assert!(sent, "the reply reached Mastodon:\n{}", run.log());
    let statuses = fakes.statuses();
    assert_eq!(
        statuses.len(),
        1,
        "only the manager's reply was posted: {statuses:?}"
    );
    assert_eq!(
        statuses[0]["in_reply_to_id"],
        json!("110001"),
        "threaded under the mention"
    );

    // Confirmations in the group, each as a reply to the message it answers.
    let replied_to = |id: i64| {
        let sent = fakes.sent();
        sent.iter()
            .find(|m| m["request"]["reply_parameters"]["message_id"] == json!(id))
            .and_then(|m| m["request"]["text"].as_str().map(str::to_owned))
    };
    let confirmed = wait_until(Duration::from_secs(30), || async {
        replied_to(answer).is_some()
    })
    .await;
    assert!(confirmed, "the manager was told:\n{}", run.log());
    let confirmation = replied_to(answer).unwrap();
    assert!(
        confirmation.contains("Sent") && confirmation.contains("https://masto.test/@clarion/"),
        "{confirmation}"
    );
    let refusal = replied_to(stranger).expect("the stranger was answered");
    assert!(
        refusal.contains("not allowed") && refusal.contains("nothing was sent"),
        "{refusal}"
    );
    assert!(replied_to(note).unwrap().contains("Note saved"));

    // The conversation: the note, the reply (published), pending.
    let ls = clarion.ok(&["inbox", "ls", "--json"]);
    let conversation: Value = serde_json::from_str(ls.lines().next().unwrap()).unwrap();
    assert_eq!(
        conversation["status"],
        json!("pending"),
        "answered: waiting on the fan"
    );
    let id = conversation["id"].as_i64().unwrap().to_string();
    let show = clarion.ok(&["inbox", "show", &id]);
    assert!(show.contains("VIP customer, be nice"), "{show}");
    assert!(
        show.contains("published") && show.contains("It starts on Monday"),
        "{show}"
    );
    assert!(
        !show.contains("never!"),
        "the stranger's text is nowhere: {show}"
    );
    clarion.ok(&["inbox", "resolve", &id]);
    let resolved = clarion.ok(&["inbox", "ls", "--status", "resolved"]);
    assert!(resolved.contains("masto"), "{resolved}");
    let status = clarion.ok(&["listeners", "status"]);
    assert!(
        status.contains("masto") && status.contains("listening"),
        "{status}"
    );
    assert_eq!(fakes.conflicts(), 0, "one getUpdates at a time");
}

#[tokio::test(flavor = "multi_thread")]
async fn mastodon_mention_answered_from_telegram_sqlite() {
    mastodon_mention_answered_from_telegram(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mastodon_mention_answered_from_telegram_postgres() {
    if let Some(db) = TestDb::postgres().await {
        mastodon_mention_answered_from_telegram(Some(db)).await;
    }
}

/// The bridge as a forum supergroup: one topic per conversation. The
/// manager writes in the topic without replying to anything; a second item
/// of the same Mastodon thread goes into the same topic.
async fn mastodon_mention_answered_in_a_telegram_topic(db: Option<TestDb>) {
    let fakes = Fakes::start().await;
    fakes.mention("110001", "@clarion when does the spring sale start?");
    let sink = Sink::start(SinkRules::default()).await;
    let mut settings = Settings::new(&sink);
    settings.extra_channels = channels(&fakes.base).replace(
        "parse_mode = \"plain\"\n",
        "parse_mode = \"plain\"\ntopics = true\n",
    );
    assert!(settings.extra_channels.contains("topics = true"));
    let mut clarion = Clarion::new(db, &settings);
    clarion.env = vec![
        ("E2E_MASTODON_TOKEN".into(), "masto-token".into()),
        ("E2E_TELEGRAM_TOKEN".into(), "123:telegram".into()),
    ];
    let run = clarion.run();
    run.ready().await;

    // The mention opens a topic named after the fan, and is its first message.
    let shown = wait_until(Duration::from_secs(30), || async {
        fakes.sent().iter().any(|m| {
            m["request"]["text"]
                .as_str()
                .is_some_and(|t| t.contains("when does the spring sale start?"))
        })
    })
    .await;
    assert!(shown, "the mention reached the bridge:\n{}", run.log());
    let topics = fakes.topics();
    assert_eq!(topics.len(), 1, "one topic per conversation: {topics:?}");
    let (topic, asked) = &topics[0];
    assert_eq!(asked["chat_id"], json!(GROUP));
    assert!(
        asked["name"].as_str().is_some_and(|n| n.contains("A Fan")),
        "{asked}"
    );
    let first = fakes.sent()[0].clone();
    assert_eq!(
        first["request"]["message_thread_id"],
        json!(topic),
        "{first}"
    );

    // A stranger is refused, a note stays internal, and the manager's
    // answer, typed in the topic, is sent to Mastodon under the mention.
    let stranger = fakes.topic_message(STRANGER, *topic, "I can answer that: never!");
    let note = fakes.topic_message(MANAGER, *topic, "note: VIP customer, be nice");
    let answer = fakes.topic_message(MANAGER, *topic, "It starts on Monday at 9!");
    let sent = wait_until(Duration::from_secs(30), || async {
        fakes.statuses().iter().any(|s| {
            s["status"]
                .as_str()
                .is_some_and(|t| t.contains("It starts on Monday"))
        })
    })
    .await;
    assert!(sent, "the reply reached Mastodon:\n{}", run.log());
    let statuses = fakes.statuses();
    assert_eq!(statuses.len(), 1, "only the manager's reply: {statuses:?}");
    assert_eq!(statuses[0]["in_reply_to_id"], json!("110001"));

    // Each answer in the topic replies to the message it answers (which
    // keeps it in the topic).
    let replied_to = |id: i64| {
        fakes
            .sent()
            .iter()
            .find(|m| m["request"]["reply_parameters"]["message_id"] == json!(id))
            .and_then(|m| m["request"]["text"].as_str().map(str::to_owned))
    };
    let answered = wait_until(Duration::from_secs(30), || async {
        replied_to(answer).is_some() && replied_to(stranger).is_some() && replied_to(note).is_some()
    })
    .await;
    assert!(answered, "each message was answered:\n{}", run.log());
    assert!(replied_to(answer).unwrap().contains("Sent"));
    assert!(replied_to(stranger).unwrap().contains("not allowed"));
    assert!(replied_to(note).unwrap().contains("Note saved"));

    // A second mention in the same Mastodon thread: the same topic.
    fakes.reply_in_thread("110002", Some("110001"), "@clarion and the outlet?");
    let second = wait_until(Duration::from_secs(30), || async {
        fakes.sent().iter().any(|m| {
            m["request"]["text"]
                .as_str()
                .is_some_and(|t| t.contains("and the outlet?"))
        })
    })
    .await;
    assert!(second, "the second item was bridged:\n{}", run.log());
    assert_eq!(fakes.topics().len(), 1, "no second topic");
    let bridged_again = fakes
        .sent()
        .into_iter()
        .find(|m| {
            m["request"]["text"]
                .as_str()
                .is_some_and(|t| t.contains("and the outlet?"))
        })
        .unwrap();
    assert_eq!(
        bridged_again["request"]["reply_parameters"]["message_id"], first["message_id"],
        "in the topic, under its first message: {bridged_again}"
    );
    let show = clarion.ok(&["inbox", "show", "1"]);
    assert!(show.contains("VIP customer, be nice"), "{show}");
    assert!(!show.contains("never!"), "{show}");
}

#[tokio::test(flavor = "multi_thread")]
async fn mastodon_mention_answered_in_a_telegram_topic_sqlite() {
    mastodon_mention_answered_in_a_telegram_topic(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mastodon_mention_answered_in_a_telegram_topic_postgres() {
    if let Some(db) = TestDb::postgres().await {
        mastodon_mention_answered_in_a_telegram_topic(Some(db)).await;
    }
}

fn bluesky_channels(base: &str) -> String {
    format!(
        r#"
[[channels]]
name = "sky"
kind = "bluesky"
identifier = "{BSKY_HANDLE}"
app_password = {{ env = "E2E_BLUESKY_PASSWORD" }}
service = "{base}"
listen = true
listen_interval_secs = 5

[[channels]]
name = "ops"
kind = "telegram"
bot_token = {{ env = "E2E_TELEGRAM_TOKEN" }}
chat_id = "{GROUP}"
api_url = "{base}/"
parse_mode = "plain"
listen = true

[bridge]
channel = "ops"
allow_users = ["{MANAGER}"]
"#
    )
}

/// Our post, the top of the thread.
const ROOT1: &str = "at://did:plc:clarion/app.bsky.feed.post/root1";
/// The fan's earlier post in that thread.
const P1: &str = "at://did:plc:fan/app.bsky.feed.post/p1";
/// The fan's post that we answer.
const N1: &str = "at://did:plc:fan/app.bsky.feed.post/n1";

async fn bluesky_reply_answered_from_telegram(db: Option<TestDb>) {
    let fakes = Fakes::start().await;
    // Already there at the first start: the first run reads the newest page.
    let indexed = fakes.bsky_reply(
        "n1",
        "bafyn1",
        "and will the recording be online too?",
        (ROOT1, "bafyroot"),
        (P1, "bafyp1"),
    );
    let sink = Sink::start(SinkRules::default()).await;
    let mut settings = Settings::new(&sink);
    settings.extra_channels = bluesky_channels(&fakes.base);
    let mut clarion = Clarion::new(db, &settings);
    clarion.env = vec![
        ("E2E_BLUESKY_PASSWORD".into(), BSKY_PASSWORD.into()),
        ("E2E_TELEGRAM_TOKEN".into(), "123:telegram".into()),
    ];
    let run = clarion.run();
    run.ready().await;

    let bridged_with = |needle: &str| -> Vec<Value> {
        fakes
            .sent()
            .into_iter()
            .filter(|m| {
                m["request"]["text"]
                    .as_str()
                    .is_some_and(|t| t.contains(needle))
            })
            .collect()
    };
    let shown = wait_until(Duration::from_secs(30), || async {
        !bridged_with("will the recording be online too?").is_empty()
    })
    .await;
    assert!(
        shown,
        "the Bluesky reply reached the bridge:\n{}",
        run.log()
    );
    let message = &bridged_with("will the recording be online too?")[0];
    let bridged = message["message_id"].as_i64().unwrap();
    let text = message["request"]["text"].as_str().unwrap().to_owned();
    assert!(
        text.contains("reply on sky") && text.contains("A Fan (@fan.bsky.test)"),
        "{text}"
    );
    assert!(
        text.contains("https://bsky.app/profile/fan.bsky.test/post/n1"),
        "{text}"
    );
    let listed = clarion.ok(&["inbox", "ls", "--platform", "bluesky"]);
    assert!(listed.contains("fan.bsky.test"), "{listed}");

    // The listener asked as documented, and marked what it read as seen.
    let lists = fakes.calls("/xrpc/app.bsky.notification.listNotifications");
    assert!(!lists.is_empty());
    assert_eq!(lists[0].params("reasons"), ["mention", "reply", "quote"]);
    assert_eq!(
        lists[0].param("cursor"),
        None,
        "the first run reads the newest page"
    );
    assert_eq!(
        lists[0].auth.as_deref(),
        Some(format!("Bearer {BSKY_ACCESS}").as_str())
    );
    let seen = wait_until(Duration::from_secs(10), || async {
        fakes
            .calls("/xrpc/app.bsky.notification.updateSeen")
            .iter()
            .any(|c| c.body == json!({"seenAt": indexed}))
    })
    .await;
    assert!(
        seen,
        "updateSeen up to the fan's post: {:?}",
        fakes.calls("updateSeen")
    );

    // The manager answers in the group.
    let answer = fakes.chat_reply(MANAGER, bridged, "Yes, by Friday on our site!");
    let posted = wait_until(Duration::from_secs(30), || async {
        !fakes.records().is_empty()
    })
    .await;
    assert!(posted, "the reply reached Bluesky:\n{}", run.log());
    let records = fakes.records();
    assert_eq!(records.len(), 1, "one record: {records:?}");
    let created = &records[0];
    assert_eq!(created["repo"], json!(BSKY_DID));
    assert_eq!(created["collection"], json!("app.bsky.feed.post"));
    let record = &created["record"];
    assert_eq!(record["$type"], json!("app.bsky.feed.post"));
    assert_eq!(record["text"], json!("Yes, by Friday on our site!"));
    assert_eq!(
        record["reply"]["root"],
        json!({"uri": ROOT1, "cid": "bafyroot"}),
        "the thread's root is our post"
    );
    assert_eq!(
        record["reply"]["parent"],
        json!({"uri": N1, "cid": "bafyn1"}),
        "the parent is the fan's post we answer, not the one it answered"
    );
    let rkey = created["rkey"].as_str().expect("a record key").to_owned();

    // Confirmed in the group, as a reply to the manager's message.
    let replied_to = |id: i64| {
        fakes
            .sent()
            .iter()
            .find(|m| m["request"]["reply_parameters"]["message_id"] == json!(id))
            .and_then(|m| m["request"]["text"].as_str().map(str::to_owned))
    };
    let confirmed = wait_until(Duration::from_secs(30), || async {
        replied_to(answer).is_some()
    })
    .await;
    assert!(confirmed, "the manager was told:\n{}", run.log());
    let confirmation = replied_to(answer).unwrap();
    assert!(
        confirmation.contains("Sent")
            && confirmation.contains(&format!("https://bsky.app/profile/{BSKY_DID}/post/{rkey}")),
        "{confirmation}"
    );
    // The listener's session was stored and reused by the publisher.
    assert_eq!(
        fakes.calls("/xrpc/com.atproto.server.createSession").len(),
        1,
        "one login for the listener and the publisher"
    );

    // The fan answers our reply: same conversation, shown once more; the
    // first post, read again on every poll since, is not shown twice.
    let ours = format!("at://{BSKY_DID}/app.bsky.feed.post/{rkey}");
    let conversation = text
        .split("conversation #")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .expect("the bridged text names the conversation")
        .to_owned();
    fakes.bsky_reply(
        "n2",
        "bafyn2",
        "great, thank you!",
        (ROOT1, "bafyroot"),
        (&ours, "bafyreply"),
    );
    let again = wait_until(Duration::from_secs(30), || async {
        !bridged_with("great, thank you!").is_empty()
    })
    .await;
    assert!(again, "the second reply reached the bridge:\n{}", run.log());
    let second = bridged_with("great, thank you!")[0]["request"]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        second.contains(&format!("conversation #{conversation}\n")),
        "threaded by its root: {second}"
    );
    assert_eq!(
        bridged_with("will the recording be online too?").len(),
        1,
        "each post is shown once"
    );
    assert_eq!(fakes.records().len(), 1, "nothing else was posted");
    let show = clarion.ok(&["inbox", "show", &conversation]);
    assert!(
        show.contains("published") && show.contains("Yes, by Friday on our site!"),
        "{show}"
    );
    assert!(show.contains("great, thank you!"), "{show}");
    let status = clarion.ok(&["listeners", "status"]);
    assert!(
        status.contains("sky") && status.contains("listening"),
        "{status}"
    );
    assert_eq!(fakes.conflicts(), 0, "one getUpdates at a time");
}

#[tokio::test(flavor = "multi_thread")]
async fn bluesky_reply_answered_from_telegram_sqlite() {
    bluesky_reply_answered_from_telegram(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bluesky_reply_answered_from_telegram_postgres() {
    if let Some(db) = TestDb::postgres().await {
        bluesky_reply_answered_from_telegram(Some(db)).await;
    }
}

/// A bridge that cannot work is refused at start, naming what is wrong.
#[tokio::test(flavor = "multi_thread")]
async fn a_bridge_that_cannot_work_is_refused_at_start() {
    let sink = Sink::start(SinkRules::default()).await;
    let base = "http://127.0.0.1:9";
    for (change, expected) in [
        (
            "allow_users = [\"1\"]\nthreads = true\n",
            "[bridge] threads = true: channel `ops` (telegram) cannot start threads",
        ),
        (
            "allow_users = [\"1\"]\nchannel_ids = [\"x\"]\n",
            "unknown field `channel_ids`",
        ),
    ] {
        let mut settings = Settings::new(&sink);
        settings.extra_channels =
            channels(base).replace(&format!("allow_users = [\"{MANAGER}\"]\n"), change);
        let mut clarion = Clarion::new(None, &settings);
        clarion.env = vec![
            ("E2E_MASTODON_TOKEN".into(), "masto-token".into()),
            ("E2E_TELEGRAM_TOKEN".into(), "123:telegram".into()),
        ];
        let out = clarion.cli(&["run", "--bind", "127.0.0.1:0"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{change}: {stderr}");
        assert!(stderr.contains(expected), "{change}: {stderr}");
    }
}

/// A creator past their deadline with posts owed is told to the bridge
/// once: not again on the next check, not again after a crash and restart.
async fn overdue_creators_are_told_once(db: Option<TestDb>) {
    let fakes = Fakes::start().await;
    let sink = Sink::start(SinkRules::default()).await;
    let mut settings = Settings::new(&sink);
    settings.extra_channels = format!(
        "{}\n[attribution]\noverdue_check_secs = 1\n",
        channels(&fakes.base)
    );
    let mut clarion = Clarion::new(db, &settings);
    clarion.env = vec![
        ("E2E_MASTODON_TOKEN".into(), "masto-token".into()),
        ("E2E_TELEGRAM_TOKEN".into(), "123:telegram".into()),
    ];
    let campaigns = clarion.dir.path().join("content/campaigns");
    std::fs::create_dir_all(&campaigns).unwrap();
    let campaign = |name: &str, creator: &str, deadline: &str| {
        format!(
            "name = \"{name}\"\nstarts = \"2026-01-01\"\nends = \"2030-12-31\"\ncurrency = \"USD\"\n\
             [[creators]]\nname = \"{creator}\"\nhandles = {{ mastodon = \"{creator}@masto.test\" }}\n\
             posts_contracted = 2\ndeadline = \"{deadline}\"\n"
        )
    };
    std::fs::write(
        campaigns.join("spring.toml"),
        campaign("spring", "ann", "2026-01-02"),
    )
    .unwrap();
    // Not due yet: never told.
    std::fs::write(
        campaigns.join("later.toml"),
        campaign("later", "dan", "2030-01-01"),
    )
    .unwrap();
    let notices = |who: &str| {
        fakes
            .sent()
            .iter()
            .filter(|m| {
                m["request"]["text"]
                    .as_str()
                    .is_some_and(|t| t.contains(&format!("creator {who} has delivered")))
            })
            .count()
    };
    let mut run = clarion.run();
    run.ready().await;
    let told = wait_until(Duration::from_secs(30), || async { notices("ann") >= 1 }).await;
    assert!(
        told,
        "the overdue creator reached the bridge:\n{}",
        run.log()
    );
    let text = fakes
        .sent()
        .iter()
        .find_map(|m| m["request"]["text"].as_str().map(str::to_owned))
        .unwrap();
    assert!(
        text.contains("Campaign spring: creator ann has delivered 0 of 2 contracted post(s) (deadline 2026-01-02)"),
        "{text}"
    );

    // A crash, a new overdue campaign, a restart: the new creator is told
    // in the same check that finds ann again, and ann is not told twice.
    run.kill();
    std::fs::write(
        campaigns.join("summer.toml"),
        campaign("summer", "cat", "2026-02-01"),
    )
    .unwrap();
    let run = clarion.run();
    run.ready().await;
    let told = wait_until(Duration::from_secs(30), || async { notices("cat") >= 1 }).await;
    assert!(told, "{}", run.log());
    assert_eq!(notices("ann"), 1, "{:?}", fakes.sent());
    assert_eq!(notices("cat"), 1, "{:?}", fakes.sent());
    assert_eq!(notices("dan"), 0, "{:?}", fakes.sent());
}

#[tokio::test(flavor = "multi_thread")]
async fn overdue_creators_are_told_once_sqlite() {
    overdue_creators_are_told_once(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn overdue_creators_are_told_once_postgres() {
    if let Some(db) = TestDb::postgres().await {
        overdue_creators_are_told_once(Some(db)).await;
    }
}
