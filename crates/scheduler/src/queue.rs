//! The apalis job queue: apalis-sqlite on the embedded default, apalis-postgres
//! when the store is PostgreSQL.
//!
//! A job is a wake-up, not a target: `Wake { at_ms }` says "targets fall due
//! at this moment: look". One job per distinct due second covers every
//! target due in it, however many, so a burst of 10,000 posts costs a
//! handful of queue rows instead of 10,000 inserts, fetches and acks. The
//! dispatcher then claims the due targets from the store in batches; the
//! claim, not the job, decides who publishes.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use apalis::prelude::*;
use apalis_postgres::PostgresStorage;
use apalis_sqlite::SqliteStorage;
use clarion_store::{DbPool, Enqueue, Store, now_ms};
use futures::stream;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::{SchedulerConfig, SchedulerError};

/// Queue name in apalis' tables; stable across releases so queued jobs survive upgrades.
pub const QUEUE_NAME: &str = "clarion.wake";

/// A wake-up: targets fall due at `at_ms`; the dispatcher should look then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wake {
    pub at_ms: i64,
}

/// apalis hands a job over when its whole-second `run_at` has come; the
/// wake is queued this much before its moment so the dispatcher is awake
/// (and waits out the rest) when the first target falls due.
const WAKE_EARLY_SECS: i64 = 1;

#[derive(Clone)]
pub struct PublishQueue {
    backend: Backend,
    /// Wakes this process's dispatcher directly when work is due soon.
    local: Arc<Notify>,
    /// Due seconds this process has already queued a wake for (pruned as
    /// they pass), so a burst of posts due in one second queues one job.
    queued_secs: Arc<Mutex<BTreeSet<i64>>>,
}

#[derive(Clone)]
enum Backend {
    Sqlite(SqliteStorage<Wake>),
    Postgres(PostgresStorage<Wake>),
}

impl std::fmt::Debug for PublishQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.backend {
            Backend::Sqlite(_) => f.write_str("PublishQueue::Sqlite"),
            Backend::Postgres(_) => f.write_str("PublishQueue::Postgres"),
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
        let backend = match store.pool() {
            DbPool::Sqlite(pool) => Backend::Sqlite(
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
            DbPool::Postgres(pool) => Backend::Postgres(
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
        };
        Self {
            backend,
            local: Arc::new(Notify::new()),
            queued_secs: Arc::default(),
        }
    }

    /// The dispatcher waits on this; the queue (and apalis' wake handler) notify it.
    pub(crate) fn local_wake(&self) -> &Arc<Notify> {
        &self.local
    }

    /// Makes sure the dispatcher looks at these targets when they fall
    /// due: one wake job per distinct due second not already queued by this
    /// process, and a direct nudge of this process's dispatcher when one is
    /// due now. The targets themselves are already in the store.
    pub async fn enqueue(&self, jobs: &[Enqueue]) -> Result<(), SchedulerError> {
        let wakes = self.new_wake_seconds(jobs);
        if jobs.iter().any(|j| j.not_before_ms <= now_ms() + 1_000) {
            self.local.notify_one();
        }
        self.push_wakes(&wakes).await
    }

    /// Queues a wake for each moment, whether or not one was queued before
    /// (the sweeper uses it when it finds due work nobody looked at).
    pub async fn push_wakes(&self, at_ms: &[i64]) -> Result<(), SchedulerError> {
        if at_ms.is_empty() {
            return Ok(());
        }
        let tasks = at_ms.iter().map(|&at_ms| {
            let run_at_secs = (at_ms.max(0) / 1000 - WAKE_EARLY_SECS).max(0) as u64;
            TaskBuilder::new(Wake { at_ms })
                .run_at_time(UNIX_EPOCH + Duration::from_secs(run_at_secs))
                .max_attempts(5)
                .build()
        });
        let mut tasks = stream::iter(tasks.collect::<Vec<_>>());
        match &self.backend {
            Backend::Sqlite(storage) => storage
                .clone()
                .push_all(&mut tasks)
                .await
                .map_err(queue_error)?,
            Backend::Postgres(storage) => storage
                .clone()
                .push_all(&mut tasks)
                .await
                .map_err(queue_error)?,
        }
        Ok(())
    }

    /// The earliest due time of each second among `jobs` that this process
    /// has not queued a wake for yet; remembers them.
    fn new_wake_seconds(&self, jobs: &[Enqueue]) -> Vec<i64> {
        let Ok(mut queued) = self.queued_secs.lock() else {
            return jobs.iter().map(|j| j.not_before_ms).collect();
        };
        let past = now_ms() / 1000 - 2;
        while queued.first().is_some_and(|s| *s < past) {
            queued.pop_first();
        }
        let mut earliest: std::collections::BTreeMap<i64, i64> = Default::default();
        for job in jobs {
            let sec = job.not_before_ms.div_euclid(1000);
            if !queued.contains(&sec) {
                let at = earliest.entry(sec).or_insert(job.not_before_ms);
                *at = (*at).min(job.not_before_ms);
            }
        }
        queued.extend(earliest.keys().copied());
        earliest.into_values().collect()
    }

    pub(crate) fn worker_backend(&self) -> WorkerBackend<'_> {
        match &self.backend {
            Backend::Sqlite(s) => WorkerBackend::Sqlite(s),
            Backend::Postgres(s) => WorkerBackend::Postgres(s),
        }
    }
}

/// The storage an apalis worker polls.
pub(crate) enum WorkerBackend<'a> {
    Sqlite(&'a SqliteStorage<Wake>),
    Postgres(&'a PostgresStorage<Wake>),
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
        let deleted = match &self.backend {
            Backend::Sqlite(storage) => sea_orm::sqlx::query(
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
            Backend::Postgres(storage) => sea_orm::sqlx::query(
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
