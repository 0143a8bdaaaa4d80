//! The reply bridge end to end with the real binary, with a Discord channel
//! as the bridge: a mention on a fake Mastodon is shown in a fake Discord
//! channel; a manager's reply there goes back to Mastodon as a threaded
//! reply (`in_reply_to_id`) and is confirmed in the channel; `note:` stays
//! internal; an unauthorized user is refused and nothing is sent.
//!
//! The Mastodon side is `bridge.rs`'s [`Fakes`]. The fake Discord is the
//! minimum of the one in `crates/adapters/src/discord/listen.rs`: REST
//! (`/users/@me`, `/gateway`, `/gateway/bot` naming a local `ws://` gateway,
//! channel messages) behind `api_proxy`, and a gateway that runs HELLO,
//! IDENTIFY -> READY, HEARTBEAT -> ACK and then dispatches MESSAGE_CREATE.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as Frame;

use crate::bridge::Fakes;
use crate::harness::*;

const TOKEN: &str = "MTIz.fake.discord-bridge-token";
const BOT: u64 = 4242;
const CHANNEL: u64 = 555;
const GUILD: u64 = 777;
const MANAGER: u64 = 9001;
const STRANGER: u64 = 666;
/// 2015-01-01T00:00:00Z, where Discord snowflakes count from.
const DISCORD_EPOCH_MS: i64 = 1_420_070_400_000;

/// A message Clarion posted through `POST /channels/{id}/messages`.
#[derive(Debug, Clone)]
struct Posted {
    channel: String,
    /// The request body.
    body: Value,
    /// The message as the fake answered it (what a reply references).
    message: Value,
}

#[derive(Default)]
struct DiscordState {
    posted: Vec<Posted>,
    /// `Authorization` headers of every REST request.
    auth: Vec<Option<String>>,
    /// IDENTIFY frames received, and heartbeats answered.
    identified: usize,
    heartbeats: usize,
    seq: u64,
    next: u64,
}

impl DiscordState {
    /// A fresh snowflake: now, plus a counter in the low bits.
    fn snowflake(&mut self) -> String {
        self.next += 1;
        let ms = (chrono::Utc::now().timestamp_millis() - DISCORD_EPOCH_MS) as u64;
        ((ms << 22) | (self.next & 0xfff)).to_string()
    }
}

struct FakeDiscord {
    base: String,
    state: Arc<Mutex<DiscordState>>,
    dispatches: mpsc::UnboundedSender<Value>,
}

impl FakeDiscord {
    async fn start() -> Self {
        let state: Arc<Mutex<DiscordState>> = Arc::default();
        let gateway = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ws_url = format!("ws://{}", gateway.local_addr().unwrap());
        let (dispatches, queue) = mpsc::unbounded_channel();
        let queue = Arc::new(tokio::sync::Mutex::new(queue));
        {
            let (state, ws_url) = (state.clone(), ws_url.clone());
            tokio::spawn(async move {
                while let Ok((tcp, _)) = gateway.accept().await {
                    let (state, queue, ws_url) = (state.clone(), queue.clone(), ws_url.clone());
                    tokio::spawn(async move {
                        let _ = gateway_connection(tcp, state, queue, ws_url).await;
                    });
                }
            });
        }
        let record = state.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let (record, ws_url) = (record.clone(), ws_url.clone());
                async move { rest(&record, &method, uri.path(), &headers, &body, &ws_url) }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            base,
            state,
            dispatches,
        }
    }

    fn posted(&self) -> Vec<Posted> {
        self.state.lock().unwrap().posted.clone()
    }

    /// The message Clarion posted in reply to message `id`, if any.
    fn reply_to(&self, id: &str) -> Option<Posted> {
        self.posted()
            .into_iter()
            .find(|p| p.body["message_reference"]["message_id"].as_str() == Some(id))
    }

    /// A MESSAGE_CREATE in the channel from `author`, replying (ping on) to
    /// the bot's message `to`. Returns the new message's id.
    fn reply(&self, author: Value, to: &Value, text: &str) -> String {
        let id = self.state.lock().unwrap().snowflake();
        let mut message = message(&id, author, text);
        message["type"] = json!(19);
        // A reply pings the author of the message it answers by default.
        message["mentions"] = json!([user(BOT, "clarion", true)]);
        message["message_reference"] = json!({
            "type": 0, "message_id": to["id"], "channel_id": CHANNEL.to_string(),
            "guild_id": GUILD.to_string()
        });
        message["referenced_message"] = to.clone();
        self.dispatches.send(message).unwrap();
        id
    }
}

fn user(id: u64, name: &str, bot: bool) -> Value {
    json!({
        "id": id.to_string(), "username": name, "discriminator": "0",
        "global_name": null, "avatar": null, "bot": bot
    })
}

/// A guild message in channel 555, in the gateway's shape.
fn message(id: &str, author: Value, content: &str) -> Value {
    json!({
        "id": id, "channel_id": CHANNEL.to_string(), "guild_id": GUILD.to_string(),
        "author": author, "content": content,
        "member": {
            "roles": [], "joined_at": "2024-01-01T00:00:00.000000+00:00",
            "deaf": false, "mute": false, "nick": null, "flags": 0
        },
        "timestamp": "2026-11-27T10:00:00.000000+00:00", "edited_timestamp": null,
        "tts": false, "mention_everyone": false, "mentions": [], "mention_roles": [],
        "attachments": [], "embeds": [], "pinned": false, "type": 0
    })
}

/// Discord's REST API, as far as the adapter and the listener use it.
fn rest(
    state: &Mutex<DiscordState>,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &Bytes,
    ws_url: &str,
) -> Response {
    let mut s = state.lock().unwrap();
    s.auth.push(
        headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    );
    match (method.as_str(), path) {
        ("GET", "/api/v10/users/@me") => axum::Json(user(BOT, "clarion", true)).into_response(),
        ("GET", "/api/v10/gateway") => axum::Json(json!({"url": ws_url})).into_response(),
        ("GET", "/api/v10/gateway/bot") => axum::Json(json!({
            "url": ws_url, "shards": 1,
            "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 5000, "max_concurrency": 1}
        }))
        .into_response(),
        // The backfill after a re-identify: nothing was missed.
        ("GET", p) if p.ends_with("/messages") => axum::Json(json!([])).into_response(),
        ("POST", p) if p.starts_with("/api/v10/channels/") && p.ends_with("/messages") => {
            let channel = p
                .trim_start_matches("/api/v10/channels/")
                .trim_end_matches("/messages")
                .to_owned();
            let sent: Value = serde_json::from_slice(body).unwrap_or_default();
            let id = s.snowflake();
            let mut created = message(&id, user(BOT, "clarion", true), "");
            // REST answers leave `guild_id` and `member` out.
            created.as_object_mut().unwrap().remove("guild_id");
            created.as_object_mut().unwrap().remove("member");
            created["channel_id"] = json!(channel);
            created["content"] = sent["content"].clone();
            if sent.get("message_reference").is_some() {
                created["type"] = json!(19);
                created["message_reference"] = sent["message_reference"].clone();
            }
            s.posted.push(Posted {
                channel,
                body: sent,
                message: created.clone(),
            });
            axum::Json(created).into_response()
        }
        _ => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"message": "404: Not Found", "code": 0})),
        )
            .into_response(),
    }
}

/// One gateway connection: HELLO; IDENTIFY -> READY (RESUME -> RESUMED);
/// HEARTBEAT -> ACK; then the queued MESSAGE_CREATE dispatches.
async fn gateway_connection(
    tcp: tokio::net::TcpStream,
    state: Arc<Mutex<DiscordState>>,
    queue: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Value>>>,
    ws_url: String,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut ws = tokio_tungstenite::accept_async(tcp).await?;
    let dispatch = |t: &str, d: Value| {
        let mut s = state.lock().unwrap();
        s.seq += 1;
        Frame::Text(json!({"op": 0, "t": t, "s": s.seq, "d": d}).to_string())
    };
    let ack = || {
        state.lock().unwrap().heartbeats += 1;
        Frame::Text(json!({"op": 11}).to_string())
    };
    let op = |frame: Frame| -> Option<u64> {
        let Frame::Text(text) = frame else {
            return None;
        };
        serde_json::from_str::<Value>(&text).ok()?["op"].as_u64()
    };
    ws.send(Frame::Text(
        json!({"op": 10, "d": {"heartbeat_interval": 1000}}).to_string(),
    ))
    .await?;
    loop {
        let Some(frame) = ws.next().await else {
            return Ok(());
        };
        match op(frame?) {
            Some(1) => ws.send(ack()).await?,
            Some(2) => {
                state.lock().unwrap().identified += 1;
                let ready = json!({
                    "v": 10,
                    "user": user(BOT, "clarion", true),
                    "guilds": [{"id": GUILD.to_string(), "unavailable": true}],
                    "session_id": "fake-session",
                    "resume_gateway_url": ws_url,
                    "application": {"id": BOT.to_string(), "flags": 0}
                });
                ws.send(dispatch("READY", ready)).await?;
                break;
            }
            Some(6) => {
                ws.send(dispatch("RESUMED", json!({}))).await?;
                break;
            }
            _ => {}
        }
    }
    let mut queue = queue.lock().await;
    loop {
        tokio::select! {
            frame = ws.next() => match frame {
                Some(Ok(frame)) => {
                    if op(frame) == Some(1) {
                        ws.send(ack()).await?;
                    }
                }
                _ => return Ok(()),
            },
            message = queue.recv() => match message {
                Some(message) => ws.send(dispatch("MESSAGE_CREATE", message)).await?,
                None => return Ok(()),
            },
        }
    }
}

fn channels(masto: &str, discord: &str) -> String {
    format!(
        r#"
[[channels]]
name = "masto"
kind = "mastodon"
instance = "{masto}"
access_token = {{ env = "E2E_MASTODON_TOKEN" }}
listen = true
listen_interval_secs = 5

[[channels]]
name = "ops"
kind = "discord"
bot_token = {{ env = "E2E_DISCORD_TOKEN" }}
channel_id = "{CHANNEL}"
guild_id = "{GUILD}"
api_proxy = "{discord}"
listen = true

[bridge]
channel = "ops"
allow_users = ["{MANAGER}"]
"#
    )
}

async fn mastodon_mention_answered_from_discord(db: Option<TestDb>) {
    let fakes = Fakes::start().await;
    fakes.mention("110001", "@clarion when does the spring sale start?");
    let discord = FakeDiscord::start().await;
    let sink = Sink::start(SinkRules::default()).await;
    let mut settings = Settings::new(&sink);
    settings.extra_channels = channels(&fakes.base, &discord.base);
    let mut clarion = Clarion::new(db, &settings);
    clarion.env = vec![
        ("E2E_MASTODON_TOKEN".into(), "masto-token".into()),
        ("E2E_DISCORD_TOKEN".into(), TOKEN.into()),
    ];
    let run = clarion.run();
    run.ready().await;

    // The mention is captured and shown in the channel, as a message of its own.
    let shown = wait_until(Duration::from_secs(30), || async {
        discord.posted().iter().any(|p| {
            p.body["content"]
                .as_str()
                .is_some_and(|t| t.contains("when does the spring sale start?"))
        })
    })
    .await;
    assert!(shown, "the mention reached the bridge:\n{}", run.log());
    let bridged = discord.posted()[0].clone();
    assert_eq!(bridged.channel, CHANNEL.to_string(), "{bridged:?}");
    assert!(
        bridged.body.get("message_reference").is_none(),
        "a message of its own: {bridged:?}"
    );
    let text = bridged.body["content"].as_str().unwrap().to_owned();
    assert!(text.contains("masto") && text.contains("A Fan"), "{text}");
    assert!(text.contains("https://masto.test/@fan/110001"), "{text}");

    // The listener is on the gateway before anyone answers.
    let identified = wait_until(Duration::from_secs(30), || async {
        discord.state.lock().unwrap().identified > 0
    })
    .await;
    assert!(identified, "the listener identified:\n{}", run.log());

    // A stranger is refused; a note stays internal; the manager answers.
    let stranger = discord.reply(
        user(STRANGER, "troll", false),
        &bridged.message,
        "I can answer that: never!",
    );
    let note = discord.reply(
        user(MANAGER, "sam", false),
        &bridged.message,
        "note: VIP customer, be nice",
    );
    let answer = discord.reply(
        user(MANAGER, "sam", false),
        &bridged.message,
        "It starts on Monday at 9!",
    );

    let sent = wait_until(Duration::from_secs(30), || async {
        fakes.statuses().iter().any(|s| {
            s["status"]
                .as_str()
                .is_some_and(|t| t.contains("It starts on Monday"))
        })
    })
    .await;
    assert!(sent, "the reply reached Mastodon:\n{}", run.log());

    // Confirmations in the channel, each as a reply to the message it answers.
    let confirmed = wait_until(Duration::from_secs(30), || async {
        discord.reply_to(&answer).is_some()
    })
    .await;
    assert!(confirmed, "the manager was told:\n{}", run.log());
    let confirmation = discord.reply_to(&answer).unwrap();
    let confirmation = confirmation.body["content"].as_str().unwrap_or_default();
    assert!(
        confirmation.contains("Sent") && confirmation.contains("https://masto.test/@clarion/"),
        "{confirmation}"
    );
    // Gateway events are handled in their own tasks and chat messages are
    // paced, so the refusal and the note's receipt may come after the
    // confirmation: wait for them too.
    let answered = wait_until(Duration::from_secs(30), || async {
        discord.reply_to(&stranger).is_some() && discord.reply_to(&note).is_some()
    })
    .await;
    assert!(answered, "the stranger and the note were answered");
    let refusal = discord
        .reply_to(&stranger)
        .expect("the stranger was answered");
    let refusal = refusal.body["content"].as_str().unwrap_or_default();
    assert!(
        refusal.contains("not allowed") && refusal.contains("nothing was sent"),
        "{refusal}"
    );
    let noted = discord.reply_to(&note).expect("the note was acknowledged");
    assert!(
        noted.body["content"]
            .as_str()
            .is_some_and(|t| t.contains("Note saved")),
        "{noted:?}"
    );

    // Exactly one status: the manager's answer, threaded under the mention.
    let statuses = fakes.statuses();
    assert_eq!(
        statuses.len(),
        1,
        "only the manager's reply was posted: {statuses:?}"
    );
    assert_eq!(statuses[0]["status"], json!("It starts on Monday at 9!"));
    assert_eq!(
        statuses[0]["in_reply_to_id"],
        json!("110001"),
        "threaded under the mention"
    );
    // The confirmation links the status that was posted.
    let posted_id = confirmation
        .split("https://masto.test/@clarion/")
        .nth(1)
        .unwrap_or_default()
        .trim();
    assert!(
        !posted_id.is_empty() && posted_id.chars().all(|c| c.is_ascii_digit()),
        "{confirmation}"
    );
    assert!(
        discord
            .state
            .lock()
            .unwrap()
            .auth
            .iter()
            .all(|a| a.as_deref() == Some(&format!("Bot {TOKEN}"))),
        "every Discord request carries the bot token"
    );

    // The conversation: the note, the reply (published); the stranger is nowhere.
    let ls = clarion.ok(&["inbox", "ls", "--json"]);
    let conversation: Value = serde_json::from_str(ls.lines().next().unwrap()).unwrap();
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
    // Nothing more reached Mastodon meanwhile.
    assert_eq!(fakes.statuses().len(), 1, "{:?}", fakes.statuses());
    assert!(
        !discord.posted().iter().any(|p| p.body["content"]
            .as_str()
            .is_some_and(|t| t.contains("never!"))),
        "the stranger's text was not echoed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mastodon_mention_answered_from_discord_sqlite() {
    mastodon_mention_answered_from_discord(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mastodon_mention_answered_from_discord_postgres() {
    if let Some(db) = TestDb::postgres().await {
        mastodon_mention_answered_from_discord(Some(db)).await;
    }
}
