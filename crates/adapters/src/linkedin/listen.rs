//! Listening on LinkedIn: comments on the author's recent posts, and the
//! replies nested under them.
//!
//! ```toml
//! [[channels]]
//! name = "linkedin-company"
//! kind = "linkedin"
//! listen = true
//! listen_interval_secs = 600    # the default
//! listen_days = 7               # the default: watch posts of the last 7 days
//! ```
//!
//! LinkedIn pushes nothing to a member and has no "comments to me" feed, so
//! each poll walks the documented way:
//! 1. the author's posts, newest first: `GET /rest/posts?author={urn}&q=author
//!    &count=50&sortBy=CREATED` (`X-RestLi-Method: FINDER`), keeping those
//!    created in the last `listen_days` days;
//! 2. each post's comments: `GET /rest/socialActions/{post URN}/comments`
//!    (Comments API, "Get Comments on Shares"), 100 a page;
//! 3. the replies under each comment that has some (`commentsSummary`):
//!    `GET /rest/socialActions/{comment URN}/comments` ("Get Comments on
//!    Comments").
//!
//! A comment on a post is a `comment` (parent: the post URN, the adapter's
//! receipt id, so it matches the published target); a nested comment
//! (`parentComment`) is a `reply` (parent: that comment). `root_id` is the
//! post, `item_id` the comment URN (`urn:li:comment:(<thread>,<id>)`), so
//! `ReplyTo { root, parent: item_id }` answers it (see the adapter). The
//! author's own comments are never yielded. A comment carries the actor's
//! URN but not a name (names need the restricted profile APIs): the
//! author's id and handle are that URN, the display name stays empty.
//!
//! Cursor: JSON with the newest `created.time` yielded (`after`, epoch ms)
//! and the comment URNs created at exactly that millisecond (`ids`), so a
//! comment is yielded once even when two share a time. The first run starts
//! from now (when the listener was built) and stores that time as the
//! cursor. Comments on posts older than `listen_days` are not heard.
//!
//! Access: reading needs `r_organization_social` (`r_organization_social_feed`
//! in the Community Management product) for an organization page, with an
//! administrator's token; for a member, `r_member_social`, which LinkedIn
//! grants to select developers only. Replying needs
//! `w_organization_social` / `w_member_social`. A 401 refreshes the token
//! once when a refresh token is configured (else `auth_expired`); a 429 is
//! `rate_limited` for `Retry-After`, or an hour (LinkedIn's limits are
//! daily, reset at midnight UTC).

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use clarion_core::{
    Engagement, EngagementAuthor, EngagementKind, ErrorClass, ListenBatch, Listener, PublishError,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{LinkedInAdapter, classify, comment_url, encode_urn};
use crate::http::for_check;

/// Posts read per poll (the newest; those outside `listen_days` dropped).
const POSTS: usize = 50;
/// Comments per page, and pages read per post or comment.
const PAGE: usize = 100;
const MAX_PAGES: usize = 5;
/// A 429 without `Retry-After`.
const RATE_LIMIT_WAIT: Duration = Duration::from_secs(60 * 60);
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

pub(super) fn listener(adapter: LinkedInAdapter) -> Arc<dyn Listener> {
    Arc::new(LinkedInListener {
        adapter,
        started_ms: Utc::now().timestamp_millis(),
    })
}

#[derive(Debug)]
struct LinkedInListener {
    adapter: LinkedInAdapter,
    /// Where the first run starts (no history before it).
    started_ms: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Cursor {
    /// The newest comment time yielded (epoch ms).
    after: i64,
    /// The comments created at exactly `after`, already yielded.
    #[serde(default)]
    ids: BTreeSet<String>,
}

impl Cursor {
    fn is_new(&self, time: i64, urn: &str) -> bool {
        time > self.after || (time == self.after && !self.ids.contains(urn))
    }

    fn advance(&mut self, time: i64, urn: &str) {
        if time > self.after {
            self.after = time;
            self.ids.clear();
        }
        if time == self.after {
            self.ids.insert(urn.to_owned());
        }
    }
}

/// One comment as LinkedIn gives it, read leniently.
struct Comment {
    urn: String,
    actor: String,
    time: i64,
    text: String,
    parent: Option<String>,
    /// Whether it has nested comments (or may have: no summary given).
    has_replies: bool,
}

fn read_comment(raw: &Value) -> Result<Comment, String> {
    let urn = ["commentUrn", "$URN"]
        .iter()
        .find_map(|k| raw.get(*k).and_then(Value::as_str))
        .map(str::to_owned)
        .or_else(|| {
            let object = raw.get("object")?.as_str()?;
            let id = raw.get("id")?.as_str()?;
            Some(format!("urn:li:comment:({object},{id})"))
        })
        .ok_or("comment without a URN")?;
    let fail = |what: &str| format!("comment {urn}: missing {what}");
    let actor = raw
        .get("actor")
        .and_then(Value::as_str)
        .ok_or_else(|| fail("actor"))?
        .to_owned();
    let time = raw
        .pointer("/created/time")
        .and_then(Value::as_i64)
        .ok_or_else(|| fail("created.time"))?;
    // An image-only comment has no text.
    let text = raw
        .pointer("/message/text")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let has_replies = match raw.get("commentsSummary") {
        None => true,
        Some(summary) => ["aggregatedTotalComments", "totalFirstLevelComments"]
            .iter()
            .any(|k| summary.get(*k).and_then(Value::as_i64).unwrap_or(0) > 0),
    };
    Ok(Comment {
        parent: raw
            .get("parentComment")
            .and_then(Value::as_str)
            .map(str::to_owned),
        urn,
        actor,
        time,
        text,
        has_replies,
    })
}

impl LinkedInListener {
    /// A Rest.li GET with the adapter's token handling (refresh once on
    /// 401); failures classified for a read (nothing was created).
    async fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
        finder: bool,
    ) -> Result<Value, PublishError> {
        let a = &self.adapter;
        let url = format!("{}{path}", a.api_base);
        let answer = a
            .call(|token| {
                let request = a.rest(a.client.get(&url), token).query(query);
                if finder {
                    request.header("X-RestLi-Method", "FINDER")
                } else {
                    request
                }
            })
            .await
            .map_err(for_check)?;
        if !answer.status.is_success() {
            let mut e = for_check(classify(&answer, false));
            if e.class == ErrorClass::RateLimited && e.retry_after.is_none() {
                e.retry_after = Some(RATE_LIMIT_WAIT);
            }
            return Err(e);
        }
        serde_json::from_str(&answer.body).map_err(|e| {
            PublishError::new(
                ErrorClass::Transient,
                format!("LinkedIn answered {path} with unreadable JSON: {e}"),
            )
        })
    }

    /// Every page of the comments under a post or a comment.
    async fn comments(&self, target: &str) -> Result<Vec<Value>, PublishError> {
        let path = format!("/rest/socialActions/{}/comments", encode_urn(target));
        let mut all = Vec::new();
        for page in 0..MAX_PAGES {
            let query = [
                ("start", (page * PAGE).to_string()),
                ("count", PAGE.to_string()),
            ];
            let value = self.get(&path, &query, false).await?;
            let elements = value
                .get("elements")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let full = elements.len() >= PAGE;
            all.extend(elements);
            if !full {
                break;
            }
        }
        Ok(all)
    }

    /// The author's posts created since `since_ms`, as URNs.
    async fn recent_posts(
        &self,
        since_ms: i64,
        skipped: &mut Vec<String>,
    ) -> Result<Vec<String>, PublishError> {
        let query = [
            ("author", self.adapter.author.clone()),
            ("q", "author".to_owned()),
            ("count", POSTS.to_string()),
            ("sortBy", "CREATED".to_owned()),
        ];
        let value = self.get("/rest/posts", &query, true).await?;
        let mut posts = Vec::new();
        for post in value
            .get("elements")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(id) = post.get("id").and_then(Value::as_str) else {
                skipped.push("post without an id".to_owned());
                continue;
            };
            let created = ["createdAt", "publishedAt"]
                .iter()
                .find_map(|k| post.get(*k).and_then(Value::as_i64));
            match created {
                Some(t) if t >= since_ms => posts.push(id.to_owned()),
                Some(_) => {}
                None => skipped.push(format!("post {id}: missing createdAt")),
            }
        }
        Ok(posts)
    }

    fn engagement(&self, post: &str, comment: Comment) -> Engagement {
        let (kind, parent) = match &comment.parent {
            Some(parent) => (EngagementKind::Reply, parent.clone()),
            None => (EngagementKind::Comment, post.to_owned()),
        };
        Engagement {
            url: Some(comment_url(post, &comment.urn, comment.parent.as_deref())),
            item_id: comment.urn,
            kind,
            author: EngagementAuthor {
                id: comment.actor.clone(),
                handle: comment.actor,
                display_name: String::new(),
                roles: Vec::new(),
            },
            text: comment.text,
            parent_id: Some(parent),
            root_id: post.to_owned(),
            place: None,
            created_at_ms: comment.time,
        }
    }
}

#[async_trait]
impl Listener for LinkedInListener {
    fn kind(&self) -> &'static str {
        "linkedin"
    }

    async fn next_batch(&self, cursor: Option<&str>) -> Result<ListenBatch, PublishError> {
        let stored: Option<Cursor> = cursor.and_then(|text| {
            serde_json::from_str(text)
                .inspect_err(|e| {
                    tracing::warn!(
                        cursor = text,
                        "stored LinkedIn cursor is unreadable ({e}); starting from now"
                    );
                })
                .ok()
        });
        let from = stored.clone().unwrap_or(Cursor {
            after: self.started_ms,
            ids: BTreeSet::new(),
        });
        let mut next = from.clone();
        let mut batch = ListenBatch::default();
        let since_ms = Utc::now().timestamp_millis() - i64::from(self.adapter.listen_days) * DAY_MS;
        let posts = self.recent_posts(since_ms, &mut batch.skipped).await?;
        let mut seen = HashSet::new();
        // A failed read fails the call: the cursor only moves with a
        // complete batch.
        for post in &posts {
            let mut raw = self.comments(post).await?;
            let mut i = 0;
            while i < raw.len() {
                let comment = match read_comment(&raw[i]) {
                    Ok(c) => c,
                    Err(reason) => {
                        batch.skipped.push(reason);
                        i += 1;
                        continue;
                    }
                };
                i += 1;
                if !seen.insert(comment.urn.clone()) {
                    continue;
                }
                if comment.parent.is_none() && comment.has_replies {
                    raw.extend(self.comments(&comment.urn).await?);
                }
                if !from.is_new(comment.time, &comment.urn) {
                    continue;
                }
                next.advance(comment.time, &comment.urn);
                if comment.actor == self.adapter.author {
                    continue;
                }
                batch.events.push(self.engagement(post, comment));
            }
        }
        batch.events.sort_by_key(|e| e.created_at_ms);
        if stored.as_ref() != Some(&next) {
            batch.cursor = serde_json::to_string(&next).ok();
        }
        batch.wait = self.adapter.listen_interval;
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    //! Against a fake LinkedIn answering as the Posts and Comments API pages
    //! document: `{"elements": [...], "paging": {...}}` collections, comment
    //! URNs `urn:li:comment:(urn:li:activity:…,…)`, `{"message","status"}`
    //! errors.

    use std::collections::HashMap;
    use std::sync::Mutex;

    use axum::extract::{OriginalUri, Query};
    use axum::http::{HeaderMap, Method, StatusCode};
    use axum::response::{IntoResponse, Response};
    use clarion_core::{
        AdapterContext, AdapterFactory, AdapterStore, ChannelConfig, MemoryAdapterStore,
    };
    use serde_json::json;

    use super::super::Factory;
    use super::*;

    const ORG: &str = "urn:li:organization:42";
    const C1: &str = "urn:li:comment:(urn:li:activity:7001,1)";
    const R1: &str = "urn:li:comment:(urn:li:activity:7001,3)";
    const C5: &str = "urn:li:comment:(urn:li:activity:7002,5)";

    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        /// As sent: URNs in the path stay percent-encoded.
        path: String,
        query: HashMap<String, String>,
        auth: String,
        version: String,
        restli: String,
        finder: String,
    }

    type Reply = (u16, Vec<(&'static str, String)>, Value);

    struct Fake {
        base: String,
        seen: Arc<Mutex<Vec<Seen>>>,
    }

    impl Fake {
        fn paths(&self) -> Vec<String> {
            self.seen
                .lock()
                .unwrap()
                .iter()
                .map(|s| s.path.clone())
                .collect()
        }
    }

    async fn start(answer: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Fake {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let record = seen.clone();
        let answer = Arc::new(answer);
        let app = axum::Router::new().fallback(
            move |method: Method,
                  OriginalUri(uri): OriginalUri,
                  Query(query): Query<HashMap<String, String>>,
                  headers: HeaderMap| {
                let record = record.clone();
                let answer = answer.clone();
                async move {
                    let h = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let request = Seen {
                        method: method.to_string(),
                        path: uri.path().to_owned(),
                        query,
                        auth: h("authorization"),
                        version: h("linkedin-version"),
                        restli: h("x-restli-protocol-version"),
                        finder: h("x-restli-method"),
                    };
                    let (status, extra, body) = answer(&request);
                    record.lock().unwrap().push(request);
                    let mut response: Response =
                        (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
                    for (k, v) in extra {
                        response.headers_mut().insert(k, v.parse().unwrap());
                    }
                    response
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Fake { base, seen }
    }

    fn secret(value: &str) -> Value {
        let dir = std::env::temp_dir().join(format!("clarion-li-listen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(value);
        // Tests run in parallel and share these files: write a private copy and
        // rename it into place, so a reader never sees a half-written file.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let part = dir.join(format!("{value}.{n}.part"));
        std::fs::write(&part, value).unwrap();
        std::fs::rename(&part, &path).unwrap();
        json!({"file": path})
    }

    fn listener_with(base: &str, extra: Value, state: Arc<dyn AdapterStore>) -> Arc<dyn Listener> {
        let mut settings = json!({
            "author": ORG, "access_token": secret("at-OLD-secret"),
            "api_base": base, "oauth_base": base,
        });
        for (k, v) in extra.as_object().unwrap() {
            settings[k] = v.clone();
        }
        let config = ChannelConfig {
            name: "li".into(),
            kind: "linkedin".into(),
            listen: true,
            settings: settings.as_object().unwrap().clone(),
        };
        Factory
            .build_listener(&config, &AdapterContext { state })
            .unwrap()
            .expect("linkedin listens")
    }

    fn now_ms() -> i64 {
        Utc::now().timestamp_millis()
    }

    fn comment(urn: &str, actor: &str, time: i64, text: &str, replies: i64) -> Value {
        let (thread, id) = urn
            .strip_prefix("urn:li:comment:(")
            .and_then(|u| u.strip_suffix(')'))
            .and_then(|u| u.rsplit_once(','))
            .unwrap();
        json!({
            "actor": actor, "agent": "urn:li:person:agent",
            "commentUrn": urn, "$URN": urn, "id": id, "object": thread,
            "created": {"actor": actor, "time": time},
            "lastModified": {"actor": actor, "time": time},
            "message": {"attributes": [], "text": text},
            "likesSummary": {"selectedLikes": [], "aggregatedTotalLikes": 0, "likedByCurrentUser": false, "totalLikes": 0},
            "commentsSummary": {"selectedComments": [], "aggregatedTotalComments": replies, "totalFirstLevelComments": replies}
        })
    }

    fn collection(elements: Vec<Value>) -> Reply {
        let total = elements.len();
        (
            200,
            vec![],
            json!({"elements": elements, "paging": {"start": 0, "count": 100, "links": [], "total": total}}),
        )
    }

    fn enc(urn: &str) -> String {
        format!("/rest/socialActions/{}/comments", encode_urn(urn))
    }

    /// Two recent posts and an old one; comments and replies an hour old.
    fn linkedin(t: i64) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
        move |seen: &Seen| {
            let hour = 60 * 60 * 1000;
            let path = seen.path.as_str();
            if path == "/rest/posts" {
                return collection(vec![
                    json!({"id": "urn:li:share:7001", "author": ORG, "createdAt": t - DAY_MS, "publishedAt": t - DAY_MS, "lifecycleState": "PUBLISHED", "commentary": "hello"}),
                    json!({"id": "urn:li:ugcPost:7002", "author": ORG, "createdAt": t - 2 * DAY_MS, "lifecycleState": "PUBLISHED", "commentary": "two"}),
                    json!({"id": "urn:li:share:6000", "author": ORG, "createdAt": t - 30 * DAY_MS, "lifecycleState": "PUBLISHED", "commentary": "old"}),
                ]);
            }
            if path == enc("urn:li:share:7001") {
                let mut own = comment(
                    "urn:li:comment:(urn:li:activity:7001,2)",
                    ORG,
                    t - hour + 2,
                    "Thanks all",
                    0,
                );
                own["agent"] = json!("urn:li:person:admin");
                return collection(vec![
                    comment(C1, "urn:li:person:alice", t - hour, "Great post", 2),
                    own,
                    json!({"commentUrn": "urn:li:comment:(urn:li:activity:7001,9)", "message": {"text": "no actor"}}),
                ]);
            }
            if path == enc(C1) {
                let mut reply = comment(R1, "urn:li:person:bob", t - hour + 3, "Agreed", 0);
                reply["parentComment"] = json!(C1);
                let mut ours = comment(
                    "urn:li:comment:(urn:li:activity:7001,4)",
                    ORG,
                    t - hour + 4,
                    "Glad you liked it",
                    0,
                );
                ours["parentComment"] = json!(C1);
                return collection(vec![reply, ours]);
            }
            if path == enc("urn:li:ugcPost:7002") {
                return collection(vec![comment(
                    C5,
                    "urn:li:organization:77",
                    t - hour + 5,
                    "Congrats",
                    0,
                )]);
            }
            (
                404,
                vec![],
                json!({"status": 404, "message": format!("no {path}")}),
            )
        }
    }

    fn cursor_at(after: i64) -> String {
        json!({"after": after, "ids": []}).to_string()
    }

    #[tokio::test]
    async fn linkedin_comments_and_replies_become_engagements() {
        let t = now_ms();
        let fake = start(linkedin(t)).await;
        let listener = listener_with(
            &fake.base,
            json!({}),
            Arc::new(MemoryAdapterStore::default()),
        );
        let batch = listener
            .next_batch(Some(&cursor_at(t - 2 * 60 * 60 * 1000)))
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
                    EngagementKind::Comment,
                    C1,
                    Some("urn:li:share:7001"),
                    "urn:li:share:7001"
                ),
                (EngagementKind::Reply, R1, Some(C1), "urn:li:share:7001"),
                (
                    EngagementKind::Comment,
                    C5,
                    Some("urn:li:ugcPost:7002"),
                    "urn:li:ugcPost:7002"
                ),
            ],
            "the author's own comments are left out, the rest in time order"
        );
        assert_eq!(
            batch.skipped,
            ["comment urn:li:comment:(urn:li:activity:7001,9): missing actor"]
        );
        let first = &batch.events[0];
        assert_eq!(first.text, "Great post");
        assert_eq!(
            first.author,
            EngagementAuthor {
                id: "urn:li:person:alice".into(),
                handle: "urn:li:person:alice".into(),
                display_name: String::new(),
                roles: Vec::new(),
            }
        );
        assert_eq!(first.created_at_ms, t - 60 * 60 * 1000);
        assert_eq!(
            first.url.as_deref(),
            Some(
                "https://www.linkedin.com/feed/update/urn:li:share:7001/?commentUrn=urn%3Ali%3Acomment%3A%28urn%3Ali%3Aactivity%3A7001%2C1%29"
            )
        );
        assert!(
            batch.events[1]
                .url
                .as_deref()
                .unwrap()
                .contains("&replyUrn=urn%3Ali%3Acomment%3A%28urn%3Ali%3Aactivity%3A7001%2C3%29"),
            "{:?}",
            batch.events[1].url
        );
        assert_eq!(batch.wait, Duration::from_secs(600));

        let seen = fake.seen.lock().unwrap().clone();
        let posts = &seen[0];
        assert_eq!(posts.path, "/rest/posts");
        assert_eq!(posts.query["author"], ORG);
        assert_eq!(posts.query["q"], "author");
        assert_eq!(posts.query["sortBy"], "CREATED");
        assert_eq!(posts.finder, "FINDER");
        assert_eq!(posts.restli, "2.0.0");
        assert_eq!(posts.version, "202510");
        assert_eq!(posts.auth, "Bearer at-OLD-secret");
        assert!(seen.iter().all(|s| s.method == "GET"));
        assert_eq!(seen[1].query["count"], "100");
        assert_eq!(seen[1].query["start"], "0");
        assert!(
            !fake.paths().contains(&enc("urn:li:share:6000")),
            "a post older than listen_days is not read"
        );
        assert!(
            !fake
                .paths()
                .contains(&enc("urn:li:comment:(urn:li:activity:7001,2)")),
            "a comment without replies is not asked for them"
        );

        // The cursor holds the newest comment time (the author's own reply
        // included); a second call with it hears nothing new.
        let cursor = batch.cursor.unwrap();
        let stored: Cursor = serde_json::from_str(&cursor).unwrap();
        assert_eq!(stored.after, t - 60 * 60 * 1000 + 5);
        assert_eq!(stored.ids, BTreeSet::from([C5.to_owned()]));
        let again = listener.next_batch(Some(&cursor)).await.unwrap();
        assert_eq!(again.events, vec![]);
        assert_eq!(again.cursor, None);
    }

    #[tokio::test]
    async fn linkedin_a_comment_sharing_the_cursor_time_is_heard_once() {
        let t = now_ms();
        let fake = start(linkedin(t)).await;
        let listener = listener_with(
            &fake.base,
            json!({}),
            Arc::new(MemoryAdapterStore::default()),
        );
        // C1 was yielded at exactly this time; R1 comes 3 ms later.
        let at = t - 60 * 60 * 1000;
        let cursor = json!({"after": at, "ids": [C1]}).to_string();
        let batch = listener.next_batch(Some(&cursor)).await.unwrap();
        let ids: Vec<_> = batch.events.iter().map(|e| e.item_id.as_str()).collect();
        assert_eq!(ids, [R1, C5]);
    }

    #[tokio::test]
    async fn linkedin_first_run_starts_from_now() {
        let t = now_ms();
        let fake = start(linkedin(t)).await;
        let listener = listener_with(
            &fake.base,
            json!({}),
            Arc::new(MemoryAdapterStore::default()),
        );
        let batch = listener.next_batch(None).await.unwrap();
        assert_eq!(batch.events, vec![], "every comment predates the listener");
        let stored: Cursor = serde_json::from_str(&batch.cursor.unwrap()).unwrap();
        assert!(
            stored.after >= t && stored.after <= now_ms(),
            "{}",
            stored.after
        );
        assert!(stored.ids.is_empty());
    }

    #[tokio::test]
    async fn linkedin_listen_rate_limit_waits_for_retry_after() {
        let fake = start(|_| {
            (
                429,
                vec![("retry-after", "30".to_owned())],
                json!({"status": 429, "message": "Resource level throttle APPLICATION DAY limit for calls to this resource is reached."}),
            )
        })
        .await;
        let error = listener_with(
            &fake.base,
            json!({}),
            Arc::new(MemoryAdapterStore::default()),
        )
        .next_batch(Some(&cursor_at(0)))
        .await
        .unwrap_err();
        assert_eq!(error.class, ErrorClass::RateLimited);
        assert_eq!(error.retry_after, Some(Duration::from_secs(30)));

        let bare = start(|_| {
            (
                429,
                vec![],
                json!({"status": 429, "message": "Too Many Requests"}),
            )
        })
        .await;
        let error = listener_with(
            &bare.base,
            json!({}),
            Arc::new(MemoryAdapterStore::default()),
        )
        .next_batch(Some(&cursor_at(0)))
        .await
        .unwrap_err();
        assert_eq!(error.class, ErrorClass::RateLimited);
        assert_eq!(error.retry_after, Some(RATE_LIMIT_WAIT));
    }

    fn expired(t: i64) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
        let inner = linkedin(t);
        move |seen: &Seen| match seen.path.as_str() {
            "/oauth/v2/accessToken" => (
                200,
                vec![],
                json!({"access_token": "at-NEW-secret", "expires_in": 5183999,
                       "refresh_token": "rt-NEW-secret", "refresh_token_expires_in": 31535999}),
            ),
            _ if seen.auth == "Bearer at-NEW-secret" => inner(seen),
            _ => (
                401,
                vec![],
                json!({"status": 401, "serviceErrorCode": 65600, "code": "INVALID_ACCESS_TOKEN",
                       "message": "Invalid access token"}),
            ),
        }
    }

    #[tokio::test]
    async fn linkedin_an_expired_token_is_refreshed_and_the_poll_goes_on() {
        let t = now_ms();
        let fake = start(expired(t)).await;
        let state: Arc<dyn AdapterStore> = Arc::new(MemoryAdapterStore::default());
        let refreshing = json!({
            "refresh_token": secret("rt-OLD-secret"),
            "client_id": "cid",
            "client_secret": secret("cs-secret"),
        });
        let listener = listener_with(&fake.base, refreshing, state.clone());
        let batch = listener
            .next_batch(Some(&cursor_at(t - 2 * 60 * 60 * 1000)))
            .await
            .unwrap();
        assert_eq!(batch.events.len(), 3);
        assert_eq!(
            fake.paths()[..3],
            ["/rest/posts", "/oauth/v2/accessToken", "/rest/posts"]
        );
        let stored = state.load("li", "access_token").await.unwrap().unwrap();
        assert_eq!(stored.expose(), "at-NEW-secret");
    }

    #[tokio::test]
    async fn linkedin_without_a_refresh_token_401_is_auth_expired() {
        let fake = start(expired(now_ms())).await;
        let error = listener_with(
            &fake.base,
            json!({}),
            Arc::new(MemoryAdapterStore::default()),
        )
        .next_batch(Some(&cursor_at(0)))
        .await
        .unwrap_err();
        assert_eq!(error.class, ErrorClass::AuthExpired);
        assert!(error.message.contains("Invalid access token"), "{error}");
        assert!(!error.to_string().contains("secret"), "{error}");
    }

    #[tokio::test]
    async fn linkedin_listen_server_error_is_transient() {
        let fake = start(|_| {
            (
                503,
                vec![],
                json!({"status": 503, "message": "unavailable"}),
            )
        })
        .await;
        let error = listener_with(
            &fake.base,
            json!({}),
            Arc::new(MemoryAdapterStore::default()),
        )
        .next_batch(Some(&cursor_at(0)))
        .await
        .unwrap_err();
        assert_eq!(error.class, ErrorClass::Transient);
    }

    #[test]
    fn linkedin_listen_settings_are_checked() {
        let config = |extra: Value| {
            let mut settings = json!({"author": ORG, "access_token": secret("at-x")});
            for (k, v) in extra.as_object().unwrap() {
                settings[k] = v.clone();
            }
            ChannelConfig {
                name: "li".into(),
                kind: "linkedin".into(),
                listen: true,
                settings: settings.as_object().unwrap().clone(),
            }
        };
        let ctx = AdapterContext::default();
        let e = Factory
            .build_listener(&config(json!({"listen_interval_secs": 5})), &ctx)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "channel `li` listen_interval_secs: must be between 60 and 86400 seconds"
        );
        let e = Factory
            .build_listener(&config(json!({"listen_days": 0})), &ctx)
            .unwrap_err();
        assert!(e.to_string().contains("listen_days"), "{e}");
        assert!(
            Factory
                .build_listener(&config(json!({"listen_days": 30})), &ctx)
                .is_ok()
        );
    }
}
