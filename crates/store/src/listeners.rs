//! Listener state: one row per listening channel holding the stored cursor,
//! the lease that makes exactly one process run each listener, and health.
//!
//! The lease is a conditional update (`holder = me OR lease expired`), so on
//! a shared PostgreSQL two processes can never both hold it; the holder
//! renews it every few seconds, and a process that dies stops renewing, so
//! another takes over once `lease_until_ms` passes.

use clarion_core::Engagement;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, TransactionTrait,
};

use crate::inbox::{IngestOutcome, ingest_events};
use crate::{Store, StoreError, listener};

impl Store {
    /// Takes (or keeps) the lease of `channel`'s listener for `holder`.
    /// Returns the row (with the stored cursor) when `holder` has it.
    pub async fn acquire_listener(
        &self,
        channel: &str,
        holder: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<Option<listener::Model>, StoreError> {
        let _turn = self.write_turn().await;
        listener::Entity::insert(listener::ActiveModel {
            channel: Set(channel.to_owned()),
            cursor: Set(None),
            holder: Set(None),
            lease_until_ms: Set(None),
            last_event_at_ms: Set(None),
            last_batch_at_ms: Set(None),
            last_error: Set(None),
            failing_since_ms: Set(None),
            events_total: Set(0),
            updated_at_ms: Set(now_ms),
        })
        .on_conflict(
            OnConflict::column(listener::Column::Channel)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await?;
        let taken = listener::Entity::update_many()
            .col_expr(listener::Column::Holder, holder.into())
            .col_expr(listener::Column::LeaseUntilMs, lease_until_ms.into())
            .col_expr(listener::Column::UpdatedAtMs, now_ms.into())
            .filter(listener::Column::Channel.eq(channel))
            .filter(
                Condition::any()
                    .add(listener::Column::Holder.is_null())
                    .add(listener::Column::Holder.eq(holder))
                    .add(listener::Column::LeaseUntilMs.lt(now_ms)),
            )
            .exec(&self.db)
            .await?
            .rows_affected;
        if taken == 0 {
            return Ok(None);
        }
        Ok(listener::Entity::find_by_id(channel.to_owned())
            .one(&self.db)
            .await?)
    }

    /// Extends `holder`'s lease; false when it was lost (another process took it).
    pub async fn renew_listener(
        &self,
        channel: &str,
        holder: &str,
        lease_until_ms: i64,
    ) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let renewed = listener::Entity::update_many()
            .col_expr(listener::Column::LeaseUntilMs, lease_until_ms.into())
            .filter(listener::Column::Channel.eq(channel))
            .filter(listener::Column::Holder.eq(holder))
            .exec(&self.db)
            .await?
            .rows_affected;
        Ok(renewed == 1)
    }

    /// Gives the lease up at shutdown, so another process takes over at once.
    pub async fn release_listener(&self, channel: &str, holder: &str) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        listener::Entity::update_many()
            .col_expr(
                listener::Column::Holder,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                listener::Column::LeaseUntilMs,
                Expr::value(Option::<i64>::None),
            )
            .filter(listener::Column::Channel.eq(channel))
            .filter(listener::Column::Holder.eq(holder))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Stores a batch and the cursor after it in one transaction, if
    /// `holder` still holds the lease (None when it does not: nothing stored).
    pub async fn ingest(
        &self,
        channel: &str,
        holder: &str,
        events: &[Engagement],
        cursor: Option<&str>,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<Option<IngestOutcome>, StoreError> {
        let _turn = self.write_turn().await;
        let txn = self.db.begin().await?;
        // First, so a lost lease stores nothing (and on PostgreSQL the row
        // lock orders this batch after a concurrent takeover).
        let mut update = listener::Entity::update_many()
            .col_expr(listener::Column::LeaseUntilMs, lease_until_ms.into())
            .col_expr(listener::Column::LastBatchAtMs, now_ms.into())
            .col_expr(
                listener::Column::LastError,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                listener::Column::FailingSinceMs,
                Expr::value(Option::<i64>::None),
            )
            .col_expr(listener::Column::UpdatedAtMs, now_ms.into());
        if let Some(cursor) = cursor {
            update = update.col_expr(listener::Column::Cursor, cursor.into());
        }
        let held = update
            .filter(listener::Column::Channel.eq(channel))
            .filter(listener::Column::Holder.eq(holder))
            .exec(&txn)
            .await?
            .rows_affected;
        if held == 0 {
            txn.rollback().await?;
            return Ok(None);
        }
        let outcome = self.store_events(&txn, channel, events, now_ms).await?;
        txn.commit().await?;
        Ok(Some(outcome))
    }

    /// Stores events the platform pushed (a webhook): no cursor and no
    /// lease (any process may receive a push); the same dedupe and threading.
    pub async fn ingest_pushed(
        &self,
        channel: &str,
        events: &[Engagement],
        now_ms: i64,
    ) -> Result<IngestOutcome, StoreError> {
        let _turn = self.write_turn().await;
        let txn = self.db.begin().await?;
        let outcome = self.store_events(&txn, channel, events, now_ms).await?;
        txn.commit().await?;
        Ok(outcome)
    }

    /// The part of [`Self::ingest`] and [`Self::ingest_pushed`] inside
    /// their transaction: the events, and the channel's count of them.
    async fn store_events(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        channel: &str,
        events: &[Engagement],
        now_ms: i64,
    ) -> Result<IngestOutcome, StoreError> {
        if self.is_postgres() {
            // Prepared statements get a generic plan after five runs, made
            // with the statistics of that moment: an inbox that starts empty
            // keeps a sequential scan until the next ANALYZE (and autovacuum
            // may be off). Measured: 467 events/s at 30k rows instead of
            // thousands. Planning each lookup costs far less than that.
            txn.execute_unprepared("SET LOCAL plan_cache_mode = force_custom_plan")
                .await?;
        }
        let outcome = ingest_events(txn, channel, events, now_ms).await?;
        if !outcome.new.is_empty() {
            listener::Entity::update_many()
                .col_expr(
                    listener::Column::EventsTotal,
                    Expr::col(listener::Column::EventsTotal).add(outcome.new.len() as i64),
                )
                .col_expr(listener::Column::LastEventAtMs, now_ms.into())
                .filter(listener::Column::Channel.eq(channel))
                .exec(txn)
                .await?;
        }
        Ok(outcome)
    }

    /// Records a failed call of `holder`'s listener (the first failure of a
    /// run sets `failing_since_ms`; `/readyz` reads how long it has lasted).
    pub async fn listener_failed(
        &self,
        channel: &str,
        holder: &str,
        error: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        listener::Entity::update_many()
            .col_expr(listener::Column::LastError, error.into())
            .col_expr(
                listener::Column::FailingSinceMs,
                Expr::col(listener::Column::FailingSinceMs).if_null(now_ms),
            )
            .col_expr(listener::Column::UpdatedAtMs, now_ms.into())
            .filter(listener::Column::Channel.eq(channel))
            .filter(listener::Column::Holder.eq(holder))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Every listener's row, by channel.
    pub async fn listeners(&self) -> Result<Vec<listener::Model>, StoreError> {
        Ok(listener::Entity::find()
            .order_by_asc(listener::Column::Channel)
            .all(&self.db)
            .await?)
    }
}
