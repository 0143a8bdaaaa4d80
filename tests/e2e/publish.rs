//! Scheduled posts arrive once, rendered, never early; 429s are honoured;
//! missed posts follow the grace period.

use std::time::Duration;

use clarion_store::Store;

use crate::harness::*;

async fn arrive_once_rendered_never_early(db: Option<TestDb>) {
    let sink = Sink::start(SinkRules::default()).await;
    let clarion = Clarion::new(db, &Settings::new(&sink));
    clarion.ok(&["migrate"]);
    let run = clarion.run();
    run.ready().await;
    for n in 0..5 {
        let at = at_in(1_000 + n * 250);
        clarion.ok(&[
            "post",
            "create",
            "-C",
            "sink",
            "--text",
            "post {{n}} for {{who}}",
            "--var",
            &format!("n={n}"),
            "--var",
            "who=**everyone**",
            "--at",
            &at,
            "--template",
            "shout",
            "--var",
            "tag=launch",
        ]);
    }
    let all_in = wait_until(Duration::from_secs(30), || async {
        sink.distinct_keys() >= 5
    })
    .await;
    assert!(
        all_in,
        "only {} of 5 posts arrived:\n{}",
        sink.distinct_keys(),
        run.log()
    );
    tokio::time::sleep(Duration::from_millis(500)).await; // room for a duplicate to show

    let store: Store = clarion.db.store().await;
    let targets = all_targets(&store).await;
    let arrivals = sink.arrivals();
    assert_eq!(arrivals.len(), 5, "each post exactly once: {arrivals:?}");
    for t in &targets {
        let arrival = arrivals
            .iter()
            .find(|a| a.key == t.idempotency_key)
            .expect("arrived under its key");
        let due = t.scheduled_at_ms.unwrap();
        assert!(
            arrival.at_ms >= due,
            "target {} arrived {}ms early",
            t.id,
            due - arrival.at_ms
        );
        assert_eq!(t.status, "published");
        assert_eq!(
            t.platform_post_id.as_deref(),
            sink.posted().get(&t.idempotency_key).map(String::as_str)
        );
        assert!(
            t.platform_url
                .as_deref()
                .unwrap()
                .starts_with("https://sink.test/msg-")
        );
        let text = arrival.body["text"].as_str().unwrap();
        assert!(
            text.starts_with("post ") && text.ends_with(" for **everyone** #launch"),
            "rendered: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduled_posts_arrive_once_rendered_and_never_early_sqlite() {
    arrive_once_rendered_never_early(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduled_posts_arrive_once_rendered_and_never_early_postgres() {
    if let Some(db) = TestDb::postgres().await {
        arrive_once_rendered_never_early(Some(db)).await;
    }
}

async fn rate_limit_is_honoured(db: Option<TestDb>) {
    let sink = Sink::start(SinkRules {
        rate_limit_first_secs: Some(2),
        ..Default::default()
    })
    .await;
    let clarion = Clarion::new(db, &Settings::new(&sink));
    clarion.ok(&["migrate"]);
    let run = clarion.run();
    run.ready().await;
    clarion.ok(&[
        "post",
        "create",
        "-C",
        "sink",
        "--text",
        "patience",
        "--at",
        &at_in(500),
    ]);
    let delivered = wait_until(Duration::from_secs(30), || async {
        sink.arrivals().len() >= 2
    })
    .await;
    assert!(delivered, "no retry after the 429:\n{}", run.log());
    let arrivals = sink.arrivals();
    let waited = arrivals[1].at_ms - arrivals[0].at_ms;
    assert!(
        waited >= 2_000,
        "retried after {waited}ms, before Retry-After: 2"
    );
    assert_eq!(
        arrivals[0].key, arrivals[1].key,
        "a retry reuses the idempotency key"
    );

    let store = clarion.db.store().await;
    let ok = wait_until(Duration::from_secs(10), || async {
        all_targets(&store)
            .await
            .iter()
            .all(|t| t.status == "published")
    })
    .await;
    assert!(ok, "target not published after the retry");
    let attempts = all_attempts(&store).await;
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].outcome, "rate_limited");
    assert_eq!(attempts[0].http_status, Some(429));
    assert_eq!(attempts[0].retry_after_ms, Some(2_000));
    assert_eq!(
        attempts[0].message.as_deref(),
        Some("HTTP 429: You are being rate limited.")
    );
    assert_eq!(attempts[1].outcome, "published");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_with_retry_after_is_honoured_sqlite() {
    rate_limit_is_honoured(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_with_retry_after_is_honoured_postgres() {
    if let Some(db) = TestDb::postgres().await {
        rate_limit_is_honoured(Some(db)).await;
    }
}

/// Clarion was down while two posts fell due: the one still within the
/// grace period goes out late, the one beyond it fails with the reason.
#[tokio::test(flavor = "multi_thread")]
async fn missed_posts_follow_the_grace_period() {
    let sink = Sink::start(SinkRules::default()).await;
    let mut settings = Settings::new(&sink);
    settings.scheduler_extra = "grace_period_secs = 3".into();
    let clarion = Clarion::new(None, &settings);
    let missed = at_in(1_000);
    let late = at_in(4_000);
    clarion.ok(&[
        "post", "create", "-C", "sink", "--text", "too late", "--at", &missed,
    ]);
    clarion.ok(&[
        "post",
        "create",
        "-C",
        "sink",
        "--text",
        "still fine",
        "--at",
        &late,
    ]);
    // Down until the first post is ~5 s late (beyond 3 s grace) and the second ~2 s late.
    tokio::time::sleep(Duration::from_millis(6_000)).await;
    let run = clarion.run();
    run.ready().await;
    let store = clarion.db.store().await;
    let settled = wait_until(Duration::from_secs(20), || async {
        all_targets(&store)
            .await
            .iter()
            .all(|t| t.status == "published" || t.status == "failed")
    })
    .await;
    assert!(settled, "targets did not settle:\n{}", run.log());
    let targets = all_targets(&store).await;
    let (first, second) = (&targets[0], &targets[1]);
    assert_eq!(first.status, "failed");
    let reason = first.last_error.as_deref().unwrap();
    assert!(
        reason.starts_with("missed: due at ") && reason.contains("beyond the 3s grace period"),
        "{reason}"
    );
    assert_eq!(second.status, "published");
    let texts: Vec<String> = sink
        .arrivals()
        .iter()
        .map(|a| a.body["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts, vec!["still fine"]);
}
