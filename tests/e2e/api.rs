//! The HTTP API and the health endpoints.

use std::time::Duration;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread")]
async fn api_requires_a_token_names_bad_fields_and_manages_posts() {
    let sink = Sink::start(SinkRules::default()).await;
    let clarion = Clarion::new(None, &Settings::new(&sink));
    let run = clarion.run();
    run.ready().await;
    let base = format!("http://127.0.0.1:{}", run.port);
    let client = reqwest::Client::new();
    let post = |body: serde_json::Value| {
        client
            .post(format!("{base}/api/v1/posts"))
            .bearer_auth(&clarion.token)
            .json(&body)
            .send()
    };

    let anonymous = client
        .get(format!("{base}/api/v1/posts"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let wrong = client
        .get(format!("{base}/api/v1/posts"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    let missing = post(serde_json::json!({ "body": "hi" })).await.unwrap();
    assert_eq!(missing.status(), 400);
    let error = missing.json::<serde_json::Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(error.contains("missing field `channels`"), "{error}");

    let bad_time =
        post(serde_json::json!({ "body": "hi", "channels": ["sink"], "at": "tomorrow" }))
            .await
            .unwrap();
    assert_eq!(bad_time.status(), 400);
    assert!(
        bad_time
            .text()
            .await
            .unwrap()
            .contains("at: `tomorrow` is not an RFC 3339 time")
    );

    let invalid = post(serde_json::json!({ "body": "{{who}}", "channels": ["sink", "ghost"] }))
        .await
        .unwrap();
    assert_eq!(invalid.status(), 422);
    let details = invalid.json::<serde_json::Value>().await.unwrap()["details"].clone();
    let details: Vec<String> = serde_json::from_value(details).unwrap();
    assert!(
        details
            .iter()
            .any(|d| d.starts_with("channel `ghost`: unknown channel")),
        "{details:?}"
    );
    assert!(
        details
            .iter()
            .any(|d| d.contains("channel `sink`") && d.contains("missing variable `who`")),
        "{details:?}"
    );

    let later = at_in(3_600_000);
    let created = post(serde_json::json!({ "body": "hello {{who}}", "vars": {"who": "api"}, "channels": ["sink"], "at": later, "campaign": "c1" }))
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: serde_json::Value = created.json().await.unwrap();
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["targets"][0]["text"], "hello api");
    assert_eq!(created["targets"][0]["status"], "scheduled");

    let list: serde_json::Value = client
        .get(format!("{base}/api/v1/posts?status=scheduled&campaign=c1"))
        .bearer_auth(&clarion.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);

    let cancelled: serde_json::Value = client
        .post(format!("{base}/api/v1/posts/{id}/cancel"))
        .bearer_auth(&clarion.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cancelled["targets"][0]["status"], "cancelled");
    let again = client
        .post(format!("{base}/api/v1/posts/{id}/cancel"))
        .bearer_auth(&clarion.token)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    let missing = client
        .get(format!("{base}/api/v1/posts/999"))
        .bearer_auth(&clarion.token)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("clarion_targets{status=\"cancelled\"} 1"),
        "{metrics}"
    );
}

/// Posts silently stuck while health checks stay green is the complaint we
/// exist to fix: a due post nobody picks up must turn /readyz red, saying why.
#[tokio::test(flavor = "multi_thread")]
async fn readyz_fails_when_a_due_post_is_not_picked_up() {
    let sink = Sink::start(SinkRules::default()).await;
    let mut settings = Settings::new(&sink);
    // A worker that effectively never polls and a sweeper that never runs again.
    settings.scheduler_extra = "stuck_after_secs = 1".into();
    let clarion = Clarion::new(None, &settings);
    let config = std::fs::read_to_string(clarion.config())
        .unwrap()
        .replace("sweep_interval_secs = 1", "sweep_interval_secs = 600")
        .replace("poll_interval_ms = 50", "poll_interval_ms = 600000");
    std::fs::write(clarion.config(), config).unwrap();
    let run = clarion.run();
    run.ready().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    clarion.ok(&["post", "create", "-C", "sink", "--text", "stuck"]);
    let url = format!("http://127.0.0.1:{}/readyz", run.port);
    let red = wait_until(Duration::from_secs(10), || async {
        reqwest::get(&url)
            .await
            .map(|r| r.status() == 503)
            .unwrap_or(false)
    })
    .await;
    assert!(red, "readyz stayed green with a stuck post");
    let body: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    let reason = body["reasons"][0].as_str().unwrap();
    assert!(
        reason.starts_with("queue stuck: target 1 (post 1, channel `sink`) was due at"),
        "{reason}"
    );
    let status = clarion.ok(&["queue", "status"]);
    assert!(status.contains("stuck: 1 target(s)"), "{status}");
}
