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
    // An edit keeps the id sync wrote into the file.
    let id = id_of(&read(&clarion, "launch.md"));
    let edited = file("final copy").replacen("+++\n", &format!("+++\nid = \"{id}\"\n"), 1);
    write(&clarion, "launch.md", &edited);
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
        plan.contains("unchanged") && plan.contains("launch.md"),
        "{plan}"
    );
    assert!(
        plan.contains("Plan: 0 to create, 0 to update, 0 to cancel, 1 unchanged."),
        "{plan}"
    );
}

fn read(clarion: &Clarion, name: &str) -> String {
    std::fs::read_to_string(clarion.posts_dir().join(name)).unwrap()
}

/// Every post, by id.
async fn all_posts(store: &clarion_store::Store) -> Vec<clarion_store::post::Model> {
    use sea_orm::{EntityTrait, QueryOrder};
    clarion_store::post::Entity::find()
        .order_by_asc(clarion_store::post::Column::Id)
        .all(store.connection())
        .await
        .unwrap()
}

async fn targets_by_id(store: &clarion_store::Store) -> Vec<clarion_store::target::Model> {
    let mut targets = all_targets(store).await;
    targets.sort_by_key(|t| t.id);
    targets
}

/// The `id = "..."` line sync wrote into a file.
fn id_of(text: &str) -> String {
    let line = text.lines().nth(1).unwrap();
    let id = line
        .strip_prefix("id = \"")
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no id line first in the front matter: {text}"));
    id.to_owned()
}

async fn renaming_a_file_updates_the_same_post(db: Option<TestDb>) {
    let sink = Sink::start(SinkRules::default()).await;
    let clarion = Clarion::new(db, &Settings::new(&sink));
    let at = at_in(3_600_000);
    let original =
        format!("+++\nat = \"{at}\"   # when\nchannels = [\"sink\", \"short\"]\n+++\n\nWelcome!\n");
    write(&clarion, "welcome.md", &original);
    let plan = clarion.ok(&["content", "plan"]);
    assert!(
        plan.contains("+ create") && plan.contains("no id yet: sync writes one into the file"),
        "{plan}"
    );
    assert!(
        plan.contains("Plan: 1 to create, 0 to update, 0 to cancel, 0 unchanged."),
        "{plan}"
    );
    assert_eq!(
        read(&clarion, "welcome.md"),
        original,
        "plan writes nothing"
    );

    let out = clarion.ok(&["content", "sync"]);
    assert!(out.contains("wrote an id into 1 file(s)"), "{out}");
    // The id is the first line of the front matter; every other byte is as written.
    let text = read(&clarion, "welcome.md");
    let id = id_of(&text);
    assert_eq!(text, format!("+++\nid = \"{id}\"\n{}", &original[4..]));
    let store = clarion.db.store().await;
    let before = targets_by_id(&store).await;
    assert_eq!(before.len(), 2);

    // Renamed: the same post, found by its id.
    std::fs::rename(
        clarion.posts_dir().join("welcome.md"),
        clarion.posts_dir().join("launch.md"),
    )
    .unwrap();
    let plan = clarion.ok(&["content", "plan"]);
    assert!(
        plan.contains("~ update") && plan.contains("(renamed from welcome.md)"),
        "{plan}"
    );
    assert!(
        plan.contains("Plan: 0 to create, 1 to update, 0 to cancel, 0 unchanged."),
        "{plan}"
    );
    let out = clarion.ok(&["content", "sync"]);
    assert!(
        out.contains("0 created, 1 updated, 0 unchanged; 0 target(s) queued"),
        "{out}"
    );
    assert!(out.contains("(renamed from welcome.md)"), "{out}");
    assert!(
        !out.contains("wrote an id") && !out.contains("is gone"),
        "{out}"
    );
    let posts = all_posts(&store).await;
    assert_eq!(posts.len(), 1, "no second post");
    assert_eq!(posts[0].source_key.as_deref(), Some(id.as_str()));
    assert_eq!(posts[0].source_path.as_deref(), Some("launch.md"));
    let after = targets_by_id(&store).await;
    assert_eq!(after, before, "the targets are untouched");

    // Moved into a folder and edited: still the same post, its targets rewritten.
    std::fs::create_dir_all(clarion.posts_dir().join("2027")).unwrap();
    std::fs::remove_file(clarion.posts_dir().join("launch.md")).unwrap();
    let edited = text.replace("Welcome!", "Launch day!");
    write(&clarion, "2027/launch-day.md", &edited);
    let plan = clarion.ok(&["content", "plan"]);
    assert!(plan.contains("(renamed from launch.md)"), "{plan}");
    assert!(
        plan.contains("~ sink") && plan.contains("text: Launch day!"),
        "{plan}"
    );
    let out = clarion.ok(&["content", "sync"]);
    assert!(out.contains("0 created, 1 updated"), "{out}");
    let after = targets_by_id(&store).await;
    assert_eq!(after.len(), 2, "no duplicate targets");
    for (a, b) in after.iter().zip(&before) {
        assert_eq!((a.id, &a.idempotency_key), (b.id, &b.idempotency_key));
        assert_eq!(
            (a.rendered_text.as_str(), a.status.as_str()),
            ("Launch day!", "scheduled")
        );
    }

    // A copy keeps its original's id: refused, naming both files; nothing changes.
    write(&clarion, "copy.md", &edited.replace("Launch day!", "Copy"));
    for command in ["plan", "sync"] {
        let out = clarion.cli(&["content", command]);
        assert!(!out.status.success(), "{command}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("copy.md:2: id `{id}` is also the id of "))
                && stderr.contains("2027/launch-day.md:2;"),
            "{stderr}"
        );
    }
    assert_eq!(all_posts(&store).await.len(), 1);
    assert_eq!(targets_by_id(&store).await, after);
}

#[tokio::test(flavor = "multi_thread")]
async fn renaming_a_content_file_updates_the_same_post_sqlite() {
    renaming_a_file_updates_the_same_post(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn renaming_a_content_file_updates_the_same_post_postgres() {
    if let Some(db) = TestDb::postgres().await {
        renaming_a_file_updates_the_same_post(Some(db)).await;
    }
}

async fn deleting_a_file_cancels_its_unpublished_targets(db: Option<TestDb>) {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let sink = Sink::start(SinkRules::default()).await;
    let clarion = Clarion::new(db, &Settings::new(&sink));
    let at = at_in(3_600_000);
    let file =
        |body: &str| format!("+++\nat = \"{at}\"\nchannels = [\"sink\", \"short\"]\n+++\n{body}\n");
    write(&clarion, "a.md", &file("post a"));
    write(&clarion, "b.md", &file("post b"));
    write(&clarion, "kept.md", &file("kept"));
    clarion.ok(&["content", "sync"]);
    // A post made through the CLI is never part of content sync.
    clarion.ok(&[
        "post",
        "create",
        "-C",
        "sink",
        "--text",
        "from the CLI",
        "--at",
        &at,
    ]);
    let store = clarion.db.store().await;
    let posts = all_posts(&store).await;
    assert_eq!(posts.len(), 4);
    let (a, b, cli) = (posts[0].id, posts[1].id, posts[3].id);
    // A worker has claimed b's sink target: it must be left alone.
    let claimed = targets_by_id(&store)
        .await
        .into_iter()
        .find(|t| t.post_id == b && t.channel == "sink")
        .unwrap();
    clarion_store::target::Entity::update_many()
        .col_expr(clarion_store::target::Column::Status, "publishing".into())
        .filter(clarion_store::target::Column::Id.eq(claimed.id))
        .exec(store.connection())
        .await
        .unwrap();
    let a_text = read(&clarion, "a.md");
    std::fs::remove_file(clarion.posts_dir().join("a.md")).unwrap();
    std::fs::remove_file(clarion.posts_dir().join("b.md")).unwrap();

    let before = targets_by_id(&store).await;
    let plan = clarion.ok(&["content", "plan"]);
    assert!(
        plan.contains(&format!("a.md  post {a} `"))
            && plan.contains("the file is gone; cancels sink, short (not yet published)"),
        "{plan}"
    );
    assert!(
        plan.contains(&format!("b.md  post {b} `"))
            && plan.contains("the file is gone; cancels short (not yet published)"),
        "{plan}"
    );
    assert!(
        plan.contains("Plan: 0 to create, 0 to update, 2 to cancel, 1 unchanged."),
        "{plan}"
    );
    assert_eq!(targets_by_id(&store).await, before, "plan changes nothing");

    let out = clarion.ok(&["content", "sync"]);
    assert!(
        out.contains(&format!("a.md is gone: cancelled post {a} on sink, short")),
        "{out}"
    );
    assert!(
        out.contains(&format!("b.md is gone: cancelled post {b} on short")),
        "{out}"
    );
    assert!(
        out.contains("cancelled 2 post(s) whose file is gone"),
        "{out}"
    );
    let status = |targets: &[clarion_store::target::Model], post: i32, channel: &str| {
        targets
            .iter()
            .find(|t| t.post_id == post && t.channel == channel)
            .map(|t| t.status.clone())
            .unwrap()
    };
    let after = targets_by_id(&store).await;
    assert_eq!(status(&after, a, "sink"), "cancelled");
    assert_eq!(status(&after, a, "short"), "cancelled");
    assert_eq!(
        status(&after, b, "sink"),
        "publishing",
        "a claim is never touched"
    );
    assert_eq!(status(&after, b, "short"), "cancelled");
    assert_eq!(
        status(&after, cli, "sink"),
        "scheduled",
        "CLI posts are not files"
    );
    assert_eq!(status(&after, posts[2].id, "sink"), "scheduled");

    let out = clarion.ok(&["content", "sync"]);
    assert!(!out.contains("is gone"), "reported once: {out}");

    // The file comes back (a revert): its id finds the post, scheduled again.
    write(&clarion, "a.md", &a_text);
    let plan = clarion.ok(&["content", "plan"]);
    assert!(
        plan.contains("~ sink") && plan.contains("scheduled again"),
        "{plan}"
    );
    let out = clarion.ok(&["content", "sync"]);
    assert!(out.contains("0 created, 1 updated, 1 unchanged"), "{out}");
    let restored = targets_by_id(&store).await;
    assert_eq!(restored.len(), after.len(), "no new targets");
    assert_eq!(status(&restored, a, "sink"), "scheduled");
    assert_eq!(status(&restored, a, "short"), "scheduled");
    assert_eq!(status(&restored, b, "short"), "cancelled");
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_content_file_cancels_its_unpublished_targets_sqlite() {
    deleting_a_file_cancels_its_unpublished_targets(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_content_file_cancels_its_unpublished_targets_postgres() {
    if let Some(db) = TestDb::postgres().await {
        deleting_a_file_cancels_its_unpublished_targets(Some(db)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn content_plan_and_sync_refuse_the_same_files_at_the_same_lines() {
    let sink = Sink::start(SinkRules::default()).await;
    let clarion = Clarion::new(None, &Settings::new(&sink));
    let past = at_in(-7_200_000);
    let past_file = format!("+++\nchannels = [\"sink\"]\n# when\nat = \"{past}\"\n+++\nhello\n");
    write(&clarion, "past.md", &past_file);
    // The README's old mistake: settings written below `[vars]`.
    let vars_file = format!(
        "+++\nat = \"{}\"\nchannels = [\"sink\"]\n[vars]\ntitle = \"Hi\"\nthread = true\n+++\n{{{{title}}}}\n",
        at_in(3_600_000)
    );
    write(&clarion, "vars.md", &vars_file);
    let errors = |command: &str| {
        let out = clarion.cli(&["content", command]);
        assert!(!out.status.success(), "{command} must refuse");
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.starts_with("error: "))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    // Every problem of every file, in file order: a file that does not
    // parse does not hide another file's past `at`.
    let plan = errors("plan");
    assert_eq!(plan.len(), 3, "{plan:?}");
    assert!(
        plan[0].ends_with(&format!(
            "past.md:4: `at` = {} is in the past; a new or changed post needs a future time \
             (an unchanged one is left as it is)",
            chrono::DateTime::parse_from_rfc3339(&past)
                .unwrap()
                .to_rfc3339()
        )),
        "{plan:?}"
    );
    assert!(
        plan[1].contains("vars.md:6: `thread` is under `[vars]`"),
        "{plan:?}"
    );
    assert_eq!(
        plan[2],
        "error: 2 problem(s) in the content; nothing was queued"
    );
    assert_eq!(errors("sync"), plan, "one validation for plan and sync");
    let store = clarion.db.store().await;
    assert!(all_posts(&store).await.is_empty());
    assert_eq!(read(&clarion, "past.md"), past_file, "no id written");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_without_its_id_is_matched_only_when_that_is_unambiguous() {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let sink = Sink::start(SinkRules::default()).await;
    let clarion = Clarion::new(None, &Settings::new(&sink));
    let original = format!(
        "+++\nat = \"{}\"\nchannels = [\"sink\"]\n+++\nold\n",
        at_in(3_600_000)
    );
    write(&clarion, "old.md", &original);
    clarion.ok(&["content", "sync"]);
    let store = clarion.db.store().await;
    let post = all_posts(&store).await.remove(0);
    let first_id = id_of(&read(&clarion, "old.md"));

    // A post synced before ids existed: its key is its path, the file has no id.
    clarion_store::post::Entity::update_many()
        .col_expr(clarion_store::post::Column::SourceKey, "old.md".into())
        .filter(clarion_store::post::Column::Id.eq(post.id))
        .exec(store.connection())
        .await
        .unwrap();
    write(&clarion, "old.md", &original);
    let plan = clarion.ok(&["content", "plan"]);
    assert!(
        plan.contains(
            "Plan: 0 to create, 0 to update, 0 to cancel, 1 unchanged. 1 file(s) get an id."
        ),
        "{plan}"
    );
    let out = clarion.ok(&["content", "sync"]);
    assert!(out.contains("0 created, 0 updated, 1 unchanged"), "{out}");
    let new_id = id_of(&read(&clarion, "old.md"));
    assert_ne!(new_id, first_id);
    let posts = all_posts(&store).await;
    assert_eq!(posts.len(), 1, "adopted, not duplicated");
    assert_eq!(posts[0].source_key.as_deref(), Some(new_id.as_str()));

    // The id line lost (or never committed): refused, saying which id to add.
    write(&clarion, "old.md", &original);
    for command in ["plan", "sync"] {
        let out = clarion.cli(&["content", command]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "old.md:1: this file has no `id`, but post {} was synced from this path \
                 with id `{new_id}`: add `id = \"{new_id}\"`",
                post.id
            )),
            "{stderr}"
        );
    }
    assert_eq!(all_posts(&store).await.len(), 1);
}

/// A fenced block of the README, with the file a `<!-- file: PATH -->`
/// line right before it names.
struct Block {
    lang: String,
    file: Option<String>,
    text: String,
    line: usize,
}

/// The README's fenced blocks (list-item blocks dedented), and the files
/// marked without a block (`<!-- file: content/posts/launch.png (any
/// image) -->`: an image is made up as an empty placeholder).
fn readme_blocks(readme: &str) -> (Vec<Block>, Vec<String>) {
    let mut blocks = Vec::new();
    let mut placeholders = Vec::new();
    let mut pending: Option<String> = None;
    let mut lines = readme.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("<!-- file: ") {
            let path = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
            let image = [".png", ".jpg", ".gif", ".webp"]
                .iter()
                .any(|ext| path.ends_with(ext));
            if image {
                placeholders.push(path);
            } else {
                pending = Some(path);
            }
            continue;
        }
        // A fence may open a list item: "2. ```toml".
        let fence = trimmed.trim_start_matches(|c: char| c.is_ascii_digit());
        let fence = if fence.len() < trimmed.len() {
            fence.strip_prefix(". ").unwrap_or(trimmed)
        } else {
            trimmed
        };
        if let Some(lang) = fence.strip_prefix("```") {
            let indent = line.len() - fence.len();
            let mut text = String::new();
            for (_, inner) in lines.by_ref() {
                if inner.trim() == "```" {
                    break;
                }
                let cut = inner.len() - inner.trim_start().len();
                text.push_str(&inner[cut.min(indent)..]);
                text.push('\n');
            }
            blocks.push(Block {
                lang: lang.trim().to_owned(),
                file: pending.take(),
                text,
                line: n + 1,
            });
        } else if !trimmed.is_empty() {
            assert!(
                pending.is_none(),
                "README.md:{}: a `<!-- file: -->` marker must be followed by a fenced block",
                n + 1
            );
        }
    }
    (blocks, placeholders)
}

/// Every `{ env = "NAME" }` a config snippet refers to.
fn env_names(text: &str) -> Vec<String> {
    text.split("env = \"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

/// Runs `clarion --config CONFIG content plan` in `dir`, every referenced
/// secret set to a dummy value.
fn plan_with(
    dir: &std::path::Path,
    config: &std::path::Path,
    env: &[String],
) -> std::process::Output {
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("--config")
        .arg(config)
        .args(["content", "plan"])
        .current_dir(dir)
        .env_remove("CLARION_DATABASE_URL")
        .env_remove("CLARION_CONTENT_DIR");
    for name in env {
        // Shaped like a Telegram bot token, the one format checked at start.
        cmd.env(name, "123456:ABC-dummy");
    }
    output_within(&mut cmd, CLI_TIMEOUT)
}

/// The README's examples are run, so they cannot drift from the code: each
/// `[[channels]]` snippet goes through the real config loader and channel
/// setup, and the marked content files (`<!-- file: content/... -->`) are
/// planned against a config made of those snippets, as a reader would
/// paste them together. So is `config/clarion.toml`.
#[test]
fn readme_examples_are_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let (blocks, placeholders) = readme_blocks(&readme);
    let channels: Vec<&Block> = blocks
        .iter()
        .filter(|b| b.lang == "toml" && b.text.contains("[[channels]]"))
        .collect();
    assert!(
        channels.len() >= 7,
        "expected a [[channels]] snippet per platform, found {}",
        channels.len()
    );
    let files: Vec<&Block> = blocks.iter().filter(|b| b.file.is_some()).collect();
    assert!(
        files
            .iter()
            .any(|b| b.file.as_deref().unwrap().starts_with("content/posts/")),
        "mark the README's content example with <!-- file: content/posts/NAME.md -->"
    );

    let dir = tempfile::tempdir().unwrap();
    let base = format!(
        "database_url = \"sqlite://{}?mode=rwc\"\ncontent_dir = \"{}\"\n",
        dir.path().join("clarion.db").display(),
        dir.path().join("content").display()
    );
    std::fs::create_dir_all(dir.path().join("content/posts")).unwrap();
    let env: Vec<String> = channels.iter().flat_map(|b| env_names(&b.text)).collect();
    for (i, snippet) in channels.iter().enumerate() {
        let config = dir.path().join(format!("snippet-{i}.toml"));
        std::fs::write(&config, format!("{base}\n{}", snippet.text)).unwrap();
        let out = plan_with(dir.path(), &config, &env);
        assert!(
            out.status.success(),
            "README.md:{}: this config snippet is refused:\n{}\n{}",
            snippet.line,
            snippet.text,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    for block in &files {
        let path = dir.path().join(block.file.as_deref().unwrap());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, &block.text).unwrap();
    }
    for image in &placeholders {
        std::fs::write(dir.path().join(image), b"").unwrap();
    }
    let all = channels
        .iter()
        .map(|b| b.text.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let config = dir.path().join("readme.toml");
    std::fs::write(&config, format!("{base}\n{all}")).unwrap();
    let out = plan_with(dir.path(), &config, &env);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the README's content example is refused:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let posts = files
        .iter()
        .filter(|b| b.file.as_deref().unwrap().starts_with("content/posts/"))
        .count();
    assert!(
        stdout.contains(&format!("Plan: {posts} to create, 0 to update")),
        "{stdout}"
    );

    // The documented example config, with this test's database and folder.
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("--config")
        .arg(root.join("config/clarion.toml"))
        .args(["content", "plan"])
        .current_dir(dir.path())
        .env(
            "CLARION_DATABASE_URL",
            format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("example.db").display()
            ),
        )
        .env("CLARION_CONTENT_DIR", dir.path().join("empty"))
        .env("CLARION_API_TOKEN", "dummy");
    std::fs::create_dir_all(dir.path().join("empty/posts")).unwrap();
    let out = output_within(&mut cmd, CLI_TIMEOUT);
    assert!(
        out.status.success(),
        "config/clarion.toml is refused:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
