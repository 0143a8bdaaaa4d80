//! Posts kept as files: identity (`source_key`, the `id` in the file's front
//! matter), where the file is now (`source_path`), and what happens to a
//! post whose file is gone. Creating and updating go through `sync_post`.

use clarion_core::TargetStatus;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, TransactionTrait};

use crate::posts::set_status;
use crate::{PostDetail, Store, StoreError, now_ms, post, target};

/// Values per `IN (...)` list, well under both databases' parameter limits.
const IN_CHUNK: usize = 1_000;

impl Store {
    /// The posts `content sync` compares the files with: every post whose
    /// file was seen at the last sync (`source_path` set), and every post
    /// whose key is one of `keys` (a file that comes back finds its post).
    /// Posts created through the CLI or API (no key) are never among them.
    pub async fn file_posts(&self, keys: &[String]) -> Result<Vec<PostDetail>, StoreError> {
        let mut posts = post::Entity::find()
            .filter(post::Column::SourcePath.is_not_null())
            .order_by_asc(post::Column::Id)
            .all(&self.db)
            .await?;
        for chunk in keys.chunks(IN_CHUNK) {
            let more = post::Entity::find()
                .filter(
                    Condition::all()
                        .add(post::Column::SourceKey.is_in(chunk.iter().cloned()))
                        .add(post::Column::SourcePath.is_null()),
                )
                .all(&self.db)
                .await?;
            posts.extend(more);
        }
        let ids: Vec<i32> = posts.iter().map(|p| p.id).collect();
        let mut targets = Vec::new();
        for chunk in ids.chunks(IN_CHUNK) {
            targets.extend(
                target::Entity::find()
                    .filter(target::Column::PostId.is_in(chunk.iter().copied()))
                    .order_by_asc(target::Column::Id)
                    .all(&self.db)
                    .await?,
            );
        }
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

    /// Records a file post's identity and where its file is now: after a
    /// rename, or to give a post synced before ids existed its new id.
    pub async fn set_post_source(
        &self,
        post_id: i32,
        key: &str,
        path: &str,
    ) -> Result<(), StoreError> {
        let result = post::Entity::update_many()
            .col_expr(post::Column::SourceKey, key.into())
            .col_expr(post::Column::SourcePath, path.into())
            .col_expr(post::Column::UpdatedAtMs, now_ms().into())
            .filter(post::Column::Id.eq(post_id))
            .exec(&self.db)
            .await?;
        if result.rows_affected == 0 {
            return Err(StoreError::PostNotFound(post_id));
        }
        Ok(())
    }

    /// The post's file is gone: cancels its targets that have not gone out
    /// (`draft` or `scheduled`, each write guarded by the status it read,
    /// so a target a worker has just claimed is left alone) and forgets the
    /// path. Returns the channels cancelled. The key stays: if the file
    /// comes back, its id finds the post again, and as something was
    /// cancelled it counts as changed, so the targets are scheduled again.
    pub async fn detach_file_post(&self, post_id: i32) -> Result<Vec<String>, StoreError> {
        let txn = self.db.begin().await?;
        let now = now_ms();
        let targets = target::Entity::find()
            .filter(target::Column::PostId.eq(post_id))
            .order_by_asc(target::Column::Id)
            .all(&txn)
            .await?;
        let mut cancelled = Vec::new();
        for t in targets {
            let status = t.status()?;
            if status.is_editable()
                && set_status(&txn, t.id, status, TargetStatus::Cancelled, now).await?
            {
                cancelled.push(t.channel);
            }
        }
        let mut update = post::Entity::update_many()
            .col_expr(post::Column::SourcePath, Option::<String>::None.into())
            .col_expr(post::Column::UpdatedAtMs, now.into());
        if !cancelled.is_empty() {
            update = update.col_expr(post::Column::ContentHash, String::new().into());
        }
        update
            .filter(post::Column::Id.eq(post_id))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(cancelled)
    }
}
