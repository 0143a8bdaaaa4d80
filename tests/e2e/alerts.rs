//! Failure alerts (`[alerts] channel`): one message per target that ends
//! `failed` or `outcome_unknown`, one per stuck post, one per channel whose
//! credentials were rejected; rate-limited with a summary; never about the
//! alerts channel itself; an unknown alerts channel refused at start.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::harness::*;

/// A receiver whose answer depends on the path: `/fail` refuses for good
/// (400), `/auth` rejects the credentials (401), `/alerts` takes Clarion's
/// alerts and refuses everything else (400), so a post to the alerts
/// channel itself fails.
#[derive(Clone, Default)]
struct Receiver {
    url: String,
    seen: Seen,
}

/// Path, `Idempotency-Key`, body.
type Seen = Arc<Mutex<Vec<(String, String, Value)>>>;

impl Receiver {
    async fn start() -> Self {
        let seen: Seen = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/{case}", axum::routing::post(answer))
            .with_state(seen.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, seen }
    }

    /// The texts the alerts channel accepted.
    fn alerts(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(case, _, body)| case == "alerts" && is_alert(body))
            .map(|(_, _, body)| body["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// The distinct idempotency keys the alerts came with.
    fn alert_keys(&self) -> std::collections::HashSet<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(case, _, body)| case == "alerts" && is_alert(body))
            .map(|(_, key, _)| key.clone())
            .collect()
    }

    fn calls(&self, case: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(c, _, _)| c == case)
            .count()
    }
}

fn is_alert(body: &Value) -> bool {
    body["text"]
        .as_str()
        .is_some_and(|t| t.starts_with("Clarion alert"))
}

async fn answer(
    State(seen): State<Seen>,
    Path(case): Path<String>,
    headers: axum::http::HeaderMap,
    body: String,
) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap_or_default();
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    seen.lock().unwrap().push((case.clone(), key, body.clone()));
    match case.as_str() {
        "auth" => (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"message": "401: Unauthorized"})),
        )
            .into_response(),
        "alerts" if is_alert(&body) => axum::Json(json!({"id": "alert"})).into_response(),
        _ => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"message": "Invalid Form Body"})),
        )
            .into_response(),
    }
}

fn channels(receiver: &Receiver, slow: &Sink, alerts: &str) -> String {
    format!(
        r#"
[[channels]]
name = "fail"
kind = "webhook"
url = "{base}/fail"

[[channels]]
name = "auth"
kind = "webhook"
url = "{base}/auth"

[[channels]]
name = "alerts"
kind = "webhook"
url = "{base}/alerts"

[[channels]]
name = "slow"
kind = "webhook"
url = "{slow}"

[alerts]
channel = "alerts"
{alerts}
"#,
        base = receiver.url,
        slow = slow.url,
    )
}

/// Creates a post through the API; returns its id.
async fn create(base: &str, token: &str, body: Value) -> i64 {
    let response = reqwest::Client::new()
        .post(format!("{base}/api/v1/posts"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    response.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap()
}

async fn failures_stuck_posts_and_rejected_credentials_alert_once(db: Option<TestDb>) {
    let receiver = Receiver::start().await;
    // The first request of each key is answered 429 with a minute's
    // Retry-After: the channel pauses, so a second post on it is stuck.
    let slow = Sink::start(SinkRules {
        rate_limit_first_secs: Some(60),
        ..Default::default()
    })
    .await;
    let sink = Sink::start(SinkRules::default()).await;
    let mut settings = Settings::new(&sink);
    settings.scheduler_extra = "stuck_after_secs = 2".into();
    settings.extra_channels = channels(&receiver, &slow, "");
    let clarion = Clarion::new(db, &settings);
    let run = clarion.run();
    run.ready().await;
    let base = format!("http://127.0.0.1:{}", run.port);
    let token = clarion.token.clone();

    let failed = create(
        &base,
        &token,
        json!({"body": "refused", "channels": ["fail", "sink"]}),
    )
    .await;
    let auth1 = create(&base, &token, json!({"body": "one", "channels": ["auth"]})).await;
    let auth2 = create(&base, &token, json!({"body": "two", "channels": ["auth"]})).await;
    let own = create(
        &base,
        &token,
        json!({"body": "to the alerts channel", "channels": ["alerts"]}),
    )
    .await;
    let paused = create(
        &base,
        &token,
        json!({"body": "first", "channels": ["slow"]}),
    )
    .await;
    let arrived = wait_until(Duration::from_secs(10), || async {
        !slow.arrivals().is_empty()
    })
    .await;
    assert!(arrived, "{}", run.log());
    let stuck = create(
        &base,
        &token,
        json!({"body": "second", "channels": ["slow"], "at": at_in(500)}),
    )
    .await;

    let stuck_line = format!("post {stuck} is stuck on `slow`");
    let all_in = wait_until(Duration::from_secs(30), || async {
        let alerts = receiver.alerts();
        alerts.len() >= 5 && alerts.iter().any(|a| a.contains(&stuck_line))
    })
    .await;
    // More sweeps pass (every second): a stuck post is reported once, not per sweep.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let alerts = receiver.alerts();
    assert!(all_in, "alerts so far: {alerts:#?}\n{}", run.log());

    let with =
        |needle: &str| -> Vec<&String> { alerts.iter().filter(|a| a.contains(needle)).collect() };
    // A permanent refusal: post id, channel, the platform's reason and the exact retry command.
    let fail = with(&format!("post {failed} failed on `fail`"));
    assert_eq!(fail.len(), 1, "{alerts:#?}");
    assert!(
        fail[0].contains("Reason: HTTP 400: Invalid Form Body"),
        "{}",
        fail[0]
    );
    assert!(
        fail[0].contains(&format!("clarion post retry {failed} --channel fail\n")),
        "{}",
        fail[0]
    );
    // Rejected credentials: one alert for the channel, one per failed target.
    assert_eq!(
        with("channel `auth` rejected its credentials").len(),
        1,
        "{alerts:#?}"
    );
    for id in [auth1, auth2] {
        let target = with(&format!("post {id} failed on `auth`"));
        assert_eq!(target.len(), 1, "{alerts:#?}");
        assert!(target[0].contains(&format!("clarion post retry {id} --channel auth")));
    }
    // Stuck once; the rate-limited post is waiting for its retry, not failed.
    assert_eq!(with(&stuck_line).len(), 1, "{alerts:#?}");
    assert!(with(&format!("post {paused} ")).is_empty(), "{alerts:#?}");
    // Nothing about the alerts channel's own failed post (no loops).
    assert!(with(&format!("post {own} ")).is_empty(), "{alerts:#?}");
    assert_eq!(alerts.len(), 5, "{alerts:#?}");
    // The post to the alerts channel was tried there and failed.
    let store = clarion.db.store().await;
    let targets = all_targets(&store).await;
    let own_target = targets
        .iter()
        .find(|t| i64::from(t.post_id) == own)
        .unwrap();
    assert_eq!(own_target.status, "failed");
    // Every alert went out with a fresh key of its own, never a post's.
    let keys = receiver.alert_keys();
    assert_eq!(keys.len(), 5);
    assert!(
        keys.iter().all(|k| k.starts_with("clarion-alert-")),
        "{keys:?}"
    );
    assert!(targets.iter().all(|t| !keys.contains(&t.idempotency_key)));
    assert_eq!(receiver.calls("fail"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_stuck_posts_and_rejected_credentials_alert_once_sqlite() {
    failures_stuck_posts_and_rejected_credentials_alert_once(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_stuck_posts_and_rejected_credentials_alert_once_postgres() {
    if let Some(db) = TestDb::postgres().await {
        failures_stuck_posts_and_rejected_credentials_alert_once(Some(db)).await;
    }
}

/// Past `max_per_window` alerts are counted, and one summary says how many
/// were held back when the window ends.
#[tokio::test(flavor = "multi_thread")]
async fn alerts_are_rate_limited_with_a_summary_when_the_window_ends() {
    let receiver = Receiver::start().await;
    let slow = Sink::start(SinkRules::default()).await;
    let sink = Sink::start(SinkRules::default()).await;
    let mut settings = Settings::new(&sink);
    settings.extra_channels = channels(&receiver, &slow, "max_per_window = 2\nwindow_secs = 4");
    let clarion = Clarion::new(None, &settings);
    let run = clarion.run();
    run.ready().await;
    let base = format!("http://127.0.0.1:{}", run.port);
    for i in 0..5 {
        create(
            &base,
            &clarion.token,
            json!({"body": format!("refused {i}"), "channels": ["fail"]}),
        )
        .await;
    }
    let summarised = wait_until(Duration::from_secs(20), || async {
        receiver.alerts().iter().any(|a| a.contains("suppressed"))
    })
    .await;
    let alerts = receiver.alerts();
    assert!(summarised, "{alerts:#?}\n{}", run.log());
    assert_eq!(receiver.calls("fail"), 5);
    assert_eq!(alerts.len(), 3, "{alerts:#?}");
    assert_eq!(
        alerts
            .iter()
            .filter(|a| a.contains("failed on `fail`"))
            .count(),
        2
    );
    assert!(
        alerts[2].contains("3 more alerts suppressed by the rate limit"),
        "{alerts:#?}"
    );
}

/// An alerts channel that is not configured is a clear error at start.
#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_alerts_channel_is_refused_at_start() {
    let sink = Sink::start(SinkRules::default()).await;
    let mut settings = Settings::new(&sink);
    settings.extra_channels = "[alerts]\nchannel = \"team-chat\"\n".into();
    let clarion = Clarion::new(None, &settings);
    for args in [&["post", "ls"][..], &["run", "--bind", "127.0.0.1:0"][..]] {
        let out = clarion.cli(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {stderr}");
        assert!(
            stderr.contains(
                "[alerts] channel = \"team-chat\" is not a configured channel (configured: short, sink)"
            ),
            "{args:?}: {stderr}"
        );
    }
}
