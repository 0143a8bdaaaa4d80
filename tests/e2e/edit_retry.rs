//! Editing, retrying and settling posts, and the guarded writes behind them:
//! `post edit` / `PATCH /api/v1/posts/{id}`, `post retry` / `POST
//! …/retry`, `post settle` / `POST …/settle`, `content sync`'s target
//! writes, and the refusal of empty text and a channel given twice.

use std::time::Duration;

use clarion_store::{
    AttemptRecord, Claim, ClaimBatch, NewPost, NewTarget, PostEdit, Store, TargetChange, now_ms,
};
use sea_orm::{ConnectionTrait, TransactionTrait};

use crate::harness::*;

/// The id in `post N scheduled for …` / `post N saved as a draft`.
fn created_id(out: &str) -> i32 {
    out.split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no post id in {out:?}"))
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn targets_of(store: &Store, post_id: i32) -> Vec<clarion_store::target::Model> {
    store.post_detail(post_id).await.unwrap().targets
}

async fn wait_status(store: &Store, post_id: i32, status: &str) -> bool {
    wait_until(Duration::from_secs(30), || async {
        targets_of(store, post_id)
            .await
            .iter()
            .all(|t| t.status == status)
    })
    .await
}

fn api(port: u16, token: &str) -> impl Fn(reqwest::Method, &str) -> reqwest::RequestBuilder {
    let client = reqwest::Client::new();
    let token = token.to_owned();
    move |method, path| {
        client
            .request(method, format!("http://127.0.0.1:{port}/api/v1{path}"))
            .bearer_auth(&token)
    }
}

async fn error_of(response: reqwest::Response) -> String {
    let body: serde_json::Value = response.json().await.unwrap();
    let mut text = body["error"].as_str().unwrap_or_default().to_owned();
    if let Some(details) = body["details"].as_array() {
        for d in details {
            text.push('\n');
            text.push_str(d.as_str().unwrap_or_default());
        }
    }
    text
}

// ---------------------------------------------------------------- retry

/// A target that failed (a 429 with one attempt allowed) is retried by
/// `post retry`: back to `scheduled` at the new time, attempts reset, the
/// last error kept until the next attempt, the SAME idempotency key; it
/// then goes out once.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_target_is_retried_with_its_key() {
    let sink = Sink::start(SinkRules {
        rate_limit_first_secs: Some(1),
        ..Default::default()
    })
    .await;
    let mut settings = Settings::new(&sink);
    settings.scheduler_extra = "max_attempts = 1".into();
    let clarion = Clarion::new(None, &settings);
    let run = clarion.run();
    run.ready().await;
    let store = clarion.db.store().await;
    let id = created_id(&clarion.ok(&["post", "create", "-C", "sink", "--text", "again"]));
    assert!(
        wait_status(&store, id, "failed").await,
        "not failed:\n{}",
        run.log()
    );
    let failed = targets_of(&store, id).await.remove(0);
    assert!(failed.last_error.is_some());

    // Before this change: "nothing to schedule: every target is already publishing or final".
    let out = clarion.ok(&["post", "retry", &id.to_string(), "--in", "1h"]);
    assert!(out.contains("scheduled again"), "{out}");
    assert!(out.contains("same idempotency key"), "{out}");
    let retried = targets_of(&store, id).await.remove(0);
    assert_eq!(retried.status, "scheduled");
    assert_eq!(retried.attempts, 0);
    assert_eq!(retried.idempotency_key, failed.idempotency_key);
    assert_eq!(
        retried.last_error, failed.last_error,
        "kept until the next attempt"
    );
    let in_an_hour = now_ms() + 3_600_000;
    let not_before = retried.not_before_ms.unwrap();
    assert!((in_an_hour - not_before).abs() < 60_000, "{not_before}");
    assert_eq!(retried.scheduled_at_ms, retried.not_before_ms);

    // Only failed or outcome_unknown targets are retried.
    let out = clarion.cli(&["post", "retry", &id.to_string()]);
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(
        err.contains("nothing to retry: no target is failed or outcome_unknown (`sink` scheduled)"),
        "{err}"
    );
    let out = clarion.cli(&["post", "retry", &id.to_string(), "-C", "sink"]);
    let err = stderr_of(&out);
    assert!(
        err.contains("is scheduled: only failed or outcome_unknown targets can be retried"),
        "{err}"
    );
    let out = clarion.cli(&["post", "retry", &id.to_string(), "-C", "ghost"]);
    assert!(
        stderr_of(&out).contains("has no target on `ghost`"),
        "{}",
        stderr_of(&out)
    );

    // Bring it forward; it goes out once, with the key of the failed attempt.
    clarion.ok(&["post", "schedule", &id.to_string(), "--in", "1s"]);
    assert!(
        wait_status(&store, id, "published").await,
        "not published:\n{}",
        run.log()
    );
    let arrivals = sink.arrivals();
    assert_eq!(arrivals.len(), 2, "the 429 and the retry");
    assert!(arrivals.iter().all(|a| a.key == failed.idempotency_key));
    assert_eq!(sink.posted().len(), 1);
    let published = targets_of(&store, id).await.remove(0);
    assert_eq!(published.last_error, None);
}

/// Three targets end `outcome_unknown` (the receiver answers after the
/// publish timeout): on a webhook that does not deduplicate, and on one
/// whose 1 s dedupe window has passed. A retry may post twice there, so it
/// needs `--force` / `"force": true`; `post settle` records what a person
/// found instead; a settled-as-missing target is retried without force.
async fn unknown_outcomes_need_force_or_a_persons_word(db: Option<TestDb>) {
    let sink = Sink::start(SinkRules {
        delay_first_ms: Some(4_500),
        ..Default::default()
    })
    .await;
    let mut settings = Settings::new(&sink);
    settings.extra_channels = format!(
        r#"
[[channels]]
name = "blind"
kind = "webhook"
url = "{url}"

[[channels]]
name = "windowed"
kind = "webhook"
url = "{url}"
idempotent = true
idempotency_window_secs = 1
"#,
        url = sink.url
    );
    let clarion = Clarion::new(db, &settings);
    clarion.ok(&["migrate"]);
    let run = clarion.run();
    run.ready().await;
    let store = clarion.db.store().await;
    let call = api(run.port, &clarion.token);
    let create = |channel: &str, text: &str| {
        created_id(&clarion.ok(&["post", "create", "-C", channel, "--text", text]))
    };
    let forced = create("blind", "forced");
    let windowed = create("windowed", "windowed");
    let settled = create("blind", "settled");
    let missing = create("blind", "missing");
    for id in [forced, windowed, settled, missing] {
        assert!(
            wait_status(&store, id, "outcome_unknown").await,
            "post {id} not outcome_unknown:\n{}",
            run.log()
        );
    }
    let arrivals_before = sink.arrivals().len();
    assert_eq!(arrivals_before, 4);

    // No idempotency: refused without force, on the CLI and the API.
    let out = clarion.cli(&["post", "retry", &forced.to_string()]);
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(err.contains("cannot deduplicate a resend"), "{err}");
    assert!(err.contains("may post it twice"), "{err}");
    assert!(err.contains("--force"), "{err}");
    let response = call(reqwest::Method::POST, &format!("/posts/{forced}/retry"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    let err = error_of(response).await;
    assert!(err.contains("may post it twice"), "{err}");
    // The dedupe window is over: refused too.
    let out = clarion.cli(&["post", "retry", &windowed.to_string(), "-C", "windowed"]);
    let err = stderr_of(&out);
    assert!(!out.status.success());
    assert!(err.contains("dedupe window"), "{err}");
    assert!(err.contains("may post it twice"), "{err}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.arrivals().len(), arrivals_before, "nothing was resent");
    assert_eq!(
        targets_of(&store, forced).await[0].status,
        "outcome_unknown"
    );

    // With force: resent with the same key.
    let key = targets_of(&store, forced).await[0].idempotency_key.clone();
    let out = clarion.ok(&["post", "retry", &forced.to_string(), "--force"]);
    assert!(out.contains("forced: may post twice"), "{out}");
    let response = call(reqwest::Method::POST, &format!("/posts/{windowed}/retry"))
        .json(&serde_json::json!({ "channel": "windowed", "force": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["forced"].as_array().unwrap().len(), 1, "{answer}");
    for id in [forced, windowed] {
        assert!(
            wait_status(&store, id, "published").await,
            "post {id} not published:\n{}",
            run.log()
        );
    }
    assert_eq!(sink.arrivals().iter().filter(|a| a.key == key).count(), 2);

    // A person found it on the platform.
    let out = clarion.ok(&[
        "post",
        "settle",
        &settled.to_string(),
        "-C",
        "blind",
        "--published",
        "https://sink.test/found",
        "--platform-id",
        "found-1",
    ]);
    assert!(
        out.contains("recorded as published at https://sink.test/found"),
        "{out}"
    );
    let t = targets_of(&store, settled).await.remove(0);
    assert_eq!(t.status, "published");
    assert_eq!(t.platform_url.as_deref(), Some("https://sink.test/found"));
    assert_eq!(t.platform_post_id.as_deref(), Some("found-1"));
    let attempts = store.attempts(vec![t.id]).await.unwrap();
    let last = attempts.last().unwrap();
    assert_eq!(last.outcome, "settled");
    assert_eq!(last.worker, "cli");
    assert!(
        last.message
            .as_deref()
            .unwrap()
            .contains("checked by a person")
    );
    let show = clarion.ok(&["post", "show", &settled.to_string()]);
    assert!(show.contains("settled"), "{show}");
    // A published target is final.
    let out = clarion.cli(&[
        "post",
        "settle",
        &settled.to_string(),
        "-C",
        "blind",
        "--not-published",
    ]);
    assert!(
        stderr_of(&out)
            .contains("is published: only failed or outcome_unknown targets can be settled"),
        "{}",
        stderr_of(&out)
    );
    let out = clarion.cli(&["post", "settle", &missing.to_string(), "-C", "blind"]);
    assert!(
        !out.status.success(),
        "--published or --not-published is required"
    );
    let out = clarion.cli(&[
        "post",
        "settle",
        &missing.to_string(),
        "-C",
        "blind",
        "--published",
        "sink.test/x",
    ]);
    assert!(
        stderr_of(&out).contains("is not a link"),
        "{}",
        stderr_of(&out)
    );

    // A person did not find it: failed, with their word, over the API.
    let response = call(reqwest::Method::POST, &format!("/posts/{missing}/settle"))
        .json(&serde_json::json!({ "channel": "blind", "not_published": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let t = targets_of(&store, missing).await.remove(0);
    assert_eq!(t.status, "failed");
    assert_eq!(
        t.last_error.as_deref(),
        Some("checked by a person: not published")
    );
    let response = call(reqwest::Method::POST, &format!("/posts/{missing}/settle"))
        .json(&serde_json::json!({ "channel": "blind" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    // Known not to be out: a plain retry sends it (same key).
    let response = call(reqwest::Method::POST, &format!("/posts/{missing}/retry"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", error_of(response).await);
    assert!(
        wait_status(&store, missing, "published").await,
        "not published:\n{}",
        run.log()
    );
    let response = call(reqwest::Method::POST, &format!("/posts/{missing}/retry"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_outcomes_need_force_or_a_persons_word_sqlite() {
    unknown_outcomes_need_force_or_a_persons_word(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_outcomes_need_force_or_a_persons_word_postgres() {
    if let Some(db) = TestDb::postgres().await {
        unknown_outcomes_need_force_or_a_persons_word(Some(db)).await;
    }
}

// ----------------------------------------------------------------- edit

/// `post edit` re-renders and re-validates every target like a create;
/// a refused edit changes nothing; channels are added and removed; a new
/// time is honoured (never early); once out, a target is left alone.
async fn edits_rerender_and_leave_what_went_out_alone(db: Option<TestDb>) {
    let sink = Sink::start(SinkRules::default()).await;
    let clarion = Clarion::new(db, &Settings::new(&sink));
    clarion.ok(&["migrate"]);
    let store = clarion.db.store().await;
    let id = created_id(&clarion.ok(&[
        "post",
        "create",
        "-C",
        "sink",
        "-C",
        "short",
        "--text",
        "hi {{who}}",
        "--var",
        "who=al",
        "--in",
        "1h",
    ]));
    let before = targets_of(&store, id).await;
    let sid = id.to_string();

    let out = clarion.ok(&["post", "edit", &sid, "--var", "who=bob"]);
    assert!(out.contains("edited"), "{out}");
    let after = targets_of(&store, id).await;
    assert_eq!(
        after
            .iter()
            .map(|t| t.rendered_text.as_str())
            .collect::<Vec<_>>(),
        ["hi bob", "hi bob"]
    );
    for (b, a) in before.iter().zip(&after) {
        assert_eq!((b.id, &b.idempotency_key), (a.id, &a.idempotency_key));
        assert_eq!(a.status, "scheduled");
        assert_eq!(a.not_before_ms, b.not_before_ms, "the time did not change");
    }

    // Refused edits change nothing.
    let out = clarion.cli(&[
        "post",
        "edit",
        &sid,
        "--text",
        "this text is too long for short",
    ]);
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(
        err.contains("channel `short`") && err.contains("limit"),
        "{err}"
    );
    let out = clarion.cli(&["post", "edit", &sid, "--text", "  \n "]);
    assert!(
        stderr_of(&out).contains("body: the text is empty"),
        "{}",
        stderr_of(&out)
    );
    let out = clarion.cli(&["post", "edit", &sid, "--text", "{{nope}}"]);
    assert!(stderr_of(&out).contains("nope"), "{}", stderr_of(&out));
    let out = clarion.cli(&["post", "edit", &sid, "--add-channel", "sink"]);
    assert!(
        stderr_of(&out).contains("channel `sink` is already on this post"),
        "{}",
        stderr_of(&out)
    );
    let out = clarion.cli(&["post", "edit", &sid, "--add-channel", "ghost"]);
    assert!(
        stderr_of(&out).contains("unknown channel"),
        "{}",
        stderr_of(&out)
    );
    let out = clarion.cli(&["post", "edit", &sid, "--in", "-5m"]);
    assert!(!out.status.success());
    let out = clarion.cli(&["post", "edit", &sid]);
    assert!(
        stderr_of(&out).contains("nothing to change"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(targets_of(&store, id).await, after, "nothing changed");

    // Remove a channel: its target is cancelled.
    let out = clarion.ok(&["post", "edit", &sid, "--remove-channel", "short"]);
    assert!(out.contains("cancelled"), "{out}");
    let targets = targets_of(&store, id).await;
    assert_eq!(targets[1].status, "cancelled");
    let out = clarion.cli(&["post", "edit", &sid, "--add-channel", "short"]);
    assert!(
        stderr_of(&out).contains("was cancelled on this post"),
        "{}",
        stderr_of(&out)
    );

    // A new time and text: sent at the new time, with the new text.
    let run = clarion.run();
    run.ready().await;
    let asked = now_ms() + 2_000;
    clarion.ok(&[
        "post",
        "edit",
        &sid,
        "--in",
        "2s",
        "--text",
        "moved {{who}}",
    ]);
    assert!(
        wait_status(&store, id, "published").await || {
            let t = targets_of(&store, id).await;
            t[0].status == "published" && t[1].status == "cancelled"
        },
        "not published:\n{}",
        run.log()
    );
    assert!(
        wait_until(Duration::from_secs(20), || async {
            sink.arrivals().len() == 1
        })
        .await,
        "{}",
        run.log()
    );
    let arrival = &sink.arrivals()[0];
    assert_eq!(arrival.body["text"], "moved bob");
    assert!(
        arrival.at_ms >= asked - 1_000,
        "early: {} < {asked}",
        arrival.at_ms
    );

    // Gone out: left alone, and said so.
    let out = clarion.cli(&["post", "edit", &sid, "--text", "too late"]);
    let err = stderr_of(&out);
    assert!(
        err.contains("nothing to edit: every target is already publishing or final")
            && err.contains("`sink` published"),
        "{err}"
    );

    // The API: a channel added to a post that went out goes out now; the
    // published target is listed as left alone, with the reason.
    let call = api(run.port, &clarion.token);
    let response = call(reqwest::Method::PATCH, &format!("/posts/{id}"))
        .json(&serde_json::json!({ "text": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(error_of(response).await.contains("unknown field `text`"));
    let response = call(reqwest::Method::PATCH, "/posts/999999")
        .json(&serde_json::json!({ "body": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let other = created_id(&clarion.ok(&["post", "create", "-C", "sink", "--text", "first"]));
    assert!(
        wait_status(&store, other, "published").await,
        "{}",
        run.log()
    );
    let response = call(reqwest::Method::PATCH, &format!("/posts/{other}"))
        .json(&serde_json::json!({ "body": "far too long for the short channel", "add_channels": ["short"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    assert!(error_of(response).await.contains("channel `short`"));
    let response = call(reqwest::Method::PATCH, &format!("/posts/{other}"))
        .json(&serde_json::json!({ "body": "   ", "add_channels": ["short"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(error_of(response).await.contains("body: the text is empty"));
    let response = call(reqwest::Method::PATCH, &format!("/posts/{other}"))
        .json(&serde_json::json!({ "body": "second", "add_channels": ["short"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["added"].as_array().unwrap().len(), 1, "{answer}");
    let left = &answer["left_alone"][0];
    assert_eq!(left["channel"], "sink", "{answer}");
    assert_eq!(left["status"], "published", "{answer}");
    assert_eq!(left["reason"], "it is already published", "{answer}");
    assert!(
        wait_status(&store, other, "published").await,
        "{}",
        run.log()
    );
    let texts: Vec<String> = sink
        .arrivals()
        .iter()
        .map(|a| a.body["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts, ["moved bob", "first", "second"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn edits_rerender_and_leave_what_went_out_alone_sqlite() {
    edits_rerender_and_leave_what_went_out_alone(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn edits_rerender_and_leave_what_went_out_alone_postgres() {
    if let Some(db) = TestDb::postgres().await {
        edits_rerender_and_leave_what_went_out_alone(Some(db)).await;
    }
}

// ------------------------------------------------------- guarded writes

fn one_target_post(source_key: Option<&str>, at: i64, parts: &[&str]) -> NewPost {
    let text = parts.join("\n---\n");
    NewPost {
        source_key: source_key.map(str::to_owned),
        import_key: None,
        body: text.clone(),
        template: None,
        vars: serde_json::json!({}),
        campaign: None,
        author: None,
        scheduled_at_ms: Some(at),
        content_hash: text.clone(),
        targets: vec![NewTarget {
            channel: "sink".into(),
            override_body: None,
            rendered_text: text,
            parts: parts.iter().map(|p| (*p).to_owned()).collect(),
            media: vec![],
            reply: None,
            links: Vec::new(),
            variant: None,
        }],
    }
}

fn claim_batch(now: i64) -> ClaimBatch<'static> {
    ClaimBatch {
        worker: "w",
        batch: "b1",
        now_ms: now,
        lease_until_ms: now + 60_000,
    }
}

/// A worker's claim lands between an edit's read and its write: the write
/// changes nothing, the claim stays, and the edit reports the target as
/// left alone. The same for a retry's back-off (a claim and a result).
async fn a_claim_between_read_and_write_is_kept(db: TestDb) {
    let store = Store::connect(&db.url, 4).await.unwrap();
    store.migrate().await.unwrap();
    let now = now_ms();
    let (detail, _) = store
        .create_post(one_target_post(None, now, &["old"]))
        .await
        .unwrap();
    let read = detail.targets[0].clone();
    let claimed = store
        .claim_due(&claim_batch(now), now, 10, &[], None)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let change = TargetChange {
        content: Some(NewTarget {
            channel: "sink".into(),
            override_body: None,
            rendered_text: "new".into(),
            parts: vec!["new".into()],
            media: vec![],
            reply: None,
            links: Vec::new(),
            variant: None,
        }),
        at_ms: Some(Some(now + 60_000)),
        ..Default::default()
    };
    assert!(
        !store
            .update_target_if_unchanged(&read, &change)
            .await
            .unwrap()
    );
    let outcome = store
        .edit_post(PostEdit {
            post_id: detail.post.id,
            body: "new".into(),
            vars: serde_json::json!({}),
            at_ms: None,
            updates: vec![(read.clone(), change.clone())],
            cancels: vec![],
            inserts: vec![],
            insert_at_ms: None,
        })
        .await
        .unwrap();
    assert!(outcome.changed.is_empty());
    assert_eq!(outcome.left_alone.len(), 1);
    assert!(
        outcome.left_alone[0].reason.contains("now publishing"),
        "{:?}",
        outcome.left_alone
    );
    let t = store.target(read.id).await.unwrap().unwrap();
    assert_eq!(t.status, "publishing");
    assert_eq!(
        t.claim_token.as_deref(),
        Some(format!("b1:{}", read.id).as_str())
    );
    assert_eq!(t.rendered_text, "old");
    assert_eq!(
        outcome.detail.post.body, "old",
        "the post row is not changed either"
    );

    // The attempt ends in a retry with back-off: still scheduled, but a
    // write based on the first read must not undo the back-off.
    let back_off = now + 30_000;
    store
        .finish_attempt(
            &format!("b1:{}", read.id),
            attempt(read.id, now),
            Claim::Retry {
                not_before_ms: back_off,
                error: "503".into(),
            },
        )
        .await
        .unwrap();
    assert!(
        !store
            .update_target_if_unchanged(&read, &change)
            .await
            .unwrap()
    );
    let t = store.target(read.id).await.unwrap().unwrap();
    assert_eq!(
        (t.status.as_str(), t.not_before_ms),
        ("scheduled", Some(back_off))
    );
    // Read afresh, the write goes through.
    assert!(store.update_target_if_unchanged(&t, &change).await.unwrap());
    let t = store.target(read.id).await.unwrap().unwrap();
    assert_eq!(t.rendered_text, "new");
}

fn attempt(target_id: i32, now: i64) -> AttemptRecord {
    AttemptRecord {
        target_id,
        attempt_no: 1,
        worker: "w".into(),
        started_at_ms: now,
        finished_at_ms: now,
        outcome: "transient".into(),
        http_status: Some(503),
        retry_after_ms: None,
        platform_post_id: None,
        message: Some("503".into()),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_claim_between_read_and_write_is_kept_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    a_claim_between_read_and_write_is_kept(TestDb::sqlite(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_claim_between_read_and_write_is_kept_postgres() {
    if let Some(db) = TestDb::postgres().await {
        a_claim_between_read_and_write_is_kept(db).await;
    }
}

/// `content sync` of an edited file keeps a retry's back-off when the time
/// did not change, starts a thread whose parts changed over (no stale
/// `thread_progress`), and never touches a claimed target.
async fn sync_keeps_back_off_and_claims(db: TestDb) {
    let store = Store::connect(&db.url, 4).await.unwrap();
    store.migrate().await.unwrap();
    let now = now_ms();
    let synced = store
        .sync_post(one_target_post(Some("a.md"), now, &["one", "two"]))
        .await
        .unwrap();
    let id = store.post_detail(synced.post_id).await.unwrap().targets[0].id;
    let token = format!("b1:{id}");
    store
        .claim_due(&claim_batch(now), now, 10, &[], None)
        .await
        .unwrap();
    let receipt = clarion_core::PublishReceipt {
        platform_post_id: Some("p1".into()),
        url: None,
    };
    assert!(
        store
            .record_thread_progress(id, &token, &[receipt])
            .await
            .unwrap()
    );
    let back_off = now + 30_000;
    store
        .finish_attempt(
            &token,
            attempt(id, now),
            Claim::Retry {
                not_before_ms: back_off,
                error: "part 2 of 2: 503".into(),
            },
        )
        .await
        .unwrap();

    // The file changes its parts, not its time.
    store
        .sync_post(one_target_post(Some("a.md"), now, &["one, edited", "two"]))
        .await
        .unwrap();
    let t = store.target(id).await.unwrap().unwrap();
    assert_eq!(t.status, "scheduled");
    assert_eq!(
        t.not_before_ms,
        Some(back_off),
        "the retry's back-off is kept"
    );
    assert_eq!(t.thread_progress, "[]", "changed parts start over");
    assert_eq!(t.parts(), ["one, edited", "two"]);

    // Claimed: a sync leaves it alone and says so.
    store
        .claim_due(&claim_batch(back_off), back_off, 10, &[], None)
        .await
        .unwrap();
    let result = store
        .sync_post(one_target_post(Some("a.md"), now, &["three"]))
        .await
        .unwrap();
    assert_eq!(result.locked_channels, ["sink"]);
    let t = store.target(id).await.unwrap().unwrap();
    assert_eq!(t.status, "publishing");
    assert_eq!(t.parts(), ["one, edited", "two"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_keeps_a_back_off_and_never_overwrites_a_claim_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    sync_keeps_back_off_and_claims(TestDb::sqlite(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_keeps_a_back_off_and_never_overwrites_a_claim_postgres() {
    if let Some(db) = TestDb::postgres().await {
        sync_keeps_back_off_and_claims(db).await;
    }
}

/// The race itself, on PostgreSQL: `content sync` has read a scheduled
/// target when a worker's claim (uncommitted, holding the row) lands; the
/// sync's write waits for it, and once the claim commits, the guarded write
/// finds the row changed and leaves it `publishing`. (An unguarded
/// `UPDATE … WHERE id = ?` would write it back to `scheduled`.)
#[tokio::test(flavor = "multi_thread")]
async fn sync_racing_a_claim_leaves_the_claim_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let store = Store::connect(&db.url, 4).await.unwrap();
    store.migrate().await.unwrap();
    let now = now_ms();
    let synced = store
        .sync_post(one_target_post(Some("race.md"), now + 60_000, &["one"]))
        .await
        .unwrap();
    let id = store.post_detail(synced.post_id).await.unwrap().targets[0].id;

    // The claim: taken, not yet committed.
    let claim = store.connection().begin().await.unwrap();
    claim
        .execute_unprepared(&format!(
            "UPDATE targets SET status = 'publishing', claim_token = 'racer:{id}', \
             attempts = attempts + 1 WHERE id = {id} AND status = 'scheduled'"
        ))
        .await
        .unwrap();
    let syncing = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .sync_post(one_target_post(Some("race.md"), now + 120_000, &["two"]))
                .await
        })
    };
    // Wait until the sync's write is blocked on the claimed row.
    let admin = Store::connect(&db.url, 1).await.unwrap();
    let blocked = wait_until(Duration::from_secs(10), || async {
        let row = admin
            .connection()
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DatabaseBackend::Postgres,
                "SELECT COUNT(*) AS n FROM pg_stat_activity \
                 WHERE wait_event_type = 'Lock' AND query ILIKE 'UPDATE%targets%'",
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get::<i64>("", "n").unwrap() > 0
    })
    .await;
    assert!(blocked, "the sync never waited for the claim");
    claim.commit().await.unwrap();
    let result = syncing.await.unwrap().unwrap();
    assert_eq!(result.locked_channels, ["sink"]);
    let t = store.target(id).await.unwrap().unwrap();
    assert_eq!(t.status, "publishing");
    assert_eq!(
        t.claim_token.as_deref(),
        Some(format!("racer:{id}").as_str())
    );
    assert_eq!(t.parts(), ["one"]);
}

// ---------------------------------------------------------- refusals

/// Empty or whitespace-only text, and the same channel twice, are refused
/// clearly (naming the field / the channel) on the CLI and the API; nothing
/// is stored.
#[tokio::test(flavor = "multi_thread")]
async fn empty_text_and_a_channel_given_twice_are_refused() {
    let sink = Sink::start(SinkRules::default()).await;
    let clarion = Clarion::new(None, &Settings::new(&sink));
    for text in ["", "   \n\t "] {
        let out = clarion.cli(&["post", "create", "-C", "sink", "--text", text, "--in", "1h"]);
        assert!(!out.status.success());
        let err = stderr_of(&out);
        assert!(err.contains("body: the text is empty"), "{err}");
    }
    let out = clarion.cli(&[
        "post", "create", "-C", "sink", "-C", "short", "-C", "sink", "--text", "hi", "--in", "1h",
    ]);
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(
        err.contains("channels: channel `sink` is listed twice"),
        "{err}"
    );
    assert!(!err.contains("UNIQUE"), "{err}");

    let run = clarion.run();
    run.ready().await;
    let call = api(run.port, &clarion.token);
    let cases = [
        (
            serde_json::json!({ "body": " ", "channels": ["sink"] }),
            "body: the text is empty",
        ),
        (
            serde_json::json!({ "body": "hi", "channels": ["sink"], "overrides": { "sink": "\n" } }),
            "overrides: channel `sink`: the text is empty",
        ),
        (
            serde_json::json!({ "body": "hi", "channels": ["sink", "sink"] }),
            "channels: channel `sink` is listed twice",
        ),
    ];
    for (body, expected) in cases {
        let response = call(reqwest::Method::POST, "/posts")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let err = error_of(response).await;
        assert!(err.contains(expected), "{body}: {err}");
    }
    let store = clarion.db.store().await;
    assert!(all_targets(&store).await.is_empty(), "nothing stored");
}

/// A post kept in a file is edited in its file: `post edit` says so
/// instead of writing a change the next `content sync` would undo.
#[tokio::test(flavor = "multi_thread")]
async fn a_file_post_is_edited_in_its_file() {
    let sink = Sink::start(SinkRules::default()).await;
    let clarion = Clarion::new(None, &Settings::new(&sink));
    std::fs::write(
        clarion.posts_dir().join("hello.md"),
        format!(
            "+++\nid = \"hello\"\nat = \"{}\"\nchannels = [\"sink\"]\n+++\nhello\n",
            at_in(3_600_000)
        ),
    )
    .unwrap();
    clarion.ok(&["content", "sync"]);
    let store = clarion.db.store().await;
    let post_id = all_targets(&store).await[0].post_id;
    let out = clarion.cli(&["post", "edit", &post_id.to_string(), "--text", "changed"]);
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(
        err.contains("kept in the file `hello.md`") && err.contains("content sync"),
        "{err}"
    );
    assert_eq!(all_targets(&store).await[0].rendered_text, "hello");
}
