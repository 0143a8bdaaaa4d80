//! Post analytics: snapshots of published targets' public counts.

use clarion_core::{PostCounts, TargetStatus};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, EntityTrait, QueryFilter, QuerySelect,
};

use crate::entity::creator_post_metric;
use crate::{Store, StoreError, post_metric, target};

/// A published target whose next snapshot is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueSnapshot {
    pub target_id: i32,
    pub channel: String,
    pub platform_post_id: String,
    /// The step of the schedule this snapshot is.
    pub step: i32,
}

impl Store {
    /// Published targets whose next step (`published_at + steps_ms[n]`,
    /// n = snapshots taken) has come, oldest first.
    pub async fn due_snapshots(
        &self,
        steps_ms: &[i64],
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<DueSnapshot>, StoreError> {
        let Some(&last) = steps_ms.last() else {
            return Ok(Vec::new());
        };
        let first = steps_ms.first().copied().unwrap_or(0);
        // Only targets inside the schedule's span can still be due.
        let published: Vec<(i32, String, Option<String>, Option<i64>)> = target::Entity::find()
            .select_only()
            .column(target::Column::Id)
            .column(target::Column::Channel)
            .column(target::Column::PlatformPostId)
            .column(target::Column::PublishedAtMs)
            .filter(target::Column::Status.eq(TargetStatus::Published.as_str()))
            .filter(target::Column::PlatformPostId.is_not_null())
            .filter(target::Column::ReplyParent.is_null())
            .filter(target::Column::PublishedAtMs.gte(now_ms - last - 7 * 86_400_000))
            .filter(target::Column::PublishedAtMs.lte(now_ms - first))
            .into_tuple()
            .all(&self.db)
            .await?;
        if published.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i32> = published.iter().map(|p| p.0).collect();
        let mut taken: std::collections::HashMap<i32, i32> = std::collections::HashMap::new();
        for chunk in ids.chunks(crate::posts::MAX_KEYS_PER_QUERY) {
            let rows: Vec<(i32, i32)> = post_metric::Entity::find()
                .select_only()
                .column(post_metric::Column::TargetId)
                .column(post_metric::Column::Step)
                .filter(post_metric::Column::TargetId.is_in(chunk.to_vec()))
                .into_tuple()
                .all(&self.db)
                .await?;
            for (target, step) in rows {
                let next = taken.entry(target).or_default();
                *next = (*next).max(step + 1);
            }
        }
        let mut due: Vec<(i64, DueSnapshot)> = published
            .into_iter()
            .filter_map(|(id, channel, post, at)| {
                let step = taken.get(&id).copied().unwrap_or(0);
                let wait = *steps_ms.get(usize::try_from(step).ok()?)?;
                let at = at?;
                (at + wait <= now_ms).then(|| {
                    (
                        at + wait,
                        DueSnapshot {
                            target_id: id,
                            channel,
                            platform_post_id: post.unwrap_or_default(),
                            step,
                        },
                    )
                })
            })
            .collect();
        due.sort_by_key(|(when, _)| *when);
        Ok(due.into_iter().take(limit).map(|(_, d)| d).collect())
    }

    /// Stores one snapshot; a second one for the same step is ignored.
    pub async fn record_snapshot(
        &self,
        due: &DueSnapshot,
        counts: PostCounts,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        post_metric::Entity::insert(post_metric::ActiveModel {
            id: NotSet,
            target_id: Set(due.target_id),
            step: Set(due.step),
            at_ms: Set(at_ms),
            likes: Set(counts.likes),
            reposts: Set(counts.reposts),
            replies: Set(counts.replies),
            quotes: Set(counts.quotes),
            views: Set(counts.views),
        })
        .on_conflict(
            OnConflict::columns([post_metric::Column::TargetId, post_metric::Column::Step])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await?;
        Ok(())
    }

    /// The newest snapshot of each of `targets`.
    pub async fn latest_snapshots(
        &self,
        targets: &[i32],
    ) -> Result<Vec<post_metric::Model>, StoreError> {
        let mut newest: std::collections::HashMap<i32, post_metric::Model> =
            std::collections::HashMap::new();
        for chunk in targets.chunks(crate::posts::MAX_KEYS_PER_QUERY) {
            for row in post_metric::Entity::find()
                .filter(post_metric::Column::TargetId.is_in(chunk.to_vec()))
                .all(&self.db)
                .await?
            {
                match newest.get(&row.target_id) {
                    Some(kept) if kept.step >= row.step => {}
                    _ => {
                        newest.insert(row.target_id, row);
                    }
                }
            }
        }
        Ok(newest.into_values().collect())
    }

    /// Published targets of a campaign: `(target id, post id, channel,
    /// variant)`.
    pub async fn campaign_targets(
        &self,
        campaign: &str,
    ) -> Result<Vec<(i32, i32, String, Option<String>)>, StoreError> {
        Ok(target::Entity::find()
            .select_only()
            .column(target::Column::Id)
            .column(target::Column::PostId)
            .column(target::Column::Channel)
            .column(target::Column::Variant)
            .filter(target::Column::Campaign.eq(campaign))
            .filter(target::Column::Status.eq(TargetStatus::Published.as_str()))
            .into_tuple()
            .all(&self.db)
            .await?)
    }

    /// Published targets (not replies): `(id, channel, published_at_ms)`,
    /// of one channel or all.
    pub async fn published_targets(
        &self,
        channel: Option<&str>,
    ) -> Result<Vec<(i32, String, Option<i64>)>, StoreError> {
        let mut query = target::Entity::find()
            .select_only()
            .column(target::Column::Id)
            .column(target::Column::Channel)
            .column(target::Column::PublishedAtMs)
            .filter(target::Column::Status.eq(TargetStatus::Published.as_str()))
            .filter(target::Column::ReplyParent.is_null());
        if let Some(channel) = channel {
            query = query.filter(target::Column::Channel.eq(channel));
        }
        Ok(query.into_tuple().all(&self.db).await?)
    }

    /// Counted (not bot) clicks per target.
    pub async fn clicks_by_target(&self) -> Result<Vec<(i32, i64)>, StoreError> {
        use sea_orm::sea_query::{Expr, ExprTrait};
        let rows: Vec<(Option<i32>, i64)> = crate::click::Entity::find()
            .select_only()
            .column(crate::click::Column::TargetId)
            .column_as(Expr::col(crate::click::Column::Id).count(), "n")
            .filter(crate::click::Column::IsBot.eq(false))
            .filter(crate::click::Column::TargetId.is_not_null())
            .group_by(crate::click::Column::TargetId)
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(t, n)| Some((t?, n)))
            .collect())
    }
}

impl Store {
    /// The next step of each creator post's schedule (0: no snapshot yet).
    pub async fn creator_post_steps(
        &self,
        engagement_ids: &[i32],
    ) -> Result<std::collections::HashMap<i32, i32>, StoreError> {
        let mut next = std::collections::HashMap::new();
        for chunk in engagement_ids.chunks(crate::posts::MAX_KEYS_PER_QUERY) {
            let rows: Vec<(i32, i32)> = creator_post_metric::Entity::find()
                .select_only()
                .column(creator_post_metric::Column::EngagementId)
                .column(creator_post_metric::Column::Step)
                .filter(creator_post_metric::Column::EngagementId.is_in(chunk.to_vec()))
                .into_tuple()
                .all(&self.db)
                .await?;
            for (id, step) in rows {
                let n: &mut i32 = next.entry(id).or_default();
                *n = (*n).max(step + 1);
            }
        }
        Ok(next)
    }

    /// Stores one snapshot of a creator's post; a second one for the same
    /// step is ignored (two processes polling store one).
    pub async fn record_creator_post_snapshot(
        &self,
        engagement_id: i32,
        step: i32,
        counts: PostCounts,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        creator_post_metric::Entity::insert(creator_post_metric::ActiveModel {
            id: NotSet,
            engagement_id: Set(engagement_id),
            step: Set(step),
            at_ms: Set(at_ms),
            likes: Set(counts.likes),
            reposts: Set(counts.reposts),
            replies: Set(counts.replies),
            quotes: Set(counts.quotes),
            views: Set(counts.views),
        })
        .on_conflict(
            OnConflict::columns([
                creator_post_metric::Column::EngagementId,
                creator_post_metric::Column::Step,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await?;
        Ok(())
    }

    /// The newest counts of each of these creator posts.
    pub async fn latest_creator_post_counts(
        &self,
        engagement_ids: &[i32],
    ) -> Result<std::collections::HashMap<i32, PostCounts>, StoreError> {
        let mut newest: std::collections::HashMap<i32, (i32, PostCounts)> =
            std::collections::HashMap::new();
        for chunk in engagement_ids.chunks(crate::posts::MAX_KEYS_PER_QUERY) {
            for row in creator_post_metric::Entity::find()
                .filter(creator_post_metric::Column::EngagementId.is_in(chunk.to_vec()))
                .all(&self.db)
                .await?
            {
                if newest
                    .get(&row.engagement_id)
                    .is_none_or(|(step, _)| *step < row.step)
                {
                    let counts = PostCounts {
                        likes: row.likes,
                        reposts: row.reposts,
                        replies: row.replies,
                        quotes: row.quotes,
                        views: row.views,
                    };
                    newest.insert(row.engagement_id, (row.step, counts));
                }
            }
        }
        Ok(newest.into_iter().map(|(id, (_, c))| (id, c)).collect())
    }
}
