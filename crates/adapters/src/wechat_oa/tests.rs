//! The WeChat Official Account adapter against a fake API answering as
//! WeChat documents: JSON with HTTP 200, `{"errcode": N, "errmsg": "..."}`
//! on failure.

use std::sync::{Arc, Mutex};

use clarion_core::{MemoryAdapterStore, OutboundPost};
use serde_json::json;

use super::*;

#[derive(Debug, Clone)]
struct Seen {
    path: String,
    query: String,
    content_type: String,
    body: String,
}

impl Seen {
    fn token(&self) -> String {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_default()
    }
}

struct Fake {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn count(&self, path: &str) -> usize {
        self.requests().iter().filter(|s| s.path == path).count()
    }
}

type Answer = dyn Fn(&Seen, &[Seen]) -> Option<Value> + Send + Sync;

/// Answers as WeChat; `special` may answer a request first.
async fn start(special: impl Fn(&Seen, &[Seen]) -> Option<Value> + Send + Sync + 'static) -> Fake {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let record = seen.clone();
    let special: Arc<Answer> = Arc::new(special);
    let app = axum::Router::new().fallback(
        move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let record = record.clone();
            let special = special.clone();
            async move {
                let request = Seen {
                    path: uri.path().to_owned(),
                    query: uri.query().unwrap_or_default().to_owned(),
                    content_type: headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned(),
                    body: String::from_utf8_lossy(&body).into_owned(),
                };
                let earlier = record.lock().unwrap().clone();
                let answer = special(&request, &earlier).unwrap_or_else(|| normal(&request));
                record.lock().unwrap().push(request);
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    answer.to_string(),
                )
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Fake { base, seen }
}

const SECRET: &str = "s3cretAppSecretValue0123456789ab";
const TOKEN: &str = "ACCESS_TOKEN_fresh_0001";

fn normal(seen: &Seen) -> Value {
    match seen.path.as_str() {
        "/cgi-bin/stable_token" => json!({"access_token": TOKEN, "expires_in": 7200}),
        "/cgi-bin/material/add_material" => {
            json!({"media_id": "COVER_MEDIA_ID", "url": "http://mmbiz.qpic.cn/x"})
        }
        "/cgi-bin/draft/add" => json!({"media_id": "DRAFT_MEDIA_ID"}),
        "/cgi-bin/freepublish/submit" => {
            json!({"errcode": 0, "errmsg": "ok", "publish_id": "100000001", "msg_data_id": 2247483})
        }
        "/cgi-bin/freepublish/get" => json!({
            "publish_id": "100000001",
            "publish_status": 0,
            "article_id": "ARTICLE_ID",
            "article_detail": {"count": 1, "item": [
                {"idx": 1, "article_url": "https://mp.weixin.qq.com/s/abc"}
            ]},
            "fail_idx": []
        }),
        "/cgi-bin/openapi/quota/get" => json!({"errcode": 0, "errmsg": "ok",
            "quota": {"daily_limit": 100, "used": 3, "remain": 97}}),
        _ => json!({"errcode": 40066, "errmsg": "invalid url"}),
    }
}

fn build(base: &str, state: Arc<dyn AdapterStore>) -> Arc<dyn ChannelAdapter> {
    build_with(base, state, json!({}))
}

fn build_with(
    base: &str,
    state: Arc<dyn AdapterStore>,
    settings: Value,
) -> Arc<dyn ChannelAdapter> {
    // SAFETY: every test sets this variable to the same value.
    unsafe { std::env::set_var("CLARION_TEST_WECHAT_SECRET", SECRET) };
    let mut config = json!({
        "name": "wechat",
        "kind": "wechat_oa",
        "appid": "wx0123456789abcdef",
        "secret": {"env": "CLARION_TEST_WECHAT_SECRET"},
        "api_base": base,
        "poll_ms": 20,
    });
    config
        .as_object_mut()
        .unwrap()
        .extend(settings.as_object().unwrap().clone());
    Factory
        .build(
            &serde_json::from_value(config).unwrap(),
            &AdapterContext { state },
        )
        .unwrap()
}

fn cover() -> Media {
    let path = std::env::temp_dir().join(format!("clarion-wechat-{}.png", std::process::id()));
    std::fs::write(&path, b"\x89PNG fake cover").unwrap();
    Media {
        path,
        alt: String::new(),
        mime: "image/png".into(),
        bytes: 15,
    }
}

fn post(text: &str) -> OutboundPost {
    OutboundPost {
        text: text.into(),
        campaign: None,
        media: vec![cover()],
    }
}

async fn publish_in(
    adapter: &dyn ChannelAdapter,
    post: &OutboundPost,
    key: &str,
    budget: Duration,
) -> Result<PublishReceipt, PublishError> {
    adapter
        .publish(PublishRequest {
            post,
            idempotency_key: key,
            reply_to: None,
            post_id: 7,
            target_id: 9,
            scheduled_at_ms: 1_764_158_400_000,
            budget,
        })
        .await
}

async fn publish(
    adapter: &dyn ChannelAdapter,
    post: &OutboundPost,
    key: &str,
) -> Result<PublishReceipt, PublishError> {
    publish_in(adapter, post, key, Duration::from_secs(30)).await
}

fn no_secrets(e: &PublishError) {
    let text = format!("{e} {e:?}");
    assert!(!text.contains(SECRET) && !text.contains(TOKEN), "{text}");
}

#[tokio::test]
async fn wechat_article_is_cover_draft_submit_then_published() {
    let fake = start(|_, _| None).await;
    let state: Arc<dyn AdapterStore> = Arc::new(MemoryAdapterStore::default());
    let adapter = build(&fake.base, state.clone());
    let p = post("# 春季发布\n**Clarion** 1.2 已发布。\n\n- 微博\n- 公众号");
    adapter.validate(&p).unwrap();
    let receipt = publish(adapter.as_ref(), &p, "post-1/target-1")
        .await
        .unwrap();
    assert_eq!(receipt.platform_post_id.as_deref(), Some("ARTICLE_ID"));
    assert_eq!(
        receipt.url.as_deref(),
        Some("https://mp.weixin.qq.com/s/abc")
    );
    let seen = fake.requests();
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/cgi-bin/stable_token",
            "/cgi-bin/material/add_material",
            "/cgi-bin/draft/add",
            "/cgi-bin/freepublish/submit",
            "/cgi-bin/freepublish/get",
        ]
    );
    assert_eq!(
        seen[0].json(),
        json!({"grant_type": "client_credential", "appid": "wx0123456789abcdef", "secret": SECRET})
    );
    assert!(seen[1].query.contains("type=image"));
    assert!(seen[1].content_type.starts_with("multipart/form-data"));
    assert!(seen[1].body.contains("name=\"media\""));
    assert!(seen[1].body.contains("PNG fake cover"));
    let article = &seen[2].json()["articles"][0];
    assert_eq!(article["title"], "春季发布");
    assert_eq!(article["thumb_media_id"], "COVER_MEDIA_ID");
    let content = article["content"].as_str().unwrap();
    assert!(
        content.contains("<strong>Clarion</strong>") && content.contains("<li>"),
        "{content}"
    );
    assert_eq!(seen[3].json(), json!({"media_id": "DRAFT_MEDIA_ID"}));
    assert_eq!(seen[4].json(), json!({"publish_id": "100000001"}));
    assert!(seen[1..].iter().all(|s| s.token() == TOKEN));

    // The token is cached, and shared through the store with another process.
    publish(adapter.as_ref(), &p, "post-2/target-1")
        .await
        .unwrap();
    let other = build(&fake.base, state);
    publish(other.as_ref(), &p, "post-3/target-1")
        .await
        .unwrap();
    assert_eq!(fake.count("/cgi-bin/stable_token"), 1);
}

#[tokio::test]
async fn wechat_title_template_and_validation() {
    let adapter = build_with(
        "http://127.0.0.1:9",
        Arc::new(MemoryAdapterStore::default()),
        json!({"title": "周报 · {first_line}"}),
    );
    let concrete = adapter.validate(&post("第一行\n正文"));
    concrete.unwrap();
    let mut bare = post("没有封面");
    bare.media.clear();
    let err = adapter.validate(&bare).unwrap_err();
    assert!(
        err.message.contains("needs a cover image"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn wechat_content_length_is_counted_as_html_at_validate_time() {
    let adapter = build(
        "http://127.0.0.1:9",
        Arc::new(MemoryAdapterStore::default()),
    );
    let overhead = clarion_content::markdown_to_html_blocks("字")
        .chars()
        .count()
        - 1;
    // Under 20,000: 19,999 characters of HTML is the most that passes.
    let exact = "字".repeat(CONTENT_LIMIT - 1 - overhead);
    assert_eq!(
        clarion_content::markdown_to_html_blocks(&exact)
            .chars()
            .count(),
        CONTENT_LIMIT - 1
    );
    adapter.validate(&post(&exact)).unwrap();
    let over = "字".repeat(CONTENT_LIMIT - overhead);
    let err = adapter.validate(&post(&over)).unwrap_err();
    assert!(
        err.message.contains("20000 characters long as HTML"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn wechat_refused_token_is_refreshed_once_and_the_call_repeated() {
    let fake = start(|seen, earlier| {
        let refreshed = earlier
            .iter()
            .any(|s| s.path == "/cgi-bin/stable_token" && s.json()["force_refresh"] == true);
        match seen.path.as_str() {
            "/cgi-bin/stable_token" if seen.json()["force_refresh"] == true => {
                Some(json!({"access_token": "ACCESS_TOKEN_forced_02", "expires_in": 7200}))
            }
            "/cgi-bin/material/add_material" if !refreshed => Some(
                json!({"errcode": 40001, "errmsg": format!("invalid credential, access_token is invalid or not latest {TOKEN}")}),
            ),
            _ => None,
        }
    })
    .await;
    let state: Arc<dyn AdapterStore> = Arc::new(MemoryAdapterStore::default());
    let adapter = build(&fake.base, state.clone());
    publish(adapter.as_ref(), &post("标题\n正文"), "k")
        .await
        .unwrap();
    let uploads: Vec<String> = fake
        .requests()
        .iter()
        .filter(|s| s.path == "/cgi-bin/material/add_material")
        .map(Seen::token)
        .collect();
    assert_eq!(uploads, [TOKEN, "ACCESS_TOKEN_forced_02"]);
    let stored = state.load("wechat", "access_token").await.unwrap().unwrap();
    assert!(stored.expose().contains("ACCESS_TOKEN_forced_02"));
}

#[tokio::test]
async fn wechat_token_refused_twice_is_rejected_credentials_without_secrets() {
    let fake = start(|seen, _| {
        (seen.path == "/cgi-bin/material/add_material").then(|| {
            json!({"errcode": 42001, "errmsg": format!("access_token expired {TOKEN} {SECRET}")})
        })
    })
    .await;
    let adapter = build(&fake.base, Arc::new(MemoryAdapterStore::default()));
    let err = publish(adapter.as_ref(), &post("标题"), "k")
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::AuthExpired);
    assert!(err.message.contains("`secret`"), "{}", err.message);
    no_secrets(&err);
    assert_eq!(fake.count("/cgi-bin/material/add_material"), 2);

    let bad = start(|seen, _| {
        (seen.path == "/cgi-bin/stable_token")
            .then(|| json!({"errcode": 40125, "errmsg": format!("invalid appsecret {SECRET}")}))
    })
    .await;
    let adapter = build(&bad.base, Arc::new(MemoryAdapterStore::default()));
    let err = publish(adapter.as_ref(), &post("标题"), "k")
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::AuthExpired);
    no_secrets(&err);
}

#[tokio::test]
async fn wechat_daily_quota_waits_until_china_midnight_then_resumes() {
    let fake = start(|seen, earlier| {
        let first = !earlier
            .iter()
            .any(|s| s.path == "/cgi-bin/freepublish/submit");
        (seen.path == "/cgi-bin/freepublish/submit" && first)
            .then(|| json!({"errcode": 45009, "errmsg": "reach max api daily quota limit"}))
    })
    .await;
    let adapter = build(&fake.base, Arc::new(MemoryAdapterStore::default()));
    let p = post("标题");
    let err = publish(adapter.as_ref(), &p, "k").await.unwrap_err();
    assert_eq!(err.class, ErrorClass::RateLimited);
    assert!(err.message.contains("reach max api daily quota limit"));
    let wait = err.retry_after.unwrap();
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_secs(86_400),
        "{wait:?}"
    );
    // After the wait: the cover and draft are not made again.
    publish(adapter.as_ref(), &p, "k").await.unwrap();
    assert_eq!(fake.count("/cgi-bin/material/add_material"), 1);
    assert_eq!(fake.count("/cgi-bin/draft/add"), 1);
    assert_eq!(fake.count("/cgi-bin/freepublish/submit"), 2);

    // 2025-01-01 15:30 UTC is 23:30 in China: 30 minutes to midnight.
    let now = chrono::DateTime::parse_from_rfc3339("2025-01-01T15:30:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    assert_eq!(until_china_midnight(now), Duration::from_secs(30 * 60));
}

#[tokio::test]
async fn wechat_still_publishing_is_unfinished_then_resumes_without_a_second_submit() {
    let fake = start(|seen, earlier| {
        let gets = earlier
            .iter()
            .filter(|s| s.path == "/cgi-bin/freepublish/get")
            .count();
        (seen.path == "/cgi-bin/freepublish/get" && gets < 3)
            .then(|| json!({"publish_id": "100000001", "publish_status": 1}))
    })
    .await;
    let state: Arc<dyn AdapterStore> = Arc::new(MemoryAdapterStore::default());
    let adapter = build(&fake.base, state.clone());
    let p = post("标题");
    let err = publish_in(adapter.as_ref(), &p, "k", Duration::from_millis(100))
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Unfinished);
    assert!(err.message.contains("100000001"), "{}", err.message);
    // The next attempt (another process, even) polls the same publish_id.
    let again = build(&fake.base, state);
    let receipt = publish(again.as_ref(), &p, "k").await.unwrap();
    assert_eq!(
        receipt.url.as_deref(),
        Some("https://mp.weixin.qq.com/s/abc")
    );
    assert_eq!(fake.count("/cgi-bin/freepublish/submit"), 1);
    assert_eq!(fake.count("/cgi-bin/draft/add"), 1);
}

#[tokio::test]
async fn wechat_permanent_errors_keep_the_platforms_message() {
    let fake = start(|seen, _| {
        (seen.path == "/cgi-bin/draft/add")
            .then(|| json!({"errcode": 45003, "errmsg": "title size out of limit"}))
    })
    .await;
    let adapter = build(&fake.base, Arc::new(MemoryAdapterStore::default()));
    let err = publish(adapter.as_ref(), &post("标题"), "k")
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(err.message.contains("45003") && err.message.contains("title size out of limit"));
    no_secrets(&err);

    let e = classify(48001, "api unauthorized", "freepublish/submit");
    assert_eq!(e.class, ErrorClass::Permanent);
    assert!(e.message.contains("verified"), "{}", e.message);

    let failed = start(|seen, _| {
        (seen.path == "/cgi-bin/freepublish/get")
            .then(|| json!({"publish_id": "100000001", "publish_status": 4, "fail_idx": [1]}))
    })
    .await;
    let adapter = build(&failed.base, Arc::new(MemoryAdapterStore::default()));
    let err = publish(adapter.as_ref(), &post("标题"), "k")
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(err.message.contains("review"), "{}", err.message);
}

#[tokio::test]
async fn wechat_check_reads_the_publish_quota() {
    let fake = start(|_, _| None).await;
    let adapter = build(&fake.base, Arc::new(MemoryAdapterStore::default()));
    let check = adapter.check().await.unwrap();
    assert!(check.warning.is_none());
    assert!(check.detail.contains("used 3 of 100"), "{}", check.detail);
    assert!(!check.detail.contains(TOKEN));

    let unauthorized = start(|seen, _| {
        (seen.path == "/cgi-bin/openapi/quota/get")
            .then(|| json!({"errcode": 48001, "errmsg": "api unauthorized"}))
    })
    .await;
    let adapter = build(&unauthorized.base, Arc::new(MemoryAdapterStore::default()));
    let err = adapter.check().await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(err.message.contains("48001"));
}

#[tokio::test]
async fn wechat_stored_token_is_refetched_when_under_five_minutes_remain() {
    let fake = start(|_, _| None).await;
    let state: Arc<dyn AdapterStore> = Arc::new(MemoryAdapterStore::default());
    let old = StoredToken {
        token: "ACCESS_TOKEN_almost_gone".into(),
        expires_at_ms: now_ms() + 60_000,
        appid: "wx0123456789abcdef".into(),
    };
    state
        .save(
            "wechat",
            "access_token",
            &Secret::new(serde_json::to_string(&old).unwrap()),
        )
        .await
        .unwrap();
    let adapter = build(&fake.base, state.clone());
    adapter.check().await.unwrap();
    assert_eq!(fake.count("/cgi-bin/stable_token"), 1);
    assert_eq!(fake.requests()[1].token(), TOKEN);
    let stored = state.load("wechat", "access_token").await.unwrap().unwrap();
    assert!(stored.expose().contains(TOKEN));
}

#[tokio::test]
async fn wechat_status_checks_are_paced_across_attempts() {
    let fake = start(|seen, _| {
        (seen.path == "/cgi-bin/freepublish/get")
            .then(|| json!({"publish_id": "100000001", "publish_status": 1}))
    })
    .await;
    let state: Arc<dyn AdapterStore> = Arc::new(MemoryAdapterStore::default());
    let adapter = build_with(&fake.base, state, json!({"poll_ms": 60_000}));
    let p = post("标题");
    for _ in 0..3 {
        let err = publish_in(adapter.as_ref(), &p, "k", Duration::from_millis(40))
            .await
            .unwrap_err();
        assert_eq!(err.class, ErrorClass::Unfinished);
    }
    // One check; the next is not due for a minute, however often it is called.
    assert_eq!(fake.count("/cgi-bin/freepublish/get"), 1);
    assert_eq!(fake.count("/cgi-bin/freepublish/submit"), 1);
}
