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
                    DbPool::Sqlite(p) => {
                        SqliteStorage::setup(&p).await.map_err(queue_error)?;
                        steer_sqlite_ack_plan(&p).await
                    }
                    DbPool::Postgres(p) => PostgresStorage::setup(&p).await.map_err(queue_error),
                }
            })
            .await?;
        Ok(Self::attach(store, config))
    }

    /// Opens the queue on the store's pool; the schema must exist.
    fn attach(store: &Store, config: &SchedulerConfig) -> Self {
        // Heartbeats let apalis re-enqueue jobs a dead worker held; Clarion's
        // sweeper does the same sooner, from the store's point of view.
        let heartbeat = Duration::from_secs(10);
        match store.pool() {
            DbPool::Sqlite(pool) => Self::Sqlite(
                SqliteStorage::new(pool).with_config(
                    apalis_sqlite::Config::default()
                        .queue(QUEUE_NAME)
                        .batch_size(config.batch_size.max(1))
                        .heartbeat_interval(heartbeat)
                        // The store's claim, not a job lock, decides who publishes;
                        // orphaned jobs are re-queued from `Queued` too.
                        .lock_tasks(false),
                ),
            ),
            DbPool::Postgres(pool) => Self::Postgres(
                PostgresStorage::new(pool).with_config(
                    apalis_postgres::Config::default()
                        .queue(QUEUE_NAME)
                        .batch_size(config.batch_size.max(1))
                        .heartbeat_interval(heartbeat)
                        // The store's claim, not a job lock, decides who publishes;
                        // orphaned jobs are re-queued from `Queued` too.
                        .lock_tasks(false),
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

impl PublishQueue {
    /// Deletes finished jobs older than `older_than`, at most `batch` rows.
    ///
    /// apalis keeps every finished job; Clarion's own history is
    /// `publish_attempts`, so finished job rows are only weight. (apalis'
    /// own `vacuum_before` for SQLite compares an integer column with a date
    /// string, which matches every row, and then runs a full `VACUUM`; the
    /// PostgreSQL backend has none.)
    pub async fn prune_finished(
        &self,
        older_than: Duration,
        batch: i64,
    ) -> Result<u64, SchedulerError> {
        let cutoff = (std::time::SystemTime::now() - older_than)
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let deleted = match self {
            Self::Sqlite(storage) => sea_orm::sqlx::query(
                "DELETE FROM Jobs WHERE rowid IN (SELECT rowid FROM Jobs WHERE job_type = ?1 \
                 AND (status IN ('Done', 'Killed') OR (status = 'Failed' AND attempts >= max_attempts)) \
                 AND done_at IS NOT NULL AND done_at < ?2 LIMIT ?3)",
            )
            .bind(QUEUE_NAME)
            .bind(cutoff)
            .bind(batch)
            .execute(storage.pool())
            .await
            .map_err(queue_error)?
            .rows_affected(),
            Self::Postgres(storage) => sea_orm::sqlx::query(
                "DELETE FROM apalis.jobs WHERE ctid IN (SELECT ctid FROM apalis.jobs WHERE job_type = $1 \
                 AND (status IN ('Done', 'Killed') OR (status = 'Failed' AND attempts >= max_attempts)) \
                 AND done_at IS NOT NULL AND done_at < to_timestamp($2) LIMIT $3)",
            )
            .bind(QUEUE_NAME)
            .bind(cutoff as f64)
            .bind(batch)
            .execute(storage.pool())
            .await
            .map_err(queue_error)?
            .rows_affected(),
        };
        Ok(deleted)
    }
}

/// apalis-sqlite acknowledges a batch of jobs with `UPDATE Jobs ... FROM
/// json_each(?) WHERE Jobs.id = j.task_id AND Jobs.lock_by = ?`. Without
/// statistics SQLite drives that from the `lock_by` index, re-reading the
/// JSON batch for every job the worker ever held: quadratic, and the main
/// cost of a large drain. Telling the planner (through `sqlite_stat1`, which
/// SQLite documents as application-writable) that `lock_by` is unselective
/// makes it drive from the batch and look jobs up by id instead.
async fn steer_sqlite_ack_plan(pool: &apalis_sqlite::SqlitePool) -> Result<(), SchedulerError> {
    for statement in [
        "PRAGMA analysis_limit = 1000",
        "ANALYZE Jobs",
        "DELETE FROM sqlite_stat1 WHERE tbl = 'Jobs' AND idx = 'LIdx'",
        "INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES ('Jobs', 'LIdx', '1000000 100000')",
        "ANALYZE sqlite_schema",
    ] {
        sqlx_sqlite_execute(pool, statement).await?;
    }
    Ok(())
}

async fn sqlx_sqlite_execute(
    pool: &apalis_sqlite::SqlitePool,
    sql: &'static str,
) -> Result<(), SchedulerError> {
    sea_orm::sqlx::query(sql)
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(queue_error)
}

fn queue_error(e: impl std::fmt::Display) -> SchedulerError {
    SchedulerError::Queue(e.to_string())
}
