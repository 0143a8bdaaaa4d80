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

use clarion_store::{Enqueue, NewPost, PostDetail, Store, StoreError};
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use crate::PublishQueue;

/// Posts one transaction takes at most, across callers; a single caller's
/// larger unit (a bulk request) is written on its own, whole.
const MAX_BATCH_POSTS: usize = 2_000;
/// Callers waiting for the writer before new ones wait for room.
const CHANNEL_CAPACITY: usize = 4_096;

type Reply = oneshot::Sender<Result<Vec<PostDetail>, StoreError>>;

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
    pub(crate) async fn write(&self, posts: Vec<NewPost>) -> Result<Vec<PostDetail>, StoreError> {
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
) -> Result<Vec<PostDetail>, StoreError> {
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
