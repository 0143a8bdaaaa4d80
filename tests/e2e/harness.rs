//! Test harness: a real `clarion` binary, a real database (SQLite file or a
//! scratch PostgreSQL database), and a local HTTP sink standing in for a
//! webhook receiver that deduplicates on `Idempotency-Key`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use clarion_store::Store;
use sea_orm::ConnectionTrait;

pub const BIN: &str = env!("CARGO_BIN_EXE_clarion");

/// No CLI command in these tests needs more than a few seconds; one that
/// hangs fails its test instead of stalling the whole run.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(120);

/// `Command::output`, bounded: a command still running after `limit` is
/// killed and the test fails naming it, with its threads' stacks (gdb, when
/// installed) and what it printed, so a hang can be diagnosed from the log.
pub fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    use std::io::Read;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let stacks = Command::new("gdb")
                .args([
                    "-p",
                    &child.id().to_string(),
                    "-batch",
                    "-ex",
                    "thread apply all bt",
                ])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_else(|e| format!("(no gdb: {e})"));
            let _ = child.kill();
            let _ = child.wait();
            let stderr = String::from_utf8_lossy(&stderr.join().unwrap_or_default()).into_owned();
            panic!("{cmd:?} did not finish within {limit:?}\nstderr:\n{stderr}\nstacks:\n{stacks}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// One request as the sink saw it.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub key: String,
    pub body: serde_json::Value,
    pub at_ms: i64,
}

/// How the sink answers. Each rule applies to the first request of a key.
#[derive(Debug, Clone, Default)]
pub struct SinkRules {
    /// Answer 429 with this `Retry-After` (seconds).
    pub rate_limit_first_secs: Option<u64>,
    /// Hold the answer this long.
    pub delay_first_ms: Option<u64>,
    /// Hold every answer this long (a slow platform).
    pub delay_all_ms: Option<u64>,
}

#[derive(Debug, Default)]
struct SinkState {
    arrivals: Vec<Arrival>,
    /// key -> id of the message "posted" for it (a resend returns the same id).
    posted: HashMap<String, String>,
    rules: SinkRules,
}

#[derive(Clone)]
pub struct Sink {
    pub url: String,
    state: Arc<Mutex<SinkState>>,
}

impl Sink {
    pub async fn start(rules: SinkRules) -> Self {
        let state = Arc::new(Mutex::new(SinkState {
            rules,
            ..Default::default()
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, state }
    }

    pub fn arrivals(&self) -> Vec<Arrival> {
        self.state.lock().unwrap().arrivals.clone()
    }

    /// Messages actually "posted" (one per distinct key), by key.
    pub fn posted(&self) -> HashMap<String, String> {
        self.state.lock().unwrap().posted.clone()
    }

    pub fn distinct_keys(&self) -> usize {
        self.arrivals()
            .iter()
            .map(|a| a.key.clone())
            .collect::<HashSet<_>>()
            .len()
    }
}

async fn receive(
    State(state): State<Arc<Mutex<SinkState>>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (first, rules) = {
        let mut s = state.lock().unwrap();
        let first = !s.arrivals.iter().any(|a| a.key == key);
        s.arrivals.push(Arrival {
            key: key.clone(),
            body: serde_json::from_str(&body).unwrap_or_default(),
            at_ms: chrono::Utc::now().timestamp_millis(),
        });
        (first, s.rules.clone())
    };
    if first {
        if let Some(secs) = rules.rate_limit_first_secs {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("Retry-After", secs.to_string())],
                axum::Json(serde_json::json!({ "message": "You are being rate limited." })),
            )
                .into_response();
        }
        if let Some(ms) = rules.delay_first_ms {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }
    if let Some(ms) = rules.delay_all_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let id = {
        let mut s = state.lock().unwrap();
        let n = s.posted.len() + 1;
        s.posted
            .entry(key)
            .or_insert_with(|| format!("msg-{n}"))
            .clone()
    };
    axum::Json(serde_json::json!({ "id": id, "url": format!("https://sink.test/{id}") }))
        .into_response()
}

/// A database for one test: a SQLite file in a temp dir, or a scratch
/// PostgreSQL database on the server named by CLARION_TEST_DATABASE_URL.
pub struct TestDb {
    pub url: String,
    pg_admin: Option<(String, String)>,
}

impl TestDb {
    pub fn sqlite(dir: &Path) -> Self {
        Self {
            url: format!("sqlite://{}?mode=rwc", dir.join("clarion.db").display()),
            pg_admin: None,
        }
    }

    /// None (and a "skipped" line) when no PostgreSQL is configured.
    pub async fn postgres() -> Option<Self> {
        let Ok(admin) = std::env::var("CLARION_TEST_DATABASE_URL") else {
            eprintln!("skipped: set CLARION_TEST_DATABASE_URL to run the PostgreSQL variant");
            return None;
        };
        let name = format!("clarion_e2e_{}", uuid::Uuid::new_v4().simple());
        let store = Store::connect(&admin, 1)
            .await
            .expect("connect to CLARION_TEST_DATABASE_URL");
        store
            .connection()
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let base = admin.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap();
        Some(Self {
            url: format!("{base}/{name}"),
            pg_admin: Some((admin, name)),
        })
    }

    pub async fn store(&self) -> Store {
        Store::connect(&self.url, 2).await.unwrap()
    }

    /// Rows in apalis' job table (how much was queued).
    pub async fn queued_jobs(&self) -> i64 {
        let store = self.store().await;
        let sql = if self.pg_admin.is_some() {
            "SELECT COUNT(*) AS n FROM apalis.jobs"
        } else {
            "SELECT COUNT(*) AS n FROM Jobs"
        };
        let row = store
            .connection()
            .query_one_raw(sea_orm::Statement::from_string(
                store.connection().get_database_backend(),
                sql,
            ))
            .await;
        match row {
            Ok(Some(row)) => row.try_get::<i64>("", "n").unwrap(),
            _ => 0, // no job table yet: nothing was ever queued
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg_admin.take() {
            // Best effort, on a fresh runtime: Drop cannot be async.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(store) = Store::connect(&admin, 1).await {
                        let _ = store
                            .connection()
                            .execute_unprepared(&format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            ))
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

/// A Clarion installation: config file, content folder, database.
pub struct Clarion {
    pub dir: tempfile::TempDir,
    pub db: TestDb,
    pub port: u16,
    pub token: String,
    /// Extra environment for every `clarion` process (platform tokens).
    pub env: Vec<(String, String)>,
}

pub struct Settings {
    pub sink_url: String,
    pub webhook_extra: String,
    pub scheduler_extra: String,
    /// More `[[channels]]` blocks, appended to the config.
    pub extra_channels: String,
}

impl Settings {
    pub fn new(sink: &Sink) -> Self {
        Self {
            sink_url: sink.url.clone(),
            // The sink deduplicates on Idempotency-Key; webhooks only
            // claim that when told (`idempotent` defaults to false).
            webhook_extra: "idempotent = true".into(),
            scheduler_extra: String::new(),
            extra_channels: String::new(),
        }
    }
}

impl Clarion {
    pub fn new(db: Option<TestDb>, settings: &Settings) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = db.unwrap_or_else(|| TestDb::sqlite(dir.path()));
        let port = free_port();
        std::fs::create_dir_all(dir.path().join("content/posts")).unwrap();
        std::fs::create_dir_all(dir.path().join("content/templates")).unwrap();
        std::fs::write(
            dir.path().join("content/templates/shout.hbs"),
            "{{body}} #{{tag}}",
        )
        .unwrap();
        // PostgreSQL needs a key shared by every process (SQLite makes its
        // own `clarion.key` beside the database).
        let key_line = if db.pg_admin.is_some() {
            let path = dir.path().join("shared.key");
            let key = format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            );
            std::fs::write(&path, key).unwrap();
            format!("secret_key_file = \"{}\"", path.display())
        } else {
            String::new()
        };
        let config = format!(
            r#"
database_url = "{db}"
content_dir = "{content}"
{key_line}
[log]
level = "info,apalis=warn"
[server]
bind = "127.0.0.1:{port}"
[scheduler]
publish_timeout_secs = 3
sweep_interval_secs = 1
poll_interval_ms = 50
retry_base_ms = 300
{scheduler_extra}

[[channels]]
name = "sink"
kind = "webhook"
url = "{sink}"
{webhook_extra}

[[channels]]
name = "short"
kind = "webhook"
url = "{sink}"
max_length = 20

{extra_channels}
"#,
            db = db.url,
            content = dir.path().join("content").display(),
            sink = settings.sink_url,
            webhook_extra = settings.webhook_extra,
            scheduler_extra = settings.scheduler_extra,
            extra_channels = settings.extra_channels,
        );
        std::fs::write(dir.path().join("clarion.toml"), config).unwrap();
        Self {
            dir,
            db,
            port,
            token: "test-token".into(),
            env: Vec::new(),
        }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("clarion.toml")
    }

    pub fn posts_dir(&self) -> PathBuf {
        self.dir.path().join("content/posts")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("--config").arg(self.config()).args(args);
        cmd.env("CLARION_API_TOKEN", &self.token)
            .env_remove("CLARION_DATABASE_URL");
        for (name, value) in &self.env {
            cmd.env(name, value);
        }
        cmd.current_dir(self.dir.path());
        cmd
    }

    /// Runs a command to completion (or fails the test after
    /// [`CLI_TIMEOUT`], with the stuck process's stacks).
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut cmd = self.command(args);
        cmd.stdin(Stdio::null());
        output_within(&mut cmd, CLI_TIMEOUT)
    }

    /// Runs a command that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "clarion {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts `clarion run` on `port`; its output goes to files in the temp dir.
    pub fn spawn_run(&self, port: u16, label: &str) -> Running {
        let log = |kind: &str| {
            std::fs::File::create(self.dir.path().join(format!("{label}.{kind}"))).unwrap()
        };
        let child = self
            .command(&["run", "--bind", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .stdout(log("out"))
            .stderr(log("err"))
            .spawn()
            .unwrap();
        Running {
            child,
            port,
            log: self.dir.path().join(format!("{label}.err")),
        }
    }

    pub fn run(&self) -> Running {
        self.spawn_run(self.port, "run")
    }
}

pub struct Running {
    pub child: Child,
    pub port: u16,
    log: PathBuf,
}

impl Running {
    /// Waits until `/healthz` answers.
    pub async fn ready(&self) {
        let url = format!("http://127.0.0.1:{}/healthz", self.port);
        let ok = wait_until(Duration::from_secs(60), || async {
            reqwest::get(&url)
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false)
        })
        .await;
        assert!(ok, "clarion run did not come up:\n{}", self.log());
    }

    /// SIGKILL: no shutdown code runs, like a crash or an OOM kill.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` until it is true or `limit` passes. Returns the last answer.
pub async fn wait_until<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn at_in(ms: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::milliseconds(ms))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Every target of every post, by id.
pub async fn all_targets(store: &Store) -> Vec<clarion_store::target::Model> {
    use sea_orm::EntityTrait;
    clarion_store::target::Entity::find()
        .all(store.connection())
        .await
        .unwrap()
}

pub async fn all_attempts(store: &Store) -> Vec<clarion_store::publish_attempt::Model> {
    use sea_orm::EntityTrait;
    clarion_store::publish_attempt::Entity::find()
        .all(store.connection())
        .await
        .unwrap()
}

/// base64 HMAC-SHA256 of `body` under `secret`, computed by openssl (not by
/// the code under test): shop webhooks and chat robot signatures.
pub fn openssl_hmac_with(secret: &str, body: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl dgst -sha256 -hmac '{secret}' -binary | base64"
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}
