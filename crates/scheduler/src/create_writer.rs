//! Group commit for new posts.
//!
//! Every create — one post from `POST /api/v1/posts` or the CLI, or a whole
//! bulk request or import — is handed to one writer task per process. The
//! writer takes whatever has arrived while its previous transaction was
//! committing and writes it all in one transaction with multi-row inserts,
//! then answers each caller. A caller is answered only after the commit that
//! holds its posts, so "201 means stored" holds exactly as with a
//! transaction per request; what changes is that 16 concurrent requests cost
//! one BEGIN/INSERT/INSERT/COMMIT instead of 16 (on SQLite each statement is
//! a round trip to the connection's thread, which is what creation costs).
//!
//! A batch that fails (a unique `source_key` taken meanwhile, say) is
//! written again caller by caller, so one caller's bad luck never fails its
//! neighbours. A caller's own posts are always all stored or none.
//!
//! An imported post whose `import_key` is already stored is not an error:
//! the insert skips it (`ON CONFLICT DO NOTHING`) and its caller is told so
//! (None in its place). Two callers importing the same row in one batch:
//! the first one's is stored, the second is told it is already imported.

use clarion_store::{Enqueue, NewPost, PostDetail, Store, StoreError};
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use crate::PublishQueue;

/// Posts one transaction takes at most, across callers; a single caller's
/// larger unit (a bulk request) is written on its own, whole.
const MAX_BATCH_POSTS: usize = 2_000;
/// Callers waiting for the writer before new ones wait for room.
const CHANNEL_CAPACITY: usize = 4_096;

/// Each post's details, or None for an imported row whose `import_key` is
/// already stored (see [`Store::create_posts`]).
pub(crate) type Written = Vec<Option<PostDetail>>;

type Reply = oneshot::Sender<Result<Written, StoreError>>;

/// One caller's posts: stored together or not at all.
struct Unit {
    posts: Vec<NewPost>,
    reply: Reply,
}

/// The handle callers write through; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct CreateWriter {
    tx: mpsc::Sender<Unit>,
}

impl CreateWriter {
    /// Starts the writer task on the current tokio runtime. It ends when the
    /// last handle is dropped.
    pub(crate) fn spawn(store: Store, queue: PublishQueue) -> Self {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        tokio::spawn(run(store, queue, rx));
        Self { tx }
    }

    /// Stores `posts` (all or none) and queues their wake-ups; returns once
    /// they are committed.
    pub(crate) async fn write(&self, posts: Vec<NewPost>) -> Result<Written, StoreError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Inconsistent("the post writer has stopped".into());
        self.tx
            .send(Unit { posts, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run(store: Store, queue: PublishQueue, mut rx: mpsc::Receiver<Unit>) {
    while let Some(first) = rx.recv().await {
        let mut count = first.posts.len();
        let mut units = vec![first];
        // Everything that arrived while the last batch was being written.
        while count < MAX_BATCH_POSTS {
            match rx.try_recv() {
                Ok(unit) => {
                    count += unit.posts.len();
                    units.push(unit);
                }
                Err(_) => break,
            }
        }
        write_batch(&store, &queue, units).await;
    }
}

async fn write_batch(store: &Store, queue: &PublishQueue, units: Vec<Unit>) {
    if units.len() == 1 {
        let unit = units.into_iter().next().expect("one unit");
        let result = store_and_queue(store, queue, &unit.posts).await;
        let _ = unit.reply.send(result);
        return;
    }
    let mut all = Vec::with_capacity(units.iter().map(|u| u.posts.len()).sum());
    let mut callers = Vec::with_capacity(units.len());
    for unit in units {
        callers.push((unit.posts.len(), unit.reply));
        all.extend(unit.posts);
    }
    match store_and_queue(store, queue, &all).await {
        Ok(details) => {
            let mut details = details.into_iter();
            for (size, reply) in callers {
                let _ = reply.send(Ok(details.by_ref().take(size).collect()));
            }
        }
        Err(e) => {
            warn!(error = %e, callers = callers.len(), "a grouped create failed; writing each caller's posts alone");
            let mut start = 0;
            for (size, reply) in callers {
                let result = store_and_queue(store, queue, &all[start..start + size]).await;
                start += size;
                let _ = reply.send(result);
            }
        }
    }
}

async fn store_and_queue(
    store: &Store,
    queue: &PublishQueue,
    posts: &[NewPost],
) -> Result<Written, StoreError> {
    let (details, jobs) = store.create_posts(posts).await?;
    queue_or_leave_to_sweeper(queue, &jobs).await;
    Ok(details)
}

/// The targets are stored; if the queue write fails the sweeper re-queues
/// them once due, so the post is late at worst, never lost.
pub(crate) async fn queue_or_leave_to_sweeper(queue: &PublishQueue, jobs: &[Enqueue]) {
    if let Err(e) = queue.enqueue(jobs).await {
        warn!(error = %e, count = jobs.len(), "could not queue publish jobs; the sweeper will re-queue them when due");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SchedulerConfig;

    fn post(body: &str, source_key: Option<&str>) -> NewPost {
        NewPost {
            source_key: source_key.map(str::to_owned),
            import_key: None,
            body: body.to_owned(),
            template: None,
            vars: serde_json::json!({}),
            campaign: None,
            author: None,
            scheduled_at_ms: Some(clarion_store::now_ms() + 3_600_000),
            content_hash: String::new(),
            targets: vec![clarion_store::NewTarget {
                channel: "c".into(),
                override_body: None,
                rendered_text: body.to_owned(),
                parts: vec![body.to_owned()],
                media: Vec::new(),
                reply: None,
                links: Vec::new(),
                variant: None,
            }],
        }
    }

    #[tokio::test]
    async fn a_failing_caller_does_not_fail_the_others_in_its_batch() {
        let file = std::env::temp_dir().join(format!(
            "clarion-writer-{}.db",
            uuid::Uuid::new_v4().simple()
        ));
        let store = Store::connect(&format!("sqlite://{}?mode=rwc", file.display()), 2)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let queue = PublishQueue::open(&store, &SchedulerConfig::default())
            .await
            .unwrap();
        // The third caller's post takes a source key the second one holds:
        // the joint transaction fails, and each caller is written alone.
        let callers = [
            vec![post("a1", None), post("a2", None)],
            vec![post("b", Some("k"))],
            vec![post("c1", None), post("c2", Some("k"))],
            vec![post("d", None)],
        ];
        let mut units = Vec::new();
        let mut answers = Vec::new();
        for posts in callers {
            let (reply, answer) = oneshot::channel();
            units.push(Unit { posts, reply });
            answers.push(answer);
        }
        write_batch(&store, &queue, units).await;
        let mut results = Vec::new();
        for answer in answers {
            results.push(answer.await.unwrap());
        }
        let bodies = |r: &Result<Written, StoreError>| -> Vec<String> {
            r.as_ref()
                .unwrap()
                .iter()
                .map(|d| d.as_ref().unwrap().post.body.clone())
                .collect()
        };
        assert_eq!(bodies(&results[0]), ["a1", "a2"]);
        assert_eq!(bodies(&results[1]), ["b"]);
        assert!(results[2].is_err(), "the conflicting caller fails, whole");
        assert_eq!(bodies(&results[3]), ["d"]);
        let stored: Vec<String> = store
            .list_posts(&clarion_store::PostFilter {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.post.body)
            .collect();
        assert_eq!(stored, ["d", "b", "a2", "a1"], "c1 was not half written");

        // A batch that succeeds hands each caller its own posts, in order.
        let (mut units, mut answers) = (Vec::new(), Vec::new());
        for n in 0..5 {
            let (reply, answer) = oneshot::channel();
            let posts = (0..n).map(|i| post(&format!("{n}.{i}"), None)).collect();
            units.push(Unit { posts, reply });
            answers.push(answer);
        }
        write_batch(&store, &queue, units).await;
        for (n, answer) in answers.into_iter().enumerate() {
            let details: Vec<PostDetail> = answer
                .await
                .unwrap()
                .unwrap()
                .into_iter()
                .flatten()
                .collect();
            let got: Vec<String> = details.iter().map(|d| d.post.body.clone()).collect();
            let want: Vec<String> = (0..n).map(|i| format!("{n}.{i}")).collect();
            assert_eq!(got, want);
            for d in &details {
                assert_eq!(d.targets.len(), 1);
                assert_eq!(d.targets[0].post_id, d.post.id);
                assert_eq!(d.targets[0].rendered_text, d.post.body);
            }
        }

        // Two callers importing the same row in one batch: the first stores
        // it, the second is told it is already imported; neither fails.
        let keyed = |body: &str, key: &str| NewPost {
            import_key: Some(key.to_owned()),
            ..post(body, None)
        };
        let (mut units, mut answers) = (Vec::new(), Vec::new());
        for posts in [
            vec![keyed("i1", "row1"), keyed("i2", "row2")],
            vec![keyed("i2", "row2"), post("plain", None)],
        ] {
            let (reply, answer) = oneshot::channel();
            units.push(Unit { posts, reply });
            answers.push(answer);
        }
        write_batch(&store, &queue, units).await;
        let mut got = Vec::new();
        for answer in answers {
            let written = answer.await.unwrap().unwrap();
            got.push(
                written
                    .iter()
                    .map(|d| d.as_ref().map(|d| d.post.body.clone()))
                    .collect::<Vec<_>>(),
            );
        }
        assert_eq!(
            got,
            [
                vec![Some("i1".to_owned()), Some("i2".to_owned())],
                vec![None, Some("plain".to_owned())],
            ]
        );

        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
        }
    }
}
