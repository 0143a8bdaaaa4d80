//! The schedule by time: `post ls --from --to` and the `/calendar.ics` feed.
//! Read-only.

use clarion_core::TargetStatus;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::{PostDetail, PostFilter, Store, StoreError, post, target};

impl Store {
    /// Posts scheduled at or after `from_ms` and before `to_ms`, earliest
    /// first, with their targets. `filter.status` keeps posts with a target
    /// in that status; `filter.limit` caps the count.
    pub async fn posts_between(
        &self,
        from_ms: i64,
        to_ms: i64,
        filter: &PostFilter,
    ) -> Result<Vec<PostDetail>, StoreError> {
        let mut query = post::Entity::find()
            .filter(post::Column::ScheduledAtMs.gte(from_ms))
            .filter(post::Column::ScheduledAtMs.lt(to_ms))
            .order_by_asc(post::Column::ScheduledAtMs)
            .order_by_asc(post::Column::Id);
        if let Some(campaign) = &filter.campaign {
            query = query.filter(post::Column::Campaign.eq(campaign));
        }
        if let Some(status) = filter.status {
            let ids = target::Entity::find()
                .select_only()
                .column(target::Column::PostId)
                .filter(target::Column::Status.eq(status.as_str()));
            query =
                query.filter(post::Column::Id.in_subquery(sea_orm::QueryTrait::into_query(ids)));
        }
        let posts = query.limit(filter.limit.max(1)).all(&self.db).await?;
        let ids: Vec<i32> = posts.iter().map(|p| p.id).collect();
        let mut targets = target::Entity::find()
            .filter(target::Column::PostId.is_in(ids))
            .order_by_asc(target::Column::Id)
            .all(&self.db)
            .await?;
        Ok(posts
            .into_iter()
            .map(|post| {
                let mine = targets.extract_if(.., |t| t.post_id == post.id).collect();
                PostDetail {
                    post,
                    targets: mine,
                }
            })
            .collect())
    }

    /// Targets for the calendar feed: scheduled, publishing or published,
    /// scheduled (or published) at or after `since_ms`; earliest first, at
    /// most `limit`.
    pub async fn calendar_targets(
        &self,
        since_ms: i64,
        limit: u64,
    ) -> Result<Vec<target::Model>, StoreError> {
        let statuses = [
            TargetStatus::Scheduled,
            TargetStatus::Publishing,
            TargetStatus::Published,
        ]
        .map(TargetStatus::as_str);
        Ok(target::Entity::find()
            .filter(target::Column::Status.is_in(statuses))
            .filter(
                Condition::any()
                    .add(target::Column::ScheduledAtMs.gte(since_ms))
                    .add(target::Column::PublishedAtMs.gte(since_ms)),
            )
            .order_by_asc(target::Column::ScheduledAtMs)
            .order_by_asc(target::Column::Id)
            .limit(limit.max(1))
            .all(&self.db)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use crate::{NewPost, NewTarget, PostFilter, Store};

    fn post(at: i64, body: &str) -> NewPost {
        NewPost {
            source_key: None,
            import_key: None,
            body: body.into(),
            template: None,
            vars: serde_json::json!({}),
            campaign: None,
            author: None,
            scheduled_at_ms: Some(at),
            content_hash: String::new(),
            targets: vec![NewTarget {
                channel: "a".into(),
                override_body: None,
                rendered_text: body.into(),
                parts: vec![body.into()],
                media: Vec::new(),
                reply: None,
                links: Vec::new(),
                variant: None,
            }],
        }
    }

    #[tokio::test]
    async fn posts_between_sorts_by_time_and_keeps_the_window() {
        let dir = crate::secret_key::tests::temp_dir("calendar");
        let url = format!("sqlite://{}?mode=rwc", dir.join("clarion.db").display());
        let store = Store::connect(&url, 1).await.unwrap();
        store.migrate().await.unwrap();
        let base = 4_000_000_000_000;
        for (at, body) in [
            (base + 30, "late"),
            (base + 10, "early"),
            (base + 99, "out"),
        ] {
            store.create_post(post(at, body)).await.unwrap();
        }
        let filter = PostFilter {
            limit: 10,
            ..Default::default()
        };
        let found = store.posts_between(base, base + 50, &filter).await.unwrap();
        let bodies: Vec<&str> = found.iter().map(|d| d.post.body.as_str()).collect();
        assert_eq!(bodies, ["early", "late"]);
        assert_eq!(found[0].targets.len(), 1);

        let feed = store.calendar_targets(base + 20, 10).await.unwrap();
        let texts: Vec<&str> = feed.iter().map(|t| t.rendered_text.as_str()).collect();
        assert_eq!(texts, ["late", "out"]);
    }
}

/// What the dashboard's calendar shows of one range.
#[derive(Debug, Clone, Default)]
pub struct CalendarRange {
    /// Targets whose moment (published, else due) is in the range.
    pub targets: Vec<target::Model>,
    /// Posts waiting for approval whose asked-for time is in the range
    /// (their targets are drafts, included in `targets`).
    pub posts: Vec<post::Model>,
}

/// The calendar's filters; None = any.
#[derive(Debug, Clone, Default)]
pub struct CalendarFilter {
    pub channel: Option<String>,
    pub campaign: Option<String>,
    pub status: Option<String>,
}

impl Store {
    /// The calendar's targets in `[from_ms, to_ms)`: published ones by when
    /// they went out, the rest by when they are due; plus the drafts of posts
    /// waiting for approval, by the time asked for. Three queries, whatever
    /// the number of posts; at most `limit` targets.
    pub async fn calendar_range(
        &self,
        from_ms: i64,
        to_ms: i64,
        filter: &CalendarFilter,
        limit: u64,
    ) -> Result<CalendarRange, StoreError> {
        let filtered = |mut q: sea_orm::Select<target::Entity>| {
            if let Some(c) = &filter.channel {
                q = q.filter(target::Column::Channel.eq(c.as_str()));
            }
            if let Some(c) = &filter.campaign {
                q = q.filter(target::Column::Campaign.eq(c.as_str()));
            }
            if let Some(s) = &filter.status {
                q = q.filter(target::Column::Status.eq(s.as_str()));
            }
            q
        };
        let timed = Condition::any()
            .add(
                Condition::all()
                    .add(target::Column::PublishedAtMs.gte(from_ms))
                    .add(target::Column::PublishedAtMs.lt(to_ms)),
            )
            .add(
                Condition::all()
                    .add(target::Column::PublishedAtMs.is_null())
                    .add(target::Column::NotBeforeMs.gte(from_ms))
                    .add(target::Column::NotBeforeMs.lt(to_ms)),
            );
        let mut targets = filtered(target::Entity::find().filter(timed))
            .order_by_asc(target::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?;
        let pending: Vec<post::Model> = post::Entity::find()
            .filter(post::Column::Approval.eq(crate::team::PENDING_APPROVAL))
            .filter(post::Column::RequestedAtMs.gte(from_ms))
            .filter(post::Column::RequestedAtMs.lt(to_ms))
            .limit(limit)
            .all(&self.db)
            .await?;
        if !pending.is_empty() {
            let ids: Vec<i32> = pending.iter().map(|p| p.id).collect();
            targets.extend(
                filtered(target::Entity::find().filter(target::Column::PostId.is_in(ids)))
                    .all(&self.db)
                    .await?,
            );
        }
        // A pending post's drafts have no due time, but never list one twice.
        targets.sort_unstable_by_key(|t| t.id);
        targets.dedup_by_key(|t| t.id);
        // Only pending posts are needed beside their targets (a target
        // carries its own channel, campaign and text): no second read of
        // every post in the range.
        let posts = pending;
        Ok(CalendarRange { targets, posts })
    }

    /// Campaign names on any target (for the calendar's filter).
    pub async fn target_campaigns(&self) -> Result<Vec<String>, StoreError> {
        let rows: Vec<Option<String>> = target::Entity::find()
            .select_only()
            .column(target::Column::Campaign)
            .filter(target::Column::Campaign.is_not_null())
            .distinct()
            .order_by_asc(target::Column::Campaign)
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().flatten().collect())
    }
}
