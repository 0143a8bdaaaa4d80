//! One post file, five platforms: Mastodon, Bluesky, Matrix, Discord and
//! Telegram, each a fake on 127.0.0.1 answering in the platform's documented
//! wire format. The post is a two-part thread, so every platform also shows
//! that part 2 replies to part 1; a part that fails is retried without
//! posting part 1 again.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::harness::*;

/// One call a fake platform received.
#[derive(Debug, Clone)]
pub struct Call {
    pub platform: &'static str,
    pub path: String,
    pub body: Value,
}

#[derive(Default)]
struct FakeState {
    calls: Vec<Call>,
    /// Texts that get one 503 (Mastodon) before they succeed.
    fail_once: Vec<String>,
    next_id: u64,
}

#[derive(Clone)]
pub struct Platforms {
    pub base: String,
    state: Arc<Mutex<FakeState>>,
}

impl Platforms {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(FakeState {
            next_id: 1000,
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

    pub fn calls(&self, platform: &str) -> Vec<Call> {
        self.state
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|c| c.platform == platform)
            .cloned()
            .collect()
    }

    pub fn fail_once(&self, text: &str) {
        self.state.lock().unwrap().fail_once.push(text.to_owned());
    }
}

/// Routes by path, answering with each platform's documented response shape.
async fn answer(State(state): State<Arc<Mutex<FakeState>>>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let bytes: Bytes = axum::body::to_bytes(request.into_body(), 10 << 20)
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let mut s = state.lock().unwrap();
    s.next_id += 1;
    let id = s.next_id;
    let platform = if path.starts_with("/api/v1/") || path.starts_with("/api/v2/") {
        "mastodon"
    } else if path.starts_with("/xrpc/") {
        "bluesky"
    } else if path.starts_with("/_matrix/") {
        "matrix"
    } else if path.starts_with("/api/v10/") {
        "discord"
    } else if path.starts_with("/bot") {
        "telegram"
    } else if path.starts_with("/2/") {
        "x"
    } else {
        "unknown"
    };
    s.calls.push(Call {
        platform,
        path: path.clone(),
        body: body.clone(),
    });
    let now = "2026-11-26T12:00:00.000Z";
    match (platform, method) {
        ("mastodon", Method::POST) if path == "/api/v1/statuses" => {
            let text = body["status"].as_str().unwrap_or_default().to_owned();
            if let Some(i) = s.fail_once.iter().position(|t| *t == text) {
                s.fail_once.remove(i);
                return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": "Service Unavailable"}))).into_response();
            }
            Json(json!({
                "id": id.to_string(), "uri": format!("https://masto.test/users/clarion/statuses/{id}"),
                "url": format!("https://masto.test/@clarion/{id}"), "content": format!("<p>{text}</p>"),
                "in_reply_to_id": body["in_reply_to_id"], "created_at": now, "visibility": "public",
                "account": {"id": "1", "username": "clarion", "acct": "clarion"}
            }))
            .into_response()
        }
        ("bluesky", Method::POST) if path.ends_with("com.atproto.server.createSession") => Json(json!({
            "accessJwt": "access-1", "refreshJwt": "refresh-1", "handle": "clarion.test", "did": "did:plc:clarion"
        }))
        .into_response(),
        ("bluesky", Method::POST) if path.ends_with("com.atproto.repo.createRecord") => {
            let rkey = body["rkey"].as_str().map(str::to_owned).unwrap_or_else(|| format!("3k{id}"));
            Json(json!({
                "uri": format!("at://did:plc:clarion/app.bsky.feed.post/{rkey}"),
                "cid": format!("bafyreicid{id}")
            }))
            .into_response()
        }
        ("bluesky", Method::GET) if path.ends_with("com.atproto.server.getSession") => {
            Json(json!({"handle": "clarion.test", "did": "did:plc:clarion"})).into_response()
        }
        ("matrix", Method::PUT) if path.contains("/send/m.room.message/") => {
            Json(json!({"event_id": format!("$event{id}")})).into_response()
        }
        ("discord", Method::POST) if path.ends_with("/messages") => {
            let channel_id = path.split('/').nth(4).unwrap_or("0").to_owned();
            Json(json!({
                "id": id.to_string(), "channel_id": channel_id, "guild_id": "777",
                "author": {"id": "42", "username": "clarion", "discriminator": "0", "global_name": null, "avatar": null, "bot": true},
                "content": body["content"], "timestamp": now, "edited_timestamp": null, "tts": false,
                "mention_everyone": false, "mentions": [], "mention_roles": [], "attachments": [], "embeds": [],
                "pinned": false, "type": if body.get("message_reference").is_some() { 19 } else { 0 },
                "nonce": body["nonce"], "message_reference": body["message_reference"]
            }))
            .into_response()
        }
        // teloxide calls methods with a capital first letter (`SendMessage`); the Bot API ignores case.
        ("telegram", _) if path.to_lowercase().ends_with("/sendmessage") => Json(json!({
            "ok": true,
            "result": {
                "message_id": id, "date": 1_764_158_400,
                "chat": {"id": -1_001_234_567_890i64, "type": "channel", "title": "News", "username": "clarionnews"},
                "text": body["text"]
            }
        }))
        .into_response(),
        // Credential checks (`clarion channels check`).
        ("mastodon", Method::GET) if path == "/api/v1/accounts/verify_credentials" => {
            Json(json!({"id": "1", "username": "clarion", "acct": "clarion", "display_name": "Clarion"})).into_response()
        }
        ("matrix", Method::GET) if path == "/_matrix/client/v3/account/whoami" => {
            Json(json!({"user_id": "@clarion:matrix.test"})).into_response()
        }
        ("matrix", Method::GET) if path == "/_matrix/client/v3/joined_rooms" => {
            Json(json!({"joined_rooms": ["!news:matrix.test"]})).into_response()
        }
        ("discord", Method::GET) if path == "/api/v10/users/@me" => Json(json!({
            "id": "4242", "username": "clarion", "discriminator": "0427", "global_name": null,
            "avatar": null, "bot": true, "verified": true, "mfa_enabled": false, "flags": 0
        }))
        .into_response(),
        ("telegram", _) if path.to_lowercase().ends_with("/getme") => Json(json!({
            "ok": true,
            "result": {"id": 123456, "is_bot": true, "first_name": "Clarion", "username": "clarion_bot",
                       "can_join_groups": true, "can_read_all_group_messages": false, "supports_inline_queries": false,
                       "can_connect_to_business": false, "has_main_web_app": false}
        }))
        .into_response(),
        ("x", Method::GET) if path == "/2/users/me" => {
            Json(json!({"data": {"id": "2244994945", "name": "Clarion", "username": "clarion_x"}})).into_response()
        }
        _ => (StatusCode::NOT_FOUND, Json(json!({"error": format!("fake has no {path}")}))).into_response(),
    }
}

use axum::Json;

pub fn five_channels(base: &str) -> String {
    format!(
        r#"
[[channels]]
name = "masto"
kind = "mastodon"
instance = "{base}"
access_token = {{ env = "E2E_MASTODON_TOKEN" }}
media_poll_ms = 10

[[channels]]
name = "sky"
kind = "bluesky"
service = "{base}"
identifier = "clarion.test"
app_password = {{ env = "E2E_BLUESKY_PASSWORD" }}

[[channels]]
name = "room"
kind = "matrix"
homeserver = "{base}"
access_token = {{ env = "E2E_MATRIX_TOKEN" }}
room_id = "!news:matrix.test"

[[channels]]
name = "discord"
kind = "discord"
bot_token = {{ env = "E2E_DISCORD_TOKEN" }}
channel_id = "555"
api_proxy = "{base}"

[[channels]]
name = "telegram"
kind = "telegram"
bot_token = {{ env = "E2E_TELEGRAM_TOKEN" }}
chat_id = "@clarionnews"
api_url = "{base}/"
"#
    )
}

pub fn platform_env() -> Vec<(String, String)> {
    [
        ("E2E_MASTODON_TOKEN", "masto-token"),
        ("E2E_BLUESKY_PASSWORD", "app-pass-word"),
        ("E2E_MATRIX_TOKEN", "matrix-token"),
        ("E2E_DISCORD_TOKEN", "discord-token"),
        ("E2E_TELEGRAM_TOKEN", "123:telegram"),
        ("E2E_X_ACCESS", "x-access"),
        ("E2E_X_REFRESH", "x-refresh"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A real SMTP server process (Python's aiosmtpd), killed on drop.
struct SmtpServer {
    child: std::process::Child,
    port: u16,
}

impl SmtpServer {
    async fn start() -> Self {
        let port = free_port();
        let child = std::process::Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 with aiosmtpd is needed (pip install aiosmtpd)");
        let up = wait_until(Duration::from_secs(15), || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        assert!(up, "aiosmtpd did not start (pip install aiosmtpd)");
        Self { child, port }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `clarion channels check` verifies every platform's credentials, one line each.
#[tokio::test(flavor = "multi_thread")]
async fn channels_check_verifies_all_seven_platforms() {
    let fakes = Platforms::start().await;
    let smtp = SmtpServer::start().await;
    let sink = Sink::start(SinkRules::default()).await;
    let mut settings = Settings::new(&sink);
    settings.extra_channels = format!(
        r#"{five}
[[channels]]
name = "x"
kind = "x"
api_base = "{base}"
client_id = "clarion-e2e"
access_token = {{ env = "E2E_X_ACCESS" }}
refresh_token = {{ env = "E2E_X_REFRESH" }}

[[channels]]
name = "newsletter"
kind = "email"
smtp_host = "127.0.0.1"
smtp_port = {smtp}
tls = "none"
from = "Clarion <news@clarion.test>"
recipients = ["ana@clarion.test"]
list_unsubscribe = "mailto:unsubscribe@clarion.test"
"#,
        five = five_channels(&fakes.base),
        base = fakes.base,
        smtp = smtp.port,
    );
    let mut clarion = Clarion::new(None, &settings);
    clarion.env = platform_env();
    let out = clarion.cli(&["channels", "check"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (channel, detail) in [
        ("masto", "@clarion"),
        ("sky", "clarion.test"),
        ("room", "@clarion:matrix.test"),
        ("discord", "clarion"),
        ("telegram", "@clarion_bot"),
        ("x", "@clarion_x"),
        ("newsletter", "127.0.0.1"),
    ] {
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(channel))
            .unwrap_or_else(|| panic!("no line for {channel}:\n{stdout}"));
        assert!(line.starts_with("ok "), "{line}");
        assert!(line.contains(detail), "{channel}: {line}");
    }
    // Tokens never reach the output.
    assert!(!stdout.contains("masto-token") && !stdout.contains("discord-token"));

    // With the SMTP server gone the email check fails, clearly, and the command exits non-zero.
    drop(smtp);
    let out = clarion.cli(&["channels", "check"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    let line = stdout.lines().find(|l| l.contains("newsletter")).unwrap();
    assert!(line.starts_with("FAIL"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_post_file_reaches_five_platforms_as_a_thread() {
    let fakes = Platforms::start().await;
    let sink = Sink::start(SinkRules::default()).await;
    let mut settings = Settings::new(&sink);
    settings.extra_channels = five_channels(&fakes.base);
    let mut clarion = Clarion::new(None, &settings);
    clarion.env = platform_env();
    // Part 2 fails once on Mastodon: the retry must not post part 1 again.
    fakes.fail_once("Part two of the launch thread.");

    let at = at_in(2_000);
    std::fs::write(
        clarion.posts_dir().join("launch.md"),
        format!(
            "+++\nat = \"{at}\"\nchannels = [\"masto\", \"sky\", \"room\", \"discord\", \"telegram\"]\nthread = true\ncampaign = \"launch\"\n+++\nPart one of the launch thread.\n---\nPart two of the launch thread.\n"
        ),
    )
    .unwrap();
    let plan = clarion.ok(&["content", "plan"]);
    assert!(plan.contains("+ telegram"), "{plan}");
    clarion.ok(&["content", "sync"]);
    let run = clarion.run();
    run.ready().await;

    let store = clarion.db.store().await;
    let done = wait_until(Duration::from_secs(45), || async {
        let targets = all_targets(&store).await;
        targets.len() == 5 && targets.iter().all(|t| t.status == "published")
    })
    .await;
    let targets = all_targets(&store).await;
    assert!(
        done,
        "not all published: {:?}\n{}",
        targets
            .iter()
            .map(|t| (&t.channel, &t.status, &t.last_error))
            .collect::<Vec<_>>(),
        run.log()
    );

    for t in &targets {
        let id = t
            .platform_post_id
            .as_deref()
            .unwrap_or_else(|| panic!("{} has no platform id", t.channel));
        let url = t
            .platform_url
            .as_deref()
            .unwrap_or_else(|| panic!("{} has no URL", t.channel));
        assert!(url.starts_with("https://"), "{}: {url}", t.channel);
        assert!(!id.is_empty());
    }

    // Every platform got part 1 then part 2, and part 2 answers part 1.
    let mastodon: Vec<Call> = fakes
        .calls("mastodon")
        .into_iter()
        .filter(|c| c.path == "/api/v1/statuses")
        .collect();
    let texts: Vec<&str> = mastodon
        .iter()
        .map(|c| c.body["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        [
            "Part one of the launch thread.",
            "Part two of the launch thread.",
            "Part two of the launch thread."
        ],
        "part 1 once; part 2 failed once and was retried"
    );
    let masto_target = targets.iter().find(|t| t.channel == "masto").unwrap();
    assert_eq!(
        mastodon[2].body["in_reply_to_id"].as_str(),
        masto_target.platform_post_id.as_deref()
    );

    let records: Vec<Call> = fakes
        .calls("bluesky")
        .into_iter()
        .filter(|c| c.path.ends_with("createRecord"))
        .collect();
    assert_eq!(records.len(), 2);
    let reply = &records[1].body["record"]["reply"];
    assert_eq!(reply["root"]["uri"], reply["parent"]["uri"]);
    assert!(
        reply["parent"]["uri"]
            .as_str()
            .unwrap()
            .starts_with("at://did:plc:clarion/app.bsky.feed.post/")
    );

    let matrix: Vec<Call> = fakes.calls("matrix");
    assert_eq!(matrix.len(), 2);
    let room = targets.iter().find(|t| t.channel == "room").unwrap();
    assert_eq!(
        matrix[1].body["m.relates_to"]["m.in_reply_to"]["event_id"].as_str(),
        room.platform_post_id.as_deref()
    );

    let discord: Vec<Call> = fakes.calls("discord");
    assert_eq!(discord.len(), 2);
    let disc = targets.iter().find(|t| t.channel == "discord").unwrap();
    assert_eq!(
        discord[1].body["message_reference"]["message_id"].as_str(),
        disc.platform_post_id.as_deref()
    );
    assert!(discord[0].body["nonce"].is_string() && discord[0].body["enforce_nonce"] == true);

    let telegram: Vec<Call> = fakes
        .calls("telegram")
        .into_iter()
        .filter(|c| c.path.to_lowercase().ends_with("sendmessage"))
        .collect();
    assert_eq!(telegram.len(), 2);
    let tg = targets.iter().find(|t| t.channel == "telegram").unwrap();
    assert_eq!(
        telegram[1].body["reply_parameters"]["message_id"].to_string(),
        tg.platform_post_id.clone().unwrap()
    );
    assert!(
        tg.platform_url
            .as_deref()
            .unwrap()
            .starts_with("https://t.me/clarionnews/")
    );
}
