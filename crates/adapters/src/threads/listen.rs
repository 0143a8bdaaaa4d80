//! Listening on Threads: replies under the account's recent posts and
//! posts that mention it, polled every `listen_interval_secs`.
//!
//! One poll lists the account's posts of the last `listen_days` days
//! (`GET /{user-id}/threads?since=...`), reads each one's conversation
//! newest first (`GET /{media-id}/conversation?reverse=true`: every reply,
//! however deep) until a page reaches below the cursor, then the mentions
//! since the cursor's floor (`GET /{user-id}/mentions?since=...`). The
//! account's username is asked once (`GET /{user-id}?fields=username`).
//!
//! The cursor is the same window as Facebook's (see
//! [`crate::facebook::listen`]): the newest `timestamp` read, a floor ten
//! minutes below it and the ids read at or after the floor; a poll that
//! needs many pages finishes in the next calls before the cursor moves. The
//! first run starts at the time the listener was built.
//!
//! Kinds: a reply to one of the account's posts, or to one of its replies,
//! is `reply`; a reply further down someone else's branch under the
//! account's post is `comment`; a post naming the account is `mention`
//! (a mention that is also a reply under the account's post comes once, as
//! the reply). `parent_id` is `replied_to`, `root_id` the `root_post` (the
//! conversation's first post; itself for a mention that starts one): the
//! ids the publish receipt has, so an answer is a post with `reply_to_id`.
//! The account's own replies (`is_reply_owned_by_me`, or its username) are
//! never yielded. Threads gives no user ids: the author id is the username.
//!
//! A post deleted between the listing and its read (Graph code 100/33) is
//! reported in `skipped` and the others are read; any other failure (a
//! missing permission, a rate limit, an expired token, an outage) fails
//! the whole poll, so the cursor never passes what could not be read.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use clarion_core::{
    ChannelConfig, ConfigError, Engagement, EngagementAuthor, EngagementKind, ErrorClass,
    ListenBatch, Listener, PublishError,
};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::OnceCell;

use super::ThreadsAdapter;
use crate::facebook::listen::{
    Feed, Item, Mark, Page, Poller, Stream, get_json, get_page_json, gone, next_after, parse_time,
    poll_paced,
};

/// Pages of the account's posts listed per poll (100 posts a page).
const MAX_POST_PAGES: usize = 3;
/// Own reply ids remembered, so an answer to one is known as a reply.
const MAX_OWN: usize = 2000;
/// The stream key of the mentions (media ids are digits, so it cannot clash).
const MENTIONS: &str = "mentions";

const REPLY_FIELDS: &str =
    "id,text,username,timestamp,permalink,replied_to,root_post,is_reply_owned_by_me";
const MENTION_FIELDS: &str = "id,text,username,timestamp,permalink,replied_to,root_post";

const READ_PERMISSION: &str = "threads_basic, threads_read_replies and threads_manage_mentions";

pub(super) fn build(config: &ChannelConfig) -> Result<Option<Arc<dyn Listener>>, ConfigError> {
    let adapter = super::configure(config)?;
    Ok(Some(Arc::new(ThreadsListener {
        adapter,
        poller: Poller::new(Utc::now().timestamp()),
        username: OnceCell::new(),
        own: SyncMutex::new(VecDeque::new()),
        slow_down: SyncMutex::new(None),
    })))
}

#[derive(Debug)]
struct ThreadsListener {
    adapter: ThreadsAdapter,
    poller: Poller,
    /// The account's username, asked once.
    username: OnceCell<String>,
    /// The account's own reply ids seen lately, oldest first.
    own: SyncMutex<VecDeque<String>>,
    slow_down: SyncMutex<Option<Duration>>,
}

#[derive(Debug, Deserialize)]
struct Media {
    id: String,
    timestamp: String,
    #[serde(default)]
    text: String,
    /// Only for public profiles (and the account's own).
    username: Option<String>,
    permalink: Option<String>,
    replied_to: Option<IdRef>,
    root_post: Option<IdRef>,
    is_reply_owned_by_me: Option<bool>,
}

/// A media reference: `{"id": "..."}` as Threads sends it (a bare id is
/// taken too, since the reference pages call these fields "Media ID").
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum IdRef {
    Object { id: String },
    Bare(String),
}

impl IdRef {
    fn id(&self) -> &str {
        match self {
            Self::Object { id } | Self::Bare(id) => id,
        }
    }
}

impl ThreadsListener {
    fn get(&self, path: &str, query: &[(&str, String)]) -> reqwest::RequestBuilder {
        self.adapter
            .client
            .get(format!("{}/{path}", self.adapter.base))
            .query(query)
            .bearer_auth(self.adapter.token.expose())
            .timeout(self.adapter.timeout)
    }

    async fn username(&self) -> Result<&str, PublishError> {
        self.username
            .get_or_try_init(|| async {
                let value = get_json(
                    self.get(&self.adapter.user_id, &[("fields", "username".to_owned())]),
                    READ_PERMISSION,
                    &self.slow_down,
                )
                .await?;
                value
                    .get("username")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        PublishError::new(
                            ErrorClass::Transient,
                            "the Threads profile gave no username",
                        )
                    })
            })
            .await
            .map(String::as_str)
    }

    fn is_own(&self, id: &str) -> bool {
        self.own.lock().is_ok_and(|own| own.iter().any(|o| o == id))
    }

    fn remember_own(&self, id: &str) {
        if let Ok(mut own) = self.own.lock()
            && !own.iter().any(|o| o == id)
        {
            own.push_back(id.to_owned());
            if own.len() > MAX_OWN {
                own.pop_front();
            }
        }
    }

    /// One item of a conversation under the account's post `post`, or of
    /// the mentions (`post` is `None`).
    fn read(
        &self,
        post: Option<&str>,
        media: &Result<Media, String>,
        me: &str,
    ) -> Result<Item, String> {
        let media = media.as_ref().map_err(Clone::clone)?;
        let at = parse_time(&media.timestamp).ok_or_else(|| {
            format!(
                "threads media {}: timestamp {:?} is not a time",
                media.id, media.timestamp
            )
        })?;
        let own = media.is_reply_owned_by_me == Some(true) || media.username.as_deref() == Some(me);
        let parent = media.replied_to.as_ref().map(|r| r.id().to_owned());
        let event = (!own).then(|| {
            let kind = match post {
                None => EngagementKind::Mention,
                Some(post) => match parent.as_deref() {
                    Some(p) if p == post || self.is_own(p) => EngagementKind::Reply,
                    _ => EngagementKind::Comment,
                },
            };
            let root = media
                .root_post
                .as_ref()
                .map(|r| r.id().to_owned())
                .or_else(|| post.map(str::to_owned))
                .unwrap_or_else(|| media.id.clone());
            let username = media.username.clone().unwrap_or_default();
            Engagement {
                item_id: media.id.clone(),
                kind,
                author: EngagementAuthor {
                    id: username.clone(),
                    handle: if username.is_empty() {
                        String::new()
                    } else {
                        format!("@{username}")
                    },
                    display_name: String::new(),
                    roles: Vec::new(),
                },
                text: media.text.clone(),
                url: media.permalink.clone(),
                parent_id: parent.clone(),
                root_id: root,
                place: None,
                created_at_ms: at.timestamp_millis(),
            }
        });
        Ok(Item {
            id: media.id.clone(),
            secs: at.timestamp(),
            event,
        })
    }

    fn page_of(&self, post: Option<&str>, list: &Value, me: &str) -> Page {
        let media: Vec<Result<Media, String>> = list
            .get("data")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|raw| {
                serde_json::from_value::<Media>(raw.clone()).map_err(|e| {
                    match raw.get("id").and_then(Value::as_str) {
                        Some(id) => format!("threads media {id}: {e}"),
                        None => format!("unreadable threads media: {e}"),
                    }
                })
            })
            .collect();
        // The account's replies first, so an answer to one on the same page
        // is known as a reply.
        for m in media.iter().flatten() {
            if m.is_reply_owned_by_me == Some(true) || m.username.as_deref() == Some(me) {
                self.remember_own(&m.id);
            }
        }
        Page {
            items: media.iter().map(|m| self.read(post, m, me)).collect(),
            after: next_after(list),
        }
    }
}

#[async_trait]
impl Feed for ThreadsListener {
    async fn streams(&self, _mark: &Mark) -> Result<Vec<Stream>, PublishError> {
        let since = Utc::now().timestamp() - self.adapter.listen_days as i64 * 86_400;
        let path = format!("{}/threads", self.adapter.user_id);
        let mut streams = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_POST_PAGES {
            let mut query = vec![
                ("fields", "id,timestamp,media_type".to_owned()),
                ("since", since.to_string()),
                ("limit", "100".to_owned()),
            ];
            if let Some(after) = &after {
                query.push(("after", after.clone()));
            }
            let list = get_json(self.get(&path, &query), READ_PERMISSION, &self.slow_down).await?;
            for post in list
                .get("data")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                // A repost shows someone else's post: its replies are theirs.
                let repost =
                    post.get("media_type").and_then(Value::as_str) == Some("REPOST_FACADE");
                if let Some(id) = post.get("id").and_then(Value::as_str)
                    && !repost
                {
                    streams.push(Stream {
                        key: id.to_owned(),
                        first: None,
                    });
                }
            }
            after = next_after(&list);
            if after.is_none() {
                break;
            }
        }
        // Last: a mention that is also a reply is yielded as the reply.
        streams.push(Stream {
            key: MENTIONS.to_owned(),
            first: None,
        });
        Ok(streams)
    }

    async fn page(
        &self,
        key: &str,
        mark: &Mark,
        after: Option<&str>,
    ) -> Result<Page, PublishError> {
        let me = self.username().await?.to_owned();
        let (path, mut query, post) = if key == MENTIONS {
            (
                format!("{}/mentions", self.adapter.user_id),
                vec![
                    ("fields", MENTION_FIELDS.to_owned()),
                    ("since", mark.floor().to_string()),
                    ("limit", "100".to_owned()),
                ],
                None,
            )
        } else {
            (
                format!("{key}/conversation"),
                vec![
                    ("fields", REPLY_FIELDS.to_owned()),
                    ("reverse", "true".to_owned()),
                ],
                Some(key),
            )
        };
        if let Some(after) = after {
            query.push(("after", after.to_owned()));
        }
        let list = get_page_json(self.get(&path, &query), READ_PERMISSION, &self.slow_down).await?;
        Ok(list.map_or_else(|| gone(key), |list| self.page_of(post, &list, &me)))
    }
}

#[async_trait]
impl Listener for ThreadsListener {
    fn kind(&self) -> &'static str {
        "threads"
    }

    async fn next_batch(&self, cursor: Option<&str>) -> Result<ListenBatch, PublishError> {
        poll_paced(
            &self.poller,
            self,
            cursor,
            self.adapter.listen_interval,
            &self.slow_down,
        )
        .await
    }
}
