//! Content as code: plan validates and names file, line and channel;
//! invalid content queues nothing; sync is idempotent.

use crate::harness::*;

fn write(clarion: &Clarion, name: &str, text: &str) {
    std::fs::write(clarion.posts_dir().join(name), text).unwrap();
}

async fn invalid_content_is_refused(db: Option<TestDb>) {
    let sink = Sink::start(SinkRules::default()).await;
    let clarion = Clarion::new(db, &Settings::new(&sink));
    let at = at_in(3_600_000);
    write(
        &clarion,
        "good.md",
        &format!("+++\nat = \"{at}\"\nchannels = [\"sink\"]\n+++\nfine\n"),
    );
    write(
        &clarion,
        "bad.md",
        &format!(
            "+++\nat = \"{at}\"\nchannels = [\"sink\", \"nope\", \"short\"]\n[vars]\nx = 1\n+++\n\nHello {{{{name}}}}, this is far longer than twenty characters\n"
        ),
    );
    let plan = clarion.cli(&["content", "plan"]);
    assert!(!plan.status.success());
    let stderr = String::from_utf8_lossy(&plan.stderr);
    assert!(
        stderr.contains("bad.md:3: channel `nope`: unknown channel"),
        "{stderr}"
    );
    assert!(
        stderr.contains("bad.md:8: channel `sink`: missing variable `name`"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was queued"), "{stderr}");

    let sync = clarion.cli(&["content", "sync"]);
    assert!(!sync.status.success());
    assert!(String::from_utf8_lossy(&sync.stderr).contains("bad.md:3: channel `nope`"));

    // Over the channel's limit is caught at schedule time too, by name.
    let create = clarion.cli(&[
        "post",
        "create",
        "-C",
        "short",
        "--text",
        "this text is longer than twenty",
    ]);
    assert!(!create.status.success());
    let stderr = String::from_utf8_lossy(&create.stderr);
    assert!(
        stderr.contains("channel `short`: text is 31 characters long; the limit is 20"),
        "{stderr}"
    );
    let unknown = clarion.cli(&["post", "create", "-C", "nope", "--text", "hi"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("channel `nope`"));

    let store = clarion.db.store().await;
    assert!(all_targets(&store).await.is_empty(), "nothing stored");
    assert_eq!(clarion.db.queued_jobs().await, 0, "nothing queued");
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_content_is_refused_with_file_line_and_channel_sqlite() {
    invalid_content_is_refused(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_content_is_refused_with_file_line_and_channel_postgres() {
    if let Some(db) = TestDb::postgres().await {
        invalid_content_is_refused(Some(db)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn content_sync_is_idempotent_and_edits_update_unpublished_targets() {
    let sink = Sink::start(SinkRules::default()).await;
    let clarion = Clarion::new(None, &Settings::new(&sink));
    let at = at_in(3_600_000);
    let file = |body: &str| {
        format!("+++\nat = \"{at}\"\nchannels = [\"sink\"]\ncampaign = \"spring\"\n+++\n{body}\n")
    };
    write(&clarion, "launch.md", &file("first draft"));
    let out = clarion.ok(&["content", "sync"]);
    assert!(
        out.contains("1 created, 0 updated, 0 unchanged; 1 target(s) queued"),
        "{out}"
    );
    let out = clarion.ok(&["content", "sync"]);
    assert!(
        out.contains("0 created, 0 updated, 1 unchanged; 0 target(s) queued"),
        "{out}"
    );

    let store = clarion.db.store().await;
    let before = all_targets(&store).await;
    write(&clarion, "launch.md", &file("final copy"));
    let out = clarion.ok(&["content", "sync"]);
    assert!(out.contains("0 created, 1 updated"), "{out}");
    let after = all_targets(&store).await;
    assert_eq!(after.len(), 1, "no duplicate post");
    assert_eq!(after[0].id, before[0].id);
    assert_eq!(after[0].idempotency_key, before[0].idempotency_key);
    assert_eq!(after[0].rendered_text, "final copy");
    assert_eq!(after[0].status, "scheduled");

    let plan = clarion.ok(&["content", "plan"]);
    assert!(
        plan.contains("-> sink") && plan.contains("final copy"),
        "{plan}"
    );
}
