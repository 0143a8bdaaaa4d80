//! The publish path's queries. Each status change is conditional, so the
//! database decides which worker owns a target, not the queue.

use clarion_core::TargetStatus;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
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

#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct StatusCount {
    pub status: String,
    pub count: i64,
}

impl Store {
    pub async fn target(&self, id: i32) -> Result<Option<target::Model>, StoreError> {
        Ok(target::Entity::find_by_id(id).one(&self.db).await?)
    }

    /// `scheduled` -> `publishing`, only if the target is still scheduled for
    /// `not_before_ms`. Returns the claimed row, or None if another worker
    /// (or an edit, or a cancel) got there first. One statement: the
    /// database, not the queue, decides who publishes.
    pub async fn claim(
        &self,
        id: i32,
        not_before_ms: i64,
        worker: &str,
        lease_until_ms: i64,
    ) -> Result<Option<target::Model>, StoreError> {
        let claimed = target::Entity::update_many()
            .col_expr(
                target::Column::Status,
                TargetStatus::Publishing.as_str().into(),
            )
            .col_expr(
                target::Column::Attempts,
                Expr::col(target::Column::Attempts).add(1),
            )
            .col_expr(target::Column::ClaimedBy, worker.into())
            .col_expr(target::Column::LeaseUntilMs, lease_until_ms.into())
            .col_expr(target::Column::UpdatedAtMs, now_ms().into())
            .filter(target::Column::Id.eq(id))
            .filter(target::Column::Status.eq(TargetStatus::Scheduled.as_str()))
            .filter(target::Column::NotBeforeMs.eq(not_before_ms))
            .exec_with_returning(&self.db)
            .await?;
        Ok(claimed.into_iter().next())
    }

    /// Takes over a `publishing` target whose lease ran out (its worker died
    /// mid-publish), keeping its idempotency key.
    pub async fn reclaim_expired(
        &self,
        id: i32,
        now: i64,
        worker: &str,
        lease_until_ms: i64,
    ) -> Result<Option<target::Model>, StoreError> {
        let claimed = target::Entity::update_many()
            .col_expr(
                target::Column::Attempts,
                Expr::col(target::Column::Attempts).add(1),
            )
            .col_expr(target::Column::ClaimedBy, worker.into())
            .col_expr(target::Column::LeaseUntilMs, lease_until_ms.into())
            .col_expr(target::Column::UpdatedAtMs, now.into())
            .filter(target::Column::Id.eq(id))
            .filter(target::Column::Status.eq(TargetStatus::Publishing.as_str()))
            .filter(target::Column::LeaseUntilMs.lt(now))
            .exec_with_returning(&self.db)
            .await?;
        Ok(claimed.into_iter().next())
    }

    /// Records the receipts of the thread parts published so far, while
    /// `worker` still holds the claim, so a retry resumes after them.
    pub async fn record_thread_progress(
        &self,
        id: i32,
        worker: &str,
        progress: &[clarion_core::PublishReceipt],
    ) -> Result<bool, StoreError> {
        let progress = serde_json::to_string(progress).unwrap_or_else(|_| "[]".to_owned());
        let result = target::Entity::update_many()
            .col_expr(target::Column::ThreadProgress, progress.into())
            .col_expr(target::Column::UpdatedAtMs, now_ms().into())
            .filter(target::Column::Id.eq(id))
            .filter(target::Column::Status.eq(TargetStatus::Publishing.as_str()))
            .filter(target::Column::ClaimedBy.eq(worker))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Hands a claimed target back untried (its channel is paused), to be
    /// looked at again at `not_before_ms`. The attempt is not counted.
    pub async fn release_claim(
        &self,
        id: i32,
        worker: &str,
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
                target::Column::LeaseUntilMs,
                Expr::value(Option::<i64>::None),
            )
            .col_expr(target::Column::UpdatedAtMs, now_ms().into())
            .filter(target::Column::Id.eq(id))
            .filter(target::Column::Status.eq(TargetStatus::Publishing.as_str()))
            .filter(target::Column::ClaimedBy.eq(worker))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Records an attempt and moves the claimed target on, in one
    /// transaction. Returns false (and changes no target) if `worker` no
    /// longer holds the claim.
    pub async fn finish_attempt(
        &self,
        attempt: AttemptRecord,
        next: Claim,
    ) -> Result<bool, StoreError> {
        let txn = self.db.begin().await?;
        let target_id = attempt.target_id;
        let worker = attempt.worker.clone();
        let now = attempt.finished_at_ms;
        publish_attempt::ActiveModel {
            target_id: Set(attempt.target_id),
            attempt_no: Set(attempt.attempt_no),
            worker: Set(attempt.worker),
            started_at_ms: Set(attempt.started_at_ms),
            finished_at_ms: Set(attempt.finished_at_ms),
            outcome: Set(attempt.outcome),
            http_status: Set(attempt.http_status),
            retry_after_ms: Set(attempt.retry_after_ms),
            platform_post_id: Set(attempt.platform_post_id),
            message: Set(attempt.message),
            ..Default::default()
        }
        .insert(&txn)
        .await?;

        let mut update = target::Entity::update_many()
            .col_expr(target::Column::UpdatedAtMs, now.into())
            .col_expr(
                target::Column::LeaseUntilMs,
                Expr::value(Option::<i64>::None),
            );
        update = match next {
            Claim::Published {
                platform_post_id,
                url,
            } => update
                .col_expr(
                    target::Column::Status,
                    TargetStatus::Published.as_str().into(),
                )
                .col_expr(target::Column::PlatformPostId, platform_post_id.into())
                .col_expr(target::Column::PlatformUrl, url.into())
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
                .col_expr(target::Column::NotBeforeMs, not_before_ms.into())
                .col_expr(target::Column::LastError, error.into()),
            Claim::Failed { error } => update
                .col_expr(target::Column::Status, TargetStatus::Failed.as_str().into())
                .col_expr(target::Column::LastError, error.into()),
            Claim::OutcomeUnknown { error } => update
                .col_expr(
                    target::Column::Status,
                    TargetStatus::OutcomeUnknown.as_str().into(),
                )
                .col_expr(target::Column::LastError, error.into()),
        };
        let result = update
            .filter(target::Column::Id.eq(target_id))
            .filter(target::Column::Status.eq(TargetStatus::Publishing.as_str()))
            .filter(target::Column::ClaimedBy.eq(worker))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(result.rows_affected == 1)
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
