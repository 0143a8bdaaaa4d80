//! Listening on Weibo: polling the comments the account receives and,
//! unless `listen_mentions = false`, the statuses and comments that
//! @mention it.
//!
//! ```toml
//! [[channels]]
//! name = "weibo"
//! kind = "weibo"
//! listen = true
//! listen_interval_secs = 120    # the default; see the rate limits below
//! listen_mentions = true        # the default
//! ```
//!
//! Each poll reads, with `since_id` and `count=100`:
//! - `GET 2/comments/to_me.json`: comments on the account's statuses
//!   (`comment`, parent the status) and answers to its comments (`reply`,
//!   parent the answered comment, `reply_comment`);
//! - `GET 2/statuses/mentions.json`: statuses naming the account
//!   (`mention`; a repost of one of the account's statuses that names it is
//!   a `quote` of it);
//! - `GET 2/comments/mentions.json`: comments naming the account under
//!   anyone's status (`mention`).
//!
//! The account's uid comes from `GET 2/account/get_uid.json`, asked once;
//! its own comments and statuses are never yielded. An item heard twice in
//! one poll (a comment under the account's status that also names it) is
//! yielded once, with the `comment`/`reply` kind.
//!
//! Ids are Weibo's decimal ids, as the adapter's receipts give them: a
//! status's id (`parent_id` of a comment on one of Clarion's posts matches
//! its receipt), a comment's id. `root_id` is the status a comment is under,
//! and a status is its own root; so `ReplyTo { root, parent: item_id }`
//! answers a comment with `comments/reply` and a status with
//! `comments/create`. Weibo has no page per comment: a comment's `url` is
//! its status's.
//!
//! Cursor: JSON with, per timeline, the newest id read (`since`). Weibo
//! answers `since_id` with the *newest* page after it, so when a page comes
//! back full (more than 100 new items since the last poll), the listener
//! walks down with `max_id` below the oldest id seen (`max`), one page per
//! poll a few seconds apart, remembering the newest id of the walk (`top`),
//! and only moves `since` to it when the walk reaches `since`: the cursor
//! never passes an item that was not returned. The first run (no `since`)
//! starts from now: it reads the newest page and yields only what was
//! written after the listener was built, and its newest id becomes the
//! cursor.
//!
//! Access and rate: the three timelines need the user's OAuth2 token (the
//! adapter's `access_token`) and the app's read access to them (应用 →
//! 接口管理; mentions and comments are granted to the authorizing user's own
//! data). Weibo counts requests per user and per IP **per hour**; a poll is
//! three requests (one without mentions), so the 120-second default is 90 an
//! hour. Error codes are the adapter's: 10023/10024 (hourly limit) are
//! `rate_limited` for an hour, 21327/21332 and the other token codes
//! `auth_expired` (renew `access_token`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use clarion_core::{
    Engagement, EngagementAuthor, EngagementKind, ErrorClass, ListenBatch, Listener, PublishError,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::OnceCell;

use super::{WeiboAdapter, failure};
use crate::http::for_check;

/// `count` of a poll: well inside the documented maximum of 200.
const PAGE: usize = 100;
/// Between two polls while walking down a backlog of full pages.
const CATCH_UP_WAIT: Duration = Duration::from_secs(5);

pub(super) fn listener(adapter: WeiboAdapter) -> Arc<dyn Listener> {
    Arc::new(WeiboListener {
        adapter,
        me: OnceCell::new(),
        started: Utc::now(),
    })
}

#[derive(Debug)]
struct WeiboListener {
    adapter: WeiboAdapter,
    /// The account's uid, to drop its own comments and statuses.
    me: OnceCell<String>,
    /// Where the first run starts (no history before it).
    started: DateTime<Utc>,
}

/// The three timelines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timeline {
    CommentsToMe,
    StatusMentions,
    CommentMentions,
}

impl Timeline {
    fn path(self) -> &'static str {
        match self {
            Self::CommentsToMe => "/2/comments/to_me.json",
            Self::StatusMentions => "/2/statuses/mentions.json",
            Self::CommentMentions => "/2/comments/mentions.json",
        }
    }

    /// The array the answer holds the items in.
    fn field(self) -> &'static str {
        match self {
            Self::StatusMentions => "statuses",
            Self::CommentsToMe | Self::CommentMentions => "comments",
        }
    }
}

/// Where one timeline stands; see the module doc.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Feed {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    top: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Cursor {
    #[serde(default)]
    to_me: Feed,
    #[serde(default)]
    mentions: Feed,
    #[serde(default)]
    comment_mentions: Feed,
}

impl Cursor {
    fn feed(&mut self, timeline: Timeline) -> &mut Feed {
        match timeline {
            Timeline::CommentsToMe => &mut self.to_me,
            Timeline::StatusMentions => &mut self.mentions,
            Timeline::CommentMentions => &mut self.comment_mentions,
        }
    }
}

/// Weibo ids are decimal strings: compare by length, then text.
fn newer(a: &str, b: &str) -> bool {
    (a.len(), a) > (b.len(), b)
}

fn is_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
}

/// `idstr`, else `id` (a JSON number or string).
fn id_of(value: &Value) -> Option<String> {
    let id = match value.get("idstr").and_then(Value::as_str) {
        Some(s) => s.to_owned(),
        None => match value.get("id")? {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        },
    };
    is_id(&id).then_some(id)
}

/// Weibo's `created_at`: `Wed Jun 01 00:50:25 +0800 2011`.
fn created_ms(value: &Value) -> Result<i64, String> {
    let text = value
        .get("created_at")
        .and_then(Value::as_str)
        .ok_or("missing created_at")?;
    DateTime::parse_from_str(text, "%a %b %d %H:%M:%S %z %Y")
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("created_at `{text}`: {e}"))
}

fn author(value: &Value) -> Result<EngagementAuthor, String> {
    let user = value.get("user").ok_or("missing user")?;
    let id = id_of(user).ok_or("user without id")?;
    let screen_name = user
        .get("screen_name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name = user
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .unwrap_or(screen_name);
    Ok(EngagementAuthor {
        id,
        handle: if screen_name.is_empty() {
            String::new()
        } else {
            format!("@{screen_name}")
        },
        display_name: name.to_owned(),
        roles: Vec::new(),
    })
}

fn status_url(id: &str) -> String {
    format!("https://m.weibo.cn/status/{id}")
}

/// One item of a timeline as an engagement; `Ok(None)` for the account's own.
fn read(timeline: Timeline, raw: &Value, me: &str) -> Result<Option<Engagement>, String> {
    let id = id_of(raw).ok_or("item without a readable id")?;
    let what = match timeline {
        Timeline::StatusMentions => "status",
        _ => "comment",
    };
    let fail = |e: String| format!("{what} {id}: {e}");
    let author = author(raw).map_err(fail)?;
    if author.id == me {
        return Ok(None);
    }
    let created_at_ms = created_ms(raw).map_err(fail)?;
    let text = raw
        .get("text")
        .and_then(Value::as_str)
        .ok_or_else(|| fail("missing text".into()))?
        .to_owned();
    let engagement = match timeline {
        Timeline::StatusMentions => {
            // A repost of one of the account's statuses, naming it: a quote.
            let quoted = raw
                .get("retweeted_status")
                .filter(|r| r.pointer("/user/id").is_some_and(|u| same_id(u, me)))
                .and_then(id_of);
            Engagement {
                kind: if quoted.is_some() {
                    EngagementKind::Quote
                } else {
                    EngagementKind::Mention
                },
                url: Some(status_url(&id)),
                parent_id: quoted,
                // A status starts its own thread: answering it comments on it.
                root_id: id.clone(),
                item_id: id,
                author,
                text,
                place: None,
                created_at_ms,
            }
        }
        Timeline::CommentsToMe | Timeline::CommentMentions => {
            let status = raw
                .get("status")
                .and_then(id_of)
                .ok_or_else(|| fail("missing the status it is under".into()))?;
            let answered = raw.get("reply_comment").and_then(id_of);
            let kind = match (timeline, &answered) {
                (Timeline::CommentMentions, _) => EngagementKind::Mention,
                (_, Some(_)) => EngagementKind::Reply,
                (_, None) => EngagementKind::Comment,
            };
            Engagement {
                kind,
                url: Some(status_url(&status)),
                parent_id: Some(answered.unwrap_or_else(|| status.clone())),
                root_id: status,
                item_id: id,
                author,
                text,
                place: None,
                created_at_ms,
            }
        }
    };
    Ok(Some(engagement))
}

/// Whether a JSON id (number or string) is `me`.
fn same_id(value: &Value, me: &str) -> bool {
    match value {
        Value::String(s) => s == me,
        Value::Number(n) => n.to_string() == me,
        _ => false,
    }
}

/// `id - 1` for a `max_id` strictly below `id` (Weibo's `max_id` is
/// inclusive).
fn below(id: &str) -> Option<String> {
    id.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_sub(1))
        .map(|n| n.to_string())
}

impl WeiboListener {
    /// A GET with the token, its answer classified like the adapter's. A
    /// read posts nothing, so a 5xx or timeout is transient, not unknown.
    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, PublishError> {
        let request = self
            .adapter
            .client
            .get(self.adapter.url(path))
            .query(&[("access_token", self.adapter.token.expose())])
            .query(query);
        let reply = self.adapter.send(request).await.map_err(for_check)?;
        let error = || for_check(self.adapter.redacted(failure(&reply)));
        if !reply.status.is_success() {
            return Err(error());
        }
        let value: Value = serde_json::from_str(&reply.body).map_err(|_| {
            for_check(
                self.adapter
                    .redacted(crate::group_robot::unreadable("Weibo", &reply)),
            )
        })?;
        if value.get("error_code").is_some() {
            return Err(error());
        }
        Ok(value)
    }

    async fn me(&self) -> Result<&str, PublishError> {
        self.me
            .get_or_try_init(|| async {
                let value = self.get("/2/account/get_uid.json", &[]).await?;
                value
                    .get("uid")
                    .filter(|u| u.is_number() || u.is_string())
                    .map(|u| match u {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .ok_or_else(|| {
                        PublishError::new(
                            ErrorClass::Transient,
                            "2/account/get_uid.json gave no uid",
                        )
                    })
            })
            .await
            .map(String::as_str)
    }

    /// Reads one page of a timeline and moves its place; returns the raw
    /// items. See the module doc for `since`, `max` and `top`.
    async fn poll(&self, timeline: Timeline, feed: &mut Feed) -> Result<Vec<Value>, PublishError> {
        let mut query = vec![("count", PAGE.to_string())];
        if let Some(since) = &feed.since {
            query.push(("since_id", since.clone()));
        }
        if let Some(max) = &feed.max {
            query.push(("max_id", max.clone()));
        }
        let value = self.get(timeline.path(), &query).await?;
        let items = value
            .get(timeline.field())
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let ids: Vec<String> = items.iter().filter_map(id_of).collect();
        let newest = ids.iter().fold(None::<&String>, |n, id| match n {
            Some(n) if !newer(id, n) => Some(n),
            _ => Some(id),
        });
        let oldest = ids.iter().fold(None::<&String>, |o, id| match o {
            Some(o) if !newer(o, id) => Some(o),
            _ => Some(id),
        });
        let first_run = feed.since.is_none() && feed.max.is_none();
        let more = items.len() >= PAGE && !first_run;
        match oldest.and_then(|o| below(o)).filter(|_| more) {
            // A full page: older items may lie between `since` and this page.
            Some(max) => {
                if feed.top.is_none() {
                    feed.top = newest.cloned();
                }
                feed.max = Some(max);
            }
            None => {
                if let Some(top) = feed.top.take().or_else(|| newest.cloned())
                    && feed.since.as_deref().is_none_or(|s| newer(&top, s))
                {
                    feed.since = Some(top);
                }
                feed.max = None;
            }
        }
        Ok(items)
    }
}

#[async_trait]
impl Listener for WeiboListener {
    fn kind(&self) -> &'static str {
        "weibo"
    }

    async fn next_batch(&self, cursor: Option<&str>) -> Result<ListenBatch, PublishError> {
        let me = self.me().await?.to_owned();
        let stored: Cursor = match cursor {
            None => Cursor::default(),
            Some(text) => serde_json::from_str(text).unwrap_or_else(|e| {
                tracing::warn!(
                    cursor = text,
                    "stored Weibo cursor is unreadable ({e}); starting from now"
                );
                Cursor::default()
            }),
        };
        let mut next = stored.clone();
        let mut timelines = vec![Timeline::CommentsToMe];
        if self.adapter.listen_mentions {
            timelines.extend([Timeline::StatusMentions, Timeline::CommentMentions]);
        }
        let started_ms = self.started.timestamp_millis();
        let mut batch = ListenBatch::default();
        let mut seen = HashSet::new();
        for timeline in timelines {
            let feed = next.feed(timeline);
            let first_run = feed.since.is_none() && feed.max.is_none();
            // A failed timeline fails the call: nothing of this poll is
            // stored, so no cursor moves past what was not returned.
            let items = self.poll(timeline, feed).await?;
            for raw in &items {
                match read(timeline, raw, &me) {
                    Ok(Some(e)) if first_run && e.created_at_ms < started_ms => {}
                    Ok(Some(e)) => {
                        if seen.insert(e.item_id.clone()) {
                            batch.events.push(e);
                        }
                    }
                    Ok(None) => {}
                    Err(reason) => batch.skipped.push(reason),
                }
            }
        }
        let walking = [&next.to_me, &next.mentions, &next.comment_mentions]
            .iter()
            .any(|f| f.max.is_some());
        batch.wait = if walking {
            CATCH_UP_WAIT
        } else {
            self.adapter.listen_interval
        };
        if next != stored {
            batch.cursor = serde_json::to_string(&next).ok();
        }
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    //! Against a fake Weibo answering as Weibo documents: `{"comments":
    //! [...], "total_number": n}` / `{"statuses": [...]}` timelines,
    //! `{"error", "error_code", "request"}` with HTTP 400/403 on failure.

    use std::collections::HashMap;
    use std::sync::Mutex;

    use axum::extract::{OriginalUri, Query};
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};
    use clarion_core::{AdapterContext, AdapterFactory, ChannelConfig};
    use serde_json::json;

    use super::super::{Factory, RATE_LIMIT_WAIT};
    use super::*;

    const ME: &str = "1404376560";
    const TOKEN: &str = "2.00ListenTokenValue";

    type Answer = Box<dyn Fn(&str, &HashMap<String, String>) -> (u16, Value) + Send + Sync>;
    /// The path and query of every request.
    type Log = Arc<Mutex<Vec<(String, HashMap<String, String>)>>>;

    struct Fake {
        base: String,
        seen: Log,
    }

    impl Fake {
        /// The queries sent to one path.
        fn queries(&self, path: &str) -> Vec<HashMap<String, String>> {
            self.seen
                .lock()
                .unwrap()
                .iter()
                .filter(|(p, _)| p == path)
                .map(|(_, q)| q.clone())
                .collect()
        }
    }

    async fn start(answer: Answer) -> Fake {
        let seen: Log = Arc::default();
        let record = seen.clone();
        let answer = Arc::new(answer);
        let app = axum::Router::new().fallback(
            move |OriginalUri(uri): OriginalUri, Query(query): Query<HashMap<String, String>>| {
                let record = record.clone();
                let answer = answer.clone();
                async move {
                    record
                        .lock()
                        .unwrap()
                        .push((uri.path().to_owned(), query.clone()));
                    if query.get("access_token").map(String::as_str) != Some(TOKEN) {
                        return (
                            StatusCode::BAD_REQUEST,
                            axum::Json(json!({"error": "invalid_access_token", "error_code": 21332, "request": uri.path()})),
                        )
                            .into_response();
                    }
                    if uri.path() == "/2/account/get_uid.json" {
                        let uid: i64 = ME.parse().unwrap();
                        return axum::Json(json!({ "uid": uid })).into_response();
                    }
                    let (status, body) = answer(uri.path(), &query);
                    let response: Response =
                        (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
                    response
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Fake { base, seen }
    }

    fn listener_with(base: &str, extra: Value) -> Arc<dyn Listener> {
        // SAFETY: every test sets this variable to the same value.
        unsafe { std::env::set_var("CLARION_TEST_WEIBO_LISTEN_TOKEN", TOKEN) };
        let mut config = json!({
            "name": "weibo", "kind": "weibo", "listen": true,
            "access_token": {"env": "CLARION_TEST_WEIBO_LISTEN_TOKEN"},
            "safe_url": "https://example.com/", "api_base": base,
        });
        config
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let config: ChannelConfig = serde_json::from_value(config).unwrap();
        Factory
            .build_listener(&config, &AdapterContext::default())
            .unwrap()
            .expect("weibo listens")
    }

    fn user(id: i64, screen_name: &str) -> Value {
        json!({"id": id, "idstr": id.to_string(), "screen_name": screen_name, "name": screen_name,
               "profile_image_url": "http://tp1.sinaimg.cn/1/50/1/1"})
    }

    fn status(id: i64, by: Value, text: &str) -> Value {
        json!({"created_at": "Mon Jan 05 18:00:00 +0800 2026", "id": id, "idstr": id.to_string(),
               "mid": id.to_string(), "text": text, "source": "", "user": by})
    }

    fn comment(id: i64, by: Value, text: &str, on: Value) -> Value {
        json!({"created_at": "Mon Jan 05 18:00:00 +0800 2026", "id": id, "idstr": id.to_string(),
               "mid": id.to_string(), "text": text, "source": "", "user": by, "status": on})
    }

    fn our_status() -> Value {
        status(
            5000000000000001,
            user(1404376560, "clarion"),
            "新版本发布 https://example.com/r/1",
        )
    }

    /// The timelines after `since_id=…0100`; empty after the newest.
    fn timelines(path: &str, query: &HashMap<String, String>) -> (u16, Value) {
        let since = query.get("since_id").map(String::as_str);
        let alice = user(11, "alice");
        match (path, since) {
            ("/2/comments/to_me.json", Some("5000000000000100")) => {
                let mut answering = comment(
                    5000000000000103,
                    alice.clone(),
                    "回复@bob:同意",
                    our_status(),
                );
                answering["reply_comment"] =
                    comment(5000000000000102, user(12, "bob"), "不错", our_status());
                (
                    200,
                    json!({"comments": [
                    answering,
                    comment(5000000000000102, user(12, "bob"), "不错", our_status()),
                    comment(5000000000000101, user(1404376560, "clarion"), "谢谢", our_status()),
                    {"id": 5000000000000104_i64, "text": "no user", "created_at": "Mon Jan 05 18:00:00 +0800 2026"},
                ], "hasvisible": false, "previous_cursor": 0, "next_cursor": 0, "total_number": 4}),
                )
            }
            ("/2/statuses/mentions.json", Some("5000000000000100")) => {
                let mut repost = status(5000000000000105, user(13, "carol"), "转发 @clarion 好文");
                repost["retweeted_status"] = our_status();
                (
                    200,
                    json!({"statuses": [
                    repost,
                    status(5000000000000106, alice, "@clarion 你好"),
                ], "total_number": 2}),
                )
            }
            ("/2/comments/mentions.json", Some("5000000000000100")) => {
                let theirs = status(4000000000000001, user(14, "dave"), "别人的微博");
                (
                    200,
                    json!({"comments": [
                    comment(5000000000000107, user(14, "dave"), "@clarion 来看", theirs),
                    // Also in to_me: yielded once, as the comment it is.
                    comment(5000000000000102, user(12, "bob"), "不错", our_status()),
                ], "total_number": 2}),
                )
            }
            _ => (
                200,
                json!({"comments": [], "statuses": [], "total_number": 0}),
            ),
        }
    }

    fn cursor_at(id: &str) -> String {
        json!({"to_me": {"since": id}, "mentions": {"since": id}, "comment_mentions": {"since": id}})
            .to_string()
    }

    #[tokio::test]
    async fn weibo_comments_replies_and_mentions_become_engagements() {
        let fake = start(Box::new(timelines)).await;
        let listener = listener_with(&fake.base, json!({}));
        let batch = listener
            .next_batch(Some(&cursor_at("5000000000000100")))
            .await
            .unwrap();
        let summary: Vec<_> = batch
            .events
            .iter()
            .map(|e| {
                (
                    e.kind,
                    e.item_id.as_str(),
                    e.parent_id.as_deref(),
                    e.root_id.as_str(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    EngagementKind::Reply,
                    "5000000000000103",
                    Some("5000000000000102"),
                    "5000000000000001"
                ),
                (
                    EngagementKind::Comment,
                    "5000000000000102",
                    Some("5000000000000001"),
                    "5000000000000001"
                ),
                (
                    EngagementKind::Quote,
                    "5000000000000105",
                    Some("5000000000000001"),
                    "5000000000000105"
                ),
                (
                    EngagementKind::Mention,
                    "5000000000000106",
                    None,
                    "5000000000000106"
                ),
                (
                    EngagementKind::Mention,
                    "5000000000000107",
                    Some("4000000000000001"),
                    "4000000000000001"
                ),
            ]
        );
        assert_eq!(batch.skipped, ["comment 5000000000000104: missing user"]);
        let reply = &batch.events[0];
        assert_eq!(
            reply.author,
            EngagementAuthor {
                id: "11".into(),
                handle: "@alice".into(),
                display_name: "alice".into(),
                roles: Vec::new(),
            }
        );
        assert_eq!(reply.text, "回复@bob:同意");
        assert_eq!(
            reply.url.as_deref(),
            Some("https://m.weibo.cn/status/5000000000000001")
        );
        // 18:00 at +08:00 is 10:00 UTC.
        assert_eq!(reply.created_at_ms, 1_767_607_200_000);
        assert_eq!(
            batch.events[3].url.as_deref(),
            Some("https://m.weibo.cn/status/5000000000000106")
        );
        assert_eq!(batch.wait, Duration::from_secs(120));

        let to_me = fake.queries("/2/comments/to_me.json");
        assert_eq!(to_me.len(), 1);
        assert_eq!(to_me[0]["since_id"], "5000000000000100");
        assert_eq!(to_me[0]["count"], "100");
        assert_eq!(to_me[0].get("max_id"), None);
        assert_eq!(fake.queries("/2/statuses/mentions.json").len(), 1);
        assert_eq!(fake.queries("/2/comments/mentions.json").len(), 1);

        // The cursor moves to the newest id of each timeline, and a second
        // call with it hears nothing new and keeps it.
        let cursor = batch.cursor.unwrap();
        let stored: Cursor = serde_json::from_str(&cursor).unwrap();
        assert_eq!(stored.to_me.since.as_deref(), Some("5000000000000104"));
        assert_eq!(stored.mentions.since.as_deref(), Some("5000000000000106"));
        assert_eq!(
            stored.comment_mentions.since.as_deref(),
            Some("5000000000000107")
        );
        let again = listener.next_batch(Some(&cursor)).await.unwrap();
        assert_eq!(again.events, vec![]);
        assert_eq!(again.cursor, None);
        assert_eq!(
            fake.queries("/2/comments/to_me.json")[1]["since_id"],
            "5000000000000104"
        );
        assert_eq!(
            fake.queries("/2/account/get_uid.json").len(),
            1,
            "the uid is asked once"
        );
    }

    #[tokio::test]
    async fn weibo_first_run_starts_from_now() {
        let fake = start(Box::new(|path, _| {
            let old = comment(5000000000000001, user(11, "alice"), "旧评论", our_status());
            match path {
                "/2/comments/to_me.json" => (200, json!({"comments": [old], "total_number": 1})),
                _ => (
                    200,
                    json!({"statuses": [], "comments": [], "total_number": 0}),
                ),
            }
        }))
        .await;
        let listener = listener_with(&fake.base, json!({"listen_mentions": false}));
        let batch = listener.next_batch(None).await.unwrap();
        assert_eq!(
            batch.events,
            vec![],
            "written before the listener was built"
        );
        let stored: Cursor = serde_json::from_str(&batch.cursor.unwrap()).unwrap();
        assert_eq!(stored.to_me.since.as_deref(), Some("5000000000000001"));
        assert_eq!(stored.mentions, Feed::default());
        assert_eq!(
            fake.queries("/2/comments/to_me.json")[0].get("since_id"),
            None
        );
        assert!(
            fake.queries("/2/statuses/mentions.json").is_empty(),
            "listen_mentions = false polls only the comments"
        );
    }

    #[tokio::test]
    async fn weibo_a_full_page_is_walked_down_before_the_cursor_moves() {
        // 100 new comments after …0000 on the first page, two more below.
        let fake = start(Box::new(|path, query| {
            if path != "/2/comments/to_me.json" {
                return (200, json!({"statuses": [], "comments": []}));
            }
            let max = query.get("max_id").and_then(|m| m.parse::<i64>().ok());
            let ids: Vec<i64> = match max {
                None => (3..=102).rev().collect(),
                Some(max) => (1..=2).filter(|i| *i <= max).rev().collect(),
            };
            let comments: Vec<Value> = ids
                .iter()
                .map(|i| {
                    comment(
                        6000000000000000 + i,
                        user(11, "alice"),
                        "评论",
                        our_status(),
                    )
                })
                .collect();
            (200, json!({"comments": comments}))
        }))
        .await;
        let listener = listener_with(&fake.base, json!({"listen_mentions": false}));
        let first = listener
            .next_batch(Some(&cursor_at("6000000000000000")))
            .await
            .unwrap();
        assert_eq!(first.events.len(), 100);
        assert_eq!(first.wait, CATCH_UP_WAIT, "more to read: ask again soon");
        let walking: Cursor = serde_json::from_str(first.cursor.as_deref().unwrap()).unwrap();
        assert_eq!(
            walking.to_me,
            Feed {
                since: Some("6000000000000000".into()),
                max: Some("6000000000000002".into()),
                top: Some("6000000000000102".into()),
            },
            "the cursor stays before what was not read yet"
        );
        let second = listener.next_batch(first.cursor.as_deref()).await.unwrap();
        let ids: Vec<_> = second.events.iter().map(|e| e.item_id.as_str()).collect();
        assert_eq!(ids, ["6000000000000002", "6000000000000001"]);
        let done: Cursor = serde_json::from_str(second.cursor.as_deref().unwrap()).unwrap();
        assert_eq!(
            done.to_me,
            Feed {
                since: Some("6000000000000102".into()),
                max: None,
                top: None,
            }
        );
        assert_eq!(second.wait, Duration::from_secs(120));
        let queries = fake.queries("/2/comments/to_me.json");
        assert_eq!(queries[1]["since_id"], "6000000000000000");
        assert_eq!(queries[1]["max_id"], "6000000000000002");
    }

    #[tokio::test]
    async fn weibo_listen_rate_limit_waits_an_hour() {
        let fake = start(Box::new(|path, _| {
            (
                403,
                json!({"error": "User requests out of rate limit!", "error_code": 10023, "request": path}),
            )
        }))
        .await;
        let error = listener_with(&fake.base, json!({}))
            .next_batch(Some(&cursor_at("1")))
            .await
            .unwrap_err();
        assert_eq!(error.class, ErrorClass::RateLimited);
        assert_eq!(error.retry_after, Some(RATE_LIMIT_WAIT));
        assert!(error.message.contains("per hour"), "{error}");
    }

    #[tokio::test]
    async fn weibo_listen_expired_token_is_auth_expired_without_the_token() {
        let fake = start(Box::new(|path, _| {
            (
                400,
                json!({"error": format!("expired_token {TOKEN}"), "error_code": 21327, "request": path}),
            )
        }))
        .await;
        let error = listener_with(&fake.base, json!({}))
            .next_batch(Some(&cursor_at("1")))
            .await
            .unwrap_err();
        assert_eq!(error.class, ErrorClass::AuthExpired);
        assert!(error.message.contains("expired"), "{error}");
        assert!(!error.to_string().contains(TOKEN), "{error}");
    }

    #[tokio::test]
    async fn weibo_listen_server_error_is_transient() {
        let fake = start(Box::new(|_, _| (502, json!("bad gateway")))).await;
        let error = listener_with(&fake.base, json!({}))
            .next_batch(Some(&cursor_at("1")))
            .await
            .unwrap_err();
        assert_eq!(error.class, ErrorClass::Transient, "a read posted nothing");
    }

    #[test]
    fn weibo_ids_compare_as_numbers_and_step_below() {
        assert!(newer("1000", "999"));
        assert!(!newer("5", "5"));
        assert_eq!(
            below("5000000000000100").as_deref(),
            Some("5000000000000099")
        );
        assert_eq!(below("0"), None);
        assert_eq!(
            id_of(&json!({"id": 12438492184_i64})).as_deref(),
            Some("12438492184")
        );
        assert_eq!(id_of(&json!({"idstr": "x1"})), None);
    }

    #[test]
    fn weibo_listen_interval_is_checked() {
        // SAFETY: every test sets this variable to the same value.
        unsafe { std::env::set_var("CLARION_TEST_WEIBO_LISTEN_TOKEN", TOKEN) };
        let config = |interval: Value| -> ChannelConfig {
            serde_json::from_value(json!({
                "name": "weibo", "kind": "weibo", "listen": true,
                "access_token": {"env": "CLARION_TEST_WEIBO_LISTEN_TOKEN"},
                "safe_domain": "example.com",
                "listen_interval_secs": interval
            }))
            .unwrap()
        };
        let error = Factory
            .build_listener(&config(json!(5)), &AdapterContext::default())
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "channel `weibo` listen_interval_secs: must be between 10 and 86400 seconds"
        );
        assert!(
            Factory
                .build_listener(&config(json!(600)), &AdapterContext::default())
                .is_ok()
        );
    }
}
