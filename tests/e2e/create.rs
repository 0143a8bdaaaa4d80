//! Creating posts fast: the bulk endpoint, `post import`, and group commit
//! of concurrent single creates. Nothing is lost or half written, and bad
//! input is refused before anything is stored.

use std::collections::HashSet;
use std::time::Duration;

use sea_orm::{EntityTrait, PaginatorTrait};

use crate::harness::*;

async fn counts(clarion: &Clarion) -> (u64, u64) {
    let store = clarion.db.store().await;
    let posts = clarion_store::post::Entity::find()
        .count(store.connection())
        .await
        .unwrap();
    let targets = clarion_store::target::Entity::find()
        .count(store.connection())
        .await
        .unwrap();
    (posts, targets)
}

fn bulk(
    client: &reqwest::Client,
    clarion: &Clarion,
    run: &Running,
    body: &serde_json::Value,
) -> impl Future<Output = reqwest::Response> {
    let request = client
        .post(format!("http://127.0.0.1:{}/api/v1/posts/bulk", run.port))
        .bearer_auth(&clarion.token)
        .json(body)
        .send();
    async move { request.await.unwrap() }
}

async fn bulk_posts_are_stored_and_delivered(db: Option<TestDb>) {
    let sink = Sink::start(SinkRules::default()).await;
    let clarion = Clarion::new(db, &Settings::new(&sink));
    let run = clarion.run();
    run.ready().await;
    let client = reqwest::Client::new();
    let at = at_in(1_500);
    let posts: Vec<_> = (0..60)
        .map(|n| {
            serde_json::json!({
                "body": "bulk {{n}}", "vars": {"n": n}, "channels": ["sink"], "at": at,
                "campaign": "bulk",
            })
        })
        .collect();
    let response = bulk(
        &client,
        &clarion,
        &run,
        &serde_json::json!({ "posts": posts }),
    )
    .await;
    assert_eq!(response.status(), 201);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["created"], 60);
    let ids: Vec<i64> = serde_json::from_value(answer["ids"].clone()).unwrap();
    assert_eq!(ids.len(), 60);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in order: {ids:?}");
    assert_eq!(counts(&clarion).await, (60, 60));

    // The ids are the posts, in request order.
    let third: serde_json::Value = client
        .get(format!(
            "http://127.0.0.1:{}/api/v1/posts/{}",
            run.port, ids[3]
        ))
        .bearer_auth(&clarion.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(third["targets"][0]["text"], "bulk 3");

    let all_in = wait_until(Duration::from_secs(30), || async {
        sink.distinct_keys() >= 60
    })
    .await;
    assert!(
        all_in,
        "{} of 60 arrived:\n{}",
        sink.distinct_keys(),
        run.log()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.arrivals().len(), 60, "each exactly once");
    let texts: HashSet<String> = sink
        .arrivals()
        .iter()
        .map(|a| a.body["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts, (0..60).map(|n| format!("bulk {n}")).collect());
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_posts_are_stored_and_delivered_sqlite() {
    bulk_posts_are_stored_and_delivered(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_posts_are_stored_and_delivered_postgres() {
    if let Some(db) = TestDb::postgres().await {
        bulk_posts_are_stored_and_delivered(Some(db)).await;
    }
}

async fn bad_bulk_stores_nothing(db: Option<TestDb>) {
    let sink = Sink::start(SinkRules::default()).await;
    let clarion = Clarion::new(db, &Settings::new(&sink));
    let run = clarion.run();
    run.ready().await;
    let client = reqwest::Client::new();
    let good = |n: usize| serde_json::json!({ "body": format!("ok {n}"), "channels": ["sink"] });
    let details_of = |answer: &serde_json::Value| -> Vec<String> {
        serde_json::from_value(answer["details"].clone()).unwrap()
    };

    // Rendering and validation: every bad item named by index and field.
    let mut posts: Vec<_> = (0..20).map(good).collect();
    posts[3] = serde_json::json!({ "body": "x", "channels": ["sink", "ghost"] });
    posts[7] = serde_json::json!({ "body": "hi {{who}}", "channels": ["sink"] });
    posts[9] =
        serde_json::json!({ "body": "this is far longer than twenty", "channels": ["short"] });
    posts[11] = serde_json::json!({ "body": "x", "channels": [] });
    posts[12] = serde_json::json!({ "body": "x", "channels": ["sink"], "at": "tomorrow" });
    posts[13] =
        serde_json::json!({ "body": "x", "channels": ["sink"], "at": "2001-01-01T00:00:00Z" });
    posts[14] = serde_json::json!({ "body": "x", "channels": ["sink", "short", "sink"] });
    let response = bulk(
        &client,
        &clarion,
        &run,
        &serde_json::json!({ "posts": posts }),
    )
    .await;
    assert_eq!(response.status(), 422);
    let answer: serde_json::Value = response.json().await.unwrap();
    let details = details_of(&answer);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("7 of the posts are not valid; nothing was stored"),
        "{answer}"
    );
    let expect = [
        "posts[3].channels: channel `ghost`: unknown channel",
        "posts[7].body: line 1: channel `sink`: missing variable `who`",
        "posts[9].body: channel `short`: text is 30",
        "posts[11].channels: give at least one channel",
        "posts[12].at: `tomorrow` is not an RFC 3339 time",
        "posts[13].at: 2001-01-01T00:00:00+00:00 is in the past",
        "posts[14].channels: channel `sink` is listed twice",
    ];
    assert_eq!(details.len(), expect.len(), "{details:?}");
    for (detail, expected) in details.iter().zip(expect) {
        assert!(detail.starts_with(expected), "{detail} vs {expected}");
    }

    // JSON shape: the item and field are named too.
    let mut posts: Vec<_> = (0..5).map(good).collect();
    posts[2] = serde_json::json!({ "body": "x" });
    posts[4] = serde_json::json!({ "body": "x", "channels": ["sink"], "chanels": ["sink"] });
    let response = bulk(
        &client,
        &clarion,
        &run,
        &serde_json::json!({ "posts": posts }),
    )
    .await;
    assert_eq!(response.status(), 400);
    let details = details_of(&response.json().await.unwrap());
    assert_eq!(details[0], "posts[2].channels: missing field");
    assert!(
        details[1].starts_with("posts[4].chanels: unknown field"),
        "{details:?}"
    );

    // Too many, none, not the bulk shape.
    let many: Vec<_> = (0..10_001).map(good).collect();
    let response = bulk(
        &client,
        &clarion,
        &run,
        &serde_json::json!({ "posts": many }),
    )
    .await;
    assert_eq!(response.status(), 413);
    let text = response.text().await.unwrap();
    assert!(text.contains("at most 10000"), "{text}");
    let response = bulk(&client, &clarion, &run, &serde_json::json!({ "posts": [] })).await;
    assert_eq!(response.status(), 400);
    let response = bulk(&client, &clarion, &run, &good(0)).await;
    assert_eq!(response.status(), 400);

    assert_eq!(counts(&clarion).await, (0, 0), "nothing may be stored");
    assert_eq!(clarion.db.queued_jobs().await, 0, "nothing may be queued");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bulk_request_with_a_bad_post_stores_nothing_sqlite() {
    bad_bulk_stores_nothing(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bulk_request_with_a_bad_post_stores_nothing_postgres() {
    if let Some(db) = TestDb::postgres().await {
        bad_bulk_stores_nothing(Some(db)).await;
    }
}

/// Many requests at once share transactions: each must still get its own
/// post back (its id, its text), and every one must be stored.
async fn concurrent_creates(db: Option<TestDb>) {
    let sink = Sink::start(SinkRules::default()).await;
    let clarion = Clarion::new(db, &Settings::new(&sink));
    let run = clarion.run();
    run.ready().await;
    let later = at_in(3_600_000);
    let url = format!("http://127.0.0.1:{}/api/v1/posts", run.port);
    let mut tasks = Vec::new();
    for task in 0..24 {
        let (url, token, later) = (url.clone(), clarion.token.clone(), later.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut created = Vec::new();
            for n in 0..25 {
                let body = format!("task {task} post {n}");
                // Some posts go to two channels, so posts differ in target count.
                let channels = if n % 3 == 0 {
                    vec!["sink", "short"]
                } else {
                    vec!["sink"]
                };
                let response = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&serde_json::json!({ "body": body, "channels": channels, "at": later }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 201);
                let answer: serde_json::Value = response.json().await.unwrap();
                created.push((answer, body, channels.len()));
            }
            created
        }));
    }
    let mut ids = HashSet::new();
    let mut target_ids = HashSet::new();
    let mut expected_targets = 0;
    for task in tasks {
        for (answer, body, channels) in task.await.unwrap() {
            assert_eq!(answer["body"], body.as_str());
            let targets = answer["targets"].as_array().unwrap();
            assert_eq!(targets.len(), channels, "{answer}");
            for t in targets {
                assert_eq!(t["text"], body.as_str());
                assert!(target_ids.insert(t["id"].as_i64().unwrap()));
            }
            expected_targets += channels as u64;
            assert!(ids.insert(answer["id"].as_i64().unwrap()), "duplicate id");
        }
    }
    assert_eq!(ids.len(), 600);
    assert_eq!(counts(&clarion).await, (600, expected_targets));

    // What each request was told is what the database holds.
    let store = clarion.db.store().await;
    for t in all_targets(&store).await {
        assert!(target_ids.contains(&i64::from(t.id)));
        let post = clarion_store::post::Entity::find_by_id(t.post_id)
            .one(store.connection())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(post.body, t.rendered_text);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_single_creates_are_all_stored_with_their_own_ids_sqlite() {
    concurrent_creates(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_single_creates_are_all_stored_with_their_own_ids_postgres() {
    if let Some(db) = TestDb::postgres().await {
        concurrent_creates(Some(db)).await;
    }
}

async fn import_files(db: Option<TestDb>) {
    let sink = Sink::start(SinkRules::default()).await;
    let clarion = Clarion::new(db, &Settings::new(&sink));
    let dir = clarion.dir.path();
    let later = at_in(3_600_000);

    // A bad line anywhere: nothing stored, each problem at its line and field.
    let bad = format!(
        "body,channels,at,campaign,var.who\n\
         \"hello {{{{who}}}}\",sink,{later},launch,you\n\
         \"multi\nline\",sink ghost,{later},launch,x\n\
         \"{{{{nobody}}}}\",sink,{later},,x\n\
         fine,sink,yesterday,,x\n"
    );
    std::fs::write(dir.join("bad.csv"), bad).unwrap();
    let out = clarion.cli(&["post", "import", "bad.csv"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "bad.csv:3: channels: channel `ghost`: unknown channel",
        "bad.csv:5: body: line 1: channel `sink`: missing variable `nobody`",
        "bad.csv:6: at: `yesterday` is not an RFC 3339 time",
        "3 of 4 posts are not valid; nothing was stored",
    ] {
        assert!(stderr.contains(expected), "{expected}\n{stderr}");
    }
    assert_eq!(counts(&clarion).await, (0, 0));

    // CSV: quoted multi-line bodies, variables, several channels, drafts.
    let csv = format!(
        "body,channels,at,campaign,draft,var.who\n\
         \"hello {{{{who}}}}\",sink,{later},launch,,you\n\
         \"two\nlines\",sink;short,{later},launch,,x\n\
         draft one,sink,,,true,x\n"
    );
    std::fs::write(dir.join("posts.csv"), csv).unwrap();
    let out = clarion.ok(&["post", "import", "posts.csv", "--dry-run"]);
    assert!(
        out.contains("3 posts read: 3 would be created, 0 already imported; nothing was stored"),
        "{out}"
    );
    assert_eq!(counts(&clarion).await, (0, 0));
    let out = clarion.ok(&["post", "import", "posts.csv"]);
    assert!(
        out.contains("imported 3 posts (4 targets, 1 drafts)"),
        "{out}"
    );

    // JSON Lines: what the API takes, one per line.
    let jsonl = format!(
        "{{\"body\": \"j1 {{{{n}}}}\", \"vars\": {{\"n\": 1}}, \"channels\": [\"sink\"], \"at\": \"{later}\"}}\n\
         \n\
         {{\"body\": \"j2\", \"channels\": [\"sink\"], \"overrides\": {{\"sink\": \"j2 for sink\"}}}}\n"
    );
    std::fs::write(dir.join("posts.jsonl"), jsonl).unwrap();
    let out = clarion.ok(&["post", "import", "posts.jsonl"]);
    assert!(
        out.contains("imported 2 posts (2 targets, 0 drafts)"),
        "{out}"
    );
    let bad = "{\"body\": \"x\", \"channels\": [\"sink\"]}\n{\"body\": \"y\"}\n";
    std::fs::write(dir.join("bad.jsonl"), bad).unwrap();
    let out = clarion.cli(&["post", "import", "bad.jsonl"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.jsonl:2: channels: missing field"),
        "{stderr}"
    );

    assert_eq!(counts(&clarion).await, (5, 6));
    let store = clarion.db.store().await;
    let mut texts: Vec<(String, String)> = all_targets(&store)
        .await
        .into_iter()
        .map(|t| (t.rendered_text, t.status))
        .collect();
    texts.sort();
    assert_eq!(
        texts,
        [
            ("draft one", "draft"),
            ("hello you", "scheduled"),
            ("j1 1", "scheduled"),
            ("j2 for sink", "scheduled"),
            ("two\nlines", "scheduled"),
            ("two\nlines", "scheduled"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn post_import_reads_csv_and_json_lines_all_or_nothing_sqlite() {
    import_files(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn post_import_reads_csv_and_json_lines_all_or_nothing_postgres() {
    if let Some(db) = TestDb::postgres().await {
        import_files(Some(db)).await;
    }
}

/// Every key the sink saw arrived exactly once, and there are `n` of them.
fn each_once(sink: &Sink, n: usize) {
    let arrivals = sink.arrivals();
    let keys: HashSet<String> = arrivals.iter().map(|a| a.key.clone()).collect();
    assert_eq!(keys.len(), n, "{arrivals:?}");
    assert_eq!(arrivals.len(), n, "each post exactly once: {arrivals:?}");
}

/// Importing a file again creates nothing new: each row is known by a
/// fingerprint of its content, stored with the post. A row repeated in one
/// file is stored once. Rows already imported are not checked again (their
/// time may have passed meanwhile).
async fn import_twice(db: Option<TestDb>) {
    let sink = Sink::start(SinkRules::default()).await;
    let clarion = Clarion::new(db, &Settings::new(&sink));
    let dir = clarion.dir.path().to_owned();
    let run = clarion.run();
    run.ready().await;
    let soon = at_in(1_500);
    let csv = format!(
        "body,channels,at,var.who\n\
         one,sink,{soon},\n\
         \"two {{{{who}}}}\",sink short,{soon},you\n\
         one,sink,{soon},\n\
         three,sink,,\n"
    );
    std::fs::write(dir.join("posts.csv"), &csv).unwrap();

    let out = clarion.cli(&["post", "import", "posts.csv", "--dry-run"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains(
            "4 posts read: 3 would be created, 0 already imported, 1 duplicate line; nothing was stored (--dry-run)"
        ),
        "{stdout}"
    );
    assert!(
        stderr.contains("posts.csv:4: the same post as line 2; imported once"),
        "{stderr}"
    );
    assert_eq!(counts(&clarion).await, (0, 0));

    let out = clarion.cli(&["post", "import", "posts.csv"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("3 created, 0 already imported, 1 duplicate line"),
        "{stdout}"
    );
    assert_eq!(counts(&clarion).await, (3, 4));
    let all_in = wait_until(Duration::from_secs(30), || async {
        sink.distinct_keys() >= 4
    })
    .await;
    assert!(all_in, "{:?}\n{}", sink.arrivals(), run.log());

    // Again, once the times have passed: nothing new, nothing refused.
    let out = clarion.ok(&["post", "import", "posts.csv", "--dry-run"]);
    assert!(
        out.contains("0 would be created, 3 already imported"),
        "{out}"
    );
    let out = clarion.ok(&["post", "import", "posts.csv"]);
    assert!(out.contains("0 created, 3 already imported"), "{out}");
    assert_eq!(counts(&clarion).await, (3, 4));

    // The same posts as JSON Lines (channels in another order, the time in
    // another offset) are the same posts; a new line is created.
    let at = chrono::DateTime::parse_from_rfc3339(&soon)
        .unwrap()
        .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap())
        .to_rfc3339();
    let later = at_in(2_000);
    let jsonl = format!(
        "{{\"body\": \"two {{{{who}}}}\", \"vars\": {{\"who\": \"you\"}}, \"channels\": [\"short\", \"sink\"], \"at\": \"{at}\"}}\n\
         {{\"body\": \"four\", \"channels\": [\"sink\"], \"at\": \"{later}\"}}\n"
    );
    std::fs::write(dir.join("more.jsonl"), jsonl).unwrap();
    let out = clarion.ok(&["post", "import", "more.jsonl"]);
    assert!(out.contains("1 created, 1 already imported"), "{out}");
    assert_eq!(counts(&clarion).await, (4, 5));

    let all_in = wait_until(Duration::from_secs(30), || async {
        sink.distinct_keys() >= 5
    })
    .await;
    assert!(all_in, "{:?}\n{}", sink.arrivals(), run.log());
    tokio::time::sleep(Duration::from_millis(500)).await;
    each_once(&sink, 5);
    let mut texts: Vec<String> = sink
        .arrivals()
        .iter()
        .map(|a| a.body["text"].as_str().unwrap().to_owned())
        .collect();
    texts.sort();
    assert_eq!(texts, ["four", "one", "three", "two you", "two you"]);

    // Only imports carry a fingerprint.
    let store = clarion.db.store().await;
    let keys: Vec<Option<String>> = clarion_store::post::Entity::find()
        .all(store.connection())
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.import_key)
        .collect();
    assert!(keys.iter().all(Option::is_some), "{keys:?}");
    clarion.ok(&[
        "post",
        "create",
        "--text",
        "by hand",
        "--channel",
        "sink",
        "--draft",
    ]);
    let by_hand = clarion_store::post::Entity::find()
        .all(store.connection())
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.body == "by hand")
        .unwrap();
    assert_eq!(by_hand.import_key, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn importing_a_file_twice_creates_nothing_new_sqlite() {
    import_twice(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn importing_a_file_twice_creates_nothing_new_postgres() {
    if let Some(db) = TestDb::postgres().await {
        import_twice(Some(db)).await;
    }
}

fn import_request(
    client: &reqwest::Client,
    clarion: &Clarion,
    run: &Running,
    query: &str,
    content_type: &str,
    body: String,
) -> impl Future<Output = reqwest::Response> {
    let request = client
        .post(format!(
            "http://127.0.0.1:{}/api/v1/posts:import{query}",
            run.port
        ))
        .bearer_auth(&clarion.token)
        .header("content-type", content_type)
        .body(body)
        .send();
    async move { request.await.unwrap() }
}

/// `POST /api/v1/posts:import`: the CSV (or JSON Lines) of `post import`
/// as the request body; all or nothing, safe to send again.
async fn api_import(db: Option<TestDb>) {
    let sink = Sink::start(SinkRules::default()).await;
    let clarion = Clarion::new(db, &Settings::new(&sink));
    let run = clarion.run();
    run.ready().await;
    let client = reqwest::Client::new();
    let soon = at_in(1_500);
    let later = at_in(3_600_000);
    let csv = format!(
        "body,channels,at,campaign\n\
         api one,sink,{soon},one\n\
         \"api\nsecond\",sink;short,{soon},\n\
         right now,sink,,\n"
    );

    // Checked, not stored.
    let response = import_request(
        &client,
        &clarion,
        &run,
        "?dry_run=true",
        "text/csv",
        csv.clone(),
    )
    .await;
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["dry_run"], true, "{answer}");
    assert_eq!(answer["would_create"], 3, "{answer}");
    assert_eq!(answer["already_imported"], 0, "{answer}");
    assert_eq!(counts(&clarion).await, (0, 0));

    let response = import_request(
        &client,
        &clarion,
        &run,
        "",
        "text/csv; charset=utf-8",
        csv.clone(),
    )
    .await;
    assert_eq!(response.status(), 201);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["created"], 3, "{answer}");
    assert_eq!(answer["already_imported"], 0, "{answer}");
    let ids: Vec<i64> = serde_json::from_value(answer["ids"].clone()).unwrap();
    assert_eq!(ids.len(), 3);
    assert_eq!(counts(&clarion).await, (3, 4));
    // `/posts/{id}` still routes beside `/posts:import`.
    let first: serde_json::Value = client
        .get(format!(
            "http://127.0.0.1:{}/api/v1/posts/{}",
            run.port, ids[0]
        ))
        .bearer_auth(&clarion.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["targets"][0]["text"], "api one", "{first}");

    // The same body again: nothing new.
    let response = import_request(&client, &clarion, &run, "", "text/csv", csv.clone()).await;
    assert!(response.status().is_success(), "{}", response.status());
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["created"], 0, "{answer}");
    assert_eq!(answer["already_imported"], 3, "{answer}");
    assert_eq!(answer["ids"], serde_json::json!([]), "{answer}");

    // JSON Lines.
    let jsonl =
        format!("{{\"body\": \"from ndjson\", \"channels\": [\"sink\"], \"at\": \"{later}\"}}\n");
    let response = import_request(&client, &clarion, &run, "", "application/x-ndjson", jsonl).await;
    assert_eq!(response.status(), 201);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["created"], 1, "{answer}");
    assert_eq!(counts(&clarion).await, (4, 5));

    // A bad row anywhere: nothing stored, each problem by line and column.
    let bad = format!(
        "body,channels,at\n\
         fine,sink,{later}\n\
         ghostly,sink ghost,{later}\n\
         \"{{{{nobody}}}}\",sink,{later}\n\
         late,sink,yesterday\n\
         \"new\nline\",sink,{later}\n"
    );
    let response = import_request(&client, &clarion, &run, "", "text/csv", bad).await;
    assert_eq!(response.status(), 422);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("3 of 5 posts are not valid; nothing was stored"),
        "{answer}"
    );
    let details: Vec<String> = serde_json::from_value(answer["details"].clone()).unwrap();
    let expect = [
        "line 3: channels: channel `ghost`: unknown channel",
        "line 4: body: line 1: channel `sink`: missing variable `nobody`",
        "line 5: at: `yesterday` is not an RFC 3339 time",
    ];
    assert_eq!(details.len(), expect.len(), "{details:?}");
    for (detail, expected) in details.iter().zip(expect) {
        assert!(detail.starts_with(expected), "{detail} vs {expected}");
    }
    // A body that is not an import: 400 / 415, naming why.
    let response = import_request(
        &client,
        &clarion,
        &run,
        "",
        "text/csv",
        "body,chanels\nx,sink\n".into(),
    )
    .await;
    assert_eq!(response.status(), 400);
    let text = response.text().await.unwrap();
    assert!(text.contains("line 1: unknown column `chanels`"), "{text}");
    let response =
        import_request(&client, &clarion, &run, "", "application/json", "{}".into()).await;
    assert_eq!(response.status(), 415);
    let text = response.text().await.unwrap();
    assert!(text.contains("text/csv"), "{text}");
    let response = import_request(&client, &clarion, &run, "", "text/csv", String::new()).await;
    assert_eq!(response.status(), 400);
    // The token is required like everywhere else under /api/v1.
    let anonymous = client
        .post(format!("http://127.0.0.1:{}/api/v1/posts:import", run.port))
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(counts(&clarion).await, (4, 5), "nothing more stored");

    let all_in = wait_until(Duration::from_secs(30), || async {
        sink.distinct_keys() >= 4
    })
    .await;
    assert!(all_in, "{:?}\n{}", sink.arrivals(), run.log());
    tokio::time::sleep(Duration::from_millis(500)).await;
    each_once(&sink, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn api_import_takes_csv_and_json_lines_all_or_nothing_sqlite() {
    api_import(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn api_import_takes_csv_and_json_lines_all_or_nothing_postgres() {
    if let Some(db) = TestDb::postgres().await {
        api_import(Some(db)).await;
    }
}
