//! The publish path's promises under the conditions that broke them:
//! claims that outlive their lease (a paced backlog, a long thread),
//! recovery after the platform forgot the key, and a backlog that must read
//! "behind", not "stuck", and must not be queued twice.

use std::time::Duration;

use crate::harness::*;
use crate::platforms::{Platforms, five_channels, platform_env};

/// Eight posts due at once on one Telegram chat (paced ~1 per 1.05 s) and a
/// five-part thread on the same chat, with a 3 s lease (publish timeout 1 s).
/// The last sends happen ~13 s after the first claim, far past one lease: a
/// claim taken at once and never renewed would be "recovered" by this very
/// process while its task still waits, and Telegram (no idempotency) would
/// end `outcome_unknown` or post twice. Every message must go out exactly
/// once and every target end `published`.
#[tokio::test(flavor = "multi_thread")]
async fn a_paced_backlog_and_a_long_thread_outlive_one_lease_without_a_duplicate() {
    let fakes = Platforms::start().await;
    let sink = Sink::start(SinkRules::default()).await;
    let mut settings = Settings::new(&sink);
    settings.extra_channels = five_channels(&fakes.base);
    settings.scheduler_extra = "publish_timeout_secs = 1".into();
    let mut clarion = Clarion::new(None, &settings);
    let config = std::fs::read_to_string(clarion.config())
        .unwrap()
        .replace("publish_timeout_secs = 3\n", "");
    std::fs::write(clarion.config(), config).unwrap();
    clarion.env = platform_env();
    let at = at_in(3_000);
    for n in 0..8 {
        clarion.ok(&[
            "post",
            "create",
            "-C",
            "telegram",
            "--text",
            &format!("backlog {n}"),
            "--at",
            &at,
        ]);
    }
    clarion.ok(&[
        "post",
        "create",
        "-C",
        "telegram",
        "--thread",
        "--at",
        &at,
        "--text",
        "thread 1\n---\nthread 2\n---\nthread 3\n---\nthread 4\n---\nthread 5",
    ]);
    let run = clarion.run();
    run.ready().await;
    let store = clarion.db.store().await;
    let settled = wait_until(Duration::from_secs(60), || async {
        all_targets(&store)
            .await
            .iter()
            .all(|t| t.status != "scheduled" && t.status != "publishing")
    })
    .await;
    assert!(settled, "targets never settled:\n{}", run.log());
    let targets = all_targets(&store).await;
    for t in &targets {
        assert_eq!(
            t.status,
            "published",
            "target {} ended {} ({:?})\n{}",
            t.id,
            t.status,
            t.last_error,
            run.log()
        );
    }
    let sent: Vec<String> = fakes
        .calls("telegram")
        .iter()
        .filter(|c| c.path.to_lowercase().ends_with("/sendmessage"))
        .map(|c| c.body["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        sent.len(),
        13,
        "8 posts + 5 thread parts, each once: {sent:?}"
    );
    let distinct: std::collections::HashSet<_> = sent.iter().collect();
    assert_eq!(distinct.len(), 13, "no message twice: {sent:?}");
    let recovered = all_attempts(&store)
        .await
        .iter()
        .filter(|a| a.outcome != "published")
        .count();
    assert_eq!(recovered, 0, "no attempt but the one that published");
}

/// A process dies mid-publish and comes back after the platform stopped
/// remembering the key (here a receiver that deduplicates for 2 s). A resend
/// could post twice, so the target ends `outcome_unknown` and is not resent.
async fn recovery_after_the_dedupe_window_does_not_resend(db: Option<TestDb>) {
    let sink = Sink::start(SinkRules {
        delay_first_ms: Some(2_500),
        ..Default::default()
    })
    .await;
    let mut settings = Settings::new(&sink);
    settings.webhook_extra = "idempotent = true\nidempotency_window_secs = 2".into();
    let clarion = Clarion::new(db, &settings);
    clarion.ok(&[
        "post",
        "create",
        "-C",
        "sink",
        "--text",
        "late restart",
        "--at",
        &at_in(1_000),
    ]);
    let mut run = clarion.run();
    run.ready().await;
    let in_flight = wait_until(Duration::from_secs(20), || async {
        !sink.arrivals().is_empty()
    })
    .await;
    assert!(in_flight, "the post never reached the sink:\n{}", run.log());
    run.kill();
    // Down for longer than the receiver remembers keys.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let run = clarion.run();
    run.ready().await;
    let store = clarion.db.store().await;
    let settled = wait_until(Duration::from_secs(20), || async {
        all_targets(&store)
            .await
            .iter()
            .all(|t| t.status == "outcome_unknown")
    })
    .await;
    let targets = all_targets(&store).await;
    assert!(settled, "{targets:?}\n{}", run.log());
    let error = targets[0].last_error.clone().unwrap_or_default();
    assert!(
        error.contains("only deduplicates a resend for 2s"),
        "{error}"
    );
    assert_eq!(sink.arrivals().len(), 1, "sent once, never resent");
}

#[tokio::test(flavor = "multi_thread")]
async fn recovery_after_the_dedupe_window_does_not_resend_sqlite() {
    recovery_after_the_dedupe_window_does_not_resend(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn recovery_after_the_dedupe_window_does_not_resend_postgres() {
    if let Some(db) = TestDb::postgres().await {
        recovery_after_the_dedupe_window_does_not_resend(Some(db)).await;
    }
}

/// A backlog that drains slowly (a slow receiver, two sends at a time) is
/// "behind": /readyz stays 200 and says so, and nothing is queued per target
/// or queued twice: the queue holds wake-ups, a handful for the whole burst.
#[tokio::test(flavor = "multi_thread")]
async fn a_draining_backlog_is_behind_not_stuck_and_is_not_requeued() {
    let sink = Sink::start(SinkRules {
        delay_all_ms: Some(150),
        ..Default::default()
    })
    .await;
    let mut settings = Settings::new(&sink);
    settings.scheduler_extra = "stuck_after_secs = 1\nconcurrency = 2".into();
    let clarion = Clarion::new(None, &settings);
    let at = at_in(2_000);
    let body: Vec<serde_json::Value> = (0..40)
        .map(|n| serde_json::json!({"body": format!("slow {n}"), "channels": ["sink"], "at": at}))
        .collect();
    let run = clarion.run();
    run.ready().await;
    let client = reqwest::Client::new();
    for post in &body {
        let status = client
            .post(format!("http://127.0.0.1:{}/api/v1/posts", run.port))
            .bearer_auth(&clarion.token)
            .json(post)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 201);
    }
    let url = format!("http://127.0.0.1:{}/readyz", run.port);
    let behind = wait_until(Duration::from_secs(15), || async {
        let Ok(r) = reqwest::get(&url).await else {
            return false;
        };
        let ok = r.status() == 200;
        let body: serde_json::Value = r.json().await.unwrap_or_default();
        ok && body["behind"]
            .as_str()
            .is_some_and(|b| b.starts_with("draining a backlog"))
    })
    .await;
    assert!(
        behind,
        "readyz never said behind while draining:\n{}",
        run.log()
    );
    let store = clarion.db.store().await;
    let done = wait_until(Duration::from_secs(30), || async {
        all_targets(&store)
            .await
            .iter()
            .all(|t| t.status == "published")
    })
    .await;
    assert!(done, "{}", run.log());
    assert_eq!(sink.distinct_keys(), 40);
    assert_eq!(sink.arrivals().len(), 40, "each sent once");
    let jobs = clarion.db.queued_jobs().await;
    assert!(
        jobs <= 3,
        "{jobs} queue rows for one burst: queued per target or twice"
    );
}
