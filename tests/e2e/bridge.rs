//! The reply bridge end to end with the real binary: a mention on a fake
//! Mastodon is shown in a fake Telegram group; a manager's reply there goes
//! back to Mastodon as a threaded reply (`in_reply_to_id`) and is confirmed
//! in the group; `note:` stays internal; an unauthorized user is refused and
//! nothing is sent. Both fakes answer in their documented wire formats.

use std::sync::{Arc, Mutex};
use std::time::Duration;

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

#[derive(Default)]
struct Fake {
    /// Mastodon notifications (oldest first).
    notifications: Vec<Value>,
    /// Statuses Clarion posted on Mastodon.
    statuses: Vec<Value>,
    /// Telegram updates waiting for `getUpdates`.
    updates: Vec<Value>,
    /// Messages Clarion sent on Telegram.
    sent: Vec<Value>,
    next_id: i64,
}

#[derive(Clone)]
struct Fakes {
    base: String,
    state: Arc<Mutex<Fake>>,
}

impl Fakes {
    async fn start() -> Self {
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

    fn mention(&self, status_id: &str, text: &str) {
        let mut s = self.state.lock().unwrap();
        let n = s.notifications.len() + 1;
        s.notifications.push(json!({
            "id": format!("{}", 70_000 + n), "type": "mention", "created_at": "2026-11-27T10:00:00.000Z",
            "account": {"id": "77", "username": "fan", "acct": "fan@masto.test", "display_name": "A Fan", "bot": false},
            "status": {
                "id": status_id, "created_at": "2026-11-27T10:00:00.000Z", "in_reply_to_id": null,
                "visibility": "public", "spoiler_text": "", "content": format!("<p>{text}</p>"),
                "url": format!("https://masto.test/@fan/{status_id}"), "uri": format!("https://masto.test/users/fan/statuses/{status_id}"),
                "account": {"id": "77", "username": "fan", "acct": "fan@masto.test", "display_name": "A Fan", "bot": false}
            }
        }));
    }

    /// A group message from `user` replying to the bot's message `to`.
    fn chat_reply(&self, user: i64, to: i64, text: &str) -> i64 {
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

    fn sent(&self) -> Vec<Value> {
        self.state.lock().unwrap().sent.clone()
    }

    fn statuses(&self) -> Vec<Value> {
        self.state.lock().unwrap().statuses.clone()
    }
}

async fn answer(State(state): State<Arc<Mutex<Fake>>>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let bytes: Bytes = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let lower = path.to_lowercase();
    if lower.ends_with("/getupdates") {
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
    match (method, path.as_str()) {
        (_, p) if p.to_lowercase().ends_with("/getme") => Json(json!({
            "ok": true,
            "result": {"id": BOT_ID, "is_bot": true, "first_name": "Clarion", "username": "clarion_bot",
                       "can_join_groups": true, "can_read_all_group_messages": false, "supports_inline_queries": false,
                       "can_connect_to_business": false, "has_main_web_app": false}
        }))
        .into_response(),
        (_, p) if p.to_lowercase().ends_with("/sendmessage") => {
            s.next_id += 1;
            let id = s.next_id;
            s.sent.push(json!({"message_id": id, "request": body.clone()}));
            Json(json!({
                "ok": true,
                "result": {
                    "message_id": id, "date": 1_764_230_400,
                    "chat": {"id": GROUP, "type": "supergroup", "title": "Community"},
                    "from": {"id": BOT_ID, "is_bot": true, "first_name": "Clarion", "username": "clarion_bot"},
                    "text": body["text"]
                }
            }))
            .into_response()
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
        // No streaming API here: the listener falls back to polling.
        _ => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "Record not found"})),
        )
            .into_response(),
    }
}

fn channels(base: &str) -> String {
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
