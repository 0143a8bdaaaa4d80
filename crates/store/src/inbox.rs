//! The unified inbox: captured engagements grouped into conversations (one
//! platform thread on one channel), with status, assignee, labels, notes
//! and the replies written to them.

use std::collections::{BTreeSet, HashMap};

use clarion_core::Engagement;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use crate::posts::MAX_KEYS_PER_QUERY;
use crate::{
    Store, StoreError, bridge_message, bridge_thread, conversation, conversation_note, engagement,
    inbox_reply, now_ms, target,
};

/// Where a conversation stands in the inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationStatus {
    Open,
    Pending,
    Resolved,
    Snoozed,
}

impl ConversationStatus {
    pub const ALL: [Self; 4] = [Self::Open, Self::Pending, Self::Resolved, Self::Snoozed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Pending => "pending",
            Self::Resolved => "resolved",
            Self::Snoozed => "snoozed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// What one stored batch added.
#[derive(Debug, Clone, Default)]
pub struct IngestOutcome {
    /// The engagements stored for the first time, in batch order.
    pub new: Vec<engagement::Model>,
    /// Items already stored (a re-read after a restart), or repeated in the batch.
    pub duplicates: usize,
    /// Conversations that were resolved or snoozed and reopened by a new item.
    pub reopened: Vec<i32>,
}

/// Inbox list filters; every one optional.
#[derive(Debug, Clone, Default)]
pub struct InboxFilter {
    pub status: Option<ConversationStatus>,
    /// Only these channels (a `--platform` is resolved to its channels by the caller).
    pub channels: Option<Vec<String>>,
    pub campaign: Option<String>,
    pub label: Option<String>,
    pub assignee: Option<String>,
    pub limit: u64,
}

/// A conversation with its newest item, for lists.
#[derive(Debug, Clone)]
pub struct ConversationSummary {
    pub conversation: conversation::Model,
    pub latest: Option<engagement::Model>,
    pub items: u64,
}

/// A reply and the state of the target that carries it.
#[derive(Debug, Clone)]
pub struct ReplyState {
    pub reply: inbox_reply::Model,
    pub target: Option<target::Model>,
}

/// Everything about one conversation.
#[derive(Debug, Clone)]
pub struct ConversationDetail {
    pub conversation: conversation::Model,
    pub items: Vec<engagement::Model>,
    pub notes: Vec<conversation_note::Model>,
    pub replies: Vec<ReplyState>,
}

/// An inbox reply to record, once its post is created.
#[derive(Debug, Clone)]
pub struct NewInboxReply {
    pub conversation_id: i32,
    pub engagement_id: i32,
    pub post_id: i32,
    pub target_id: i32,
    pub author: String,
    pub via: String,
    pub bridge_ref: Option<String>,
}

/// Where a new item goes: a conversation already stored, or a thread key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Thread {
    Stored(i32),
    Key(String),
}

/// Stores the events of one batch not stored before, each in its
/// conversation (creating conversations as needed), inside `txn`.
pub(crate) async fn ingest_events(
    txn: &DatabaseTransaction,
    channel: &str,
    events: &[Engagement],
    now: i64,
) -> Result<IngestOutcome, StoreError> {
    let mut outcome = IngestOutcome::default();
    // Repeats within the batch, then items already stored.
    let mut seen = BTreeSet::new();
    let mut fresh: Vec<&Engagement> = Vec::with_capacity(events.len());
    for e in events {
        if seen.insert(e.item_id.as_str()) {
            fresh.push(e);
        } else {
            outcome.duplicates += 1;
        }
    }
    let stored = stored_items(txn, channel, fresh.iter().map(|e| e.item_id.clone())).await?;
    let before = fresh.len();
    fresh.retain(|e| !stored.contains_key(&e.item_id));
    outcome.duplicates += before - fresh.len();
    if fresh.is_empty() {
        return Ok(outcome);
    }

    // A reply joins the conversation of the message it answers when that
    // is stored (or earlier in this batch); otherwise its thread's root.
    let parents = stored_items(
        txn,
        channel,
        fresh.iter().filter_map(|e| e.parent_id.clone()),
    )
    .await?;
    let mut in_batch: HashMap<&str, Thread> = HashMap::new();
    let mut threads = Vec::with_capacity(fresh.len());
    for e in &fresh {
        let thread = match e.parent_id.as_deref() {
            Some(p) if in_batch.contains_key(p) => in_batch[p].clone(),
            Some(p) if parents.contains_key(p) => Thread::Stored(parents[p]),
            _ => Thread::Key(e.root_id.clone()),
        };
        in_batch.insert(e.item_id.as_str(), thread.clone());
        threads.push(thread);
    }
    let keys: BTreeSet<String> = threads
        .iter()
        .filter_map(|t| match t {
            Thread::Key(k) => Some(k.clone()),
            Thread::Stored(_) => None,
        })
        .collect();
    let mut by_key = conversations_by_key(txn, channel, keys.iter().cloned()).await?;
    let missing: Vec<String> = keys
        .iter()
        .filter(|k| !by_key.contains_key(*k))
        .cloned()
        .collect();
    if !missing.is_empty() {
        create_conversations(txn, channel, &missing, &fresh, now).await?;
        by_key = conversations_by_key(txn, channel, keys.iter().cloned()).await?;
    }
    let conversation_of = |t: &Thread| -> Result<i32, StoreError> {
        match t {
            Thread::Stored(id) => Ok(*id),
            Thread::Key(k) => by_key.get(k).copied().ok_or_else(|| {
                StoreError::Inconsistent(format!("conversation `{k}` was not created"))
            }),
        }
    };
    let mut rows = Vec::with_capacity(fresh.len());
    for (e, t) in fresh.iter().zip(&threads) {
        rows.push(engagement::ActiveModel {
            conversation_id: Set(conversation_of(t)?),
            channel: Set(channel.to_owned()),
            item_id: Set(e.item_id.clone()),
            kind: Set(e.kind.as_str().to_owned()),
            author_id: Set(e.author.id.clone()),
            author_handle: Set(e.author.handle.clone()),
            author_name: Set(e.author.display_name.clone()),
            text: Set(e.text.clone()),
            url: Set(e.url.clone()),
            parent_id: Set(e.parent_id.clone()),
            root_id: Set(e.root_id.clone()),
            place: Set(e.place.clone()),
            created_at_ms: Set(e.created_at_ms),
            received_at_ms: Set(now),
            bridge_state: Set(None),
            ..Default::default()
        });
    }
    for chunk in rows.chunks(200) {
        engagement::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(txn)
            .await?;
    }
    let touched: BTreeSet<i32> = threads
        .iter()
        .map(conversation_of)
        .collect::<Result<_, _>>()?;
    let touched: Vec<i32> = touched.into_iter().collect();
    for chunk in touched.chunks(MAX_KEYS_PER_QUERY) {
        outcome.reopened.extend(
            conversation::Entity::find()
                .select_only()
                .column(conversation::Column::Id)
                .filter(conversation::Column::Id.is_in(chunk.iter().copied()))
                .filter(conversation::Column::Status.is_in([
                    ConversationStatus::Resolved.as_str(),
                    ConversationStatus::Snoozed.as_str(),
                ]))
                .into_tuple::<i32>()
                .all(txn)
                .await?,
        );
        conversation::Entity::update_many()
            .col_expr(conversation::Column::LastItemAtMs, now.into())
            .col_expr(conversation::Column::UpdatedAtMs, now.into())
            .col_expr(
                conversation::Column::Status,
                Expr::cust_with_values(
                    "CASE WHEN status IN ('resolved', 'snoozed') THEN 'open' ELSE status END",
                    Vec::<sea_orm::Value>::new(),
                ),
            )
            .col_expr(
                conversation::Column::SnoozedUntilMs,
                Expr::value(Option::<i64>::None),
            )
            .filter(conversation::Column::Id.is_in(chunk.iter().copied()))
            .exec(txn)
            .await?;
    }
    let ids = fresh.iter().map(|e| e.item_id.clone());
    let mut new = Vec::with_capacity(fresh.len());
    let ids: Vec<String> = ids.collect();
    for chunk in ids.chunks(MAX_KEYS_PER_QUERY) {
        new.extend(
            engagement::Entity::find()
                .filter(engagement::Column::Channel.eq(channel))
                .filter(engagement::Column::ItemId.is_in(chunk.iter().cloned()))
                .all(txn)
                .await?,
        );
    }
    // Sorted here, not by ORDER BY id: PostgreSQL would walk the primary
    // key of the whole table to avoid sorting 100 rows (seen: 150 events/s).
    new.sort_by_key(|e| e.id);
    outcome.new = new;
    Ok(outcome)
}

/// item id -> conversation id of the given items already stored on `channel`.
async fn stored_items<C: ConnectionTrait>(
    db: &C,
    channel: &str,
    items: impl Iterator<Item = String>,
) -> Result<HashMap<String, i32>, StoreError> {
    let items: Vec<String> = items.collect();
    let mut found = HashMap::new();
    for chunk in items.chunks(MAX_KEYS_PER_QUERY) {
        let rows: Vec<(String, i32)> = engagement::Entity::find()
            .select_only()
            .column(engagement::Column::ItemId)
            .column(engagement::Column::ConversationId)
            .filter(engagement::Column::Channel.eq(channel))
            .filter(engagement::Column::ItemId.is_in(chunk.iter().cloned()))
            .into_tuple()
            .all(db)
            .await?;
        found.extend(rows);
    }
    Ok(found)
}

async fn conversations_by_key<C: ConnectionTrait>(
    db: &C,
    channel: &str,
    keys: impl Iterator<Item = String>,
) -> Result<HashMap<String, i32>, StoreError> {
    let keys: Vec<String> = keys.collect();
    let mut found = HashMap::new();
    for chunk in keys.chunks(MAX_KEYS_PER_QUERY) {
        let rows: Vec<(String, i32)> = conversation::Entity::find()
            .select_only()
            .column(conversation::Column::ThreadKey)
            .column(conversation::Column::Id)
            .filter(conversation::Column::Channel.eq(channel))
            .filter(conversation::Column::ThreadKey.is_in(chunk.iter().cloned()))
            .into_tuple()
            .all(db)
            .await?;
        found.extend(rows);
    }
    Ok(found)
}

/// Creates the conversations of new threads, each linked to the published
/// target it answers when its root or first parent is one of ours.
async fn create_conversations(
    txn: &DatabaseTransaction,
    channel: &str,
    keys: &[String],
    events: &[&Engagement],
    now: i64,
) -> Result<(), StoreError> {
    // Ids that may be our own published messages: roots and parents.
    let mut candidates: BTreeSet<String> = keys.iter().cloned().collect();
    candidates.extend(events.iter().filter_map(|e| e.parent_id.clone()));
    let candidates: Vec<String> = candidates.into_iter().collect();
    let mut ours: HashMap<String, target::Model> = HashMap::new();
    for chunk in candidates.chunks(MAX_KEYS_PER_QUERY) {
        for t in target::Entity::find()
            .filter(target::Column::Channel.eq(channel))
            .filter(target::Column::PlatformPostId.is_in(chunk.iter().cloned()))
            .all(txn)
            .await?
        {
            if let Some(id) = t.platform_post_id.clone() {
                ours.insert(id, t);
            }
        }
    }
    let rows: Vec<conversation::ActiveModel> = keys
        .iter()
        .map(|key| {
            let first_parent = events
                .iter()
                .find(|e| &e.root_id == key)
                .and_then(|e| e.parent_id.clone());
            let answered = ours
                .get(key)
                .or_else(|| first_parent.as_ref().and_then(|p| ours.get(p)));
            conversation::ActiveModel {
                channel: Set(channel.to_owned()),
                thread_key: Set(key.clone()),
                status: Set(ConversationStatus::Open.as_str().to_owned()),
                snoozed_until_ms: Set(None),
                assignee: Set(None),
                labels: Set("[]".to_owned()),
                target_id: Set(answered.map(|t| t.id)),
                post_id: Set(answered.map(|t| t.post_id)),
                campaign: Set(answered.and_then(|t| t.campaign.clone())),
                last_item_at_ms: Set(now),
                created_at_ms: Set(now),
                updated_at_ms: Set(now),
                ..Default::default()
            }
        })
        .collect();
    for chunk in rows.chunks(200) {
        conversation::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([
                    conversation::Column::Channel,
                    conversation::Column::ThreadKey,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

impl Store {
    /// Conversations, newest activity first. Snoozes that have run out are
    /// woken (back to open) first, so a snoozed conversation reappears on time.
    pub async fn list_conversations(
        &self,
        filter: &InboxFilter,
    ) -> Result<Vec<ConversationSummary>, StoreError> {
        self.wake_snoozed(now_ms()).await?;
        let mut query = conversation::Entity::find();
        if let Some(status) = filter.status {
            query = query.filter(conversation::Column::Status.eq(status.as_str()));
        }
        if let Some(channels) = &filter.channels {
            query = query.filter(conversation::Column::Channel.is_in(channels.iter().cloned()));
        }
        if let Some(campaign) = &filter.campaign {
            query = query.filter(conversation::Column::Campaign.eq(campaign.as_str()));
        }
        if let Some(assignee) = &filter.assignee {
            query = query.filter(conversation::Column::Assignee.eq(assignee.as_str()));
        }
        if let Some(label) = &filter.label {
            // Labels are a JSON array of strings; a quoted match is exact.
            let quoted = serde_json::Value::from(label.as_str()).to_string();
            query = query.filter(conversation::Column::Labels.contains(quoted));
        }
        let conversations = query
            .order_by_desc(conversation::Column::LastItemAtMs)
            .order_by_desc(conversation::Column::Id)
            .limit(filter.limit.max(1))
            .all(&self.db)
            .await?;
        // Two grouped reads for the whole page, not two per conversation.
        let ids: Vec<i32> = conversations.iter().map(|c| c.id).collect();
        let stats: Vec<(i32, i32, i64)> = engagement::Entity::find()
            .select_only()
            .column(engagement::Column::ConversationId)
            .column_as(engagement::Column::Id.max(), "latest")
            .column_as(engagement::Column::Id.count(), "items")
            .filter(engagement::Column::ConversationId.is_in(ids))
            .group_by(engagement::Column::ConversationId)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut latest: HashMap<i32, engagement::Model> = engagement::Entity::find()
            .filter(engagement::Column::Id.is_in(stats.iter().map(|(_, id, _)| *id)))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|e| (e.conversation_id, e))
            .collect();
        let counts: HashMap<i32, u64> = stats
            .iter()
            .map(|(c, _, n)| (*c, u64::try_from(*n).unwrap_or(0)))
            .collect();
        Ok(conversations
            .into_iter()
            .map(|c| ConversationSummary {
                items: counts.get(&c.id).copied().unwrap_or(0),
                latest: latest.remove(&c.id),
                conversation: c,
            })
            .collect())
    }

    /// Moves snoozed conversations whose time has come back to open.
    pub async fn wake_snoozed(&self, now: i64) -> Result<u64, StoreError> {
        let _turn = self.write_turn().await;
        Ok(conversation::Entity::update_many()
            .col_expr(
                conversation::Column::Status,
                ConversationStatus::Open.as_str().into(),
            )
            .col_expr(
                conversation::Column::SnoozedUntilMs,
                Expr::value(Option::<i64>::None),
            )
            .col_expr(conversation::Column::UpdatedAtMs, now.into())
            .filter(conversation::Column::Status.eq(ConversationStatus::Snoozed.as_str()))
            .filter(conversation::Column::SnoozedUntilMs.lte(now))
            .exec(&self.db)
            .await?
            .rows_affected)
    }

    pub async fn conversation(&self, id: i32) -> Result<conversation::Model, StoreError> {
        conversation::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or(StoreError::ConversationNotFound(id))
    }

    pub async fn conversation_detail(&self, id: i32) -> Result<ConversationDetail, StoreError> {
        let conversation = self.conversation(id).await?;
        let items = engagement::Entity::find()
            .filter(engagement::Column::ConversationId.eq(id))
            .order_by_asc(engagement::Column::Id)
            .all(&self.db)
            .await?;
        let notes = conversation_note::Entity::find()
            .filter(conversation_note::Column::ConversationId.eq(id))
            .order_by_asc(conversation_note::Column::Id)
            .all(&self.db)
            .await?;
        let replies = inbox_reply::Entity::find()
            .filter(inbox_reply::Column::ConversationId.eq(id))
            .order_by_asc(inbox_reply::Column::Id)
            .all(&self.db)
            .await?;
        let replies = self.with_targets(replies).await?;
        Ok(ConversationDetail {
            conversation,
            items,
            notes,
            replies,
        })
    }

    /// Sets a conversation's status (`snoozed_until_ms` only with `Snoozed`).
    pub async fn set_conversation_status(
        &self,
        id: i32,
        status: ConversationStatus,
        snoozed_until_ms: Option<i64>,
    ) -> Result<conversation::Model, StoreError> {
        let until = match status {
            ConversationStatus::Snoozed => snoozed_until_ms,
            _ => None,
        };
        self.update_conversation(id, |u| {
            u.col_expr(conversation::Column::Status, status.as_str().into())
                .col_expr(conversation::Column::SnoozedUntilMs, Expr::value(until))
        })
        .await
    }

    /// Assigns a conversation to someone, or (None) to nobody.
    pub async fn assign_conversation(
        &self,
        id: i32,
        assignee: Option<&str>,
    ) -> Result<conversation::Model, StoreError> {
        let assignee = assignee.map(str::to_owned);
        self.update_conversation(id, |u| {
            u.col_expr(conversation::Column::Assignee, Expr::value(assignee))
        })
        .await
    }

    /// Adds and removes labels; each label is kept once, in sorted order.
    pub async fn label_conversation(
        &self,
        id: i32,
        add: &[String],
        remove: &[String],
    ) -> Result<conversation::Model, StoreError> {
        let current = self.conversation(id).await?;
        let mut labels: BTreeSet<String> = current.labels().into_iter().collect();
        labels.extend(add.iter().cloned());
        for r in remove {
            labels.remove(r);
        }
        let labels: Vec<String> = labels.into_iter().collect();
        let json = crate::posts::json(&labels);
        self.update_conversation(id, |u| {
            u.col_expr(conversation::Column::Labels, json.into())
        })
        .await
    }

    async fn update_conversation(
        &self,
        id: i32,
        set: impl FnOnce(
            sea_orm::UpdateMany<conversation::Entity>,
        ) -> sea_orm::UpdateMany<conversation::Entity>,
    ) -> Result<conversation::Model, StoreError> {
        {
            let _turn = self.write_turn().await;
            let update = conversation::Entity::update_many()
                .col_expr(conversation::Column::UpdatedAtMs, now_ms().into())
                .filter(conversation::Column::Id.eq(id));
            let changed = set(update).exec(&self.db).await?.rows_affected;
            if changed == 0 {
                return Err(StoreError::ConversationNotFound(id));
            }
        }
        self.conversation(id).await
    }

    pub async fn add_note(
        &self,
        conversation_id: i32,
        author: &str,
        text: &str,
    ) -> Result<conversation_note::Model, StoreError> {
        self.conversation(conversation_id).await?;
        let _turn = self.write_turn().await;
        let note = conversation_note::ActiveModel {
            conversation_id: Set(conversation_id),
            author: Set(author.to_owned()),
            text: Set(text.to_owned()),
            created_at_ms: Set(now_ms()),
            ..Default::default()
        };
        Ok(conversation_note::Entity::insert(note)
            .exec_with_returning(&self.db)
            .await?)
    }

    /// The newest item of a conversation that came from someone else: the
    /// one a reply answers.
    pub async fn latest_engagement(
        &self,
        conversation_id: i32,
    ) -> Result<Option<engagement::Model>, StoreError> {
        Ok(engagement::Entity::find()
            .filter(engagement::Column::ConversationId.eq(conversation_id))
            .order_by_desc(engagement::Column::Id)
            .one(&self.db)
            .await?)
    }

    pub async fn engagement(&self, id: i32) -> Result<Option<engagement::Model>, StoreError> {
        Ok(engagement::Entity::find_by_id(id).one(&self.db).await?)
    }

    pub async fn record_reply(
        &self,
        reply: NewInboxReply,
    ) -> Result<inbox_reply::Model, StoreError> {
        let _turn = self.write_turn().await;
        let row = inbox_reply::ActiveModel {
            conversation_id: Set(reply.conversation_id),
            engagement_id: Set(reply.engagement_id),
            post_id: Set(reply.post_id),
            target_id: Set(reply.target_id),
            author: Set(reply.author),
            via: Set(reply.via),
            bridge_ref: Set(reply.bridge_ref),
            confirmed_at_ms: Set(None),
            created_at_ms: Set(now_ms()),
            ..Default::default()
        };
        Ok(inbox_reply::Entity::insert(row)
            .exec_with_returning(&self.db)
            .await?)
    }

    /// Items not yet shown in the bridge, oldest first.
    pub async fn unbridged(&self, limit: u64) -> Result<Vec<engagement::Model>, StoreError> {
        Ok(engagement::Entity::find()
            .filter(engagement::Column::BridgeState.is_null())
            .order_by_asc(engagement::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?)
    }

    /// Records that `engagement_id` was shown in the bridge as `message_id`
    /// (None: the bridge skipped it on purpose).
    pub async fn mark_bridged(
        &self,
        engagement_id: i32,
        bridge_channel: &str,
        message_id: Option<&str>,
        conversation_id: i32,
    ) -> Result<(), StoreError> {
        let state = if message_id.is_some() { "sent" } else { "skip" };
        if let Some(message_id) = message_id {
            self.remember_bridge_message(bridge_channel, message_id, conversation_id)
                .await?;
        }
        let _turn = self.write_turn().await;
        engagement::Entity::update_many()
            .col_expr(engagement::Column::BridgeState, state.into())
            .filter(engagement::Column::Id.eq(engagement_id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Maps a chat message to its conversation. False when it was already
    /// recorded: the bridge uses that to handle each chat message once,
    /// even when a listener re-reads it after a restart.
    pub async fn remember_bridge_message(
        &self,
        bridge_channel: &str,
        message_id: &str,
        conversation_id: i32,
    ) -> Result<bool, StoreError> {
        let _turn = self.write_turn().await;
        let inserted = bridge_message::Entity::insert(bridge_message::ActiveModel {
            channel: Set(bridge_channel.to_owned()),
            message_id: Set(message_id.to_owned()),
            conversation_id: Set(conversation_id),
            created_at_ms: Set(now_ms()),
        })
        .on_conflict(
            OnConflict::columns([
                bridge_message::Column::Channel,
                bridge_message::Column::MessageId,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await?;
        Ok(inserted == 1)
    }

    /// The conversation a bridge message belongs to.
    pub async fn bridge_conversation(
        &self,
        bridge_channel: &str,
        message_id: &str,
    ) -> Result<Option<i32>, StoreError> {
        Ok(
            bridge_message::Entity::find_by_id((bridge_channel.to_owned(), message_id.to_owned()))
                .one(&self.db)
                .await?
                .map(|m| m.conversation_id),
        )
    }

    /// The thread the bridge opened for a conversation, if it opened one.
    pub async fn bridge_thread(
        &self,
        bridge_channel: &str,
        conversation_id: i32,
    ) -> Result<Option<bridge_thread::Model>, StoreError> {
        Ok(
            bridge_thread::Entity::find_by_id((bridge_channel.to_owned(), conversation_id))
                .one(&self.db)
                .await?,
        )
    }

    /// The conversation whose bridge thread is `place`.
    pub async fn bridge_thread_conversation(
        &self,
        bridge_channel: &str,
        place: &str,
    ) -> Result<Option<i32>, StoreError> {
        Ok(bridge_thread::Entity::find()
            .filter(bridge_thread::Column::Channel.eq(bridge_channel))
            .filter(bridge_thread::Column::Place.eq(place))
            .one(&self.db)
            .await?
            .map(|t| t.conversation_id))
    }

    /// Records the thread the bridge opened for a conversation. Only the
    /// process holding the bridge's lease opens threads, so there is no race
    /// to settle; a second record for the conversation is ignored.
    pub async fn remember_bridge_thread(
        &self,
        bridge_channel: &str,
        conversation_id: i32,
        place: &str,
        first_message: &str,
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        bridge_thread::Entity::insert(bridge_thread::ActiveModel {
            channel: Set(bridge_channel.to_owned()),
            conversation_id: Set(conversation_id),
            place: Set(place.to_owned()),
            first_message: Set(first_message.to_owned()),
            created_at_ms: Set(now_ms()),
        })
        .on_conflict(
            OnConflict::columns([
                bridge_thread::Column::Channel,
                bridge_thread::Column::ConversationId,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await?;
        Ok(())
    }

    /// Replies whose author has not been told the outcome yet, with their targets.
    pub async fn unconfirmed_replies(&self, via: &str) -> Result<Vec<ReplyState>, StoreError> {
        let replies = inbox_reply::Entity::find()
            .filter(inbox_reply::Column::Via.eq(via))
            .filter(inbox_reply::Column::ConfirmedAtMs.is_null())
            .order_by_asc(inbox_reply::Column::Id)
            .limit(100)
            .all(&self.db)
            .await?;
        self.with_targets(replies).await
    }

    /// Each reply with the target carrying it, in one read.
    async fn with_targets(
        &self,
        replies: Vec<inbox_reply::Model>,
    ) -> Result<Vec<ReplyState>, StoreError> {
        let mut targets: HashMap<i32, target::Model> = target::Entity::find()
            .filter(target::Column::Id.is_in(replies.iter().map(|r| r.target_id)))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|t| (t.id, t))
            .collect();
        Ok(replies
            .into_iter()
            .map(|reply| ReplyState {
                target: targets.remove(&reply.target_id),
                reply,
            })
            .collect())
    }

    pub async fn confirm_reply(&self, id: i32) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        inbox_reply::Entity::update_many()
            .col_expr(inbox_reply::Column::ConfirmedAtMs, now_ms().into())
            .filter(inbox_reply::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(())
    }
}

impl Store {
    /// A cheap "did the inbox change" marker for live pages: newest item,
    /// latest conversation change, newest note, latest change of a reply's
    /// target, in one small read (`e-c-n-r`).
    pub async fn inbox_marker(&self) -> Result<String, StoreError> {
        let sql = "SELECT \
            CAST(COALESCE((SELECT MAX(id) FROM engagements), 0) AS BIGINT) AS e, \
            CAST(COALESCE((SELECT MAX(updated_at_ms) FROM conversations), 0) AS BIGINT) AS c, \
            CAST(COALESCE((SELECT MAX(id) FROM conversation_notes), 0) AS BIGINT) AS n, \
            CAST(COALESCE((SELECT MAX(t.updated_at_ms) FROM targets t \
                JOIN inbox_replies r ON r.target_id = t.id), 0) AS BIGINT) AS r";
        let row = self
            .db
            .query_one_raw(sea_orm::Statement::from_string(
                self.db.get_database_backend(),
                sql,
            ))
            .await?;
        let Some(row) = row else {
            return Ok(String::new());
        };
        let mut parts = Vec::with_capacity(4);
        for col in ["e", "c", "n", "r"] {
            parts.push(row.try_get::<i64>("", col)?.to_string());
        }
        Ok(parts.join("-"))
    }
}
