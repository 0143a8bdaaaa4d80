//! A listener that keeps failing is visible: `/readyz` turns red naming it
//! once it has failed longer than `failing_after_secs`, `listeners status`
//! shows the error, and `/metrics` says it is failing. A rejected token is
//! not retried in a loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_listener_turns_readiness_red_and_is_not_hammered() {
    let polls = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let counter = polls.clone();
    let app = axum::Router::new().fallback(move |_request: Request| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            // Mastodon's answer to a revoked token, on every endpoint.
            (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": "The access token was revoked"})),
            )
                .into_response()
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });

    let sink = Sink::start(SinkRules::default()).await;
    let mut settings = Settings::new(&sink);
    settings.extra_channels = format!(
        r#"
[[channels]]
name = "masto"
kind = "mastodon"
instance = "{base}"
access_token = {{ env = "E2E_MASTODON_TOKEN" }}
listen = true

[listen]
failing_after_secs = 1
"#
    );
    let mut clarion = Clarion::new(None, &settings);
    clarion.env = vec![("E2E_MASTODON_TOKEN".into(), "masto-token".into())];
    let run = clarion.run();
    run.ready().await;
    let readyz = format!("http://127.0.0.1:{}/readyz", clarion.port);
    let red = wait_until(Duration::from_secs(20), || async {
        let response = reqwest::get(&readyz).await.unwrap();
        response.status() == 503
            && response
                .text()
                .await
                .unwrap()
                .contains("listener `masto` has been failing")
    })
    .await;
    assert!(red, "readiness names the failing listener:\n{}", run.log());
    let status = clarion.ok(&["listeners", "status"]);
    assert!(
        status.contains("failing") && status.contains("auth_expired"),
        "{status}"
    );
    let metrics = reqwest::get(format!("http://127.0.0.1:{}/metrics", clarion.port))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("clarion_listener_failing{channel=\"masto\"} 1"),
        "{metrics}"
    );
    // An expired token waits for a person: a few calls, not a loop.
    let seen = polls.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        polls.load(Ordering::SeqCst) - seen <= 1,
        "a rejected token is not retried in a loop ({} then {})",
        seen,
        polls.load(Ordering::SeqCst)
    );
    assert!(
        !run.log().contains("masto-token"),
        "the token is never logged"
    );
}
