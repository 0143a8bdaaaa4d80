//! Listening on a Facebook Page: comments under the Page's recent posts and
//! replies to those comments, polled every `listen_interval_secs`.
//!
//! One poll asks `GET /{page-id}/published_posts` for the posts of the last
//! `listen_days` days, with the newest page of each post's comments
//! expanded in the same call (`comments.filter(stream)
//! .order(reverse_chronological)`: replies to comments too, newest first).
//! A post whose first page of comments is all new is read further
//! (`GET /{post-id}/comments?after=...`) until a page reaches below the
//! cursor. So a quiet Page costs one request per poll.
//!
//! The cursor is a window, not a point (see [`Mark`]): the newest
//! `created_time` read, a floor [`LOOKBACK_SECS`] below it, and the ids of
//! every comment read at or after the floor. A comment Graph shows late
//! (Meta notes read-after-write delays for video and GIF comments) is still
//! caught when it is newer than the floor; the runtime drops repeats. A
//! poll that needs more than [`MAX_PAGES_PER_CALL`] further pages reads the
//! rest in the next calls (at once) and only the call that finishes returns
//! a new cursor, so nothing unread is ever passed. The first run (no
//! cursor) starts at the time the listener was built.
//!
//! Kinds: a comment on a post is `comment` (parent: the post id, as the
//! publish receipt has it, `<page-id>_<post-id>`; root: the comment
//! itself); a reply to a comment (`parent`) is `reply` (parent and root:
//! that comment, since Facebook nests one level only). Comments written as
//! the Page are the account's own and never yielded. Answering any of them
//! comments on the root: `POST /{root}/comments`.
//!
//! A post deleted between the listing and its read (Graph code 100/33) is
//! reported in `skipped` and the others are read; any other failure (a
//! missing permission, a rate limit, an expired token, an outage) fails
//! the whole poll, so the cursor never passes what could not be read.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use clarion_core::{
    ChannelConfig, ConfigError, Engagement, EngagementAuthor, EngagementKind, ErrorClass,
    ListenBatch, Listener, PublishError,
};
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

use super::FacebookAdapter;
use crate::meta_graph::{read, success, usage_wait};

/// How far below the newest item read a late one is still caught.
pub(crate) const LOOKBACK_SECS: i64 = 600;
/// Further pages read in one call; the rest of the walk continues in the
/// next call (at once), so one call stays short.
pub(crate) const MAX_PAGES_PER_CALL: usize = 30;
/// Most ids a cursor lists; a busier window narrows (its floor rises).
const MAX_LISTED: usize = 500;
/// The wait after a rate limit Meta gives no time for, and when its usage
/// headers say 90% of a quota is spent.
pub(crate) const RATE_LIMIT_WAIT: Duration = Duration::from_secs(600);
/// Pages of posts listed per poll, and posts a page: small pages, since
/// each post brings up to 100 comments and Graph refuses answers too big.
const MAX_POST_PAGES: usize = 10;
const POSTS_PER_PAGE: &str = "10";

const COMMENT_FIELDS: &str = "id,from,message,created_time,parent{id},permalink_url";

const READ_PERMISSION: &str = "pages_read_engagement and pages_read_user_engagement (a Page access token of someone who can moderate the Page)";

pub(super) fn build(config: &ChannelConfig) -> Result<Option<Arc<dyn Listener>>, ConfigError> {
    let adapter = super::configure(config)?;
    Ok(Some(Arc::new(FacebookListener {
        adapter,
        poller: Poller::new(Utc::now().timestamp()),
        slow_down: SyncMutex::new(None),
    })))
}

#[derive(Debug)]
struct FacebookListener {
    adapter: FacebookAdapter,
    poller: Poller,
    /// Set when Meta's usage headers say to slow down; read after a poll.
    slow_down: SyncMutex<Option<Duration>>,
}

// ---------------------------------------------------------------------------
// What the Meta listeners (Facebook, Threads) share: the window cursor, a
// walk over streams of newest-first pages, Graph reads.
// ---------------------------------------------------------------------------

/// What has been read: every item created before `floor`, and those listed
/// in `seen`; `newest` is the newest creation time read (epoch seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mark {
    newest: i64,
    floor: i64,
    seen: BTreeSet<String>,
}

impl Mark {
    /// The first run: nothing before `started` is yielded.
    fn start(started: i64) -> Self {
        Self {
            newest: started,
            floor: started,
            seen: BTreeSet::new(),
        }
    }

    /// `v1 <newest> <floor> <id>...`.
    fn parse(cursor: &str) -> Option<Self> {
        let mut parts = cursor.split(' ').filter(|p| !p.is_empty());
        if parts.next()? != "v1" {
            return None;
        }
        let newest: i64 = parts.next()?.parse().ok()?;
        let floor: i64 = parts.next()?.parse().ok()?;
        if floor > newest {
            return None;
        }
        Some(Self {
            newest,
            floor,
            seen: parts.map(str::to_owned).collect(),
        })
    }

    fn encode(&self) -> String {
        let mut cursor = format!("v1 {} {}", self.newest, self.floor);
        for id in &self.seen {
            cursor.push(' ');
            cursor.push_str(id);
        }
        cursor
    }

    /// Items created before this (epoch seconds) were all read.
    pub(crate) fn floor(&self) -> i64 {
        self.floor
    }

    fn covers(&self, secs: i64, id: &str) -> bool {
        secs < self.floor || self.seen.contains(id)
    }

    /// The mark after reading `read` (every item at or after this mark's
    /// floor), at `now`. Times from the future count as now, so a skewed
    /// clock cannot lift the floor over items not yet written.
    fn next(&self, read: &[(i64, String)], now: i64) -> Self {
        let top = read.iter().map(|(t, _)| *t).max().map(|t| t.min(now));
        let newest = self.newest.max(top.unwrap_or(self.newest));
        let mut floor = self.floor.max(newest - LOOKBACK_SECS);
        let mut listed: Vec<&(i64, String)> = read.iter().filter(|(t, _)| *t >= floor).collect();
        listed.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        listed.dedup_by(|a, b| a.1 == b.1);
        if listed.len() > MAX_LISTED {
            listed.truncate(MAX_LISTED);
            // Unlisted items at the new floor come again: repeats, not gaps.
            floor = listed.last().map_or(floor, |(t, _)| *t);
        }
        Self {
            newest,
            floor,
            seen: listed.into_iter().map(|(_, id)| id.clone()).collect(),
        }
    }
}

/// One read item: its id and creation time (for the cursor) and the event,
/// `None` for the account's own messages (read, never yielded).
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub id: String,
    pub secs: i64,
    pub event: Option<Engagement>,
}

/// One newest-first page of a stream; `after` names the next (older) page.
#[derive(Debug, Clone, Default)]
pub(crate) struct Page {
    pub items: Vec<Result<Item, String>>,
    pub after: Option<String>,
}

/// A stream to walk (a post's comments, the mentions), with its first page
/// when the listing call already brought it.
#[derive(Debug, Clone)]
pub(crate) struct Stream {
    pub key: String,
    pub first: Option<Page>,
}

#[async_trait]
pub(crate) trait Feed: Send + Sync {
    /// The streams to read in this poll.
    async fn streams(&self, mark: &Mark) -> Result<Vec<Stream>, PublishError>;
    /// One page of a stream, newest first; `after` from the previous page.
    async fn page(&self, key: &str, mark: &Mark, after: Option<&str>)
    -> Result<Page, PublishError>;
}

/// A poll that needed more pages than one call reads.
#[derive(Debug, Clone)]
struct Walk {
    /// The stored cursor the walk started from.
    from: Option<String>,
    /// Streams still to read, with the page to read next (`None`: the first).
    pending: VecDeque<(String, Option<String>)>,
    /// Every item read so far at or after the floor, for the next cursor.
    read: Vec<(i64, String)>,
}

/// Runs polls over a [`Feed`], keeping an unfinished walk between calls.
#[derive(Debug)]
pub(crate) struct Poller {
    started: i64,
    walk: Mutex<Option<Walk>>,
}

impl Poller {
    pub(crate) fn new(started: i64) -> Self {
        Self {
            started,
            walk: Mutex::new(None),
        }
    }

    pub(crate) async fn poll(
        &self,
        feed: &dyn Feed,
        cursor: Option<&str>,
        interval: Duration,
    ) -> Result<ListenBatch, PublishError> {
        let mark = match cursor {
            Some(c) => Mark::parse(c).unwrap_or_else(|| {
                tracing::warn!(
                    cursor = c,
                    "stored Meta listener cursor is unreadable; starting from now"
                );
                Mark::start(self.started)
            }),
            None => Mark::start(self.started),
        };
        let mut saved = self.walk.lock().await;
        // A walk belongs to the cursor it started from; any other is stale.
        let resumed = saved.take().filter(|w| w.from.as_deref() == cursor);
        match self
            .step(feed, &mark, cursor, resumed.clone(), interval)
            .await
        {
            Ok((batch, walk)) => {
                *saved = walk;
                Ok(batch)
            }
            Err(e) => {
                // Nothing of this call was stored: resume where it began.
                *saved = resumed;
                Err(e)
            }
        }
    }

    async fn step(
        &self,
        feed: &dyn Feed,
        mark: &Mark,
        cursor: Option<&str>,
        resumed: Option<Walk>,
        interval: Duration,
    ) -> Result<(ListenBatch, Option<Walk>), PublishError> {
        let mut taken = Taken {
            batch: ListenBatch::default(),
            read: Vec::new(),
            yielded: HashSet::new(),
        };
        let mut queue = VecDeque::new();
        match resumed {
            Some(walk) => {
                taken.read = walk.read;
                queue = walk.pending;
            }
            None => {
                for stream in feed.streams(mark).await? {
                    match stream.first {
                        Some(page) => {
                            if let Some(after) = taken.take(page, mark) {
                                queue.push_back((stream.key, Some(after)));
                            }
                        }
                        None => queue.push_back((stream.key, None)),
                    }
                }
            }
        }
        let mut pages = 0;
        let mut pending = VecDeque::new();
        while let Some((key, after)) = queue.pop_front() {
            if pages >= MAX_PAGES_PER_CALL {
                pending.push_back((key, after));
                continue;
            }
            let page = feed.page(&key, mark, after.as_deref()).await?;
            pages += 1;
            if let Some(next) = taken.take(page, mark) {
                queue.push_front((key, Some(next)));
            }
        }
        let mut batch = taken.batch;
        if !pending.is_empty() {
            // Keep the stored cursor until the walk is done; come back at once.
            batch.wait = Duration::ZERO;
            let walk = Walk {
                from: cursor.map(str::to_owned),
                pending,
                read: taken.read,
            };
            return Ok((batch, Some(walk)));
        }
        let next = mark.next(&taken.read, Utc::now().timestamp()).encode();
        batch.cursor = (Some(next.as_str()) != cursor).then_some(next);
        batch.wait = interval;
        Ok((batch, None))
    }
}

/// What a call has taken from its pages so far.
struct Taken {
    batch: ListenBatch,
    read: Vec<(i64, String)>,
    /// Item ids yielded in this call: a mention that is also a reply comes once.
    yielded: HashSet<String>,
}

impl Taken {
    /// Takes a page's new items; `Some(after)`: the stream goes on below
    /// this page and its items still reach the floor (an empty page with a
    /// next page goes on too: Threads sends those).
    fn take(&mut self, page: Page, mark: &Mark) -> Option<String> {
        let mut reaches_floor = page.items.is_empty();
        for item in page.items {
            let item = match item {
                Ok(item) => item,
                Err(reason) => {
                    self.batch.skipped.push(reason);
                    continue;
                }
            };
            if item.secs < mark.floor {
                continue;
            }
            reaches_floor = true;
            self.read.push((item.secs, item.id.clone()));
            if mark.covers(item.secs, &item.id) {
                continue;
            }
            if let Some(event) = item.event
                && self.yielded.insert(event.item_id.clone())
            {
                self.batch.events.push(event);
            }
        }
        page.after.filter(|_| reaches_floor)
    }
}

/// A Graph time: `2026-01-05T10:00:00+0000` (or RFC 3339).
pub(crate) fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%z")
        .or_else(|_| DateTime::parse_from_rfc3339(s))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The next page of a Graph list: `paging.cursors.after`, when `paging.next`
/// says there is one (the last page keeps its cursors but has no `next`).
pub(crate) fn next_after(list: &Value) -> Option<String> {
    let paging = list.get("paging")?;
    paging.get("next")?;
    paging
        .pointer("/cursors/after")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
}

/// A listener's Graph read. A rate limit without a stated wait gets
/// [`RATE_LIMIT_WAIT`]; usage headers at 90% ask `slow_down` for a pause.
pub(crate) async fn get_json(
    request: reqwest::RequestBuilder,
    permission: &str,
    slow_down: &SyncMutex<Option<Duration>>,
) -> Result<Value, PublishError> {
    let answer = read(request).await.map_err(crate::http::for_check)?;
    note_usage(&answer.headers, slow_down);
    finish(&answer, permission)
}

/// A stream's page that may have gone: `Ok(None)` when Graph says the
/// object does not exist (code 100, subcode 33: deleted since it was
/// listed), so one vanished post does not stop the poll of the others.
/// Anything else fails as [`get_json`] does.
pub(crate) async fn get_page_json(
    request: reqwest::RequestBuilder,
    permission: &str,
    slow_down: &SyncMutex<Option<Duration>>,
) -> Result<Option<Value>, PublishError> {
    let answer = read(request).await.map_err(crate::http::for_check)?;
    note_usage(&answer.headers, slow_down);
    if !answer.status.is_success() {
        let value: Value = serde_json::from_str(&answer.body).unwrap_or_default();
        let code = |k: &str| {
            value
                .pointer(&format!("/error/{k}"))
                .and_then(Value::as_i64)
        };
        if code("code") == Some(100) && code("error_subcode") == Some(33) {
            return Ok(None);
        }
    }
    finish(&answer, permission).map(Some)
}

/// A page for a stream that has gone: reported, and the stream ends.
pub(crate) fn gone(key: &str) -> Page {
    Page {
        items: vec![Err(format!("{key}: no longer exists (deleted?)"))],
        after: None,
    }
}

fn finish(answer: &crate::meta_graph::Answer, permission: &str) -> Result<Value, PublishError> {
    success(answer, false, permission).map_err(|mut e| {
        if e.class == ErrorClass::RateLimited && e.retry_after.is_none() {
            e.retry_after = Some(RATE_LIMIT_WAIT);
        }
        crate::http::for_check(e)
    })
}

fn note_usage(headers: &HeaderMap, slow_down: &SyncMutex<Option<Duration>>) {
    if let Some(wait) = usage_wait(headers, RATE_LIMIT_WAIT)
        && let Ok(mut slow) = slow_down.lock()
    {
        *slow = Some(slow.map_or(wait, |w| w.max(wait)));
    }
}

/// The pause the usage headers asked for during the last poll, if any.
pub(crate) fn take_slow_down(slow_down: &SyncMutex<Option<Duration>>) -> Option<Duration> {
    slow_down.lock().ok().and_then(|mut s| s.take())
}

/// One `next_batch` of a Graph listener: a poll, waiting longer when Meta's
/// usage headers asked for it during that poll.
pub(crate) async fn poll_paced(
    poller: &Poller,
    feed: &dyn Feed,
    cursor: Option<&str>,
    interval: Duration,
    slow_down: &SyncMutex<Option<Duration>>,
) -> Result<ListenBatch, PublishError> {
    // A pause asked for before a failed poll is stale now.
    take_slow_down(slow_down);
    let mut batch = poller.poll(feed, cursor, interval).await?;
    if let Some(wait) = take_slow_down(slow_down) {
        batch.wait = batch.wait.max(wait);
    }
    Ok(batch)
}

// ---------------------------------------------------------------------------
// Facebook.
// ---------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct Comment {
    id: String,
    created_time: String,
    #[serde(default)]
    message: String,
    /// Missing when Graph withholds the author (no permission to see them).
    from: Option<Author>,
    parent: Option<IdRef>,
    permalink_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Author {
    id: String,
    #[serde(default)]
    name: String,
}

#[derive(Debug, Deserialize)]
struct IdRef {
    id: String,
}

impl FacebookListener {
    fn get(&self, path: &str, query: &[(&str, String)]) -> reqwest::RequestBuilder {
        self.adapter
            .client
            .get(format!("{}/{path}", self.adapter.base))
            .query(query)
            .bearer_auth(self.adapter.token.expose())
            .timeout(self.adapter.timeout)
    }

    /// A page of comments under `post` (a Graph list).
    fn comments(&self, post: &str, list: &Value) -> Page {
        let items = list
            .get("data")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|raw| self.read(post, raw))
            .collect();
        Page {
            items,
            after: next_after(list),
        }
    }

    fn read(&self, post: &str, raw: &Value) -> Result<Item, String> {
        let comment: Comment = serde_json::from_value(raw.clone()).map_err(|e| {
            match raw.get("id").and_then(Value::as_str) {
                Some(id) => format!("comment {id}: {e}"),
                None => format!("unreadable comment on {post}: {e}"),
            }
        })?;
        let at = parse_time(&comment.created_time).ok_or_else(|| {
            format!(
                "comment {}: created_time {:?} is not a time",
                comment.id, comment.created_time
            )
        })?;
        let own = comment
            .from
            .as_ref()
            .is_some_and(|f| f.id == self.adapter.page_id);
        let event = (!own).then(|| {
            let (kind, parent, root) = match comment.parent {
                // Facebook nests one level: the parent is the thread's start.
                Some(parent) => (EngagementKind::Reply, parent.id.clone(), parent.id),
                None => (EngagementKind::Comment, post.to_owned(), comment.id.clone()),
            };
            let author = comment.from.map_or_else(EngagementAuthor::default, |f| {
                EngagementAuthor {
                    id: f.id,
                    // Facebook has no handles people type.
                    handle: String::new(),
                    display_name: f.name,
                    roles: Vec::new(),
                }
            });
            Engagement {
                item_id: comment.id.clone(),
                kind,
                author,
                text: comment.message,
                url: comment.permalink_url,
                parent_id: Some(parent),
                root_id: root,
                place: None,
                created_at_ms: at.timestamp_millis(),
            }
        });
        Ok(Item {
            id: comment.id,
            secs: at.timestamp(),
            event,
        })
    }
}

#[async_trait]
impl Feed for FacebookListener {
    async fn streams(&self, _mark: &Mark) -> Result<Vec<Stream>, PublishError> {
        let since = Utc::now().timestamp() - self.adapter.listen_days as i64 * 86_400;
        let fields = format!(
            "id,created_time,comments.filter(stream).order(reverse_chronological).limit(100){{{COMMENT_FIELDS}}}"
        );
        let path = format!("{}/published_posts", self.adapter.page_id);
        let mut streams = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_POST_PAGES {
            let mut query = vec![
                ("fields", fields.clone()),
                ("since", since.to_string()),
                ("limit", POSTS_PER_PAGE.to_owned()),
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
                let Some(id) = post.get("id").and_then(Value::as_str) else {
                    continue; // Nothing to read comments from.
                };
                // Graph leaves out an empty expanded edge.
                let first = match post.get("comments") {
                    Some(list) => self.comments(id, list),
                    None => Page::default(),
                };
                streams.push(Stream {
                    key: id.to_owned(),
                    first: Some(first),
                });
            }
            after = next_after(&list);
            if after.is_none() {
                break;
            }
        }
        Ok(streams)
    }

    async fn page(
        &self,
        post: &str,
        _mark: &Mark,
        after: Option<&str>,
    ) -> Result<Page, PublishError> {
        let mut query = vec![
            ("filter", "stream".to_owned()),
            ("order", "reverse_chronological".to_owned()),
            ("fields", COMMENT_FIELDS.to_owned()),
            ("limit", "100".to_owned()),
        ];
        if let Some(after) = after {
            query.push(("after", after.to_owned()));
        }
        let list = get_page_json(
            self.get(&format!("{post}/comments"), &query),
            READ_PERMISSION,
            &self.slow_down,
        )
        .await?;
        Ok(list.map_or_else(|| gone(post), |list| self.comments(post, &list)))
    }
}

#[async_trait]
impl Listener for FacebookListener {
    fn kind(&self) -> &'static str {
        "facebook"
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

#[cfg(test)]
mod mark_tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_bad_ones_are_refused() {
        let mark = Mark {
            newest: 1_767_607_200,
            floor: 1_767_606_600,
            seen: ["1_2".to_owned(), "1_3".to_owned()].into(),
        };
        assert_eq!(mark.encode(), "v1 1767607200 1767606600 1_2 1_3");
        assert_eq!(Mark::parse(&mark.encode()), Some(mark));
        assert_eq!(Mark::parse("v1 10 20"), None, "floor above newest");
        assert_eq!(Mark::parse("v2 10 5"), None);
        assert_eq!(Mark::parse("12345"), None);
    }

    #[test]
    fn the_window_follows_the_newest_and_lists_what_it_covers() {
        let mark = Mark::start(1000);
        let read = vec![
            (1300, "a".to_owned()),
            (1900, "b".to_owned()),
            (2000, "c".to_owned()),
            (2000, "c".to_owned()),
        ];
        let next = mark.next(&read, 5000);
        assert_eq!(next.newest, 2000);
        assert_eq!(next.floor, 2000 - LOOKBACK_SECS);
        assert_eq!(next.seen, ["b".to_owned(), "c".to_owned()].into());
        assert!(next.covers(1300, "a") && next.covers(2000, "c"));
        assert!(
            !next.covers(1950, "late"),
            "a late item above the floor is new"
        );
        // A time from the future counts as now.
        let ahead = mark.next(&[(9999, "z".to_owned())], 3000);
        assert_eq!(ahead.newest, 3000);
        assert!(ahead.seen.contains("z"));
        // Nothing read: the mark stays.
        assert_eq!(mark.next(&[], 5000), mark);
    }
}
