//! The Weibo adapter against a fake API answering as Weibo documents:
//! the status JSON on success, `{"error","error_code","request"}` with
//! HTTP 400/403 on failure.

use std::sync::{Arc, Mutex};

use clarion_core::{Media, OutboundPost};
use serde_json::json;

use super::*;

#[derive(Debug, Clone)]
struct Seen {
    path: String,
    content_type: String,
    body: String,
}

impl Seen {
    fn form(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.body.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
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
}

async fn start(answer: impl Fn(&Seen, usize) -> (u16, String) + Send + Sync + 'static) -> Fake {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let record = seen.clone();
    let answer = Arc::new(answer);
    let app = axum::Router::new().fallback(
        move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let record = record.clone();
            let answer = answer.clone();
            async move {
                let request = Seen {
                    path: uri.path().to_owned(),
                    content_type: headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned(),
                    body: String::from_utf8_lossy(&body).into_owned(),
                };
                let n = record.lock().unwrap().len();
                let (status, body) = answer(&request, n);
                record.lock().unwrap().push(request);
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body,
                )
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Fake { base, seen }
}

const TOKEN: &str = "2.00SeCrEtWeiboTokenValue";

fn build(base: &str, settings: serde_json::Value) -> Result<Arc<dyn ChannelAdapter>, ConfigError> {
    // SAFETY: every test sets this variable to the same value.
    unsafe { std::env::set_var("CLARION_TEST_WEIBO_TOKEN", TOKEN) };
    let mut config = json!({
        "name": "weibo",
        "kind": "weibo",
        "access_token": {"env": "CLARION_TEST_WEIBO_TOKEN"},
        "safe_url": "https://example.com/",
        "api_base": base,
    });
    config
        .as_object_mut()
        .unwrap()
        .extend(settings.as_object().unwrap().clone());
    Factory.build(
        &serde_json::from_value(config).unwrap(),
        &AdapterContext::default(),
    )
}

fn post(text: &str) -> OutboundPost {
    OutboundPost {
        text: text.into(),
        campaign: None,
        media: vec![],
    }
}

async fn publish(
    adapter: &dyn ChannelAdapter,
    post: &OutboundPost,
) -> Result<PublishReceipt, PublishError> {
    adapter
        .publish(PublishRequest {
            post,
            idempotency_key: "post-7/target-9",
            reply_to: None,
            post_id: 7,
            target_id: 9,
            scheduled_at_ms: 1_764_158_400_000,
            budget: Duration::from_secs(30),
        })
        .await
}

fn status_ok() -> (u16, String) {
    (
        200,
        json!({"created_at": "Wed Oct 24 23:49:17 +0800 2012", "id": 3504803600502730_i64,
               "idstr": "3504803600502730", "text": "x"})
        .to_string(),
    )
}

fn error(status: u16, code: i64, message: &str) -> (u16, String) {
    (
        status,
        json!({"error": message, "error_code": code, "request": "/2/statuses/share.json"})
            .to_string(),
    )
}

#[tokio::test]
async fn weibo_plain_post_is_a_form_with_token_and_status() {
    let fake = start(|_, _| status_ok()).await;
    let adapter = build(&fake.base, json!({})).unwrap();
    let receipt = publish(
        adapter.as_ref(),
        &post("新版本发布 https://example.com/r/1"),
    )
    .await
    .unwrap();
    assert_eq!(
        receipt.platform_post_id.as_deref(),
        Some("3504803600502730")
    );
    assert_eq!(
        receipt.url.as_deref(),
        Some("https://m.weibo.cn/status/3504803600502730")
    );
    let seen = fake.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/2/statuses/share.json");
    assert!(
        seen[0]
            .content_type
            .starts_with("application/x-www-form-urlencoded")
    );
    assert_eq!(seen[0].form("access_token").as_deref(), Some(TOKEN));
    assert_eq!(
        seen[0].form("status").as_deref(),
        Some("新版本发布 https://example.com/r/1")
    );
}

#[test]
fn weibo_counts_cjk_as_one_and_two_ascii_as_one() {
    assert_eq!(weibo_count("微博"), 2);
    assert_eq!(weibo_count("ab"), 1);
    assert_eq!(weibo_count("abc"), 2);
    assert_eq!(weibo_count("微博 ab"), 4); // 2 + ceil(3 / 2)
}

#[tokio::test]
async fn weibo_length_is_checked_at_validate_time_weibos_way() {
    let adapter = build("http://127.0.0.1:9", json!({})).unwrap();
    // " https://example.com/" is 21 half-width characters: 11 units.
    let link = " https://example.com/";
    let exact = format!("{}{link}", "微".repeat(TEXT_LIMIT - 11));
    assert_eq!(weibo_count(&exact), TEXT_LIMIT);
    adapter.validate(&post(&exact)).unwrap();
    let over = format!("{}{link}", "微".repeat(TEXT_LIMIT - 10));
    let err = adapter.validate(&post(&over)).unwrap_err();
    assert!(
        err.message
            .contains("2001 long as Weibo counts it (a Chinese character 1"),
        "{}",
        err.message
    );
    // 3,000 ASCII characters are only 1,500 units: accepted.
    let ascii = format!("{}{link}", "a".repeat(3000));
    adapter.validate(&post(&ascii)).unwrap();
}

#[tokio::test]
async fn weibo_refuses_a_post_without_a_safe_link_or_appends_it() {
    let adapter = build("http://127.0.0.1:9", json!({})).unwrap();
    let err = adapter
        .validate(&post("只有文字 https://other.test/x"))
        .unwrap_err();
    assert!(
        err.message.contains("safe domain (example.com)"),
        "{}",
        err.message
    );
    adapter
        .validate(&post("子域名也可以 https://www.example.com/a"))
        .unwrap();

    let fake = start(|_, _| status_ok()).await;
    let appending = build(&fake.base, json!({"append_safe_url": true})).unwrap();
    appending.validate(&post("只有文字")).unwrap();
    publish(appending.as_ref(), &post("只有文字"))
        .await
        .unwrap();
    assert_eq!(
        fake.requests()[0].form("status").as_deref(),
        Some("只有文字 https://example.com/")
    );
    // The appended URL counts: 11 units.
    let full = "微".repeat(TEXT_LIMIT - 10);
    assert!(appending.validate(&post(&full)).is_err());

    let missing = build("http://127.0.0.1:9", json!({"safe_url": null})).unwrap_err();
    assert!(missing.to_string().contains("安全域名"), "{missing}");
}

#[test]
fn weibo_a_reply_is_planned_as_a_comment() {
    let adapter = build("http://127.0.0.1:9", json!({})).unwrap();
    // No safe link needed in an answer; a post would be refused.
    adapter.validate_reply(&post("谢谢！")).unwrap();
    assert!(adapter.validate(&post("谢谢！")).is_err());
    let long = adapter
        .validate_reply(&post(&"谢".repeat(141)))
        .unwrap_err();
    assert!(long.message.contains("140"), "{}", long.message);
    let mut with_picture = post("看图");
    with_picture.media.push(clarion_core::Media {
        path: "a.png".into(),
        alt: String::new(),
        mime: "image/png".into(),
        bytes: 10,
    });
    let refused = adapter.validate_reply(&with_picture).unwrap_err();
    assert!(
        refused.message.contains("no picture"),
        "{}",
        refused.message
    );
}

#[tokio::test]
async fn weibo_picture_goes_as_multipart_pic() {
    let fake = start(|_, _| status_ok()).await;
    let adapter = build(&fake.base, json!({})).unwrap();
    let path = std::env::temp_dir().join(format!("clarion-weibo-{}.png", std::process::id()));
    std::fs::write(&path, b"\x89PNG fake image").unwrap();
    let mut p = post("有图 https://example.com/p");
    p.media.push(Media {
        path: path.clone(),
        alt: String::new(),
        mime: "image/png".into(),
        bytes: 15,
    });
    adapter.validate(&p).unwrap();
    publish(adapter.as_ref(), &p).await.unwrap();
    std::fs::remove_file(path).unwrap();
    let seen = &fake.requests()[0];
    assert!(
        seen.content_type.starts_with("multipart/form-data"),
        "{}",
        seen.content_type
    );
    assert!(seen.body.contains("name=\"pic\""), "{}", seen.body);
    assert!(seen.body.contains("PNG fake image"));
    assert!(seen.body.contains("有图 https://example.com/p"));
    assert!(seen.body.contains(TOKEN));
}

#[tokio::test]
async fn weibo_rate_limits_are_retried_after_the_wait_then_succeed() {
    let fake = start(|_, n| {
        if n == 0 {
            error(403, 10023, "User requests out of rate limit!")
        } else {
            status_ok()
        }
    })
    .await;
    let adapter = build(&fake.base, json!({})).unwrap();
    let p = post("限流 https://example.com/");
    let err = publish(adapter.as_ref(), &p).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::RateLimited);
    assert_eq!(err.retry_after, Some(RATE_LIMIT_WAIT));
    assert!(err.message.contains("User requests out of rate limit!"));
    // The scheduler waits `retry_after`, then calls again.
    publish(adapter.as_ref(), &p).await.unwrap();
    assert_eq!(classify(10024, "IP").class, ErrorClass::RateLimited);
}

#[tokio::test]
async fn weibo_expired_token_is_rejected_credentials_without_the_token() {
    let fake = start(|_, _| error(400, 21327, &format!("expired_token {TOKEN}"))).await;
    let adapter = build(&fake.base, json!({})).unwrap();
    let err = publish(adapter.as_ref(), &post("x https://example.com/"))
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::AuthExpired);
    assert!(err.message.contains("`access_token`"), "{}", err.message);
    assert!(!err.to_string().contains(TOKEN), "{err}");
    for code in [21332, 21314, 21319] {
        assert_eq!(classify(code, "").class, ErrorClass::AuthExpired);
    }
}

#[tokio::test]
async fn weibo_permanent_errors_keep_the_platforms_message() {
    let fake = start(|_, _| error(400, 20019, "repeat content!")).await;
    let adapter = build(&fake.base, json!({})).unwrap();
    let err = publish(adapter.as_ref(), &post("x https://example.com/"))
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(err.message.contains("repeat content!"), "{}", err.message);
    assert_eq!(
        classify(20012, "text too long").class,
        ErrorClass::Permanent
    );
    let other = classify(20032, "update success, while server slow now");
    assert_eq!(other.class, ErrorClass::Permanent);
    assert!(other.message.contains("server slow now"));
}

#[tokio::test]
async fn weibo_server_errors_are_outcome_unknown() {
    let fake = start(|_, _| (502, "<html>bad gateway</html>".into())).await;
    let adapter = build(&fake.base, json!({})).unwrap();
    let err = publish(adapter.as_ref(), &post("x https://example.com/"))
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::OutcomeUnknown);
}

#[tokio::test]
async fn weibo_check_reads_the_tokens_remaining_life() {
    let info = |expire_in: i64| {
        (
            200,
            json!({"uid": 1073880650, "appkey": "1352222456", "scope": null,
                   "create_at": 1352267591, "expire_in": expire_in})
            .to_string(),
        )
    };
    let long = start(move |_, _| info(90 * 86_400)).await;
    let check = build(&long.base, json!({})).unwrap().check().await.unwrap();
    assert!(check.warning.is_none());
    assert!(check.detail.contains("1073880650"), "{}", check.detail);
    let seen = &long.requests()[0];
    assert_eq!(seen.path, "/oauth2/get_token_info");
    assert_eq!(seen.form("access_token").as_deref(), Some(TOKEN));
    assert!(!check.detail.contains(TOKEN));

    let soon = start(move |_, _| info(3 * 86_400)).await;
    let check = build(&soon.base, json!({})).unwrap().check().await.unwrap();
    assert!(check.warning.unwrap().contains("within 7 days"));

    let expired = start(move |_, _| info(0)).await;
    let err = build(&expired.base, json!({}))
        .unwrap()
        .check()
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::AuthExpired);

    let rejected = start(|_, _| error(400, 21327, "expired_token")).await;
    let err = build(&rejected.base, json!({}))
        .unwrap()
        .check()
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::AuthExpired);
}

async fn publish_reply(
    adapter: &dyn ChannelAdapter,
    post: &OutboundPost,
    root: &str,
    parent: &str,
) -> Result<PublishReceipt, PublishError> {
    adapter
        .publish(PublishRequest {
            post,
            idempotency_key: "post-8/target-10",
            reply_to: Some(ReplyTo { root, parent }),
            post_id: 8,
            target_id: 10,
            scheduled_at_ms: 1_764_158_400_000,
            budget: Duration::from_secs(30),
        })
        .await
}

fn comment_ok(id: i64) -> (u16, String) {
    (
        200,
        json!({"created_at": "Wed Jun 01 00:50:25 +0800 2011", "id": id, "idstr": id.to_string(),
               "text": "谢谢", "user": {"id": 1404376560, "screen_name": "clarion"},
               "status": {"id": 5000000000000001_i64, "idstr": "5000000000000001"}})
        .to_string(),
    )
}

#[tokio::test]
async fn weibo_reply_to_a_comment_uses_comments_reply_with_cid() {
    let fake = start(|_, _| comment_ok(5000000000000200)).await;
    let adapter = build(&fake.base, json!({})).unwrap();
    // No safe link needed: a comment is not a shared status.
    let receipt = publish_reply(
        adapter.as_ref(),
        &post("谢谢支持"),
        "5000000000000001",
        "5000000000000102",
    )
    .await
    .unwrap();
    assert_eq!(
        receipt.platform_post_id.as_deref(),
        Some("5000000000000200"),
        "the comment id, as the listener gives comments"
    );
    assert_eq!(
        receipt.url.as_deref(),
        Some("https://m.weibo.cn/status/5000000000000001")
    );
    let seen = &fake.requests()[0];
    assert_eq!(seen.path, "/2/comments/reply.json");
    assert_eq!(seen.form("cid").as_deref(), Some("5000000000000102"));
    assert_eq!(seen.form("id").as_deref(), Some("5000000000000001"));
    assert_eq!(seen.form("comment").as_deref(), Some("谢谢支持"));
    assert_eq!(seen.form("access_token").as_deref(), Some(TOKEN));
}

#[tokio::test]
async fn weibo_reply_to_a_status_comments_on_it() {
    let fake = start(|_, _| comment_ok(5000000000000201)).await;
    let adapter = build(&fake.base, json!({"append_safe_url": true})).unwrap();
    let receipt = publish_reply(
        adapter.as_ref(),
        &post("你好"),
        "5000000000000106",
        "5000000000000106",
    )
    .await
    .unwrap();
    assert_eq!(
        receipt.platform_post_id.as_deref(),
        Some("5000000000000201")
    );
    let seen = &fake.requests()[0];
    assert_eq!(seen.path, "/2/comments/create.json");
    assert_eq!(seen.form("id").as_deref(), Some("5000000000000106"));
    assert_eq!(seen.form("cid"), None);
    assert_eq!(
        seen.form("comment").as_deref(),
        Some("你好"),
        "the safe URL is not appended to a comment"
    );
}

#[tokio::test]
async fn weibo_replies_that_cannot_be_comments_are_refused_naming_why() {
    let fake = start(|_, _| comment_ok(1)).await;
    let adapter = build(&fake.base, json!({})).unwrap();
    let long = "微".repeat(COMMENT_LIMIT + 1);
    let err = publish_reply(adapter.as_ref(), &post(&long), "5", "6")
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(err.message.contains("limited to 140"), "{}", err.message);

    let err = publish_reply(adapter.as_ref(), &post("hi"), "urn:li:share:1", "x")
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(err.message.contains("not Weibo"), "{}", err.message);

    let mut with_pic = post("看图");
    with_pic.media.push(Media {
        path: "/nonexistent.png".into(),
        alt: String::new(),
        mime: "image/png".into(),
        bytes: 1,
    });
    let err = publish_reply(adapter.as_ref(), &with_pic, "5", "5")
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(err.message.contains("no picture"), "{}", err.message);
    assert!(fake.requests().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn weibo_reply_errors_are_classified_like_posts() {
    let fake = start(|_, _| error(400, 20206, "作者只允许关注用户评论")).await;
    let adapter = build(&fake.base, json!({})).unwrap();
    let err = publish_reply(adapter.as_ref(), &post("hi"), "5", "6")
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);
    assert!(
        err.message.contains("作者只允许关注用户评论"),
        "{}",
        err.message
    );
    let expired = start(|_, _| error(400, 21327, "expired_token")).await;
    let adapter = build(&expired.base, json!({})).unwrap();
    let err = publish_reply(adapter.as_ref(), &post("hi"), "5", "5")
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::AuthExpired);
}
