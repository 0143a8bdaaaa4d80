//! The apalis job queue: apalis-sqlite on the embedded default, apalis-postgres
//! when the store is PostgreSQL. One job per (target, not-before time).

use std::time::{Duration, UNIX_EPOCH};

use apalis::prelude::*;
use apalis_postgres::PostgresStorage;
use apalis_sqlite::SqliteStorage;
use clarion_store::{DbPool, Enqueue, Store};
use futures::stream;

use crate::{SchedulerConfig, SchedulerError};

/// Queue name in apalis' tables; stable across releases so queued jobs survive upgrades.
pub const QUEUE_NAME: &str = "clarion.publish";

#[derive(Clone)]
pub enum PublishQueue {
    Sqlite(SqliteStorage<Enqueue>),
    Postgres(PostgresStorage<Enqueue>),
}

impl std::fmt::Debug for PublishQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(_) => f.write_str("PublishQueue::Sqlite"),
            Self::Postgres(_) => f.write_str("PublishQueue::Postgres"),
        }
    }
}

impl PublishQueue {
    /// Creates apalis' tables (idempotent) and opens the queue on the store's pool.
    pub async fn open(store: &Store, config: &SchedulerConfig) -> Result<Self, SchedulerError> {
        store
            .with_setup_connection(|pool| async move {
                match pool {
                    DbPool::Sqlite(p) => SqliteStorage::setup(&p).await.map_err(queue_error),
                    DbPool::Postgres(p) => PostgresStorage::setup(&p).await.map_err(queue_error),
                }
            })
            .await?;
        Ok(Self::attach(store, config))
    }

    /// Opens the queue without touching its schema (it must exist).
    pub fn attach(store: &Store, config: &SchedulerConfig) -> Self {
        // Heartbeats let apalis re-enqueue jobs a dead worker held; Clarion's
        // sweeper does the same sooner, from the store's point of view.
        let heartbeat = Duration::from_secs(10);
        match store.pool() {
            DbPool::Sqlite(pool) => Self::Sqlite(
                SqliteStorage::new(pool).with_config(
                    apalis_sqlite::Config::default()
                        .queue(QUEUE_NAME)
                        .batch_size(config.batch_size.max(1))
                        .heartbeat_interval(heartbeat),
                ),
            ),
            DbPool::Postgres(pool) => Self::Postgres(
                PostgresStorage::new(pool).with_config(
                    apalis_postgres::Config::default()
                        .queue(QUEUE_NAME)
                        .batch_size(config.batch_size.max(1))
                        .heartbeat_interval(heartbeat),
                ),
            ),
        }
    }

    /// Queues one job per entry, due at its `not_before_ms`.
    ///
    /// apalis stores `run_at` in whole seconds, rounded down: a job can come
    /// up to a second early, and the worker waits out the difference.
    pub async fn enqueue(&self, jobs: &[Enqueue]) -> Result<(), SchedulerError> {
        if jobs.is_empty() {
            return Ok(());
        }
        for chunk in jobs.chunks(500) {
            let tasks = chunk.iter().map(|job| {
                let due_secs = (job.not_before_ms.max(0) / 1000) as u64;
                TaskBuilder::new(*job)
                    .run_at_time(UNIX_EPOCH + Duration::from_secs(due_secs))
                    .max_attempts(5)
                    .build()
            });
            let mut tasks = stream::iter(tasks.collect::<Vec<_>>());
            match self {
                Self::Sqlite(storage) => storage
                    .clone()
                    .push_all(&mut tasks)
                    .await
                    .map_err(queue_error)?,
                Self::Postgres(storage) => storage
                    .clone()
                    .push_all(&mut tasks)
                    .await
                    .map_err(queue_error)?,
            }
        }
        Ok(())
    }
}

fn queue_error(e: impl std::fmt::Display) -> SchedulerError {
    SchedulerError::Queue(e.to_string())
}
