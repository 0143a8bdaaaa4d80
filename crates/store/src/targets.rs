//! The publish path's queries. Each status change is conditional, so the
//! database decides which worker owns a target, not the queue.

use clarion_core::TargetStatus;
use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType, Order, Query};
use sea_orm::{
    ColumnTrait, DatabaseTransaction, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};

use crate::{Store, StoreError, now_ms, publish_attempt, target};

/// One publish job to queue: look at `target_id`, not before `not_before_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Enqueue {
    pub target_id: i32,
    pub not_before_ms: i64,
}

/// Where a claimed target goes after its attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    Published {
        platform_post_id: Option<String>,
        url: Option<String>,
    },
    /// Back to `scheduled`, to be tried again at `not_before_ms` with the same key.
    Retry {
        not_before_ms: i64,
        error: String,
    },
    Failed {
        error: String,
    },
    OutcomeUnknown {
        error: String,
    },
}

/// One attempt as it is written to `publish_attempts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub target_id: i32,
    pub attempt_no: i32,
    pub worker: String,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    pub outcome: String,
    pub http_status: Option<i32>,
    pub retry_after_ms: Option<i64>,
    pub platform_post_id: Option<String>,
    pub message: Option<String>,
}

/// Who claims, and the values every claim in one batch shares.
#[derive(Debug, Clone, Copy)]
pub struct ClaimBatch<'a> {
    /// The process (for people reading the table and the attempts).
    pub worker: &'a str,
    /// Unique per claim batch; each claim's token is `<batch>:<target id>`.
    pub batch: &'a str,
    pub now_ms: i64,
    pub lease_until_ms: i64,
}

impl ClaimBatch<'_> {
    /// The token the claim of `target_id` in this batch carries.
    pub fn token_for(&self, target_id: i32) -> String {
        format!("{}:{target_id}", self.batch)
    }
}

/// One finished attempt to record: the claim that made it, what happened,
/// and where the target goes next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finish {
    pub token: String,
    pub attempt: AttemptRecord,
    pub next: Claim,
}

/// Attempts recorded per statement: well inside SQLite's and PostgreSQL's
/// bound-parameter limits (10 per attempt row).
const FINISH_CHUNK: usize = 250;

/// `status = <status>` as a guard on rows already found another way (by id
/// or claim token). On SQLite the column is written `+status`, which keeps
/// the planner from driving the statement from the status index: without
/// it, `UPDATE … WHERE id IN (…) AND status = 'scheduled'` scanned every
/// scheduled target for each claim (EXPLAIN QUERY PLAN: `SEARCH targets
/// USING INDEX ix_targets_status_not_before`), so a 100k backlog drained at
/// less than half the speed of a 10k one. PostgreSQL plans it well as is.
fn status_guard(postgres: bool, status: TargetStatus) -> sea_orm::sea_query::SimpleExpr {
    if postgres {
        target::Column::Status.eq(status.as_str())
    } else {
        // A fixed word from the status machine, not input: safe to inline.
        Expr::cust(format!("+status = '{}'", status.as_str()))
    }
}

/// Moves all `published` entries of a batch on in one statement; returns
/// the tokens whose claim still held. Per-row values (the platform's id and
/// URL) are set with a `CASE` on the integer id, and left out entirely when
/// no row has one (a plain webhook), which keeps the statement small.
/// `published_at_ms` is the batch's latest finish time (within milliseconds
/// of each row's own, which `publish_attempts` keeps exactly).
async fn publish_many(
    txn: &DatabaseTransaction,
    entries: &[&Finish],
    postgres: bool,
) -> Result<Vec<String>, StoreError> {
    let mut post_ids = Vec::new();
    let mut urls = Vec::new();
    for f in entries {
        if let Claim::Published {
            platform_post_id,
            url,
        } = &f.next
        {
            if let Some(id) = platform_post_id {
                post_ids.push((f.attempt.target_id, id.clone()));
            }
            if let Some(url) = url {
                urls.push((f.attempt.target_id, url.clone()));
            }
        }
    }
    let per_row = |values: Vec<(i32, String)>| {
        let mut case = Expr::case(Expr::val(false), Expr::val(Option::<String>::None));
        for (id, value) in values {
            case = case.case(target::Column::Id.eq(id), Expr::val(value));
        }
        case
    };
    let tokens: Vec<String> = entries.iter().map(|f| f.token.clone()).collect();
    let now = entries
        .iter()
        .map(|f| f.attempt.finished_at_ms)
        .max()
        .unwrap_or_else(now_ms);
    let mut update = target::Entity::update_many()
        .col_expr(
            target::Column::Status,
            TargetStatus::Published.as_str().into(),
        )
        .col_expr(target::Column::PublishedAtMs, now.into())
        .col_expr(target::Column::LastOutcome, "published".into())
        .col_expr(
            target::Column::LastError,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            target::Column::LeaseUntilMs,
            Expr::value(Option::<i64>::None),
        )
        .col_expr(target::Column::UpdatedAtMs, now.into());
    if !post_ids.is_empty() {
        update = update.col_expr(target::Column::PlatformPostId, per_row(post_ids).into());
    }
    if !urls.is_empty() {
        update = update.col_expr(target::Column::PlatformUrl, per_row(urls).into());
    }
    let updated = update
        .filter(target::Column::ClaimToken.is_in(tokens.clone()))
        .filter(status_guard(postgres, TargetStatus::Publishing))
        .exec(txn)
        .await?
        .rows_affected;
    if updated == tokens.len() as u64 {
        return Ok(tokens);
    }
    // Some claims were taken over meanwhile: their token is gone from the
    // table, so the tokens still present (now `published`) are ours.
    Ok(target::Entity::find()
        .select_only()
        .column(target::Column::ClaimToken)
        .filter(target::Column::ClaimToken.is_in(tokens))
        .filter(target::Column::Status.eq(TargetStatus::Published.as_str()))
        .into_tuple::<Option<String>>()
        .all(txn)
        .await?
        .into_iter()
        .flatten()
        .collect())
}

/// Moves one target on (the batch path writes published ones together).
async fn finish_one(txn: &DatabaseTransaction, f: &Finish) -> Result<bool, StoreError> {
    let now = f.attempt.finished_at_ms;
    let mut update = target::Entity::update_many()
        .col_expr(target::Column::UpdatedAtMs, now.into())
        .col_expr(
            target::Column::LastOutcome,
            f.attempt.outcome.clone().into(),
        )
        .col_expr(
            target::Column::LeaseUntilMs,
            Expr::value(Option::<i64>::None),
        );
    update = match &f.next {
        Claim::Published {
            platform_post_id,
            url,
        } => update
            .col_expr(
                target::Column::Status,
                TargetStatus::Published.as_str().into(),
            )
            .col_expr(
                target::Column::PlatformPostId,
                platform_post_id.clone().into(),
            )
            .col_expr(target::Column::PlatformUrl, url.clone().into())
            .col_expr(target::Column::PublishedAtMs, now.into())
            .col_expr(
                target::Column::LastError,
                Expr::value(Option::<String>::None),
            ),
        Claim::Retry {
            not_before_ms,
            error,
        } => update
            .col_expr(
                target::Column::Status,
                TargetStatus::Scheduled.as_str().into(),
            )
            .col_expr(target::Column::NotBeforeMs, (*not_before_ms).into())
            .col_expr(target::Column::LastError, error.clone().into()),
        Claim::Failed { error } => update
            .col_expr(target::Column::Status, TargetStatus::Failed.as_str().into())
            .col_expr(target::Column::LastError, error.clone().into()),
        Claim::OutcomeUnknown { error } => update
            .col_expr(
                target::Column::Status,
                TargetStatus::OutcomeUnknown.as_str().into(),
            )
            .col_expr(target::Column::LastError, error.clone().into()),
    };
    let result = update
        .filter(target::Column::Id.eq(f.attempt.target_id))
        .filter(target::Column::Status.eq(TargetStatus::Publishing.as_str()))
        .filter(target::Column::ClaimToken.eq(f.token.clone()))
        .exec(txn)
        .await?;
    Ok(result.rows_affected == 1)
}

#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct StatusCount {
    pub status: String,
    pub count: i64,
}

impl Store {
    pub async fn target(&self, id: i32) -> Result<Option<target::Model>, StoreError> {
        Ok(target::Entity::find_by_id(id).one(&self.db).await?)
    }

    /// Claims up to `limit` scheduled targets due by `due_by_ms`, oldest
    /// first, skipping `skip_channels` (paced or paused in this process), or
    /// of `only_channel`:
    /// `scheduled` -> `publishing` in one statement. Each claim gets its own
    /// token (`<batch>:<id>`); only that token may write the result. On
    /// PostgreSQL the candidates are locked `FOR UPDATE SKIP LOCKED`, so
    /// processes claiming at once split the work instead of queueing on each
    /// other's rows; the outer `status` guard keeps "one winner" either way.
    pub async fn claim_due(
        &self,
        claim: &ClaimBatch<'_>,
        due_by_ms: i64,
        limit: u64,
        skip_channels: &[String],
        only_channel: Option<&str>,
    ) -> Result<Vec<target::Model>, StoreError> {
        let mut candidates = Query::select();
        candidates
            .column(target::Column::Id)
            .from(target::Entity)
            .and_where(target::Column::Status.eq(TargetStatus::Scheduled.as_str()))
            .and_where(target::Column::NotBeforeMs.lte(due_by_ms))
            .order_by(target::Column::NotBeforeMs, Order::Asc)
            .limit(limit)
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        if !skip_channels.is_empty() {
            candidates.and_where(target::Column::Channel.is_not_in(skip_channels.iter().cloned()));
        }
        if let Some(channel) = only_channel {
            candidates.and_where(target::Column::Channel.eq(channel));
        }
        let _turn = self.write_turn().await;
        let claimed = self
            .claim_update(claim)
            .col_expr(
                target::Column::Status,
                TargetStatus::Publishing.as_str().into(),
            )
            .col_expr(
                target::Column::FirstSentAtMs,
                Expr::cust_with_values(
                    self.sql_param("COALESCE(first_sent_at_ms, ?)"),
                    [claim.now_ms],
                ),
            )
            .filter(target::Column::Id.in_subquery(candidates))
            .filter(status_guard(self.is_postgres(), TargetStatus::Scheduled))
            .exec_with_returning(&self.db)
            .await?;
        Ok(claimed)
    }

    /// A custom SQL fragment with one `?` parameter, in this database's
    /// placeholder style (PostgreSQL numbers them).
    fn sql_param(&self, sql: &'static str) -> String {
        if self.is_postgres() {
            sql.replace('?', "$1")
        } else {
            sql.to_owned()
        }
    }

    /// The columns every claim sets: a new token, the lease, one more attempt.
    fn claim_update(&self, claim: &ClaimBatch<'_>) -> sea_orm::UpdateMany<target::Entity> {
        target::Entity::update_many()
            .col_expr(
                target::Column::Attempts,
                Expr::col(target::Column::Attempts).add(1),
            )
            .col_expr(target::Column::ClaimedBy, claim.worker.into())
            .col_expr(
                target::Column::ClaimToken,
                Expr::cust_with_values(
                    self.sql_param("? || ':' || CAST(id AS TEXT)"),
                    [claim.batch.to_owned()],
                ),
            )
            .col_expr(target::Column::LeaseUntilMs, claim.lease_until_ms.into())
            .col_expr(target::Column::UpdatedAtMs, claim.now_ms.into())
    }

    /// When the next scheduled target (outside `skip_channels`) is due.
    pub async fn next_due_ms(&self, skip_channels: &[String]) -> Result<Option<i64>, StoreError> {
        let mut query = target::Entity::find()
            .select_only()
            .column_as(target::Column::NotBeforeMs.min(), "min")
            .filter(target::Column::Status.eq(TargetStatus::Scheduled.as_str()));
        if !skip_channels.is_empty() {
            query = query.filter(target::Column::Channel.is_not_in(skip_channels.iter().cloned()));
        }
        Ok(query
            .into_tuple::<Option<i64>>()
            .one(&self.db)
            .await?
            .flatten())
    }

    /// Which of `channels` have a scheduled target due by `due_by_ms`: one
    /// read, so the dispatcher tries a claim only on those instead of one
    /// statement per paced channel per round (which grew with the number
    /// of accounts: reply p99 571 ms at 500 paced channels).
    pub async fn channels_with_due(
        &self,
        due_by_ms: i64,
        channels: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let mut found = Vec::new();
        for chunk in channels.chunks(crate::posts::MAX_KEYS_PER_QUERY) {
            found.extend(
                target::Entity::find()
                    .select_only()
                    .column(target::Column::Channel)
                    .distinct()
                    .filter(target::Column::Status.eq(TargetStatus::Scheduled.as_str()))
                    .filter(target::Column::NotBeforeMs.lte(due_by_ms))
                    .filter(target::Column::Channel.is_in(chunk.iter().cloned()))
                    .into_tuple::<String>()
                    .all(&self.db)
                    .await?,
            );
        }
        Ok(found)
    }

    /// Takes over a `publishing` target whose lease ran out (its worker died
    /// mid-publish, or lost the database for longer than a lease), keeping
    /// its idempotency key. The outcome of the dead claim's attempt is
    /// unknown, and is recorded as such, with `reason` as the last error.
    pub async fn reclaim_expired(
        &self,
        id: i32,
        claim: &ClaimBatch<'_>,
        reason: &str,
    ) -> Result<Option<target::Model>, StoreError> {
        let claimed = self
            .claim_update(claim)
            .col_expr(
                target::Column::LastOutcome,
                clarion_core::ErrorClass::OutcomeUnknown.as_str().into(),
            )
            .col_expr(target::Column::LastError, reason.into())
            .filter(target::Column::Id.eq(id))
            .filter(target::Column::Status.eq(TargetStatus::Publishing.as_str()))
            .filter(target::Column::LeaseUntilMs.lt(claim.now_ms))
            .exec_with_returning(&self.db)
            .await?;
        Ok(claimed.into_iter().next())
    }

    /// Extends the leases of claims still being worked on. Returns how many
    /// were extended (a claim taken over or finished is not).
    pub async fn renew_leases(
        &self,
        tokens: &[String],
        lease_until_ms: i64,
    ) -> Result<u64, StoreError> {
        let _turn = self.write_turn().await;
        let mut renewed = 0;
        for chunk in tokens.chunks(500) {
            renewed += target::Entity::update_many()
                .col_expr(target::Column::LeaseUntilMs, lease_until_ms.into())
                .filter(target::Column::ClaimToken.is_in(chunk.iter().cloned()))
                .filter(status_guard(self.is_postgres(), TargetStatus::Publishing))
                .exec(&self.db)
                .await?
                .rows_affected;
        }
        Ok(renewed)
    }

    /// Records the receipts of the thread parts published so far, while
    /// the claim `token` still holds, so a retry resumes after them.
    pub async fn record_thread_progress(
        &self,
        id: i32,
        token: &str,
        progress: &[clarion_core::PublishReceipt],
    ) -> Result<bool, StoreError> {
        let progress = serde_json::to_string(progress).unwrap_or_else(|_| "[]".to_owned());
        let result = target::Entity::update_many()
            .col_expr(target::Column::ThreadProgress, progress.into())
            .col_expr(target::Column::UpdatedAtMs, now_ms().into())
            .filter(target::Column::Id.eq(id))
            .filter(target::Column::Status.eq(TargetStatus::Publishing.as_str()))
            .filter(target::Column::ClaimToken.eq(token))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Hands a claimed target back untried (its channel is paused), to be
    /// looked at again at `not_before_ms`. The attempt is not counted.
    pub async fn release_claim(
        &self,
        id: i32,
        token: &str,
        not_before_ms: i64,
    ) -> Result<bool, StoreError> {
        let result = target::Entity::update_many()
            .col_expr(
                target::Column::Status,
                TargetStatus::Scheduled.as_str().into(),
            )
            .col_expr(
                target::Column::Attempts,
                Expr::col(target::Column::Attempts).sub(1),
            )
            .col_expr(target::Column::NotBeforeMs, not_before_ms.into())
            .col_expr(
                target::Column::ClaimedBy,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                target::Column::ClaimToken,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                target::Column::LeaseUntilMs,
                Expr::value(Option::<i64>::None),
            )
            .col_expr(target::Column::UpdatedAtMs, now_ms().into())
            .filter(target::Column::Id.eq(id))
            .filter(target::Column::Status.eq(TargetStatus::Publishing.as_str()))
            .filter(target::Column::ClaimToken.eq(token))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Records one attempt and moves its claimed target on. Returns false
    /// (and changes no target) if the claim `token` no longer holds.
    pub async fn finish_attempt(
        &self,
        token: &str,
        attempt: AttemptRecord,
        next: Claim,
    ) -> Result<bool, StoreError> {
        let applied = self
            .finish_attempts(vec![Finish {
                token: token.to_owned(),
                attempt,
                next,
            }])
            .await?;
        Ok(applied.first().copied().unwrap_or(false))
    }

    /// Records many attempts and moves their targets on, in one transaction:
    /// one multi-row insert for the attempts, one statement for all the
    /// targets that were published, one per other outcome. Returns, per
    /// entry, whether its claim still held (if not, only the attempt is
    /// recorded and the target is left to whoever holds it now).
    ///
    /// Batching is what makes a large drain cheap: the per-statement cost
    /// (a round trip to SQLite's connection thread, or to PostgreSQL) is
    /// paid once per batch instead of once per post.
    pub async fn finish_attempts(&self, batch: Vec<Finish>) -> Result<Vec<bool>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let _turn = self.write_turn().await;
        let txn = self.db.begin().await?;
        let mut applied_tokens = std::collections::HashSet::new();
        for chunk in batch.chunks(FINISH_CHUNK) {
            publish_attempt::Entity::insert_many(chunk.iter().map(|f| {
                let a = &f.attempt;
                publish_attempt::ActiveModel {
                    target_id: Set(a.target_id),
                    attempt_no: Set(a.attempt_no),
                    worker: Set(a.worker.clone()),
                    started_at_ms: Set(a.started_at_ms),
                    finished_at_ms: Set(a.finished_at_ms),
                    outcome: Set(a.outcome.clone()),
                    http_status: Set(a.http_status),
                    retry_after_ms: Set(a.retry_after_ms),
                    platform_post_id: Set(a.platform_post_id.clone()),
                    message: Set(a.message.clone()),
                    ..Default::default()
                }
            }))
            .exec(&txn)
            .await?;

            let published: Vec<&Finish> = chunk
                .iter()
                .filter(|f| matches!(f.next, Claim::Published { .. }))
                .collect();
            if !published.is_empty() {
                for id in publish_many(&txn, &published, self.is_postgres()).await? {
                    applied_tokens.insert(id);
                }
            }
            for f in chunk
                .iter()
                .filter(|f| !matches!(f.next, Claim::Published { .. }))
            {
                if finish_one(&txn, f).await? {
                    applied_tokens.insert(f.token.clone());
                }
            }
        }
        txn.commit().await?;
        Ok(batch
            .iter()
            .map(|f| applied_tokens.contains(&f.token))
            .collect())
    }

    /// Targets left `publishing` by a worker that stopped before finishing.
    pub async fn expired_leases(
        &self,
        now: i64,
        limit: u64,
    ) -> Result<Vec<target::Model>, StoreError> {
        Ok(target::Entity::find()
            .filter(target::Column::Status.eq(TargetStatus::Publishing.as_str()))
            .filter(target::Column::LeaseUntilMs.lt(now))
            .order_by_asc(target::Column::LeaseUntilMs)
            .limit(limit)
            .all(&self.db)
            .await?)
    }

    /// Scheduled targets that were due before `due_before_ms`, oldest first.
    pub async fn overdue(
        &self,
        due_before_ms: i64,
        limit: u64,
    ) -> Result<Vec<target::Model>, StoreError> {
        Ok(target::Entity::find()
            .filter(target::Column::Status.eq(TargetStatus::Scheduled.as_str()))
            .filter(target::Column::NotBeforeMs.lt(due_before_ms))
            .order_by_asc(target::Column::NotBeforeMs)
            .limit(limit)
            .all(&self.db)
            .await?)
    }

    pub async fn status_counts(&self) -> Result<Vec<StatusCount>, StoreError> {
        Ok(target::Entity::find()
            .select_only()
            .column(target::Column::Status)
            .column_as(target::Column::Id.count(), "count")
            .group_by(target::Column::Status)
            .into_model::<StatusCount>()
            .all(&self.db)
            .await?)
    }

    /// Scheduled targets due within the next `within_ms`, for `queue status`.
    pub async fn due_count(&self, now: i64, within_ms: i64) -> Result<u64, StoreError> {
        use sea_orm::PaginatorTrait;
        Ok(target::Entity::find()
            .filter(target::Column::Status.eq(TargetStatus::Scheduled.as_str()))
            .filter(target::Column::NotBeforeMs.lt(now + within_ms))
            .count(&self.db)
            .await?)
    }
}
