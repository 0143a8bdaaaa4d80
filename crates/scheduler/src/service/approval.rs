//! The approval workflow: a contributor's post is stored as a draft marked
//! `pending_approval` (its targets stay `draft`, so the dispatcher can
//! never claim them); an editor approves it, which schedules it for the
//! time asked for (or now, if that has passed), or rejects it with a
//! comment, which leaves it a draft the contributor can change and submit
//! again.

use chrono::{DateTime, Utc};
use clarion_store::team::{APPROVED, PENDING_APPROVAL, REJECTED};
use clarion_store::{PostDetail, StoreError, now_ms};

use super::{PostInput, PostService};
use crate::ServiceError;

impl PostService {
    /// Validates and stores `input` as a draft waiting for approval, with
    /// the time it asks for kept aside.
    pub async fn submit_for_approval(&self, input: PostInput) -> Result<PostDetail, ServiceError> {
        let requested = input.at.map(|t| t.timestamp_millis());
        if let Some(at) = requested
            && at < now_ms() - super::PAST_TOLERANCE_MS
        {
            return Err(ServiceError::BadRequest(
                "at: the time is in the past".into(),
            ));
        }
        let detail = self
            .create(PostInput {
                draft: true,
                at: None,
                ..input
            })
            .await?;
        self.store()
            .request_approval(detail.post.id, requested)
            .await?;
        Ok(self.store().post_detail(detail.post.id).await?)
    }

    /// Sends a draft (a rejected one, say) for approval again.
    pub async fn resubmit(&self, id: i32) -> Result<PostDetail, ServiceError> {
        let detail = self.store().post_detail(id).await?;
        if detail.post.approval.as_deref() == Some(PENDING_APPROVAL) {
            return Ok(detail);
        }
        if detail.targets.iter().any(|t| t.status != "draft") {
            return Err(StoreError::Conflict {
                id,
                reason: "only a draft can be submitted for approval".into(),
            }
            .into());
        }
        self.store()
            .request_approval(id, detail.post.requested_at_ms)
            .await?;
        Ok(self.store().post_detail(id).await?)
    }

    /// Approves a pending post and schedules it: at `at` if given, else at
    /// the time asked for, else (or if that has passed) now.
    pub async fn approve(
        &self,
        id: i32,
        comment: Option<&str>,
        at: Option<DateTime<Utc>>,
    ) -> Result<PostDetail, ServiceError> {
        let post = self.store().decide_approval(id, APPROVED, comment).await?;
        let now = Utc::now();
        let when = at
            .or_else(|| {
                post.requested_at_ms
                    .and_then(DateTime::from_timestamp_millis)
            })
            .filter(|t| *t > now)
            .unwrap_or(now);
        self.schedule(id, when).await
    }

    /// Rejects a pending post; it stays a draft with the comment on it.
    pub async fn reject(&self, id: i32, comment: &str) -> Result<PostDetail, ServiceError> {
        if comment.trim().is_empty() {
            return Err(ServiceError::BadRequest(
                "comment: say why the post is rejected".into(),
            ));
        }
        self.store()
            .decide_approval(id, REJECTED, Some(comment.trim()))
            .await?;
        Ok(self.store().post_detail(id).await?)
    }
}
