//! Crashes and restarts: a process killed mid-publish, and two workers on one database.

use std::collections::HashSet;
use std::time::Duration;

use crate::harness::*;

/// Posts are in flight (the sink holds its answer) when the process is
/// SIGKILLed. After a restart each post is resent with the SAME key and the
/// sink, which deduplicates on it like Mastodon's Idempotency-Key, posts
/// each exactly once.
async fn killed_mid_publish_delivers_exactly_once(db: Option<TestDb>) {
    let sink = Sink::start(SinkRules {
        delay_first_ms: Some(2_500),
        ..Default::default()
    })
    .await;
    let clarion = Clarion::new(db, &Settings::new(&sink));
    for n in 0..4 {
        clarion.ok(&[
            "post",
            "create",
            "-C",
            "sink",
            "--text",
            &format!("crash {n}"),
            "--at",
            &at_in(1_000),
        ]);
    }
    let mut run = clarion.run();
    run.ready().await;
    let in_flight = wait_until(Duration::from_secs(20), || async {
        sink.arrivals().len() >= 4
    })
    .await;
    assert!(in_flight, "posts never reached the sink:\n{}", run.log());
    run.kill();

    let store = clarion.db.store().await;
    let publishing = all_targets(&store)
        .await
        .iter()
        .filter(|t| t.status == "publishing")
        .count();
    assert_eq!(
        publishing, 4,
        "the kill must land while all four are mid-publish"
    );

    let run = clarion.run();
    run.ready().await;
    let done = wait_until(Duration::from_secs(40), || async {
        all_targets(&store)
            .await
            .iter()
            .all(|t| t.status == "published")
    })
    .await;
    assert!(done, "not all published after restart:\n{}", run.log());

    let targets = all_targets(&store).await;
    let posted = sink.posted();
    assert_eq!(posted.len(), 4, "the sink posted each message exactly once");
    for t in &targets {
        let sends = sink
            .arrivals()
            .iter()
            .filter(|a| a.key == t.idempotency_key)
            .count();
        assert!(
            sends >= 2,
            "target {} was resent after the crash (sent {sends}x)",
            t.id
        );
        assert_eq!(t.platform_post_id.as_ref(), posted.get(&t.idempotency_key));
        assert!(t.attempts >= 2);
    }
    let attempts = all_attempts(&store).await;
    for t in &targets {
        let published = attempts
            .iter()
            .filter(|a| a.target_id == t.id && a.outcome == "published")
            .count();
        assert_eq!(published, 1, "target {} recorded as published once", t.id);
    }
    // The killed process never finished an attempt: every record is the restarted one's.
    let workers: HashSet<_> = attempts.iter().map(|a| a.worker.clone()).collect();
    assert_eq!(workers.len(), 1, "{workers:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_mid_publish_restart_delivers_each_post_exactly_once_sqlite() {
    killed_mid_publish_delivers_exactly_once(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_mid_publish_restart_delivers_each_post_exactly_once_postgres() {
    if let Some(db) = TestDb::postgres().await {
        killed_mid_publish_delivers_exactly_once(Some(db)).await;
    }
}

/// Same crash, but the receiver is declared non-idempotent: Clarion must not
/// resend (it could post twice); it reports `outcome_unknown` instead.
#[tokio::test(flavor = "multi_thread")]
async fn killed_mid_publish_without_idempotency_is_reported_not_resent() {
    let sink = Sink::start(SinkRules {
        delay_first_ms: Some(2_500),
        ..Default::default()
    })
    .await;
    let mut settings = Settings::new(&sink);
    settings.webhook_extra = "idempotent = false".into();
    let clarion = Clarion::new(None, &settings);
    clarion.ok(&[
        "post",
        "create",
        "-C",
        "sink",
        "--text",
        "once at most",
        "--at",
        &at_in(1_000),
    ]);
    let mut run = clarion.run();
    run.ready().await;
    assert!(
        wait_until(Duration::from_secs(20), || async {
            !sink.arrivals().is_empty()
        })
        .await
    );
    run.kill();
    let run = clarion.run();
    run.ready().await;
    let store = clarion.db.store().await;
    let parked = wait_until(Duration::from_secs(30), || async {
        all_targets(&store)
            .await
            .iter()
            .all(|t| t.status == "outcome_unknown")
    })
    .await;
    assert!(
        parked,
        "target not parked as outcome_unknown:\n{}",
        run.log()
    );
    assert_eq!(sink.arrivals().len(), 1, "never resent");
    let target = &all_targets(&store).await[0];
    assert!(
        target
            .last_error
            .as_deref()
            .unwrap()
            .contains("stopped while publishing"),
        "{:?}",
        target.last_error
    );
    let show = clarion.ok(&["post", "show", &target.post_id.to_string()]);
    assert!(show.contains("outcome_unknown"), "{show}");
}

/// Two `clarion run` processes share one PostgreSQL database and queue;
/// 60 posts fall due at once; every post is sent once, and both worked.
#[tokio::test(flavor = "multi_thread")]
async fn two_workers_on_postgres_never_publish_the_same_target_twice() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let sink = Sink::start(SinkRules::default()).await;
    let mut settings = Settings::new(&sink);
    // Small batches and few publishes in flight, so the burst is spread over
    // many fetches from both processes.
    settings.scheduler_extra = "batch_size = 2\nconcurrency = 2".into();
    let clarion = Clarion::new(Some(db), &settings);
    clarion.ok(&["migrate"]);
    let first = clarion.spawn_run(free_port(), "first");
    let second = clarion.spawn_run(free_port(), "second");
    first.ready().await;
    second.ready().await;

    let client = reqwest::Client::new();
    let at = at_in(3_000);
    let posts = 60;
    for n in 0..posts {
        let response = client
            .post(format!("http://127.0.0.1:{}/api/v1/posts", first.port))
            .bearer_auth(&clarion.token)
            .json(
                &serde_json::json!({ "body": format!("race {n}"), "channels": ["sink"], "at": at }),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    let all_in = wait_until(Duration::from_secs(60), || async {
        sink.distinct_keys() >= posts
    })
    .await;
    assert!(
        all_in,
        "{} of {posts} arrived\n{}\n{}",
        sink.distinct_keys(),
        first.log(),
        second.log()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sink.arrivals().len(), posts, "no target was sent twice");

    let store = clarion.db.store().await;
    let attempts = all_attempts(&store).await;
    assert_eq!(attempts.len(), posts);
    // Both processes were up and their scheduler loops running while the
    // burst drained (how the burst split between them is up to the queue).
    for process in [&first, &second] {
        let ready = reqwest::get(format!("http://127.0.0.1:{}/readyz", process.port))
            .await
            .unwrap();
        assert_eq!(ready.status(), 200, "{}", process.log());
    }
}
