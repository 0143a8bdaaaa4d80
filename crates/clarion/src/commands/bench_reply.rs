//! `clarion bench reply`: reply latency through the bridge, end to end in
//! one process. A local fake serves the Telegram Bot API (the bridge chat)
//! and a Mastodon instance (the origin of every conversation). N
//! conversations are stored as already shown in the chat; then a manager's
//! answers (one per conversation) are queued on the fake Bot API at
//! `--rate` per second, and each is timed from the moment its update is
//! queued to the moment its status reaches `POST /api/v1/statuses`.
//!
//! Everything between is the real thing, with the settings of the config
//! file: the Telegram listener's long poll, the listener runtime, the
//! bridge, `InboxService::reply`, `PostService` (group commit, queue
//! wake-up), the dispatcher (pacing per account), the claim task and the
//! Mastodon adapter. Conversations are spread round robin over
//! `--accounts` Mastodon channels: the adapter paces each account to one
//! status a second (and 300 per 3 hours), so one account cannot take 50
//! replies a second by design, on Mastodon as here.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use clap::Args;
use clarion_core::{
    AdapterContext, AdapterRegistry, ChannelConfig, Engagement, EngagementAuthor, EngagementKind,
    ListenerRegistry,
};
use clarion_engage::bridge::Bridge;
use clarion_engage::{BridgeConfig, InboxService, ListenConfig, ListenerRuntime};
use clarion_scheduler::{PostService, PublishQueue, Runtime, SchedulerConfig, run_workers};
use clarion_store::{Store, now_ms};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::bench::Scratch;
use crate::app::worker_id;
use crate::config::Config;

#[derive(Debug, Args)]
pub struct ReplyArgs {
    /// How many replies (one per conversation).
    #[arg(long, default_value_t = 1_000)]
    replies: usize,
    /// Replies queued per second on the fake Bot API.
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// Mastodon accounts (channels) the conversations are spread over,
    /// round robin. The adapter paces each account to 1 status/s.
    #[arg(long, default_value_t = 100)]
    accounts: usize,
    /// A PostgreSQL server URL (a scratch database is created and dropped),
    /// or omit for a scratch SQLite file.
    #[arg(long)]
    database_url: Option<String>,
    /// After the last reply is queued, wait this long for the rest.
    #[arg(long, default_value_t = 60)]
    settle_secs: u64,
    /// Do not run the Mastodon accounts' own listeners (a real bridge
    /// setup has them: that is how mentions reach the chat).
    #[arg(long)]
    no_origin_listen: bool,
}

/// The bridge chat (a supergroup), the bot, and the manager who answers.
const GROUP: i64 = -1_001_234_567_890;
const BOT_ID: i64 = 7_000_000_001;
const MANAGER: i64 = 9001;
/// Conversation i was shown in the chat as message `BRIDGED + i`; the
/// manager answers it with message `ANSWER + i`, in update `UPDATE + i`.
const BRIDGED: i64 = 1_000_000;
const ANSWER: i64 = 2_000_000;
const UPDATE: i64 = 500_000;
/// What every answer says, followed by its number.
const TEXT: &str = "bench reply ";
const BRIDGE_CHANNEL: &str = "bridge-chat";

fn account(a: usize) -> String {
    format!("masto-{a:03}")
}

fn status_id(i: usize) -> String {
    (110_000_000_000_000_000u64 + i as u64).to_string()
}

/// The reply number in a text this bench wrote.
fn number_in(text: &str) -> Option<usize> {
    let at = text.find(TEXT)? + TEXT.len();
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The fake Bot API and Mastodon instance, and what they saw. Times are
/// since `started` (one monotonic clock for the whole bench).
struct Fake {
    started: Instant,
    /// The wall clock at `started` (ms since the epoch, with the fraction),
    /// to compare with the store's times.
    started_ms: f64,
    telegram: Mutex<Telegram>,
    new_update: Notify,
    /// Statuses posted on Mastodon: text and arrival.
    statuses: Mutex<Vec<(String, Duration)>>,
    status_ids: AtomicI64,
}

#[derive(Default)]
struct Telegram {
    /// Updates not yet confirmed by a later `offset`.
    pending: VecDeque<(i64, Value)>,
    /// When each update was first handed out by `getUpdates`.
    delivered: HashMap<i64, Duration>,
    /// The bridge's own messages: (when, what it answered, its text).
    sent: Vec<(Duration, Option<i64>, String)>,
    polls: u64,
    next_message_id: i64,
}

type Shared = Arc<Fake>;

impl Fake {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            started_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0),
            telegram: Mutex::new(Telegram {
                next_message_id: 3_000_000,
                ..Default::default()
            }),
            new_update: Notify::new(),
            statuses: Mutex::default(),
            status_ids: AtomicI64::new(120_000_000_000_000_000),
        }
    }

    fn at(&self) -> Duration {
        self.started.elapsed()
    }

    /// The store's clock for a moment of ours.
    fn wall_ms(&self, at: Duration) -> f64 {
        self.started_ms + at.as_secs_f64() * 1000.0
    }

    fn telegram(&self) -> std::sync::MutexGuard<'_, Telegram> {
        self.telegram.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues the manager's answer to conversation `i` (a reply to the
    /// bridge's message about it); returns when it was queued.
    fn answer(&self, i: usize) -> Duration {
        let chat = json!({"id": GROUP, "type": "supergroup", "title": "Community"});
        let update = json!({
            "update_id": UPDATE + i as i64,
            "message": {
                "message_id": ANSWER + i as i64, "date": now_ms() / 1000,
                "chat": chat,
                "from": {"id": MANAGER, "is_bot": false, "first_name": "Sam", "username": "sam_cm"},
                "text": format!("{TEXT}{i}"),
                "reply_to_message": {
                    "message_id": BRIDGED + i as i64, "date": now_ms() / 1000 - 60,
                    "chat": chat,
                    "from": {"id": BOT_ID, "is_bot": true, "first_name": "Clarion", "username": "clarion_bot"},
                    "text": "💬 mention on mastodon"
                }
            }
        });
        let queued = {
            let mut telegram = self.telegram();
            let at = self.at();
            telegram.pending.push_back((UPDATE + i as i64, update));
            at
        };
        self.new_update.notify_waiters();
        queued
    }

    fn arrived(&self) -> usize {
        self.statuses.lock().map(|s| s.len()).unwrap_or(0)
    }
}

async fn serve(State(fake): State<Shared>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let bytes: Bytes = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let lower = path.to_ascii_lowercase();
    if lower.starts_with("/bot") {
        return if lower.ends_with("/getupdates") {
            get_updates(&fake, &body).await
        } else if lower.ends_with("/sendmessage") {
            send_message(&fake, &body)
        } else if lower.ends_with("/getme") {
            telegram_ok(json!({
                "id": BOT_ID, "is_bot": true, "first_name": "Clarion", "username": "clarion_bot",
                "can_join_groups": true, "can_read_all_group_messages": false,
                "supports_inline_queries": false, "can_connect_to_business": false,
                "has_main_web_app": false
            }))
        } else {
            (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"ok": false, "error_code": 404, "description": "Not Found"})),
            )
                .into_response()
        };
    }
    match (method, path.as_str()) {
        (Method::POST, "/api/v1/statuses") => {
            let at = fake.at();
            let text = body["status"].as_str().unwrap_or_default().to_owned();
            if let Ok(mut statuses) = fake.statuses.lock() {
                statuses.push((text.clone(), at));
            }
            let id = fake.status_ids.fetch_add(1, Ordering::Relaxed);
            axum::Json(json!({
                "id": id.to_string(), "uri": format!("https://masto.test/users/clarion/statuses/{id}"),
                "url": format!("https://masto.test/@clarion/{id}"), "content": text,
                "in_reply_to_id": body["in_reply_to_id"], "created_at": "2026-11-27T10:01:00.000Z",
                "visibility": "public", "account": {"id": "1", "username": "clarion", "acct": "clarion"}
            }))
            .into_response()
        }
        (Method::GET, "/api/v1/accounts/verify_credentials") => axum::Json(json!({
            "id": "1", "username": "clarion", "acct": "clarion", "display_name": "Clarion"
        }))
        .into_response(),
        // Nothing new: the conversations were stored before the run.
        (Method::GET, "/api/v1/notifications") => axum::Json(json!([])).into_response(),
        // No instance info, no streaming: the listeners poll, as in the e2e test.
        _ => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": "Record not found"})),
        )
            .into_response(),
    }
}

fn telegram_ok(result: Value) -> Response {
    axum::Json(json!({"ok": true, "result": result})).into_response()
}

/// A long poll, as Telegram answers it: at once when updates past
/// `offset` wait, else as soon as one is queued, else after `timeout`.
async fn get_updates(fake: &Fake, body: &Value) -> Response {
    let offset = body["offset"].as_i64().unwrap_or(0);
    let limit = body["limit"].as_u64().unwrap_or(100).clamp(1, 100) as usize;
    let hold = Duration::from_secs(body["timeout"].as_u64().unwrap_or(0).min(50));
    let deadline = tokio::time::Instant::now() + hold;
    fake.telegram().polls += 1;
    loop {
        let notified = fake.new_update.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut telegram = fake.telegram();
            while telegram.pending.front().is_some_and(|(id, _)| *id < offset) {
                telegram.pending.pop_front();
            }
            if !telegram.pending.is_empty() {
                let at = fake.at();
                let ready: Vec<(i64, Value)> =
                    telegram.pending.iter().take(limit).cloned().collect();
                for (id, _) in &ready {
                    telegram.delivered.entry(*id).or_insert(at);
                }
                return telegram_ok(Value::Array(
                    ready.into_iter().map(|(_, update)| update).collect(),
                ));
            }
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return telegram_ok(json!([]));
        }
    }
}

fn send_message(fake: &Fake, body: &Value) -> Response {
    let text = body["text"].as_str().unwrap_or_default().to_owned();
    let answered = body["reply_parameters"]["message_id"].as_i64();
    let id = {
        let mut telegram = fake.telegram();
        telegram.next_message_id += 1;
        let at = fake.at();
        telegram.sent.push((at, answered, text.clone()));
        telegram.next_message_id
    };
    telegram_ok(json!({
        "message_id": id, "date": now_ms() / 1000,
        "chat": {"id": GROUP, "type": "supergroup", "title": "Community"},
        "from": {"id": BOT_ID, "is_bot": true, "first_name": "Clarion", "username": "clarion_bot"},
        "text": text
    }))
}

/// Token files for the channels (secrets are never inline in a config).
struct Tokens {
    mastodon: std::path::PathBuf,
    telegram: std::path::PathBuf,
}

impl Tokens {
    fn write() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir();
        let pid = std::process::id();
        let tokens = Self {
            mastodon: dir.join(format!("clarion_bench_reply_{pid}_mastodon.token")),
            telegram: dir.join(format!("clarion_bench_reply_{pid}_telegram.token")),
        };
        std::fs::write(&tokens.mastodon, "bench-mastodon-token")?;
        std::fs::write(&tokens.telegram, "123456:bench-telegram-token")?;
        Ok(tokens)
    }
}

impl Drop for Tokens {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.mastodon);
        let _ = std::fs::remove_file(&self.telegram);
    }
}

pub async fn run(args: ReplyArgs, config: Config) -> anyhow::Result<()> {
    ensure!(args.replies > 0, "--replies must be at least 1");
    ensure!(
        args.rate > 0.0 && args.rate.is_finite(),
        "--rate must be above 0"
    );
    ensure!(args.accounts > 0, "--accounts must be at least 1");
    ensure!(
        args.replies.div_ceil(args.accounts) <= 300,
        "{} replies over {} accounts is more than 300 per account: the Mastodon adapter \
         holds the 301st for 3 hours (Mastodon's own limit); raise --accounts",
        args.replies,
        args.accounts
    );
    let scratch = Scratch::create(args.database_url.as_deref()).await?;
    let result = bench(&args, &scratch.url, &config).await;
    scratch.drop_it().await;
    result
}

async fn bench(args: &ReplyArgs, url: &str, config: &Config) -> anyhow::Result<()> {
    let fake: Shared = Arc::new(Fake::new());
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", socket.local_addr()?);
    let app = axum::Router::new().fallback(serve).with_state(fake.clone());
    let server = tokio::spawn(async move { axum::serve(socket, app).await });
    let tokens = Tokens::write()?;

    let mut channels: Vec<ChannelConfig> = (0..args.accounts)
        .map(|a| {
            serde_json::from_value(json!({
                "name": account(a), "kind": "mastodon", "instance": base,
                "access_token": {"file": tokens.mastodon}, "listen": !args.no_origin_listen,
            }))
        })
        .collect::<Result<_, _>>()?;
    channels.push(serde_json::from_value(json!({
        "name": BRIDGE_CHANNEL, "kind": "telegram", "bot_token": {"file": tokens.telegram},
        "chat_id": GROUP.to_string(), "api_url": format!("{base}/"), "parse_mode": "plain",
        "listen": true,
    }))?);
    let factories = clarion_adapters::builtin_factories(clarion_adapters::http_client());
    let context = AdapterContext::default();
    let registry = Arc::new(
        AdapterRegistry::build(&factories, &channels, &context)
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    let listeners = Arc::new(
        ListenerRegistry::build(&factories, &channels, &context)
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    );

    let store = Store::connect(url, config.max_connections).await?;
    store.migrate().await?;
    store
        .upsert_channels(
            &channels
                .iter()
                .map(|c| {
                    (
                        c.name.clone(),
                        c.kind.clone(),
                        Value::Object(c.settings.clone()).to_string(),
                    )
                })
                .collect::<Vec<_>>(),
        )
        .await?;
    let queue = PublishQueue::open(&store, &config.scheduler).await?;
    let service = PostService::new(
        store.clone(),
        queue.clone(),
        registry.clone(),
        Arc::default(),
    );

    seed(&store, args).await?;

    let inbox = InboxService::new(service, registry.clone());
    let bridge = Bridge::new(
        BridgeConfig {
            channel: BRIDGE_CHANNEL.into(),
            allow_users: vec![MANAGER.to_string()],
            allow_roles: Vec::new(),
            threads: None,
        },
        inbox,
        registry.get(BRIDGE_CHANNEL).cloned(),
        &listeners,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let runtime = Arc::new(Runtime::new(
        store.clone(),
        queue,
        registry,
        config.scheduler.clone(),
        worker_id(),
    ));
    let listening = ListenerRuntime::new(
        store.clone(),
        listeners,
        runtime.worker_id.clone(),
        config.listen.clone(),
    )
    .with_bridge(Some(Arc::new(bridge)));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut worker_stop = stop_rx.clone();
    let workers = tokio::spawn(run_workers(runtime, async move {
        let _ = worker_stop.wait_for(|s| *s).await;
    }));
    let listening = tokio::spawn(listening.run(stop_rx));

    // The bridge is live once the Telegram listener holds its lease and polls.
    let ready = Instant::now();
    while fake.telegram().polls == 0 {
        ensure!(
            ready.elapsed() < Duration::from_secs(30),
            "the Telegram listener did not start polling within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let the origin listeners make their first calls (the instance and
    // streaming probes, the first poll) before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let bar = ProgressBar::new(args.replies as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} replies at Mastodon ({msg})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let queued_at: Arc<Mutex<Vec<Duration>>> =
        Arc::new(Mutex::new(Vec::with_capacity(args.replies)));
    let generator = {
        let (fake, queued_at) = (fake.clone(), queued_at.clone());
        let (replies, rate) = (args.replies, args.rate);
        tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            for i in 0..replies {
                tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate)).await;
                let at = fake.answer(i);
                if let Ok(mut q) = queued_at.lock() {
                    q.push(at);
                }
            }
        })
    };
    let generation = Duration::from_secs_f64(args.replies as f64 / args.rate);
    let deadline = Instant::now() + generation + Duration::from_secs(args.settle_secs);
    loop {
        let arrived = fake.arrived();
        let queued = queued_at.lock().map(|q| q.len()).unwrap_or(0);
        bar.set_position(arrived as u64);
        bar.set_message(format!("{queued} queued"));
        if (arrived >= args.replies && queued >= args.replies) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bar.finish_and_clear();
    generator.abort();
    // Give a duplicate (and the bridge's confirmations) a moment to show up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop_tx.send(true);
    let stopped = tokio::time::timeout(Duration::from_secs(60), async {
        let _ = listening.await;
        let _ = workers.await;
    })
    .await;
    if stopped.is_err() {
        eprintln!("warning: the runtime did not stop within 60 s");
    }
    server.abort();

    let queued_at = queued_at.lock().map(|q| q.clone()).unwrap_or_default();
    let report = Report::new(&fake, &queued_at, args.replies, &store).await?;
    report.print(args, config, &store);
    drop(tokens);
    if report.lost > 0 || report.duplicates > 0 || report.stray > 0 {
        bail!(
            "bench failed its promises: {} lost, {} duplicates, {} unexpected statuses",
            report.lost,
            report.duplicates,
            report.stray
        );
    }
    Ok(())
}

/// Stores conversation i as a mention on account `i % accounts`, already
/// shown in the chat as message `BRIDGED + i` (what the bridge's forwarder
/// records after posting it).
async fn seed(store: &Store, args: &ReplyArgs) -> anyhow::Result<()> {
    let bar = ProgressBar::new(args.replies as u64).with_style(
        ProgressStyle::with_template("seeding {bar:40} {pos}/{len} conversations")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let holder = "bench-seed";
    for a in 0..args.accounts {
        let channel = account(a);
        let lease = || now_ms() + 600_000;
        store
            .acquire_listener(&channel, holder, now_ms(), lease())
            .await?
            .with_context(|| format!("could not take the listener lease of {channel}"))?;
        let mine: Vec<usize> = (a..args.replies).step_by(args.accounts).collect();
        for chunk in mine.chunks(200) {
            let events: Vec<Engagement> = chunk.iter().map(|&i| mention(i)).collect();
            let outcome = store
                .ingest(&channel, holder, &events, None, now_ms(), lease())
                .await?
                .with_context(|| format!("lost the listener lease of {channel} while seeding"))?;
            ensure!(
                outcome.new.len() == chunk.len(),
                "seeding stored {} of {} mentions",
                outcome.new.len(),
                chunk.len()
            );
            for item in outcome.new {
                let i = number_of_status(&item.item_id)
                    .with_context(|| format!("unexpected item {}", item.item_id))?;
                store
                    .mark_bridged(
                        item.id,
                        BRIDGE_CHANNEL,
                        Some(&(BRIDGED + i as i64).to_string()),
                        item.conversation_id,
                    )
                    .await?;
                bar.inc(1);
            }
        }
        store.release_listener(&channel, holder).await?;
    }
    bar.finish_and_clear();
    Ok(())
}

fn number_of_status(id: &str) -> Option<usize> {
    id.parse::<u64>()
        .ok()?
        .checked_sub(110_000_000_000_000_000)
        .map(|n| n as usize)
}

fn mention(i: usize) -> Engagement {
    let id = status_id(i);
    Engagement {
        item_id: id.clone(),
        kind: EngagementKind::Mention,
        author: EngagementAuthor {
            id: format!("{}", 77 + i),
            handle: format!("@fan{i}@masto.test"),
            display_name: format!("Fan {i}"),
            roles: Vec::new(),
        },
        text: format!("@clarion question {i}: when does the spring sale start?"),
        url: Some(format!("https://masto.test/@fan{i}/{id}")),
        parent_id: None,
        root_id: id,
        place: None,
        created_at_ms: now_ms(),
    }
}

/// Nearest-rank percentiles of a sample, in milliseconds.
struct Spread {
    n: usize,
    p50: f64,
    p95: f64,
    p99: f64,
    max: f64,
}

impl Spread {
    fn of(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        let pct = |p: f64| {
            values
                .get(((values.len() as f64 - 1.0) * p).round() as usize)
                .copied()
                .unwrap_or(0.0)
        };
        Self {
            n: values.len(),
            p50: pct(0.5),
            p95: pct(0.95),
            p99: pct(0.99),
            max: values.last().copied().unwrap_or(0.0),
        }
    }

    fn line(&self) -> String {
        format!(
            "p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            self.p50, self.p95, self.p99, self.max
        )
    }
}

struct Report {
    distinct: usize,
    lost: usize,
    duplicates: usize,
    /// Statuses this bench did not ask for.
    stray: usize,
    latency: Spread,
    /// Queued -> handed out by `getUpdates`.
    poll: Spread,
    /// Handed out -> the reply's post row written (`posts.created_at_ms`).
    bridge: Spread,
    /// Post written -> publish attempt started.
    dispatch: Spread,
    /// Attempt started -> status at the fake instance.
    send: Spread,
    confirmed: usize,
    confirm: Spread,
    offered_rate: f64,
}

impl Report {
    async fn new(
        fake: &Fake,
        queued_at: &[Duration],
        replies: usize,
        store: &Store,
    ) -> anyhow::Result<Self> {
        use sea_orm::EntityTrait;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let statuses = fake.statuses.lock().map(|s| s.clone()).unwrap_or_default();
        let mut arrived: HashMap<usize, Duration> = HashMap::new();
        let (mut duplicates, mut stray) = (0, 0);
        for (text, at) in &statuses {
            match number_in(text).filter(|i| *i < queued_at.len()) {
                Some(i) => {
                    if arrived.insert(i, *at).is_some() {
                        duplicates += 1;
                    }
                }
                None => stray += 1,
            }
        }
        let latency: Vec<f64> = arrived
            .iter()
            .map(|(i, at)| ms(at.saturating_sub(queued_at[*i])))
            .collect();

        // Where the time went, from the fake's clock and the store's rows.
        let (delivered, confirmations) = {
            let telegram = fake.telegram();
            (telegram.delivered.clone(), telegram.sent.clone())
        };
        let posts = clarion_store::post::Entity::find()
            .all(store.connection())
            .await?;
        let targets = clarion_store::target::Entity::find()
            .all(store.connection())
            .await?;
        let attempts = clarion_store::publish_attempt::Entity::find()
            .all(store.connection())
            .await?;
        let mut started_by_target: HashMap<i32, i64> = HashMap::new();
        for a in &attempts {
            let e = started_by_target
                .entry(a.target_id)
                .or_insert(a.started_at_ms);
            *e = (*e).min(a.started_at_ms);
        }
        let mut target_of_post: HashMap<i32, i32> = HashMap::new();
        for t in &targets {
            target_of_post.insert(t.post_id, t.id);
        }
        let (mut poll, mut bridge, mut dispatch, mut send) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for post in &posts {
            let Some(i) = number_in(&post.body).filter(|i| *i < queued_at.len()) else {
                continue;
            };
            let (Some(out), Some(at)) = (delivered.get(&(UPDATE + i as i64)), arrived.get(&i))
            else {
                continue;
            };
            let Some(started) = target_of_post
                .get(&post.id)
                .and_then(|t| started_by_target.get(t))
            else {
                continue;
            };
            poll.push(ms(out.saturating_sub(queued_at[i])));
            // The store keeps whole milliseconds: each stage is ±1 ms.
            bridge.push(post.created_at_ms as f64 - fake.wall_ms(*out));
            dispatch.push((started - post.created_at_ms) as f64);
            send.push(fake.wall_ms(*at) - *started as f64);
        }
        let mut confirmed: HashMap<usize, Duration> = HashMap::new();
        for (at, answered, text) in &confirmations {
            if let Some(i) = answered
                .and_then(|m| usize::try_from(m - ANSWER).ok())
                .filter(|i| *i < queued_at.len())
                && text.starts_with("✅")
            {
                confirmed.entry(i).or_insert(*at);
            }
        }
        let confirm = confirmed
            .iter()
            .map(|(i, at)| ms(at.saturating_sub(queued_at[*i])))
            .collect();
        let offered_rate = match (queued_at.first(), queued_at.last()) {
            (Some(first), Some(last)) if queued_at.len() > 1 && last > first => {
                (queued_at.len() - 1) as f64 / (*last - *first).as_secs_f64()
            }
            _ => 0.0,
        };
        Ok(Self {
            distinct: arrived.len(),
            lost: replies - arrived.len().min(replies),
            duplicates,
            stray,
            latency: Spread::of(latency),
            poll: Spread::of(poll),
            bridge: Spread::of(bridge),
            dispatch: Spread::of(dispatch),
            send: Spread::of(send),
            confirmed: confirmed.len(),
            confirm: Spread::of(confirm),
            offered_rate,
        })
    }

    fn print(&self, args: &ReplyArgs, config: &Config, store: &Store) {
        let database = if store.is_postgres() {
            "PostgreSQL"
        } else {
            "SQLite"
        };
        let per_account = args.rate / args.accounts as f64;
        println!(
            "reply ({database}): {} replies from a Telegram bridge chat to {} Mastodon accounts \
             at {} replies/s (offered {:.1}/s; round robin, {:.2} replies/s per account)",
            args.replies, args.accounts, args.rate, self.offered_rate, per_account
        );
        println!(
            "delivered       {} of {}, {} lost, {} duplicates, {} unexpected",
            self.distinct, args.replies, self.lost, self.duplicates, self.stray
        );
        println!(
            "latency         {}  (update queued at the Bot API -> POST /api/v1/statuses){}",
            self.latency.line(),
            if self.latency.n > 0 {
                if self.latency.p99 < 1000.0 {
                    "; p99 < 1 s: met"
                } else {
                    "; p99 < 1 s: MISSED"
                }
            } else {
                ""
            }
        );
        println!("  where, per stage (each its own percentiles):");
        println!(
            "  telegram      {}  (queued -> getUpdates answered)",
            self.poll.line()
        );
        println!(
            "  bridge        {}  (getUpdates answered -> reply post written)",
            self.bridge.line()
        );
        println!(
            "  dispatch      {}  (post written -> publish attempt started)",
            self.dispatch.line()
        );
        println!(
            "  send          {}  (attempt started -> status at Mastodon)",
            self.send.line()
        );
        println!(
            "confirmed       {} \"✅ Sent\" in the chat; {}  (queued -> confirmation)",
            self.confirmed,
            self.confirm.line()
        );
        let s = &config.scheduler;
        let d = SchedulerConfig::default();
        let defaults = s.poll_interval_ms == d.poll_interval_ms
            && s.concurrency == d.concurrency
            && s.batch_size == d.batch_size
            && s.sweep_interval_secs == d.sweep_interval_secs
            && config.listen == ListenConfig::default()
            && config.max_connections == 8;
        println!(
            "settings        [scheduler] poll_interval_ms = {}, concurrency = {}, batch_size = {}, \
             sweep_interval_secs = {}; [listen] lease_secs = {}; max_connections = {} ({}); \
             Telegram long poll 25 s, bridge poll 500 ms; Mastodon pacing 1 status/s and 300/3 h \
             per account; origin listeners {}",
            s.poll_interval_ms,
            s.concurrency,
            s.batch_size,
            s.sweep_interval_secs,
            config.listen.lease_secs,
            config.max_connections,
            if defaults {
                "the defaults"
            } else {
                "from the config file, NOT the defaults"
            },
            if args.no_origin_listen {
                "off"
            } else {
                "on (polling)"
            }
        );
        if per_account > 1.0 {
            println!(
                "note            {per_account:.2} replies/s per account is above the adapter's \
                 1 status/s pacing: replies queue per account by design; raise --accounts"
            );
        }
        println!(
            "peak RSS        {:.1} MiB (bench process: Clarion + both fakes)",
            super::bench::peak_rss_mb()
        );
    }
}
