//! Clicks are written in batches, off the redirect's path.

use std::time::Duration;

use clarion_store::{NewClick, Store};
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

/// Most clicks held in memory before new ones are dropped (and counted):
/// a stalled database must not grow memory without bound.
const QUEUE: usize = 100_000;
/// A batch is written at least this often: a crash loses at most this much.
const FLUSH_EVERY: Duration = Duration::from_millis(250);
const MAX_BATCH: usize = 2_000;

enum Message {
    Click(NewClick),
    Flush(oneshot::Sender<()>),
}

/// Hands clicks to a background writer.
#[derive(Debug, Clone)]
pub struct ClickRecorder {
    tx: mpsc::Sender<Message>,
}

impl ClickRecorder {
    /// Starts the writer; it ends when every recorder is dropped, after
    /// writing what it holds.
    pub fn spawn(store: Store) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_loop(store, rx));
        Self { tx }
    }

    /// Queues a click; never waits. False when the queue is full.
    pub fn record(&self, click: NewClick) -> bool {
        match self.tx.try_send(Message::Click(click)) {
            Ok(()) => true,
            Err(_) => {
                warn!("click queue full: a click was not recorded");
                false
            }
        }
    }

    /// Waits until every click queued before this call is written.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn write_loop(store: Store, mut rx: mpsc::Receiver<Message>) {
    let mut batch: Vec<NewClick> = Vec::new();
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    loop {
        let first = rx.recv().await;
        let Some(first) = first else {
            write(&store, &mut batch).await;
            return;
        };
        let deadline = tokio::time::Instant::now() + FLUSH_EVERY;
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Click(click) => batch.push(click),
                Message::Flush(done) => {
                    waiting.push(done);
                    break;
                }
            }
            if batch.len() >= MAX_BATCH {
                break;
            }
            next = tokio::time::timeout_at(deadline, rx.recv())
                .await
                .ok()
                .flatten();
        }
        write(&store, &mut batch).await;
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
}

async fn write(store: &Store, batch: &mut Vec<NewClick>) {
    if batch.is_empty() {
        return;
    }
    // One retry: a busy database is the usual reason.
    for attempt in 0..2 {
        match store.record_clicks(batch).await {
            Ok(()) => break,
            Err(e) if attempt == 0 => {
                warn!(error = %e, clicks = batch.len(), "writing clicks failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => warn!(error = %e, clicks = batch.len(), "clicks lost"),
        }
    }
    batch.clear();
}
