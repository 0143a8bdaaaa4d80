//! Listening on X: polling the account's mentions timeline.
//!
//! ```toml
//! [[channels]]
//! name = "x-main"
//! kind = "x"
//! listen = true
//! listen_interval_secs = 60     # the default; see the rate limits below
//! ```
//!
//! Each call reads `GET /2/users/:id/mentions?since_id=<cursor>&max_results=100`
//! (with the author expanded), following `pagination_token` until the last
//! page; the account id comes from `GET /2/users/me`, asked once. The cursor
//! is the newest mention id (`meta.newest_id` of the first page). A failed
//! page fails the call, so the cursor never moves past mentions not yet
//! returned. The first run (no cursor) asks for mentions since the listener
//! was built (`start_time`), not the history; the first mention seen becomes
//! the cursor.
//!
//! Access: reading mentions needs the Basic tier or above (the Free tier
//! cannot read timelines) and a user token with `tweet.read` and
//! `users.read` (plus `offline.access` for refreshing). Basic allows about
//! 10 mention requests per 15 minutes per user (15 per app), less than one
//! a minute: so the listener also reads `x-rate-limit-remaining` and, when
//! the window is spent, waits for `x-rate-limit-reset` instead of the
//! interval; a 429 is `rate_limited` until that reset. Tokens are the
//! adapter's: an expired one is refreshed (and the rotated pair stored) and
//! the request sent once more; a refused refresh is `auth_expired`.
//!
//! Kinds: a reply to one of the account's posts (`replied_to`, and
//! `in_reply_to_user_id` is the account or missing) is `reply`; a reply to
//! someone else that names the account is a `mention`; a quote is `quote`;
//! anything else `mention`. `parent_id` is the replied-to post, else the
//! quoted one; `root_id` the `conversation_id`. The account's own posts are
//! never yielded; X gives no bot flag, so other bots' posts cannot be told.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use clarion_core::{
    AdapterContext, ChannelConfig, ConfigError, Engagement, EngagementAuthor, EngagementKind,
    ErrorClass, ListenBatch, Listener, PublishError,
};
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::OnceCell;

use super::{XAdapter, rate_limit_reset, success_json};

/// Pages followed in one call; the timeline holds at most 800 mentions.
const MAX_PAGES: usize = 10;

const TWEET_FIELDS: &str =
    "author_id,conversation_id,created_at,referenced_tweets,in_reply_to_user_id";

pub(super) fn build(
    config: &ChannelConfig,
    context: &AdapterContext,
) -> Result<Option<Arc<dyn Listener>>, ConfigError> {
    Ok(Some(Arc::new(XListener {
        adapter: super::configure(config, context)?,
        me: OnceCell::new(),
        started: Utc::now(),
    })))
}

#[derive(Debug)]
pub(super) struct XListener {
    /// The channel's adapter: client, base URL and the token pair.
    adapter: XAdapter,
    me: OnceCell<String>,
    /// Where the first run starts (no history before it).
    started: DateTime<Utc>,
}

#[derive(Debug, Deserialize)]
struct Tweet {
    id: String,
    text: String,
    author_id: String,
    conversation_id: Option<String>,
    created_at: String,
    #[serde(default)]
    referenced_tweets: Vec<Reference>,
    in_reply_to_user_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Reference {
    #[serde(rename = "type")]
    kind: String,
    id: String,
}

/// `(username, name)` by user id, from `includes.users`.
type Users = HashMap<String, (String, String)>;

/// Tweet ids are decimal strings that outgrow `u64` only in theory: compare
/// by length, then text.
fn newer(a: &str, b: &str) -> bool {
    (a.len(), a) > (b.len(), b)
}

impl XListener {
    /// A read with the adapter's token handling (refresh once on 401).
    async fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<super::Answer, PublishError> {
        let url = self.adapter.url(path);
        self.adapter
            .call(|token| {
                self.adapter
                    .client
                    .request(Method::GET, &url)
                    .query(query)
                    .bearer_auth(token)
            })
            .await
            .map_err(crate::http::for_check)
    }

    async fn me(&self) -> Result<&str, PublishError> {
        self.me
            .get_or_try_init(|| async {
                let answer = self.get("/2/users/me", &[]).await?;
                let value = success_json(&answer, Some("reading the account"))
                    .map_err(crate::http::for_check)?;
                value
                    .pointer("/data/id")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        PublishError::new(ErrorClass::Transient, "/2/users/me gave no account id")
                    })
            })
            .await
            .map(String::as_str)
    }

    fn read(&self, raw: &Value, me: &str, users: &Users) -> Result<Option<Engagement>, String> {
        let tweet: Tweet = serde_json::from_value(raw.clone()).map_err(|e| {
            match raw.get("id").and_then(Value::as_str) {
                Some(id) => format!("tweet {id}: {e}"),
                None => format!("unreadable tweet: {e}"),
            }
        })?;
        if tweet.author_id == me {
            return Ok(None);
        }
        let created_at_ms = DateTime::parse_from_rfc3339(&tweet.created_at)
            .map_err(|e| format!("tweet {}: created_at: {e}", tweet.id))?
            .timestamp_millis();
        let reference = |kind: &str| {
            tweet
                .referenced_tweets
                .iter()
                .find(|r| r.kind == kind)
                .map(|r| r.id.clone())
        };
        let replied_to = reference("replied_to");
        let quoted = reference("quoted");
        let kind = if replied_to.is_some() {
            match tweet.in_reply_to_user_id.as_deref() {
                Some(user) if user != me => EngagementKind::Mention,
                _ => EngagementKind::Reply,
            }
        } else if quoted.is_some() {
            EngagementKind::Quote
        } else {
            EngagementKind::Mention
        };
        let (handle, name) = users
            .get(&tweet.author_id)
            .map(|(username, name)| (format!("@{username}"), name.clone()))
            .unwrap_or_default();
        let url = match users.get(&tweet.author_id) {
            Some((username, _)) => format!("https://x.com/{username}/status/{}", tweet.id),
            None => format!("https://x.com/i/web/status/{}", tweet.id),
        };
        Ok(Some(Engagement {
            root_id: tweet.conversation_id.unwrap_or_else(|| tweet.id.clone()),
            item_id: tweet.id,
            kind,
            author: EngagementAuthor {
                id: tweet.author_id,
                handle,
                display_name: name,
                roles: Vec::new(),
            },
            text: tweet.text,
            url: Some(url),
            parent_id: replied_to.or(quoted),
            place: None,
            created_at_ms,
        }))
    }
}

#[async_trait]
impl Listener for XListener {
    fn kind(&self) -> &'static str {
        "x"
    }

    async fn next_batch(&self, cursor: Option<&str>) -> Result<ListenBatch, PublishError> {
        let me = self.me().await?.to_owned();
        let since = cursor.filter(|c| {
            let valid = !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit());
            if !valid {
                tracing::warn!(
                    cursor = c,
                    "stored X cursor is not a post id; starting from now"
                );
            }
            valid
        });
        let mut query: Vec<(&str, String)> = vec![
            ("max_results", "100".to_owned()),
            ("tweet.fields", TWEET_FIELDS.to_owned()),
            ("expansions", "author_id".to_owned()),
            ("user.fields", "username,name".to_owned()),
        ];
        match since {
            Some(since) => query.push(("since_id", since.to_owned())),
            None => query.push((
                "start_time",
                self.started.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            )),
        }
        let path = format!("/2/users/{me}/mentions");
        let mut batch = ListenBatch::default();
        let mut newest: Option<String> = None;
        let mut page_token: Option<String> = None;
        let mut last_headers = None;
        for _ in 0..MAX_PAGES {
            let mut page_query = query.clone();
            if let Some(token) = &page_token {
                page_query.push(("pagination_token", token.clone()));
            }
            let answer = self.get(&path, &page_query).await?;
            let value = success_json(&answer, None).map_err(crate::http::for_check)?;
            last_headers = Some(answer.headers);
            let users: Users = value
                .pointer("/includes/users")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|u| {
                    Some((
                        u.get("id")?.as_str()?.to_owned(),
                        (
                            u.get("username")?.as_str()?.to_owned(),
                            u.get("name")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_owned(),
                        ),
                    ))
                })
                .collect();
            let page_newest = value.pointer("/meta/newest_id").and_then(Value::as_str);
            let tweets = value.get("data").and_then(Value::as_array);
            let ids = tweets
                .into_iter()
                .flatten()
                .filter_map(|t| t.get("id").and_then(Value::as_str));
            for id in page_newest.into_iter().chain(ids) {
                if id.bytes().all(|b| b.is_ascii_digit())
                    && newest.as_deref().is_none_or(|n| newer(id, n))
                {
                    newest = Some(id.to_owned());
                }
            }
            for tweet in tweets.into_iter().flatten() {
                match self.read(tweet, &me, &users) {
                    Ok(Some(engagement)) => batch.events.push(engagement),
                    Ok(None) => {}
                    Err(reason) => batch.skipped.push(reason),
                }
            }
            page_token = value
                .pointer("/meta/next_token")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if page_token.is_none() {
                break;
            }
        }
        batch.cursor = newest.filter(|n| since.is_none_or(|s| newer(n, s)));
        // Wait the interval, or for the window to reopen when it is spent.
        batch.wait = self.adapter.listen_interval;
        if let Some(headers) = &last_headers {
            let spent = headers
                .get("x-rate-limit-remaining")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim() == "0");
            if spent && let Some(reset) = rate_limit_reset(headers) {
                batch.wait = batch.wait.max(reset);
            }
        }
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use axum::extract::{OriginalUri, Query};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use clarion_core::{AdapterFactory, AdapterStore, MemoryAdapterStore};
    use serde_json::json;

    use super::super::Factory;
    use super::*;

    const ME: &str = "2244994945";

    #[derive(Debug, Clone)]
    struct Seen {
        path: String,
        query: HashMap<String, String>,
        authorization: String,
    }

    /// A fake X API: one valid access token and one valid refresh token at a
    /// time, like X (every refresh rotates both).
    struct Fake {
        seen: Mutex<Vec<Seen>>,
        access: Mutex<String>,
        refresh: Mutex<String>,
    }

    impl Fake {
        fn mentions(&self) -> Vec<HashMap<String, String>> {
            self.seen
                .lock()
                .unwrap()
                .iter()
                .filter(|s| s.path.ends_with("/mentions"))
                .map(|s| s.query.clone())
                .collect()
        }

        fn paths(&self) -> Vec<String> {
            self.seen
                .lock()
                .unwrap()
                .iter()
                .map(|s| s.path.clone())
                .collect()
        }
    }

    fn epoch() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn tweet(id: &str, author: &str, text: &str, extra: Value) -> Value {
        let mut tweet = json!({
            "id": id, "text": text, "author_id": author, "conversation_id": "100",
            "created_at": "2026-01-05T10:00:00.000Z", "edit_history_tweet_ids": [id]
        });
        tweet
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        tweet
    }

    fn users() -> Value {
        json!({"users": [
            {"id": "11", "name": "Alice A.", "username": "alice"},
            {"id": "12", "name": "Bob", "username": "bob"},
            {"id": ME, "name": "Clarion", "username": "clarion_test"}
        ]})
    }

    fn with_headers(mut response: Response, headers: &[(&'static str, String)]) -> Response {
        for (name, value) in headers {
            response.headers_mut().insert(*name, value.parse().unwrap());
        }
        response
    }

    fn mentions_answer(query: &HashMap<String, String>) -> Response {
        let window = [
            ("x-rate-limit-limit", "10".to_owned()),
            ("x-rate-limit-remaining", "7".to_owned()),
            ("x-rate-limit-reset", (epoch() + 600).to_string()),
        ];
        let since = query.get("since_id").map(String::as_str);
        let page = query.get("pagination_token").map(String::as_str);
        let body = match (since, page) {
            (None, _) => json!({"meta": {"result_count": 0}}),
            (Some("100"), None) => json!({
                "data": [
                    tweet("105", "11", "@clarion_test thanks!", json!({
                        "referenced_tweets": [{"type": "replied_to", "id": "100"}],
                        "in_reply_to_user_id": ME
                    })),
                    tweet("104", "12", "look at this @clarion_test", json!({
                        "referenced_tweets": [{"type": "quoted", "id": "100"}]
                    })),
                    tweet("103", ME, "our own post naming @clarion_test", json!({})),
                    {"id": "102", "text": "no author", "created_at": "2026-01-05T10:00:00.000Z"},
                ],
                "includes": users(),
                "meta": {"result_count": 4, "newest_id": "105", "oldest_id": "102", "next_token": "page-2"}
            }),
            (Some("100"), Some("page-2")) => json!({
                "data": [
                    tweet("101", "11", "@bob @clarion_test agreed", json!({
                        "referenced_tweets": [{"type": "replied_to", "id": "99"}],
                        "in_reply_to_user_id": "12", "conversation_id": "98"
                    })),
                ],
                "includes": users(),
                "meta": {"result_count": 1, "newest_id": "101", "oldest_id": "101"}
            }),
            (Some("105"), None) => {
                // The window is spent: the listener waits for its reset.
                let spent = [
                    ("x-rate-limit-remaining", "0".to_owned()),
                    ("x-rate-limit-reset", (epoch() + 120).to_string()),
                ];
                return with_headers(
                    axum::Json(json!({"meta": {"result_count": 0}})).into_response(),
                    &spent,
                );
            }
            (Some("999"), None) => {
                let reset = [("x-rate-limit-reset", (epoch() + 3).to_string())];
                return with_headers(
                    (
                        StatusCode::TOO_MANY_REQUESTS,
                        axum::Json(json!({"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429})),
                    )
                        .into_response(),
                    &reset,
                );
            }
            _ => json!({"meta": {"result_count": 0}}),
        };
        with_headers(axum::Json(body).into_response(), &window)
    }

    async fn answer(
        fake: Arc<Fake>,
        uri: axum::http::Uri,
        query: HashMap<String, String>,
        headers: HeaderMap,
        body: String,
    ) -> Response {
        let authorization = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        fake.seen.lock().unwrap().push(Seen {
            path: uri.path().to_owned(),
            query: query.clone(),
            authorization: authorization.clone(),
        });
        if uri.path() == "/2/oauth2/token" {
            let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
                .into_owned()
                .collect();
            let mut refresh = fake.refresh.lock().unwrap();
            if form.get("refresh_token") == Some(&*refresh) {
                *refresh = "refresh-2".into();
                *fake.access.lock().unwrap() = "access-2".into();
                return axum::Json(json!({"token_type": "bearer", "expires_in": 7200, "access_token": "access-2", "refresh_token": "refresh-2", "scope": "tweet.read users.read offline.access"})).into_response();
            }
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": "invalid_request", "error_description": "Value passed for the token was invalid."})),
            )
                .into_response();
        }
        if authorization != format!("Bearer {}", fake.access.lock().unwrap()) {
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"})),
            )
                .into_response();
        }
        match uri.path() {
            "/2/users/me" => axum::Json(
                json!({"data": {"id": ME, "name": "Clarion", "username": "clarion_test"}}),
            )
            .into_response(),
            path if path == format!("/2/users/{ME}/mentions") => mentions_answer(&query),
            _ => StatusCode::NOT_FOUND.into_response(),
        }
    }

    async fn fake_x(access: &str, refresh: &str) -> (String, Arc<Fake>) {
        let fake = Arc::new(Fake {
            seen: Mutex::default(),
            access: Mutex::new(access.to_owned()),
            refresh: Mutex::new(refresh.to_owned()),
        });
        let state = fake.clone();
        let app = axum::Router::new().fallback(
            move |OriginalUri(uri): OriginalUri,
                  Query(query): Query<HashMap<String, String>>,
                  headers: HeaderMap,
                  body: String| answer(state.clone(), uri, query, headers, body),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (base, fake)
    }

    fn secret_file(test: &str, name: &str, value: &str) -> Value {
        let path = std::env::temp_dir().join(format!(
            "clarion-x-listen-{}-{test}-{name}",
            std::process::id()
        ));
        std::fs::write(&path, value).unwrap();
        json!({ "file": path })
    }

    fn listener(test: &str, base: &str, store: Arc<MemoryAdapterStore>) -> Arc<dyn Listener> {
        let config = json!({
            "name": "x-main", "kind": "x", "listen": true,
            "api_base": base, "client_id": "client-1",
            "access_token": secret_file(test, "access", "access-1"),
            "refresh_token": secret_file(test, "refresh", "refresh-1"),
            "timeout_secs": 5,
        });
        Factory
            .build_listener(
                &serde_json::from_value(config).unwrap(),
                &AdapterContext { state: store },
            )
            .unwrap()
            .expect("x listens")
    }

    #[tokio::test]
    async fn mentions_replies_and_quotes_become_engagements_across_pages() {
        let (base, fake) = fake_x("access-1", "refresh-1").await;
        let listener = listener("kinds", &base, Arc::default());
        let batch = listener.next_batch(Some("100")).await.unwrap();
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
                (EngagementKind::Reply, "105", Some("100"), "100"),
                (EngagementKind::Quote, "104", Some("100"), "100"),
                // Answers Bob, names the account: a mention in a thread.
                (EngagementKind::Mention, "101", Some("99"), "98"),
            ]
        );
        assert_eq!(
            batch.skipped,
            ["tweet 102: missing field `author_id`"],
            "the malformed one is reported, the others kept"
        );
        assert_eq!(batch.cursor.as_deref(), Some("105"));
        assert_eq!(batch.wait, Duration::from_secs(60));
        let reply = &batch.events[0];
        assert_eq!(
            reply.author,
            EngagementAuthor {
                id: "11".into(),
                handle: "@alice".into(),
                display_name: "Alice A.".into(),
                roles: Vec::new(),
            }
        );
        assert_eq!(reply.url.as_deref(), Some("https://x.com/alice/status/105"));
        assert_eq!(reply.text, "@clarion_test thanks!");
        assert_eq!(reply.created_at_ms, 1_767_607_200_000);
        assert_eq!(reply.place, None);

        let queries = fake.mentions();
        assert_eq!(queries.len(), 2);
        assert_eq!(queries[0]["since_id"], "100");
        assert_eq!(queries[0]["max_results"], "100");
        assert_eq!(queries[0]["tweet.fields"], TWEET_FIELDS);
        assert_eq!(queries[0]["expansions"], "author_id");
        assert_eq!(queries[0]["user.fields"], "username,name");
        assert_eq!(queries[0].get("pagination_token"), None);
        assert_eq!(queries[1]["pagination_token"], "page-2");
        assert_eq!(queries[1]["since_id"], "100");
    }

    #[tokio::test]
    async fn the_cursor_advances_and_a_spent_window_waits_for_its_reset() {
        let (base, fake) = fake_x("access-1", "refresh-1").await;
        let listener = listener("cursor", &base, Arc::default());
        let first = listener.next_batch(None).await.unwrap();
        assert_eq!(first.events, vec![]);
        assert_eq!(first.cursor, None, "no mention yet: nothing to resume from");
        let start = fake.mentions()[0]["start_time"].clone();
        assert!(
            start.len() == 20 && start.ends_with('Z') && !start.contains('.'),
            "{start}"
        );

        let batch = listener.next_batch(Some("100")).await.unwrap();
        let cursor = batch.cursor.unwrap();
        let again = listener.next_batch(Some(&cursor)).await.unwrap();
        assert_eq!(again.events, vec![]);
        assert_eq!(again.cursor, None);
        assert!(
            again.wait > Duration::from_secs(100) && again.wait <= Duration::from_secs(120),
            "{:?}",
            again.wait
        );
        let since: Vec<_> = fake
            .mentions()
            .iter()
            .map(|q| q.get("since_id").cloned())
            .collect();
        assert_eq!(
            since,
            [
                None,
                Some("100".into()),
                Some("100".into()),
                Some("105".into())
            ]
        );
        let me = fake.paths().iter().filter(|p| *p == "/2/users/me").count();
        assert_eq!(me, 1, "the account id is asked once");
    }

    #[tokio::test]
    async fn a_rate_limit_waits_until_the_reset() {
        let (base, _) = fake_x("access-1", "refresh-1").await;
        let error = listener("limited", &base, Arc::default())
            .next_batch(Some("999"))
            .await
            .unwrap_err();
        assert_eq!(error.class, ErrorClass::RateLimited);
        let wait = error.retry_after.unwrap();
        assert!(
            wait > Duration::from_millis(1500) && wait <= Duration::from_secs(3),
            "{wait:?}"
        );
    }

    #[tokio::test]
    async fn an_expired_token_is_refreshed_once_and_the_read_retried() {
        // Only access-2 is accepted, which only a refresh yields.
        let (base, fake) = fake_x("access-2", "refresh-1").await;
        let store = Arc::new(MemoryAdapterStore::default());
        let listener = listener("refresh", &base, store.clone());
        let batch = listener.next_batch(Some("100")).await.unwrap();
        assert_eq!(batch.events.len(), 3);
        assert_eq!(
            fake.paths()[..3],
            ["/2/users/me", "/2/oauth2/token", "/2/users/me"]
        );
        let seen = fake.seen.lock().unwrap().clone();
        assert_eq!(seen[0].authorization, "Bearer access-1");
        assert_eq!(seen.last().unwrap().authorization, "Bearer access-2");
        let stored = store.load("x-main", "refresh_token").await.unwrap();
        assert_eq!(stored.as_ref().map(|s| s.expose()), Some("refresh-2"));
    }

    #[tokio::test]
    async fn a_refused_refresh_is_auth_expired_without_the_tokens() {
        let (base, fake) = fake_x("access-2", "someone-else").await;
        let error = listener("refused", &base, Arc::default())
            .next_batch(Some("100"))
            .await
            .unwrap_err();
        assert_eq!(error.class, ErrorClass::AuthExpired);
        assert!(error.message.starts_with("reconnect:"), "{error}");
        for secret in ["access-1", "refresh-1"] {
            assert!(!error.to_string().contains(secret), "{error}");
        }
        assert_eq!(fake.paths(), ["/2/users/me", "/2/oauth2/token"]);
        assert!(fake.mentions().is_empty());
    }

    #[test]
    fn tweet_ids_compare_as_numbers() {
        assert!(newer("1000", "999"));
        assert!(newer("1790000000000000002", "1790000000000000001"));
        assert!(!newer("99", "100"));
        assert!(!newer("5", "5"));
    }

    #[test]
    fn the_listen_interval_is_checked() {
        let config = |interval: Value| -> ChannelConfig {
            serde_json::from_value(json!({
                "name": "x-main", "kind": "x", "listen": true, "client_id": "c",
                "access_token": secret_file("interval", "access", "a"),
                "refresh_token": secret_file("interval", "refresh", "r"),
                "listen_interval_secs": interval
            }))
            .unwrap()
        };
        let error = Factory
            .build_listener(&config(json!(0)), &AdapterContext::default())
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "channel `x-main` listen_interval_secs: must be between 1 and 86400 seconds"
        );
        assert!(
            Factory
                .build_listener(&config(json!(90)), &AdapterContext::default())
                .is_ok()
        );
    }
}
