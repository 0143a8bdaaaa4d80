//! Posts and their targets: creating, syncing from files, scheduling, cancelling.

use clarion_core::TargetStatus;
use sea_orm::sea_query::{InsertStatement, OnConflict, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait,
    IntoActiveModel, Iterable, PrimaryKeyToColumn, QueryFilter, QueryOrder, QuerySelect,
    QueryTrait, Set, TransactionTrait,
};

use crate::edits::{TargetChange, guarded_update};
use crate::targets::Enqueue;
use crate::{Store, StoreError, now_ms, post, publish_attempt, target};

/// A target to create: the text was rendered and validated by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTarget {
    pub channel: String,
    pub override_body: Option<String>,
    pub rendered_text: String,
    /// The messages to send: one, or a thread's parts.
    pub parts: Vec<String>,
    pub media: Vec<clarion_core::Media>,
    /// Set when this target answers a platform message (an inbox reply).
    pub reply: Option<ReplyRef>,
    /// Tracked links its text was rewritten to (a campaign post's links):
    /// registered with the target, in the same transaction.
    pub links: Vec<NewTargetLink>,
    /// The A/B variant this target carries.
    pub variant: Option<String>,
}

/// A tracked link of a target: `/r/{code}` goes to `destination`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTargetLink {
    pub code: String,
    pub destination: String,
    /// `utm_source`: the channel's platform kind.
    pub source: String,
    /// `utm_medium`: social, email.
    pub medium: String,
}

/// The platform message a target answers: the thread's root and the
/// message itself, in the adapter's own id form (see `clarion_core::ReplyTo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyRef {
    pub root: String,
    pub parent: String,
}

/// A post to create or sync. `scheduled_at_ms = None` makes a draft.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPost {
    pub source_key: Option<String>,
    /// The fingerprint of an imported row (set by imports only): a post
    /// whose key is already stored is skipped by [`Store::create_posts`].
    pub import_key: Option<String>,
    pub body: String,
    pub template: Option<String>,
    pub vars: serde_json::Value,
    pub campaign: Option<String>,
    pub author: Option<String>,
    pub scheduled_at_ms: Option<i64>,
    pub content_hash: String,
    pub targets: Vec<NewTarget>,
}

/// A post with its targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostDetail {
    pub post: post::Model,
    pub targets: Vec<target::Model>,
}

#[derive(Debug, Clone, Default)]
pub struct PostFilter {
    pub status: Option<TargetStatus>,
    pub campaign: Option<String>,
    pub limit: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncOutcome {
    Created,
    Updated,
    Unchanged,
}

/// What `content sync` did with one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResult {
    pub post_id: i32,
    pub outcome: SyncOutcome,
    /// Targets whose publish job must be (re)queued.
    pub enqueue: Vec<Enqueue>,
    /// Channels left alone because their target is already being or been published.
    pub locked_channels: Vec<String>,
}

impl Store {
    /// Creates a post and its targets in one transaction.
    pub async fn create_post(
        &self,
        new: NewPost,
    ) -> Result<(PostDetail, Vec<Enqueue>), StoreError> {
        let (mut details, enqueue) = self.create_posts(std::slice::from_ref(&new)).await?;
        let detail = details.pop().flatten().ok_or(StoreError::Inconsistent(
            "a created post was not returned".into(),
        ))?;
        Ok((detail, enqueue))
    }

    /// Creates posts and their targets in one transaction: all of them or
    /// none. The rows go in as multi-row `INSERT ... RETURNING id`
    /// statements (chunked under the databases' bind-parameter limits), so a
    /// batch costs four or so round trips to the database, not four per
    /// post. The details come back in the order of `posts`.
    ///
    /// A post with an `import_key` that is already stored — before this
    /// transaction, by a concurrent one, or earlier in `posts` — is skipped
    /// (`ON CONFLICT (import_key) DO NOTHING`, decided by the unique index in
    /// the insert itself, so two imports of one file never both store a
    /// row): its place in the answer is None. Posts without a key are
    /// always created.
    pub async fn create_posts(
        &self,
        posts: &[NewPost],
    ) -> Result<(Vec<Option<PostDetail>>, Vec<Enqueue>), StoreError> {
        if posts.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let now = now_ms();
        // The rows as they will be stored; only the ids are the database's.
        let mut saved: Vec<post::Model> = posts.iter().map(|p| new_post_model(p, now)).collect();
        let _turn = self.write_turn().await;
        let txn = self.db.begin().await?;
        let mut inserted = Vec::with_capacity(saved.len());
        for chunk in saved.chunks_mut(rows_per_insert::<post::Entity>()) {
            let ids = insert_posts(&txn, chunk).await?;
            for (row, id) in chunk.iter_mut().zip(&ids) {
                row.id = id.unwrap_or(0);
            }
            inserted.extend(ids.into_iter().map(|id| id.is_some()));
        }
        let mut targets: Vec<target::Model> = posts
            .iter()
            .zip(&saved)
            .zip(&inserted)
            .filter(|(_, inserted)| **inserted)
            .flat_map(|((new, post), _)| {
                new.targets
                    .iter()
                    .map(move |t| new_target_model(post.id, t, new, now))
            })
            .collect();
        for chunk in targets.chunks_mut(rows_per_insert::<target::Entity>()) {
            let mut insert = target::Entity::insert_many(chunk.iter().map(insertable)).into_query();
            insert.returning(
                Query::returning().columns([target::Column::Id, target::Column::PostId]),
            );
            let ids = returned_ids(&txn, &insert, chunk.len()).await?;
            for (row, (id, post_id)) in chunk.iter_mut().zip(ids) {
                if post_id != Some(row.post_id) {
                    return Err(StoreError::Inconsistent(
                        "inserted targets came back out of order; nothing was stored".into(),
                    ));
                }
                row.id = id;
            }
        }
        let mut links = Vec::new();
        for (new, post) in posts.iter().zip(&saved) {
            for wanted in &new.targets {
                if let Some(t) = targets
                    .iter()
                    .find(|t| t.post_id == post.id && t.channel == wanted.channel)
                {
                    links.extend(link_rows(t, wanted, now));
                }
            }
        }
        insert_links(&txn, links).await?;
        txn.commit().await?;
        let enqueue = enqueue_list(&targets);
        // Targets were made post by post, in order.
        let mut rest = targets.into_iter().peekable();
        let details = saved
            .into_iter()
            .zip(inserted)
            .map(|(post, inserted)| {
                if !inserted {
                    return None;
                }
                let mut mine = Vec::new();
                while let Some(t) = rest.next_if(|t| t.post_id == post.id) {
                    mine.push(t);
                }
                Some(PostDetail {
                    post,
                    targets: mine,
                })
            })
            .collect();
        Ok((details, enqueue))
    }

    /// Which of `keys` are stored as a post's `import_key`.
    pub async fn stored_import_keys(
        &self,
        keys: &[String],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        let mut found = std::collections::HashSet::new();
        for chunk in keys.chunks(MAX_KEYS_PER_QUERY) {
            let rows: Vec<Option<String>> = post::Entity::find()
                .select_only()
                .column(post::Column::ImportKey)
                .filter(post::Column::ImportKey.is_in(chunk.iter().cloned()))
                .into_tuple()
                .all(&self.db)
                .await?;
            found.extend(rows.into_iter().flatten());
        }
        Ok(found)
    }

    /// Creates or updates the post kept in a file, keyed by `source_key`.
    /// Syncing the same file twice changes nothing; an edit updates targets
    /// not yet handed to a platform and leaves the others alone.
    pub async fn sync_post(&self, new: NewPost) -> Result<SyncResult, StoreError> {
        let Some(key) = new.source_key.clone() else {
            let (detail, enqueue) = self.create_post(new).await?;
            return Ok(created(detail, enqueue));
        };
        let existing = post::Entity::find()
            .filter(post::Column::SourceKey.eq(&key))
            .one(&self.db)
            .await?;
        let Some(existing) = existing else {
            let (detail, enqueue) = self.create_post(new).await?;
            return Ok(created(detail, enqueue));
        };
        if existing.content_hash == new.content_hash {
            return Ok(SyncResult {
                post_id: existing.id,
                outcome: SyncOutcome::Unchanged,
                enqueue: Vec::new(),
                locked_channels: Vec::new(),
            });
        }

        let txn = self.db.begin().await?;
        let now = now_ms();
        let mut active = post_active(&new, now);
        active.id = Set(existing.id);
        active.created_at_ms = Set(existing.created_at_ms);
        let post = active.update(&txn).await?;

        let current = target::Entity::find()
            .filter(target::Column::PostId.eq(post.id))
            .all(&txn)
            .await?;
        let mut enqueue = Vec::new();
        let mut locked_channels = Vec::new();
        for wanted in &new.targets {
            match current.iter().find(|t| t.channel == wanted.channel) {
                None => {
                    let t = new_target_active(post.id, wanted, &new, now)
                        .insert(&txn)
                        .await?;
                    insert_links(&txn, link_rows(&t, wanted, now)).await?;
                    enqueue.extend(enqueue_list(std::slice::from_ref(&t)));
                }
                Some(t) if t.status()?.is_editable() || t.status()? == TargetStatus::Cancelled => {
                    let change = TargetChange::between(
                        t,
                        TargetChange {
                            status: Some(initial_status(new.scheduled_at_ms)),
                            // A retry's back-off stays unless the file moved the post.
                            at_ms: (new.scheduled_at_ms != t.scheduled_at_ms)
                                .then_some(new.scheduled_at_ms),
                            content: Some(wanted.clone()),
                            campaign: Some(new.campaign.clone()),
                        },
                    );
                    // Guarded on the row as read: a claim that landed meanwhile stays.
                    if !guarded_update(&txn, t, &change, now).await? {
                        locked_channels.push(t.channel.clone());
                        continue;
                    }
                    if let Some(t) = target::Entity::find_by_id(t.id).one(&txn).await? {
                        insert_links(&txn, link_rows(&t, wanted, now)).await?;
                        enqueue.extend(enqueue_list(std::slice::from_ref(&t)));
                    }
                }
                Some(t) => locked_channels.push(t.channel.clone()),
            }
        }
        // A channel dropped from the file: cancel its target if it has not gone out.
        for t in current
            .iter()
            .filter(|t| !new.targets.iter().any(|w| w.channel == t.channel))
        {
            if t.status()?.is_editable() {
                set_status(&txn, t.id, t.status()?, TargetStatus::Cancelled, now).await?;
            }
        }
        txn.commit().await?;
        Ok(SyncResult {
            post_id: post.id,
            outcome: SyncOutcome::Updated,
            enqueue,
            locked_channels,
        })
    }

    /// The content hash of the post synced from `source_key`, if any.
    pub async fn source_hash(&self, source_key: &str) -> Result<Option<String>, StoreError> {
        Ok(post::Entity::find()
            .filter(post::Column::SourceKey.eq(source_key))
            .one(&self.db)
            .await?
            .map(|p| p.content_hash))
    }

    pub async fn post_detail(&self, id: i32) -> Result<PostDetail, StoreError> {
        let post = post::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or(StoreError::PostNotFound(id))?;
        let targets = target::Entity::find()
            .filter(target::Column::PostId.eq(id))
            .order_by_asc(target::Column::Id)
            .all(&self.db)
            .await?;
        Ok(PostDetail { post, targets })
    }

    /// Newest posts first, with their targets.
    pub async fn list_posts(&self, filter: &PostFilter) -> Result<Vec<PostDetail>, StoreError> {
        let mut query = post::Entity::find().order_by_desc(post::Column::Id);
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

    /// Every attempt of the given targets, oldest first.
    pub async fn attempts(
        &self,
        target_ids: Vec<i32>,
    ) -> Result<Vec<publish_attempt::Model>, StoreError> {
        Ok(publish_attempt::Entity::find()
            .filter(publish_attempt::Column::TargetId.is_in(target_ids))
            .order_by_asc(publish_attempt::Column::Id)
            .all(&self.db)
            .await?)
    }

    /// Cancels every target of the post that has not been handed to a platform.
    pub async fn cancel_post(&self, id: i32) -> Result<PostDetail, StoreError> {
        let detail = self.post_detail(id).await?;
        let now = now_ms();
        let mut cancelled = 0;
        for t in &detail.targets {
            let status = t.status()?;
            if status.can_become(TargetStatus::Cancelled)
                && set_status(&self.db, t.id, status, TargetStatus::Cancelled, now).await?
            {
                cancelled += 1;
            }
        }
        if cancelled == 0 {
            return Err(StoreError::Conflict {
                id,
                reason: "nothing to cancel: every target is already publishing or final".into(),
            });
        }
        self.post_detail(id).await
    }

    /// Schedules a draft (or moves a scheduled post) to `at_ms`.
    pub async fn schedule_post(
        &self,
        id: i32,
        at_ms: i64,
    ) -> Result<(PostDetail, Vec<Enqueue>), StoreError> {
        let detail = self.post_detail(id).await?;
        let txn = self.db.begin().await?;
        let now = now_ms();
        let mut moved = 0;
        for t in &detail.targets {
            if !t.status()?.is_editable() {
                continue;
            }
            let result = target::Entity::update_many()
                .col_expr(
                    target::Column::Status,
                    TargetStatus::Scheduled.as_str().into(),
                )
                .col_expr(target::Column::ScheduledAtMs, at_ms.into())
                .col_expr(target::Column::NotBeforeMs, at_ms.into())
                .col_expr(target::Column::UpdatedAtMs, now.into())
                .filter(target::Column::Id.eq(t.id))
                .filter(target::Column::Status.eq(t.status.clone()))
                .exec(&txn)
                .await?;
            moved += result.rows_affected;
        }
        if moved == 0 {
            return Err(StoreError::Conflict {
                id,
                reason: "nothing to schedule: every target is already publishing or final".into(),
            });
        }
        post::Entity::update_many()
            .col_expr(post::Column::ScheduledAtMs, at_ms.into())
            .col_expr(post::Column::UpdatedAtMs, now.into())
            .filter(post::Column::Id.eq(id))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        let detail = self.post_detail(id).await?;
        let enqueue = enqueue_list(&detail.targets);
        Ok((detail, enqueue))
    }
}

impl Store {
    /// Records the configured channels (non-secret settings only), so the
    /// database can answer which channels exist and since when.
    pub async fn upsert_channels(
        &self,
        channels: &[(String, String, String)],
    ) -> Result<(), StoreError> {
        use crate::channel;
        let now = now_ms();
        for (name, kind, settings) in channels {
            let existing = channel::Entity::find()
                .filter(channel::Column::Name.eq(name))
                .one(&self.db)
                .await?;
            match existing {
                Some(c) if &c.kind == kind && &c.settings == settings => {}
                Some(c) => {
                    let mut active: channel::ActiveModel = c.into();
                    active.kind = Set(kind.clone());
                    active.settings = Set(settings.clone());
                    active.updated_at_ms = Set(now);
                    active.update(&self.db).await?;
                }
                None => {
                    // Two processes starting together both find no row:
                    // the second insert becomes an update, not a start-up
                    // failure on the unique name.
                    channel::Entity::insert(channel::ActiveModel {
                        name: Set(name.clone()),
                        kind: Set(kind.clone()),
                        settings: Set(settings.clone()),
                        created_at_ms: Set(now),
                        updated_at_ms: Set(now),
                        ..Default::default()
                    })
                    .on_conflict(
                        OnConflict::column(channel::Column::Name)
                            .update_columns([
                                channel::Column::Kind,
                                channel::Column::Settings,
                                channel::Column::UpdatedAtMs,
                            ])
                            .to_owned(),
                    )
                    .exec_without_returning(&self.db)
                    .await?;
                }
            }
        }
        Ok(())
    }
}

fn created(detail: PostDetail, enqueue: Vec<Enqueue>) -> SyncResult {
    SyncResult {
        post_id: detail.post.id,
        outcome: SyncOutcome::Created,
        enqueue,
        locked_channels: Vec::new(),
    }
}

fn initial_status(scheduled_at_ms: Option<i64>) -> TargetStatus {
    if scheduled_at_ms.is_some() {
        TargetStatus::Scheduled
    } else {
        TargetStatus::Draft
    }
}

/// Bind parameters per statement: well under SQLite's 32,766 and
/// PostgreSQL's 65,535.
const MAX_BIND_PARAMS: usize = 16_000;

/// Rows of `E` one multi-row INSERT may carry.
pub(crate) fn rows_per_insert<E: EntityTrait>() -> usize {
    (MAX_BIND_PARAMS / E::Column::iter().count().max(1)).max(1)
}

/// A row to insert: every column but the id, which the database assigns.
fn insertable<M, A>(model: &M) -> A
where
    M: IntoActiveModel<A> + Clone,
    A: ActiveModelTrait,
{
    let mut active = model.clone().into_active_model().reset_all();
    for key in <A::Entity as EntityTrait>::PrimaryKey::iter() {
        active.not_set(key.into_column());
    }
    active
}

/// Keys one `IN (...)` lookup carries.
pub(crate) const MAX_KEYS_PER_QUERY: usize = 1_000;

/// Inserts one chunk of posts; each row's new id, or None for a row skipped
/// because its `import_key` is stored (or repeated earlier in the chunk).
async fn insert_posts(
    txn: &DatabaseTransaction,
    chunk: &[post::Model],
) -> Result<Vec<Option<i32>>, StoreError> {
    let mut insert = post::Entity::insert_many(chunk.iter().map(insertable)).into_query();
    let keyed = chunk.iter().any(|p| p.import_key.is_some());
    if !keyed {
        insert.returning(Query::returning().column(post::Column::Id));
        let ids = returned_ids(txn, &insert, chunk.len()).await?;
        return Ok(ids.into_iter().map(|(id, _)| Some(id)).collect());
    }
    insert.on_conflict(
        OnConflict::column(post::Column::ImportKey)
            .do_nothing()
            .to_owned(),
    );
    insert.returning(Query::returning().columns([post::Column::Id, post::Column::ImportKey]));
    let mut created: Vec<(i32, Option<String>)> = Vec::with_capacity(chunk.len());
    for row in txn.query_all(&insert).await? {
        created.push((row.try_get("", "id")?, row.try_get("", "import_key")?));
    }
    // Ids follow VALUES order (see `returned_ids`), and the rows inserted are
    // a subsequence of the chunk: of rows sharing a key only the first can
    // be, and a row without a key always is.
    created.sort_unstable_by_key(|(id, _)| *id);
    let mut created = created.into_iter().peekable();
    let mut ids = Vec::with_capacity(chunk.len());
    for row in chunk {
        match created.next_if(|(_, key)| *key == row.import_key) {
            Some((id, _)) => ids.push(Some(id)),
            None if row.import_key.is_some() => ids.push(None),
            None => {
                return Err(StoreError::Inconsistent(
                    "inserted posts came back out of order; nothing was stored".into(),
                ));
            }
        }
    }
    if created.next().is_some() {
        return Err(StoreError::Inconsistent(
            "more posts came back than were inserted; nothing was stored".into(),
        ));
    }
    Ok(ids)
}

/// Runs a multi-row `INSERT ... RETURNING id[, post_id]`; the ids in the
/// order of the VALUES rows.
///
/// One statement numbers its rows in VALUES order on both databases
/// (SQLite's rowid, PostgreSQL's sequence, which Django's bulk_create relies
/// on too), but neither promises the order of RETURNING: sort by id.
async fn returned_ids(
    txn: &DatabaseTransaction,
    insert: &InsertStatement,
    rows: usize,
) -> Result<Vec<(i32, Option<i32>)>, StoreError> {
    let mut ids = Vec::with_capacity(rows);
    for row in txn.query_all(insert).await? {
        let id: i32 = row.try_get("", "id")?;
        let post_id: Option<i32> = row.try_get("", "post_id").ok();
        ids.push((id, post_id));
    }
    if ids.len() != rows {
        return Err(StoreError::Inconsistent(format!(
            "inserted {rows} rows but {} came back; nothing was stored",
            ids.len()
        )));
    }
    ids.sort_unstable_by_key(|(id, _)| *id);
    Ok(ids)
}

/// A new post row as it will be stored (`id` filled in once inserted).
fn new_post_model(new: &NewPost, now: i64) -> post::Model {
    post::Model {
        id: 0,
        source_key: new.source_key.clone(),
        // Set by `content sync` once the post is stored (`set_post_source`).
        source_path: None,
        body: new.body.clone(),
        template: new.template.clone(),
        vars: new.vars.to_string(),
        campaign: new.campaign.clone(),
        author: new.author.clone(),
        scheduled_at_ms: new.scheduled_at_ms,
        content_hash: new.content_hash.clone(),
        import_key: new.import_key.clone(),
        created_at_ms: now,
        updated_at_ms: now,
        approval: None,
        requested_at_ms: None,
        review_comment: None,
    }
}

/// The link rows of a stored target's tracked links.
pub(crate) fn link_rows(
    t: &target::Model,
    wanted: &NewTarget,
    now: i64,
) -> Vec<crate::link::ActiveModel> {
    wanted
        .links
        .iter()
        .map(|l| crate::link::ActiveModel {
            id: sea_orm::ActiveValue::NotSet,
            code: Set(l.code.clone()),
            destination: Set(l.destination.clone()),
            campaign: Set(t.campaign.clone()),
            creator: Set(None),
            channel: Set(Some(t.channel.clone())),
            source: Set(Some(l.source.clone())),
            medium: Set(l.medium.clone()),
            post_id: Set(Some(t.post_id)),
            target_id: Set(Some(t.id)),
            created_at_ms: Set(now),
        })
        .collect()
}

/// Registers tracked links. A code is random (62^8 values), so a clash
/// with a stored one is vanishingly rare; it fails the whole write rather
/// than send a link that goes somewhere else.
pub(crate) async fn insert_links(
    txn: &sea_orm::DatabaseTransaction,
    links: Vec<crate::link::ActiveModel>,
) -> Result<(), StoreError> {
    let mut links = links.into_iter().peekable();
    let per_insert = rows_per_insert::<crate::link::Entity>();
    while links.peek().is_some() {
        let chunk: Vec<_> = links.by_ref().take(per_insert).collect();
        crate::link::Entity::insert_many(chunk)
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

/// A new target row as it will be stored (`id` filled in once inserted).
fn new_target_model(post_id: i32, t: &NewTarget, post: &NewPost, now: i64) -> target::Model {
    let at = post.scheduled_at_ms;
    target::Model {
        id: 0,
        post_id,
        channel: t.channel.clone(),
        status: initial_status(at).as_str().to_owned(),
        scheduled_at_ms: at,
        not_before_ms: at,
        override_body: t.override_body.clone(),
        rendered_text: t.rendered_text.clone(),
        parts: json(&t.parts),
        media: json(&t.media),
        thread_progress: "[]".to_owned(),
        campaign: post.campaign.clone(),
        idempotency_key: new_idempotency_key(),
        attempts: 0,
        lease_until_ms: None,
        claimed_by: None,
        claim_token: None,
        first_sent_at_ms: None,
        last_outcome: None,
        platform_post_id: None,
        platform_url: None,
        last_error: None,
        published_at_ms: None,
        updated_at_ms: now,
        reply_root: t.reply.as_ref().map(|r| r.root.clone()),
        reply_parent: t.reply.as_ref().map(|r| r.parent.clone()),
        variant: t.variant.clone(),
    }
}

fn post_active(new: &NewPost, now: i64) -> post::ActiveModel {
    post::ActiveModel {
        source_key: Set(new.source_key.clone()),
        body: Set(new.body.clone()),
        template: Set(new.template.clone()),
        vars: Set(new.vars.to_string()),
        campaign: Set(new.campaign.clone()),
        author: Set(new.author.clone()),
        scheduled_at_ms: Set(new.scheduled_at_ms),
        content_hash: Set(new.content_hash.clone()),
        created_at_ms: Set(now),
        updated_at_ms: Set(now),
        ..Default::default()
    }
}

/// A random (v4) UUID. From the thread's CSPRNG, not a system call per key:
/// a batch of thousands of targets needs thousands.
fn new_idempotency_key() -> String {
    uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .to_string()
}

pub(crate) fn new_target_active(
    post_id: i32,
    t: &NewTarget,
    post: &NewPost,
    now: i64,
) -> target::ActiveModel {
    insertable(&new_target_model(post_id, t, post, now))
}

pub(crate) fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "[]".to_owned())
}

/// The publish jobs a set of targets needs: one per scheduled target.
pub(crate) fn enqueue_list(targets: &[target::Model]) -> Vec<Enqueue> {
    targets
        .iter()
        .filter(|t| t.status == TargetStatus::Scheduled.as_str())
        .filter_map(|t| {
            t.not_before_ms.map(|not_before_ms| Enqueue {
                target_id: t.id,
                not_before_ms,
            })
        })
        .collect()
}

/// Moves a target from `from` to `to` only if it is still in `from`.
pub(crate) async fn set_status<C: sea_orm::ConnectionTrait>(
    db: &C,
    id: i32,
    from: TargetStatus,
    to: TargetStatus,
    now: i64,
) -> Result<bool, StoreError> {
    from.transition(to)?;
    let result = target::Entity::update_many()
        .col_expr(target::Column::Status, to.as_str().into())
        .col_expr(target::Column::UpdatedAtMs, now.into())
        .filter(target::Column::Id.eq(id))
        .filter(target::Column::Status.eq(from.as_str()))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}
