//! The inbox operations: one implementation for the CLI, the HTTP API and
//! the bridge, so they can never disagree.

use std::sync::Arc;

use clarion_core::AdapterRegistry;
use clarion_scheduler::{PostInput, PostService};
use clarion_store::{
    ConversationDetail, ConversationStatus, ConversationSummary, InboxFilter, NewInboxReply,
    ReplyRef, Store, conversation, conversation_note, inbox_reply,
};

use crate::InboxError;

/// Who wrote a reply, for the record and for confirming it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyVia {
    Cli,
    Api,
    Bridge,
    /// An auto-reply of a `[[rules]]` entry.
    Rule,
}

impl ReplyVia {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cli => "cli",
            Self::Api => "api",
            Self::Bridge => "bridge",
            Self::Rule => "rule",
        }
    }
}

/// `inbox ls` filters as people type them.
#[derive(Debug, Clone, Default)]
pub struct InboxQuery {
    pub status: Option<String>,
    /// A platform kind (`mastodon`): its channels.
    pub platform: Option<String>,
    pub channel: Option<String>,
    pub campaign: Option<String>,
    pub label: Option<String>,
    pub assignee: Option<String>,
    pub limit: Option<u64>,
}

/// A reply that was queued: the record and the post carrying it.
#[derive(Debug, Clone)]
pub struct QueuedReply {
    pub reply: inbox_reply::Model,
    pub post_id: i32,
    pub target_id: i32,
}

#[derive(Debug, Clone)]
pub struct InboxService {
    store: Store,
    posts: PostService,
    registry: Arc<AdapterRegistry>,
}

impl InboxService {
    pub fn new(posts: PostService, registry: Arc<AdapterRegistry>) -> Self {
        Self {
            store: posts.store().clone(),
            posts,
            registry,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub async fn list(&self, query: &InboxQuery) -> Result<Vec<ConversationSummary>, InboxError> {
        let status = query
            .status
            .as_deref()
            .map(|s| {
                ConversationStatus::parse(s).ok_or_else(|| {
                    InboxError::BadRequest(format!(
                        "status `{s}`: expected one of open, pending, resolved, snoozed"
                    ))
                })
            })
            .transpose()?;
        let mut channels: Option<Vec<String>> = None;
        if let Some(platform) = &query.platform {
            let of_kind: Vec<String> = self
                .registry
                .iter()
                .filter(|(_, a)| a.kind() == platform)
                .map(|(name, _)| name.to_owned())
                .collect();
            if of_kind.is_empty() {
                return Err(InboxError::BadRequest(format!(
                    "platform `{platform}`: no configured channel is of that kind"
                )));
            }
            channels = Some(of_kind);
        }
        if let Some(channel) = &query.channel {
            channels = Some(match channels {
                Some(of_kind) => of_kind.into_iter().filter(|c| c == channel).collect(),
                None => vec![channel.clone()],
            });
        }
        let filter = InboxFilter {
            status,
            channels,
            campaign: query.campaign.clone(),
            label: query.label.clone(),
            assignee: query.assignee.clone(),
            limit: query.limit.unwrap_or(50),
        };
        Ok(self.store.list_conversations(&filter).await?)
    }

    pub async fn show(&self, id: i32) -> Result<ConversationDetail, InboxError> {
        Ok(self.store.conversation_detail(id).await?)
    }

    /// Queues `text` as a threaded reply to the conversation's newest item
    /// (or to item `to`), on the conversation's channel, through the
    /// durable publish path: the same idempotency key, retries and
    /// `outcome_unknown` handling as any post, so it is never sent twice.
    pub async fn reply(
        &self,
        id: i32,
        text: &str,
        author: &str,
        via: ReplyVia,
        bridge_ref: Option<String>,
        to: Option<i32>,
    ) -> Result<QueuedReply, InboxError> {
        if text.trim().is_empty() {
            return Err(InboxError::BadRequest("the reply is empty".into()));
        }
        let conversation = self.store.conversation(id).await?;
        let answered = match to {
            Some(item) => self
                .store
                .engagement(item)
                .await?
                .filter(|e| e.conversation_id == id)
                .ok_or_else(|| {
                    InboxError::BadRequest(format!("item {item} is not in conversation {id}"))
                })?,
            None => self.store.latest_engagement(id).await?.ok_or_else(|| {
                InboxError::BadRequest(format!("conversation {id} has no item to answer"))
            })?,
        };
        // A manager's text is sent as written: `{{` is not a template here.
        let body = text.replace("{{", "\\{{");
        let detail = self
            .posts
            .create(PostInput {
                body,
                channels: vec![conversation.channel.clone()],
                author: Some(author.to_owned()),
                campaign: conversation.campaign.clone(),
                reply_to: Some(ReplyRef {
                    root: answered.root_id.clone(),
                    parent: answered.item_id.clone(),
                }),
                ..PostInput::default()
            })
            .await?;
        let target = detail.targets.first().ok_or_else(|| {
            InboxError::BadRequest("the reply was stored without a target".into())
        })?;
        let reply = self
            .store
            .record_reply(NewInboxReply {
                conversation_id: id,
                engagement_id: answered.id,
                post_id: detail.post.id,
                target_id: target.id,
                author: author.to_owned(),
                via: via.as_str().to_owned(),
                bridge_ref,
            })
            .await?;
        // Answered: the conversation waits for the other side.
        if conversation.status == ConversationStatus::Open.as_str() {
            self.store
                .set_conversation_status(id, ConversationStatus::Pending, None)
                .await?;
        }
        Ok(QueuedReply {
            reply,
            post_id: detail.post.id,
            target_id: target.id,
        })
    }

    pub async fn note(
        &self,
        id: i32,
        author: &str,
        text: &str,
    ) -> Result<conversation_note::Model, InboxError> {
        if text.trim().is_empty() {
            return Err(InboxError::BadRequest("the note is empty".into()));
        }
        Ok(self.store.add_note(id, author, text.trim()).await?)
    }

    pub async fn resolve(&self, id: i32) -> Result<conversation::Model, InboxError> {
        self.set_status(id, ConversationStatus::Resolved, None)
            .await
    }

    pub async fn reopen(&self, id: i32) -> Result<conversation::Model, InboxError> {
        self.set_status(id, ConversationStatus::Open, None).await
    }

    /// Hides the conversation until `until_ms`; a new item wakes it earlier.
    pub async fn snooze(&self, id: i32, until_ms: i64) -> Result<conversation::Model, InboxError> {
        if until_ms <= clarion_store::now_ms() {
            return Err(InboxError::BadRequest(
                "snooze until a time in the future".into(),
            ));
        }
        self.set_status(id, ConversationStatus::Snoozed, Some(until_ms))
            .await
    }

    pub async fn set_status(
        &self,
        id: i32,
        status: ConversationStatus,
        until_ms: Option<i64>,
    ) -> Result<conversation::Model, InboxError> {
        Ok(self
            .store
            .set_conversation_status(id, status, until_ms)
            .await?)
    }

    /// Assigns to `who`; `None` (or an empty name) unassigns.
    pub async fn assign(
        &self,
        id: i32,
        who: Option<&str>,
    ) -> Result<conversation::Model, InboxError> {
        let who = who.map(str::trim).filter(|w| !w.is_empty());
        Ok(self.store.assign_conversation(id, who).await?)
    }

    pub async fn label(
        &self,
        id: i32,
        add: &[String],
        remove: &[String],
    ) -> Result<conversation::Model, InboxError> {
        if let Some(bad) = add.iter().find(|l| l.trim().is_empty() || l.contains('"')) {
            return Err(InboxError::BadRequest(format!(
                "label `{bad}`: labels are non-empty and have no quotes"
            )));
        }
        Ok(self.store.label_conversation(id, add, remove).await?)
    }
}

/// Reads a snooze length as people type it: `30m`, `2h`, `1d`, `45s`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, InboxError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| {
        InboxError::BadRequest(format!("`{text}`: expected a length like 30m, 2h or 1d"))
    })?;
    let secs = match unit {
        "s" => n,
        "m" | "" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => {
            return Err(InboxError::BadRequest(format!(
                "`{text}`: unit `{unit}` (use s, m, h or d)"
            )));
        }
    };
    Ok(std::time::Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_typed() {
        assert_eq!(parse_duration("2h").unwrap().as_secs(), 7200);
        assert_eq!(parse_duration("30m").unwrap().as_secs(), 1800);
        assert_eq!(parse_duration("1d").unwrap().as_secs(), 86_400);
        assert!(parse_duration("soon").is_err());
        assert!(
            parse_duration("3w")
                .unwrap_err()
                .to_string()
                .contains("unit")
        );
    }
}
