//! The listener path on real databases: batches are stored once, threaded
//! into conversations and linked to the posts they answer; the lease lets
//! exactly one holder store; a listener killed mid-stream is taken over and
//! nothing is lost or stored twice.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use clarion_core::{
    Engagement, EngagementAuthor, EngagementKind, ListenBatch, Listener, ListenerRegistry,
    PublishError,
};
use clarion_engage::{ListenConfig, ListenerRuntime};
use clarion_store::{ConversationStatus, InboxFilter, Store, engagement, now_ms};
use sea_orm::{EntityTrait, PaginatorTrait};

use crate::harness::*;

fn item(id: &str, parent: Option<&str>, root: &str, text: &str) -> Engagement {
    Engagement {
        item_id: id.into(),
        kind: if parent.is_some() {
            EngagementKind::Reply
        } else {
            EngagementKind::Mention
        },
        author: EngagementAuthor {
            id: format!("user-{id}"),
            handle: format!("@fan{id}"),
            display_name: "Fan".into(),
            roles: Vec::new(),
        },
        text: text.into(),
        url: Some(format!("https://masto.test/@fan/{id}")),
        parent_id: parent.map(str::to_owned),
        root_id: root.into(),
        place: None,
        created_at_ms: now_ms(),
    }
}

async fn store(db: &TestDb) -> Store {
    let store = Store::connect(&db.url, 4).await.unwrap();
    store.migrate().await.unwrap();
    store
}

/// Dedupe on (channel, item id), threading by parent and root, the link to
/// a published target, reopening a resolved conversation, and the cursor
/// stored with the batch only while the lease is held.
async fn ingest_threads_dedupes_and_fences(db: TestDb) {
    let store = store(&db).await;
    // A published post of ours on `masto`, platform id 500.
    let (detail, _) = store
        .create_post(clarion_store::NewPost {
            source_key: None,
            import_key: None,
            body: "launch".into(),
            template: None,
            vars: serde_json::json!({}),
            campaign: Some("spring".into()),
            author: None,
            scheduled_at_ms: None,
            content_hash: String::new(),
            targets: vec![clarion_store::NewTarget {
                channel: "masto".into(),
                override_body: None,
                rendered_text: "launch".into(),
                parts: vec!["launch".into()],
                media: vec![],
                reply: None,
                links: Vec::new(),
                variant: None,
            }],
        })
        .await
        .unwrap();
    let target = &detail.targets[0];
    use sea_orm::{ColumnTrait, QueryFilter};
    clarion_store::target::Entity::update_many()
        .col_expr(
            clarion_store::target::Column::PlatformPostId,
            sea_orm::sea_query::Expr::value("500"),
        )
        .filter(clarion_store::target::Column::Id.eq(target.id))
        .exec(store.connection())
        .await
        .unwrap();

    let now = now_ms();
    let held = store
        .acquire_listener("masto", "proc-a", now, now + 60_000)
        .await
        .unwrap()
        .expect("the first holder takes the lease");
    assert_eq!(held.cursor, None);
    assert!(
        store
            .acquire_listener("masto", "proc-b", now, now + 60_000)
            .await
            .unwrap()
            .is_none(),
        "a live lease is not taken"
    );

    // 601 answers our post 500; 602 answers 601 (same conversation); 700
    // is a new mention (its own conversation); 601 repeated in the batch.
    let batch = vec![
        item("601", Some("500"), "500", "love it"),
        item("602", Some("601"), "601", "me too"),
        item("700", None, "700", "@clarion hello"),
        item("601", Some("500"), "500", "love it"),
    ];
    let out = store
        .ingest("masto", "proc-a", &batch, Some("700"), now, now + 60_000)
        .await
        .unwrap()
        .expect("holder stores");
    assert_eq!(out.new.len(), 3);
    assert_eq!(out.duplicates, 1);
    let c601 = out.new[0].conversation_id;
    assert_eq!(
        out.new[1].conversation_id, c601,
        "a reply joins its parent's thread"
    );
    assert_ne!(out.new[2].conversation_id, c601);
    let conv = store.conversation(c601).await.unwrap();
    assert_eq!(
        conv.target_id,
        Some(target.id),
        "linked to our published target"
    );
    assert_eq!(conv.post_id, Some(detail.post.id));
    assert_eq!(conv.campaign.as_deref(), Some("spring"));

    // The same items again (a re-read after a crash): nothing new.
    let again = store
        .ingest(
            "masto",
            "proc-a",
            &batch[..3],
            Some("700"),
            now,
            now + 60_000,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(again.new.is_empty());
    assert_eq!(again.duplicates, 3);

    // Resolved, then a new reply in the thread reopens it.
    store
        .set_conversation_status(c601, ConversationStatus::Resolved, None)
        .await
        .unwrap();
    let reopened = store
        .ingest(
            "masto",
            "proc-a",
            &[item("603", Some("602"), "602", "still broken")],
            Some("703"),
            now,
            now + 60_000,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reopened.reopened, vec![c601]);
    assert_eq!(store.conversation(c601).await.unwrap().status, "open");

    // Lease ran out: proc-b takes over; proc-a can no longer store, and its
    // cursor is not written.
    let later = now + 61_000;
    let taken = store
        .acquire_listener("masto", "proc-b", later, later + 60_000)
        .await
        .unwrap()
        .expect("an expired lease is taken over");
    assert_eq!(
        taken.cursor.as_deref(),
        Some("703"),
        "the new holder resumes at the cursor"
    );
    let fenced = store
        .ingest(
            "masto",
            "proc-a",
            &[item("800", None, "800", "x")],
            Some("800"),
            later,
            later,
        )
        .await
        .unwrap();
    assert!(fenced.is_none(), "a lost lease stores nothing");
    let rows = engagement::Entity::find()
        .count(store.connection())
        .await
        .unwrap();
    assert_eq!(rows, 4);
    assert_eq!(
        store.listeners().await.unwrap()[0].cursor.as_deref(),
        Some("703")
    );

    // Filters: by label, status, channel.
    store
        .label_conversation(c601, &["bug".into()], &[])
        .await
        .unwrap();
    let labelled = store
        .list_conversations(&InboxFilter {
            label: Some("bug".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(labelled.len(), 1);
    assert_eq!(labelled[0].items, 3);
    assert_eq!(labelled[0].latest.as_ref().unwrap().item_id, "603");
    let none = store
        .list_conversations(&InboxFilter {
            label: Some("bu".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty(), "labels match exactly");
    drop(db);
}

#[tokio::test(flavor = "multi_thread")]
async fn ingest_threads_dedupes_and_fences_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    ingest_threads_dedupes_and_fences(TestDb::sqlite(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ingest_threads_dedupes_and_fences_postgres() {
    if let Some(db) = TestDb::postgres().await {
        ingest_threads_dedupes_and_fences(db).await;
    }
}

/// A platform whose notifications are numbered: the cursor is how many
/// were read. Items keep arriving while listeners come and go.
#[derive(Debug, Default)]
struct Feed {
    items: Mutex<Vec<Engagement>>,
    calls: AtomicUsize,
}

#[derive(Debug)]
struct FeedListener(Arc<Feed>);

#[async_trait]
impl Listener for FeedListener {
    fn kind(&self) -> &'static str {
        "feed"
    }

    async fn next_batch(&self, cursor: Option<&str>) -> Result<ListenBatch, PublishError> {
        self.0.calls.fetch_add(1, Ordering::SeqCst);
        let from: usize = cursor.map_or(0, |c| c.parse().unwrap());
        let events: Vec<Engagement> = {
            let items = self.0.items.lock().unwrap();
            items.iter().skip(from).take(7).cloned().collect()
        };
        let next = from + events.len();
        Ok(ListenBatch {
            events,
            cursor: Some(next.to_string()),
            skipped: vec![],
            wait: Duration::from_millis(20),
        })
    }
}

fn runtime(store: &Store, feed: &Arc<Feed>, holder: &str) -> ListenerRuntime {
    let mut listeners = ListenerRegistry::default();
    listeners.insert("feed", Arc::new(FeedListener(feed.clone())));
    ListenerRuntime::new(
        store.clone(),
        Arc::new(listeners),
        holder.into(),
        ListenConfig {
            lease_secs: 2,
            ..Default::default()
        },
    )
}

/// Two runtimes share one database; the holder is killed (its task
/// aborted, no release) mid-stream; the other takes over within the lease
/// and every item is stored exactly once.
async fn a_killed_listener_is_taken_over(db: TestDb) {
    let store = store(&db).await;
    let feed = Arc::new(Feed::default());
    let push = |from: usize, to: usize| {
        let mut items = feed.items.lock().unwrap();
        for n in from..to {
            items.push(item(&n.to_string(), None, &n.to_string(), "hi"));
        }
    };
    push(0, 40);
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let a = tokio::spawn(runtime(&store, &feed, "proc-a").run(stop.clone()));
    let b = tokio::spawn(runtime(&store, &feed, "proc-b").run(stop.clone()));
    let stored = |store: Store| async move {
        engagement::Entity::find()
            .count(store.connection())
            .await
            .unwrap()
    };
    let first = wait_until(Duration::from_secs(20), || async {
        stored(store.clone()).await == 40
    })
    .await;
    assert!(first, "the first 40 items stored");
    let holder = store.listeners().await.unwrap()[0].holder.clone().unwrap();
    // Kill the holder (no release), then more items arrive.
    let (killed, survivor) = if holder == "proc-a" { (a, b) } else { (b, a) };
    killed.abort();
    let _ = killed.await;
    let killed_at = std::time::Instant::now();
    push(40, 100);
    let all = wait_until(Duration::from_secs(20), || async {
        stored(store.clone()).await == 100
    })
    .await;
    assert!(all, "the survivor took over and stored the rest");
    assert!(
        killed_at.elapsed() < Duration::from_secs(10),
        "taken over within the lease, not later ({:?})",
        killed_at.elapsed()
    );
    let row = &store.listeners().await.unwrap()[0];
    assert_ne!(row.holder.as_deref(), Some(holder.as_str()));
    assert_eq!(row.events_total, 100, "each item counted once");
    assert_eq!(row.cursor.as_deref(), Some("100"));
    let distinct: std::collections::HashSet<String> = engagement::Entity::find()
        .all(store.connection())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.item_id)
        .collect();
    assert_eq!(distinct.len(), 100);
    survivor.abort();
    drop(db);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_listener_is_taken_over_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    a_killed_listener_is_taken_over(TestDb::sqlite(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_listener_is_taken_over_postgres() {
    if let Some(db) = TestDb::postgres().await {
        a_killed_listener_is_taken_over(db).await;
    }
}

/// Auto-rules on stored items: labels, assignee and a priority mark, and an
/// auto-reply queued through the publish path at most once per author per
/// conversation.
async fn rules_label_assign_and_auto_reply_once(db: TestDb) {
    use clarion_engage::InboxService;
    use clarion_engage::rules::{RuleConfig, Rules};
    let store = store(&db).await;
    let config: clarion_core::ChannelConfig =
        serde_json::from_value(serde_json::json!({"name": "feed", "kind": "stdout"})).unwrap();
    let registry = Arc::new(
        clarion_core::AdapterRegistry::build(
            &clarion_adapters::builtin_factories(clarion_adapters::http_client()),
            &[config],
            &clarion_core::AdapterContext::default(),
        )
        .unwrap(),
    );
    let queue = clarion_scheduler::PublishQueue::open(&store, &Default::default())
        .await
        .unwrap();
    let posts =
        clarion_scheduler::PostService::new(store.clone(), queue, registry.clone(), Arc::default());
    let inbox = InboxService::new(posts, registry);
    let rule: RuleConfig = toml::from_str(
        "name = \"refunds\"\nkeywords = [\"refund\"]\nlabel = [\"refund\"]\nassign = \"alice\"\n\
         priority = \"high\"\nauto_reply = \"Hi {{author}}, we are on it!\"",
    )
    .unwrap();
    let rules = Rules::new(&[rule], &["feed"])
        .unwrap()
        .with_inbox(inbox.clone(), 20);
    let now = now_ms();
    store
        .acquire_listener("feed", "p", now, now + 60_000)
        .await
        .unwrap()
        .unwrap();
    // Two messages of one author in one thread, a third unrelated item.
    let mut first = item("1", None, "1", "I want a REFUND");
    first.author.id = "kim".into();
    first.author.handle = "@kim".into();
    let mut second = item("2", Some("1"), "1", "refund please!!");
    second.author = first.author.clone();
    let other = item("3", None, "3", "nice launch");
    let out = store
        .ingest(
            "feed",
            "p",
            &[first, second, other],
            Some("3"),
            now,
            now + 60_000,
        )
        .await
        .unwrap()
        .unwrap();
    rules.apply(&out.new).await;
    let thread = out.new[0].conversation_id;
    let detail = inbox.show(thread).await.unwrap();
    assert_eq!(
        detail.conversation.labels(),
        ["priority:high".to_owned(), "refund".to_owned()]
    );
    assert_eq!(detail.conversation.assignee.as_deref(), Some("alice"));
    assert_eq!(
        detail.replies.len(),
        1,
        "one auto-reply per author per conversation"
    );
    let reply = &detail.replies[0];
    assert_eq!(reply.reply.via, "rule");
    let target = reply.target.as_ref().unwrap();
    assert_eq!(target.rendered_text, "Hi @kim, we are on it!");
    assert_eq!(
        target.reply_parent.as_deref(),
        Some("1"),
        "threaded under the item"
    );
    let untouched = inbox.show(out.new[2].conversation_id).await.unwrap();
    assert!(untouched.conversation.labels().is_empty());
    assert!(untouched.replies.is_empty());
    drop(db);
}

#[tokio::test(flavor = "multi_thread")]
async fn rules_label_assign_and_auto_reply_once_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    rules_label_assign_and_auto_reply_once(TestDb::sqlite(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rules_label_assign_and_auto_reply_once_postgres() {
    if let Some(db) = TestDb::postgres().await {
        rules_label_assign_and_auto_reply_once(db).await;
    }
}
