use std::str::FromStr;
use std::time::Duration;

use sea_orm::sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sea_orm::sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sea_orm::{ConnectionTrait, DatabaseConnection, SqlxPostgresConnector, SqlxSqliteConnector};
use sea_orm_migration::MigratorTrait;

use crate::StoreError;

/// The sqlx pool under the store, shared with the job queue so both live in
/// one database (one file on SQLite).
#[derive(Debug, Clone)]
pub enum DbPool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Handle to Clarion's database.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) db: DatabaseConnection,
    pool: DbPool,
    url: String,
    /// SQLite allows one writer at a time. Two pooled connections writing
    /// at once make the second wait in SQLite's busy handler, which sleeps
    /// 1, 2, 5, 10 ... ms (seen: ~300 sleeps per second of a drain). Taking
    /// this async lock first hands the write slot over without sleeping.
    write_gate: Option<std::sync::Arc<tokio::sync::Mutex<()>>>,
}

/// Any number fits: it only has to be the same in every Clarion process.
const MIGRATION_LOCK_KEY: i64 = 0x436c6172696f6e;

/// Waits for a setup pool to close, but not forever: `close` waits for every
/// connection to come back, and a connection held elsewhere (seen once, under
/// load, in a CLI process that then hung at 100% CPU) must not stop the
/// command. Dropping the pool closes the connections anyway.
async fn close_setup_pool(close: impl Future<Output = ()>) {
    if tokio::time::timeout(Duration::from_secs(5), close)
        .await
        .is_err()
    {
        tracing::warn!("the setup connection did not close within 5 s; going on without waiting");
    }
}

/// A host on this machine: a loopback address, `localhost`, or a Unix socket folder.
fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host.starts_with('/')
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Store {
    /// Opens the database. A SQLite file (and its folder) is created on first use.
    ///
    /// SQLite runs in WAL mode with `synchronous = NORMAL`: a killed process
    /// loses nothing it committed; only an OS crash or power cut can roll back
    /// the last few commits. That is the durability Clarion promises.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = if is_postgres(url) {
            let mut options = PgConnectOptions::from_str(url).map_err(|e| bad_url(url, e))?;
            // sqlx defaults to `sslmode=prefer` and does not set TCP_NODELAY:
            // on loopback every statement larger than one TLS record then
            // waits ~40 ms for the server's delayed ACK (a 100-row insert took
            // 43 ms instead of 1.3 ms). TLS to this very machine protects
            // nothing, so it is off there unless the URL asks for it.
            if !url.contains("sslmode=") && is_loopback(options.get_host()) {
                options = options.ssl_mode(sea_orm::sqlx::postgres::PgSslMode::Disable);
            }
            DbPool::Postgres(
                PgPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_with(options)
                    .await?,
            )
        } else {
            let options = sqlite_options(url)?;
            if let Some(parent) = options.get_filename().parent()
                && !parent.as_os_str().is_empty()
            {
                std::fs::create_dir_all(parent).map_err(|e| bad_url(url, e))?;
            }
            DbPool::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(max_connections)
                    .connect_with(options)
                    .await?,
            )
        };
        let db = match &pool {
            DbPool::Sqlite(p) => SqlxSqliteConnector::from_sqlx_sqlite_pool(p.clone()),
            DbPool::Postgres(p) => SqlxPostgresConnector::from_sqlx_postgres_pool(p.clone()),
        };
        let write_gate = matches!(pool, DbPool::Sqlite(_)).then(Default::default);
        Ok(Self {
            db,
            pool,
            url: url.to_owned(),
            write_gate,
        })
    }

    /// Held around the publish path's and the create path's writes (see
    /// `write_gate`); None on PostgreSQL, which has row locks.
    pub(crate) async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.write_gate {
            Some(gate) => Some(gate.lock().await),
            None => None,
        }
    }

    pub fn pool(&self) -> &DbPool {
        &self.pool
    }

    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.pool, DbPool::Postgres(_))
    }

    /// The SQLite database file, if this is one (not PostgreSQL, not
    /// in-memory). Clarion keeps its key file beside it.
    pub fn sqlite_file(&self) -> Option<std::path::PathBuf> {
        if self.is_postgres() || self.url.contains(":memory:") || self.url.contains("mode=memory") {
            return None;
        }
        let options = sqlite_options(&self.url).ok()?;
        Some(options.get_filename().to_path_buf())
    }

    /// Runs `setup` on a private one-connection pool, under a lock when on
    /// PostgreSQL, so that several processes starting together migrate once
    /// and schema pragmas (apalis sets `synchronous = OFF`) never leak into
    /// the shared pool.
    pub async fn with_setup_connection<F, Fut, E>(&self, setup: F) -> Result<(), E>
    where
        F: FnOnce(DbPool) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: From<StoreError>,
    {
        match &self.pool {
            DbPool::Sqlite(_) => {
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(sqlite_options(&self.url)?)
                    .await
                    .map_err(StoreError::from)?;
                let result = setup(DbPool::Sqlite(pool.clone())).await;
                close_setup_pool(pool.close()).await;
                result
            }
            DbPool::Postgres(_) => {
                let options =
                    PgConnectOptions::from_str(&self.url).map_err(|e| bad_url(&self.url, e))?;
                let pool = PgPoolOptions::new()
                    .max_connections(1)
                    .connect_with(options)
                    .await
                    .map_err(StoreError::from)?;
                sea_orm::sqlx::query("SELECT pg_advisory_lock($1)")
                    .bind(MIGRATION_LOCK_KEY)
                    .execute(&pool)
                    .await
                    .map_err(StoreError::from)?;
                let result = setup(DbPool::Postgres(pool.clone())).await;
                // Closing the session releases the advisory lock too.
                close_setup_pool(pool.close()).await;
                result
            }
        }
    }

    /// Applies Clarion's own migrations (idempotent).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.with_setup_connection(|pool| async move {
            let db = match pool {
                DbPool::Sqlite(p) => SqlxSqliteConnector::from_sqlx_sqlite_pool(p),
                DbPool::Postgres(p) => SqlxPostgresConnector::from_sqlx_postgres_pool(p),
            };
            clarion_migration::Migrator::up(&db, None).await?;
            Ok::<(), StoreError>(())
        })
        .await
    }

    /// Cheap liveness probe for `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.execute_unprepared("SELECT 1").await?;
        Ok(())
    }
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

fn sqlite_options(url: &str) -> Result<SqliteConnectOptions, StoreError> {
    if !url.starts_with("sqlite:") {
        return Err(bad_url(
            url,
            "expected sqlite://PATH or postgres://USER@HOST/DB",
        ));
    }
    Ok(SqliteConnectOptions::from_str(url)
        .map_err(|e| bad_url(url, e))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        // Large reads (a full attribution recompute reads every named
        // visitor's clicks) went through pread into a 2 MiB page cache:
        // perf showed the copies and syscalls. Reads now map the file, and
        // each connection may cache up to 32 MiB (grown only as used).
        .pragma("mmap_size", "268435456")
        .pragma("cache_size", "-32768")
        // sqlx hands rows from its SQLite thread through a bounded channel;
        // at its default of 50 a large read woke the reading thread for
        // nearly every row (perf: futex wake-ups). The rows of an `all()`
        // are kept anyway, so letting the reader run ahead costs nothing.
        .row_buffer_size(65_536)
        .busy_timeout(Duration::from_secs(30))
        .foreign_keys(true))
}

fn bad_url(url: &str, reason: impl std::fmt::Display) -> StoreError {
    StoreError::BadUrl {
        url: redact_url(url),
        reason: reason.to_string(),
    }
}

/// Hides a password in `scheme://user:password@host` before it is shown.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_database_urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://clarion:s3cret@db:5432/clarion"),
            "postgres://clarion:***@db:5432/clarion"
        );
        assert_eq!(
            redact_url("sqlite://data/clarion.db"),
            "sqlite://data/clarion.db"
        );
    }

    #[test]
    fn only_hosts_on_this_machine_count_as_loopback() {
        for host in [
            "127.0.0.1",
            "localhost",
            "::1",
            "[::1]",
            "/var/run/postgresql",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["db", "10.0.0.5", "db.example.com"] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn unknown_schemes_are_refused_with_the_expected_forms() {
        let err = sqlite_options("mysql://x").unwrap_err();
        assert!(err.to_string().contains("expected sqlite://PATH"), "{err}");
    }
}
