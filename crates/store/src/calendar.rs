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
