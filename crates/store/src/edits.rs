//! What people change after a post was created: edits (`post edit`,
//! `PATCH /api/v1/posts/{id}`, `content sync`), retries and settles.
//!
//! Every write here is guarded on the row as it was read (`WHERE id = ? AND
//! status = <read> AND not_before_ms = <read> AND attempts = <read>`), so a
//! worker's claim that lands between the read and the write is never
//! overwritten: the write changes nothing and the caller reports the target
//! as left alone.

use clarion_core::TargetStatus;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set,
    TransactionTrait, UpdateMany,
};

use crate::posts::{enqueue_list, insert_links, json, link_rows, new_target_active, set_status};
use crate::targets::Enqueue;
use crate::{
    NewPost, NewTarget, PostDetail, Store, StoreError, now_ms, post, publish_attempt, target,
};

/// The outcome recorded (in `publish_attempts` and `last_outcome`) when a
/// person says what happened on the platform.
pub const SETTLED: &str = "settled";
/// `last_outcome` of an `outcome_unknown` target a person chose to resend
/// although the platform may not deduplicate it: the worker sends it as is.
pub const FORCED_RETRY: &str = "forced_retry";

/// What a guarded write changes on a target it read; `None` leaves a column
/// as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetChange {
    pub status: Option<TargetStatus>,
    /// A new moment: `scheduled_at_ms` and `not_before_ms` (a retry's
    /// back-off is kept unless the moment changes). `Some(None)`: no time (a draft).
    pub at_ms: Option<Option<i64>>,
    /// New rendered content (its `channel` is not used). Parts that differ
    /// from the ones read reset `thread_progress`: the new thread starts over.
    pub content: Option<NewTarget>,
    pub campaign: Option<Option<String>>,
}

impl TargetChange {
    /// The change `new` makes to `read`: only what differs.
    pub fn between(read: &target::Model, new: TargetChange) -> TargetChange {
        let status = new.status.filter(|s| s.as_str() != read.status.as_str());
        let at_ms = new
            .at_ms
            .filter(|at| *at != read.scheduled_at_ms || *at != read.not_before_ms);
        let content = new.content.filter(|c| {
            c.rendered_text != read.rendered_text
                || c.parts != read.parts()
                || c.media != read.media()
                || c.override_body != read.override_body
        });
        let campaign = new.campaign.filter(|c| *c != read.campaign);
        TargetChange {
            status,
            at_ms,
            content,
            campaign,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.status.is_none()
            && self.at_ms.is_none()
            && self.content.is_none()
            && self.campaign.is_none()
    }
}

/// A target an edit did not change, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftAlone {
    pub target_id: i32,
    pub channel: String,
    /// The target's status when it was left alone.
    pub status: String,
    pub reason: String,
}

/// An edit of one post, rendered and validated by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostEdit {
    pub post_id: i32,
    pub body: String,
    pub vars: serde_json::Value,
    /// The post's new moment, when the edit moves it.
    pub at_ms: Option<i64>,
    /// Targets to change, as they were read.
    pub updates: Vec<(target::Model, TargetChange)>,
    /// Targets of removed channels, as they were read.
    pub cancels: Vec<target::Model>,
    /// Targets of added channels, due at `insert_at_ms` (None: drafts).
    pub inserts: Vec<NewTarget>,
    pub insert_at_ms: Option<i64>,
}

/// What an edit did, target by target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditOutcome {
    pub detail: PostDetail,
    pub changed: Vec<i32>,
    pub added: Vec<i32>,
    pub cancelled: Vec<i32>,
    /// Targets that moved on (a worker claimed one) between the read and the write.
    pub left_alone: Vec<LeftAlone>,
    /// Wake-ups for the changed and added targets.
    pub enqueue: Vec<Enqueue>,
}

/// What a person checked on the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    Published {
        url: String,
        platform_post_id: Option<String>,
    },
    NotPublished,
}

/// The last error of a target a person checked and did not find.
pub const NOT_PUBLISHED: &str = "checked by a person: not published";

/// Guards an update on the target as it was read: same status, same
/// `not_before_ms` (a retry's back-off or a move changes it) and the same
/// number of attempts (a claim adds one).
fn guarded(update: UpdateMany<target::Entity>, read: &target::Model) -> UpdateMany<target::Entity> {
    let update = update
        .filter(target::Column::Id.eq(read.id))
        .filter(target::Column::Status.eq(read.status.clone()))
        .filter(target::Column::Attempts.eq(read.attempts));
    match read.not_before_ms {
        Some(at) => update.filter(target::Column::NotBeforeMs.eq(at)),
        None => update.filter(target::Column::NotBeforeMs.is_null()),
    }
}

/// Writes `change` to the target `read`, only if the row is still as it
/// was read. Returns whether it was written. Callers decide which moves are
/// allowed; this only makes sure nothing moved meanwhile.
pub(crate) async fn guarded_update<C: ConnectionTrait>(
    db: &C,
    read: &target::Model,
    change: &TargetChange,
    now: i64,
) -> Result<bool, StoreError> {
    let mut update =
        target::Entity::update_many().col_expr(target::Column::UpdatedAtMs, now.into());
    if let Some(status) = change.status {
        update = update.col_expr(target::Column::Status, status.as_str().into());
    }
    if let Some(at) = change.at_ms {
        update = update
            .col_expr(target::Column::ScheduledAtMs, at.into())
            .col_expr(target::Column::NotBeforeMs, at.into());
    }
    if let Some(content) = &change.content {
        update = update
            .col_expr(
                target::Column::OverrideBody,
                content.override_body.clone().into(),
            )
            .col_expr(
                target::Column::RenderedText,
                content.rendered_text.clone().into(),
            )
            .col_expr(target::Column::Parts, json(&content.parts).into())
            .col_expr(target::Column::Media, json(&content.media).into());
        if content.parts != read.parts() {
            update = update.col_expr(target::Column::ThreadProgress, "[]".into());
        }
    }
    if let Some(campaign) = &change.campaign {
        update = update.col_expr(target::Column::Campaign, campaign.clone().into());
    }
    let result = guarded(update, read).exec(db).await?;
    Ok(result.rows_affected == 1)
}

impl Store {
    /// Writes `change` to the target as it was `read`, only if it has not
    /// moved meanwhile (claimed, retried, moved). Returns whether it was written.
    pub async fn update_target_if_unchanged(
        &self,
        read: &target::Model,
        change: &TargetChange,
    ) -> Result<bool, StoreError> {
        guarded_update(&self.db, read, change, now_ms()).await
    }

    /// Applies an edit in one transaction. A target that moved on since it
    /// was read is left alone and reported; if nothing could be changed,
    /// nothing is (the post row included).
    pub async fn edit_post(&self, edit: PostEdit) -> Result<EditOutcome, StoreError> {
        let now = now_ms();
        let txn = self.db.begin().await?;
        let mut changed = Vec::new();
        let mut cancelled = Vec::new();
        let mut left_alone = Vec::new();
        for (read, change) in &edit.updates {
            if guarded_update(&txn, read, change, now).await? {
                if let Some(content) = &change.content {
                    insert_links(&txn, link_rows(read, content, now)).await?;
                }
                changed.push(read.id);
            } else {
                left_alone.push(moved_on(&txn, read).await?);
            }
        }
        for read in &edit.cancels {
            if set_status(&txn, read.id, read.status()?, TargetStatus::Cancelled, now).await? {
                cancelled.push(read.id);
            } else {
                left_alone.push(moved_on(&txn, read).await?);
            }
        }
        let mut added = Vec::new();
        if !edit.inserts.is_empty() {
            // New targets copy the post's campaign and get the edit's moment.
            let shape = NewPost {
                source_key: None,
                import_key: None,
                body: String::new(),
                template: None,
                vars: serde_json::Value::Null,
                campaign: post::Entity::find_by_id(edit.post_id)
                    .one(&txn)
                    .await?
                    .ok_or(StoreError::PostNotFound(edit.post_id))?
                    .campaign,
                author: None,
                scheduled_at_ms: edit.insert_at_ms,
                content_hash: String::new(),
                targets: Vec::new(),
            };
            for new in &edit.inserts {
                let row = new_target_active(edit.post_id, new, &shape, now)
                    .insert(&txn)
                    .await?;
                insert_links(&txn, link_rows(&row, new, now)).await?;
                added.push(row.id);
            }
        }
        if changed.is_empty() && cancelled.is_empty() && added.is_empty() {
            txn.rollback().await?;
            let detail = self.post_detail(edit.post_id).await?;
            return Ok(EditOutcome {
                detail,
                changed,
                added,
                cancelled,
                left_alone,
                enqueue: Vec::new(),
            });
        }
        let mut update = post::Entity::update_many()
            .col_expr(post::Column::Body, edit.body.clone().into())
            .col_expr(post::Column::Vars, edit.vars.to_string().into())
            .col_expr(post::Column::UpdatedAtMs, now.into());
        if let Some(at) = edit.at_ms {
            update = update.col_expr(post::Column::ScheduledAtMs, at.into());
        }
        update
            .filter(post::Column::Id.eq(edit.post_id))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        let detail = self.post_detail(edit.post_id).await?;
        let woken: Vec<target::Model> = detail
            .targets
            .iter()
            .filter(|t| changed.contains(&t.id) || added.contains(&t.id))
            .cloned()
            .collect();
        Ok(EditOutcome {
            enqueue: enqueue_list(&woken),
            detail,
            changed,
            added,
            cancelled,
            left_alone,
        })
    }

    /// Moves a `failed` or `outcome_unknown` target back to `scheduled` at
    /// `at_ms`, with the same idempotency key (a resend after an unknown
    /// outcome is deduplicated by it), its attempts reset and its last
    /// error kept until the next attempt. `forced`: a person accepted that
    /// the platform may not deduplicate the resend, so the worker sends it
    /// without the dedupe-window check. Guarded on the status read;
    /// returns whether it was written.
    pub async fn retry_target(
        &self,
        read: &target::Model,
        at_ms: i64,
        forced: bool,
    ) -> Result<bool, StoreError> {
        let from = read.status()?;
        from.transition(TargetStatus::Scheduled)?;
        let mut update = target::Entity::update_many()
            .col_expr(
                target::Column::Status,
                TargetStatus::Scheduled.as_str().into(),
            )
            .col_expr(target::Column::ScheduledAtMs, at_ms.into())
            .col_expr(target::Column::NotBeforeMs, at_ms.into())
            .col_expr(target::Column::Attempts, 0.into())
            .col_expr(
                target::Column::ClaimToken,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                target::Column::ClaimedBy,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                target::Column::LeaseUntilMs,
                Expr::value(Option::<i64>::None),
            )
            .col_expr(target::Column::UpdatedAtMs, now_ms().into());
        if from == TargetStatus::OutcomeUnknown {
            // The worker checks the platform's dedupe window again at send
            // time, unless a person forced the resend; then its send is the
            // key's first use for the platform's window.
            update = if forced {
                update
                    .col_expr(target::Column::LastOutcome, FORCED_RETRY.into())
                    .col_expr(
                        target::Column::FirstSentAtMs,
                        Expr::value(Option::<i64>::None),
                    )
            } else {
                update.col_expr(
                    target::Column::LastOutcome,
                    clarion_core::ErrorClass::OutcomeUnknown.as_str().into(),
                )
            };
        }
        let result = guarded(update, read).exec(&self.db).await?;
        Ok(result.rows_affected == 1)
    }

    /// Records what a person checked on the platform for a `failed` or
    /// `outcome_unknown` target: published (with its URL) or not. Written
    /// as a `publish_attempts` row with outcome `settled` by `by`, in the
    /// same transaction as the guarded status change; returns whether it
    /// was written.
    pub async fn settle_target(
        &self,
        read: &target::Model,
        settlement: &Settlement,
        by: &str,
    ) -> Result<bool, StoreError> {
        let from = read.status()?;
        let now = now_ms();
        let (to, message) = match settlement {
            Settlement::Published { url, .. } => (
                TargetStatus::Published,
                format!("checked by a person: published at {url}"),
            ),
            Settlement::NotPublished => (TargetStatus::Failed, NOT_PUBLISHED.to_owned()),
        };
        // A failed target a person checked stays failed, with their word.
        if from != to {
            from.transition(to)?;
        } else if !from.awaits_person() {
            return Err(clarion_core::StatusError::Transition { from, to }.into());
        }
        let mut update = target::Entity::update_many()
            .col_expr(target::Column::Status, to.as_str().into())
            .col_expr(target::Column::LastOutcome, SETTLED.into())
            .col_expr(
                target::Column::LeaseUntilMs,
                Expr::value(Option::<i64>::None),
            )
            .col_expr(target::Column::UpdatedAtMs, now.into());
        let platform_post_id = match settlement {
            Settlement::Published {
                url,
                platform_post_id,
            } => {
                update = update
                    .col_expr(target::Column::PlatformUrl, url.clone().into())
                    .col_expr(
                        target::Column::PlatformPostId,
                        platform_post_id.clone().into(),
                    )
                    .col_expr(target::Column::PublishedAtMs, now.into())
                    .col_expr(
                        target::Column::LastError,
                        Expr::value(Option::<String>::None),
                    );
                platform_post_id.clone()
            }
            Settlement::NotPublished => {
                update = update.col_expr(target::Column::LastError, NOT_PUBLISHED.into());
                None
            }
        };
        let txn = self.db.begin().await?;
        if guarded(update, read).exec(&txn).await?.rows_affected != 1 {
            txn.rollback().await?;
            return Ok(false);
        }
        publish_attempt::ActiveModel {
            target_id: Set(read.id),
            attempt_no: Set(read.attempts),
            worker: Set(by.to_owned()),
            started_at_ms: Set(now),
            finished_at_ms: Set(now),
            outcome: Set(SETTLED.to_owned()),
            http_status: Set(None),
            retry_after_ms: Set(None),
            platform_post_id: Set(platform_post_id),
            message: Set(Some(message)),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        Ok(true)
    }
}

/// Why a target read for an edit was not written: it moved on meanwhile.
async fn moved_on<C: ConnectionTrait>(
    db: &C,
    read: &target::Model,
) -> Result<LeftAlone, StoreError> {
    let now = target::Entity::find_by_id(read.id).one(db).await?;
    let status = now.map_or_else(|| "deleted".to_owned(), |t| t.status);
    Ok(LeftAlone {
        target_id: read.id,
        channel: read.channel.clone(),
        reason: format!("it changed while the edit was written (now {status})"),
        status,
    })
}
