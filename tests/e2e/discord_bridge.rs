//! The reply bridge end to end with the real binary, with a Discord channel
//! as the bridge: a mention on a fake Mastodon opens a thread in a fake
//! Discord channel; a manager's answer in that thread goes back to Mastodon
//! as a threaded reply (`in_reply_to_id`) and is confirmed in the thread;
//! `note:` stays internal; a member of an allowed role may act; an
//! unauthorized user is refused and nothing is sent.
//!
//! The Mastodon side is `bridge.rs`'s [`Fakes`]. The fake Discord is the
//! minimum of the one in `crates/adapters/src/discord/listen.rs`: REST
//! (`/users/@me`, `/gateway`, `/gateway/bot` naming a local `ws://` gateway,
//! channel messages, the channel and its threads) behind `api_proxy`, and a
//! gateway that runs HELLO, IDENTIFY -> READY, HEARTBEAT -> ACK and then
//! dispatches THREAD_CREATE and MESSAGE_CREATE.

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
/// A moderator allowed by role, not by user id.
const MODERATOR: u64 = 9002;
const MOD_ROLE: u64 = 888;
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
    /// Threads created with `POST /channels/{id}/threads`: (id, body).
    threads: Vec<(String, Value)>,
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
    /// Gateway dispatches to send: (event name, data).
    dispatches: mpsc::UnboundedSender<(&'static str, Value)>,
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
        let events = dispatches.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let (record, ws_url, events) = (record.clone(), ws_url.clone(), events.clone());
                async move {
                    let request = Request {
                        method: &method,
                        path: uri.path(),
                        headers: &headers,
                        body: &body,
                    };
                    rest(&record, request, &ws_url, &events)
                }
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
        message["channel_id"] = to["channel_id"].clone();
        message["message_reference"]["channel_id"] = to["channel_id"].clone();
        self.dispatches.send(("MESSAGE_CREATE", message)).unwrap();
        id
    }

    /// A MESSAGE_CREATE in `thread` from `author` that answers no message
    /// and mentions nobody. Returns the new message's id.
    fn write_in(&self, thread: &str, author: Value, text: &str) -> String {
        let id = self.state.lock().unwrap().snowflake();
        let mut message = message(&id, author, text);
        message["channel_id"] = json!(thread);
        self.dispatches.send(("MESSAGE_CREATE", message)).unwrap();
        id
    }
}

/// One REST request to the fake.
struct Request<'a> {
    method: &'a Method,
    path: &'a str,
    headers: &'a HeaderMap,
    body: &'a Bytes,
}

fn user(id: u64, name: &str, bot: bool) -> Value {
    json!({
        "id": id.to_string(), "username": name, "discriminator": "0",
        "global_name": null, "avatar": null, "bot": bot
    })
}

/// A guild message in channel 555, in the gateway's shape.
fn message(id: &str, author: Value, content: &str) -> Value {
    let roles = match author["id"].as_str() {
        Some(id) if id == MODERATOR.to_string() => json!([MOD_ROLE.to_string()]),
        _ => json!([]),
    };
    json!({
        "id": id, "channel_id": CHANNEL.to_string(), "guild_id": GUILD.to_string(),
        "author": author, "content": content,
        "member": {
            "roles": roles, "joined_at": "2024-01-01T00:00:00.000000+00:00",
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
    request: Request<'_>,
    ws_url: &str,
    events: &mpsc::UnboundedSender<(&'static str, Value)>,
) -> Response {
    let Request {
        method,
        path,
        headers,
        body,
    } = request;
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
        // A text channel (type 0): threads are started beside messages.
        ("GET", p) if p == format!("/api/v10/channels/{CHANNEL}") => axum::Json(json!({
            "id": CHANNEL.to_string(), "type": 0, "guild_id": GUILD.to_string(), "name": "ops"
        }))
        .into_response(),
        // Start Thread without Message: a public thread (type 11) owned by
        // the bot, announced on the gateway with THREAD_CREATE.
        ("POST", p) if p == format!("/api/v10/channels/{CHANNEL}/threads") => {
            let asked: Value = serde_json::from_slice(body).unwrap_or_default();
            let id = s.snowflake();
            let thread = json!({
                "id": id, "type": 11, "guild_id": GUILD.to_string(),
                "parent_id": CHANNEL.to_string(), "owner_id": BOT.to_string(),
                "name": asked["name"], "message_count": 0, "member_count": 1,
                "thread_metadata": {
                    "archived": false, "auto_archive_duration": asked["auto_archive_duration"],
                    "archive_timestamp": "2026-11-27T10:00:00.000000+00:00", "locked": false
                },
                "newly_created": true
            });
            s.threads.push((id, asked));
            let _ = events.send(("THREAD_CREATE", thread.clone()));
            (StatusCode::CREATED, axum::Json(thread)).into_response()
        }
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
    queue: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<(&'static str, Value)>>>,
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
                Some((event, data)) => ws.send(dispatch(event, data)).await?,
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

message_content = true

[bridge]
channel = "ops"
allow_users = ["{MANAGER}"]
allow_roles = ["{MOD_ROLE}"]
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

    // The mention is captured and opens a thread in the channel, named
    // after the fan; the item is the thread's first message.
    let shown = wait_until(Duration::from_secs(30), || async {
        discord.posted().iter().any(|p| {
            p.body["content"]
                .as_str()
                .is_some_and(|t| t.contains("when does the spring sale start?"))
        })
    })
    .await;
    assert!(shown, "the mention reached the bridge:\n{}", run.log());
    let threads = discord.state.lock().unwrap().threads.clone();
    assert_eq!(threads.len(), 1, "one thread per conversation: {threads:?}");
    let (thread, asked) = &threads[0];
    assert!(
        asked["name"].as_str().is_some_and(|n| n.contains("A Fan")),
        "{asked}"
    );
    assert_eq!(asked["type"], json!(11), "a public thread: {asked}");
    let bridged = discord.posted()[0].clone();
    assert_eq!(
        &bridged.channel, thread,
        "posted in the thread: {bridged:?}"
    );
    assert!(
        bridged.body.get("message_reference").is_none(),
        "the thread's first message: {bridged:?}"
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

    // A stranger is refused; a moderator (by role) writes a note in the
    // thread; the manager answers in the thread, without replying to
    // anything in particular.
    let stranger = discord.write_in(
        thread,
        user(STRANGER, "troll", false),
        "I can answer that: never!",
    );
    let note = discord.write_in(
        thread,
        user(MODERATOR, "mo", false),
        "note: VIP customer, be nice",
    );
    let answer = discord.write_in(
        thread,
        user(MANAGER, "sam", false),
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

    // Confirmations in the thread, each as a reply to the message it answers.
    let confirmed = wait_until(Duration::from_secs(30), || async {
        discord.reply_to(&answer).is_some()
    })
    .await;
    assert!(confirmed, "the manager was told:\n{}", run.log());
    let confirmation = discord.reply_to(&answer).unwrap();
    assert_eq!(&confirmation.channel, thread, "{confirmation:?}");
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

    // A second mention in the same Mastodon thread goes into the same
    // Discord thread; a reply to the bridged message also counts.
    fakes.reply_in_thread("110002", Some("110001"), "@clarion and the outlet?");
    let second = wait_until(Duration::from_secs(30), || async {
        discord.posted().iter().any(|p| {
            p.body["content"]
                .as_str()
                .is_some_and(|t| t.contains("and the outlet?"))
        })
    })
    .await;
    assert!(second, "the second item was bridged:\n{}", run.log());
    let again = discord
        .posted()
        .into_iter()
        .find(|p| {
            p.body["content"]
                .as_str()
                .is_some_and(|t| t.contains("and the outlet?"))
        })
        .unwrap();
    assert_eq!(&again.channel, thread, "into the same thread: {again:?}");
    assert_eq!(
        discord.state.lock().unwrap().threads.len(),
        1,
        "no second thread for the same conversation"
    );
    let resolve = discord.reply(user(MANAGER, "sam", false), &again.message, "!resolve");
    let resolved = wait_until(Duration::from_secs(30), || async {
        discord.reply_to(&resolve).is_some()
    })
    .await;
    assert!(resolved, "the command was answered:\n{}", run.log());

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
