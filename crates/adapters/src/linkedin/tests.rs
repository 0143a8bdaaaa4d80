//! The LinkedIn adapter against a fake API answering as LinkedIn documents:
//! 201 with the post URN in `x-restli-id`, `{"message","status"}` errors.

use std::sync::{Arc, Mutex};

use clarion_core::{MemoryAdapterStore, OutboundPost};

use super::*;

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    auth: String,
    version: String,
    body: String,
}

type Reply = (u16, Vec<(&'static str, String)>, String);

struct Fake {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn start(answer: impl Fn(&Seen, &[Seen], &str) -> Reply + Send + Sync + 'static) -> Fake {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let record = seen.clone();
    let answer = Arc::new(answer);
    let base_cell: Arc<Mutex<String>> = Arc::default();
    let base_for_app = base_cell.clone();
    let app = axum::Router::new().fallback(
        move |method: axum::http::Method,
              uri: axum::http::Uri,
              headers: axum::http::HeaderMap,
              body: axum::body::Bytes| {
            let record = record.clone();
            let answer = answer.clone();
            let base = base_for_app.lock().unwrap().clone();
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
                    auth: h("authorization"),
                    version: h("linkedin-version"),
                    body: String::from_utf8_lossy(&body).into_owned(),
                };
                let earlier = record.lock().unwrap().clone();
                let (status, extra, body) = answer(&request, &earlier, &base);
                record.lock().unwrap().push(request);
                let mut response = axum::response::Response::new(axum::body::Body::from(body));
                *response.status_mut() = axum::http::StatusCode::from_u16(status).unwrap();
                for (k, v) in extra {
                    response
                        .headers_mut()
                        .insert(k, axum::http::HeaderValue::from_str(&v).unwrap());
                }
                response
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    *base_cell.lock().unwrap() = base.clone();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Fake { base, seen }
}

fn created(id: &str) -> Reply {
    (201, vec![("x-restli-id", id.to_owned())], String::new())
}

fn build(base: &str, extra: Value, state: Arc<dyn AdapterStore>) -> LinkedInAdapter {
    let mut settings = json!({
        "author": "urn:li:organization:42",
        "access_token": secret("at-OLD-secret"),
        "api_base": base,
        "oauth_base": base,
    });
    for (k, v) in extra.as_object().unwrap() {
        settings[k] = v.clone();
    }
    let config = ChannelConfig {
        name: "li".into(),
        kind: "linkedin".into(),
        listen: false,
        settings: settings.as_object().unwrap().clone(),
    };
    configure(&config, &AdapterContext { state }).unwrap()
}

/// A secret reference to a file holding `value`.
fn secret(value: &str) -> Value {
    let dir = std::env::temp_dir().join(format!("clarion-li-secrets-{}", std::process::id()));
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

fn store() -> Arc<dyn AdapterStore> {
    Arc::new(MemoryAdapterStore::default())
}

fn request(post: &OutboundPost) -> PublishRequest<'_> {
    PublishRequest {
        post,
        idempotency_key: "k1",
        reply_to: None,
        post_id: 1,
        target_id: 1,
        scheduled_at_ms: 0,
        budget: Duration::from_secs(30),
    }
}

fn text(t: &str) -> OutboundPost {
    OutboundPost {
        text: t.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_plain_post_is_created_with_escaped_commentary() {
    let fake = start(|_, _, _| created("urn:li:share:7001")).await;
    let adapter = build(&fake.base, json!({}), store());
    let receipt = adapter
        .publish(request(&text("Hello (world) @you #tag_x")))
        .await
        .unwrap();
    assert_eq!(
        receipt.platform_post_id.as_deref(),
        Some("urn:li:share:7001")
    );
    assert_eq!(
        receipt.url.as_deref(),
        Some("https://www.linkedin.com/feed/update/urn:li:share:7001/")
    );
    let seen = fake.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/rest/posts");
    assert_eq!(seen[0].auth, "Bearer at-OLD-secret");
    assert_eq!(seen[0].version, "202510");
    let body: Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(body["author"], "urn:li:organization:42");
    assert_eq!(body["commentary"], r"Hello \(world\) \@you #tag\_x");
    assert_eq!(body["visibility"], "PUBLIC");
    assert_eq!(body["lifecycleState"], "PUBLISHED");
    assert_eq!(body["distribution"]["feedDistribution"], "MAIN_FEED");
    assert_eq!(body["isReshareDisabledByAuthor"], false);
}

#[test]
fn the_limit_is_3000_characters() {
    let adapter = build("http://127.0.0.1:9", json!({}), store());
    assert!(adapter.validate(&text(&"é".repeat(3000))).is_ok());
    let e = adapter.validate(&text(&"é".repeat(3001))).unwrap_err();
    assert!(e.to_string().contains("3000"), "{e}");
}

#[tokio::test]
async fn an_image_is_initialized_uploaded_and_attached() {
    let fake = start(|seen, _, base| match seen.path.as_str() {
        "/rest/images" => (
            200,
            vec![],
            json!({"value": {"uploadUrl": format!("{base}/upload/abc"), "image": "urn:li:image:C4E"}})
                .to_string(),
        ),
        "/upload/abc" => (201, vec![], String::new()),
        _ => created("urn:li:share:7002"),
    })
    .await;
    let dir = std::env::temp_dir().join(format!("clarion-li-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("a.png");
    std::fs::write(&path, b"\x89PNGdata").unwrap();
    let adapter = build(&fake.base, json!({}), store());
    let post = OutboundPost {
        text: "with image".into(),
        campaign: None,
        media: vec![Media {
            path,
            alt: "a chart".into(),
            mime: "image/png".into(),
            bytes: 8,
        }],
    };
    adapter.validate(&post).unwrap();
    adapter.publish(request(&post)).await.unwrap();
    let seen = fake.requests();
    assert_eq!(seen.len(), 3);
    let init: Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(
        init["initializeUploadRequest"]["owner"],
        "urn:li:organization:42"
    );
    assert_eq!(seen[1].method, "PUT");
    assert_eq!(seen[1].body, "\u{fffd}PNGdata");
    let body: Value = serde_json::from_str(&seen[2].body).unwrap();
    assert_eq!(body["content"]["media"]["id"], "urn:li:image:C4E");
    assert_eq!(body["content"]["media"]["altText"], "a chart");
}

#[tokio::test]
async fn a_rate_limit_is_classified_with_its_wait_then_succeeds() {
    let fake = start(|_, earlier, _| {
        if earlier.is_empty() {
            (
                429,
                vec![("retry-after", "7".to_owned())],
                json!({"message": "Resource level throttle limit reached", "status": 429})
                    .to_string(),
            )
        } else {
            created("urn:li:share:7003")
        }
    })
    .await;
    let adapter = build(&fake.base, json!({}), store());
    let e = adapter.publish(request(&text("hi"))).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::RateLimited);
    assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
    let receipt = adapter.publish(request(&text("hi"))).await.unwrap();
    assert_eq!(
        receipt.platform_post_id.as_deref(),
        Some("urn:li:share:7003")
    );
}

fn expired_then_ok(seen: &Seen, _: &[Seen], _: &str) -> Reply {
    match seen.path.as_str() {
        "/oauth/v2/accessToken" => (
            200,
            vec![],
            json!({"access_token": "at-NEW-secret", "expires_in": 5183999,
                   "refresh_token": "rt-NEW-secret", "refresh_token_expires_in": 31535999})
            .to_string(),
        ),
        _ if seen.auth == "Bearer at-NEW-secret" => created("urn:li:share:7004"),
        _ => (
            401,
            vec![],
            json!({"status": 401, "serviceErrorCode": 65601, "code": "REVOKED_ACCESS_TOKEN",
                   "message": "The token used in the request has been revoked by the user"})
            .to_string(),
        ),
    }
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_and_stored() {
    let fake = start(expired_then_ok).await;
    let state = store();
    let refreshing = json!({
        "refresh_token": secret("rt-OLD-secret"),
        "client_id": "cid",
        "client_secret": secret("cs-secret"),
    });
    let adapter = build(&fake.base, refreshing.clone(), state.clone());
    let receipt = adapter.publish(request(&text("hi"))).await.unwrap();
    assert_eq!(
        receipt.platform_post_id.as_deref(),
        Some("urn:li:share:7004")
    );
    let seen = fake.requests();
    assert_eq!(seen.len(), 3);
    assert!(seen[1].body.contains("grant_type=refresh_token"));
    assert!(seen[1].body.contains("refresh_token=rt-OLD-secret"));
    let stored = state.load("li", "access_token").await.unwrap().unwrap();
    assert_eq!(stored.expose(), "at-NEW-secret");
    // Another process sharing the store uses the refreshed token at once.
    let other = build(&fake.base, refreshing, state);
    other.publish(request(&text("again"))).await.unwrap();
    assert_eq!(fake.requests().len(), 4);
}

#[tokio::test]
async fn without_a_refresh_token_401_is_rejected_credentials() {
    let fake = start(expired_then_ok).await;
    let adapter = build(&fake.base, json!({}), store());
    let e = adapter.publish(request(&text("hi"))).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::AuthExpired);
    assert!(e.message.contains("revoked"), "{}", e.message);
    assert!(!e.to_string().contains("secret"), "{e}");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn a_refused_refresh_is_rejected_credentials_without_tokens() {
    let fake = start(|seen, _, _| match seen.path.as_str() {
        "/oauth/v2/accessToken" => (
            400,
            vec![],
            json!({"error": "invalid_grant", "error_description": "The provided authorization grant or refresh token is invalid, expired or revoked"}).to_string(),
        ),
        _ => (401, vec![], json!({"status": 401, "message": "Expired access token"}).to_string()),
    })
    .await;
    let adapter = build(
        &fake.base,
        json!({"refresh_token": secret("rt-OLD-secret"), "client_id": "cid", "client_secret": secret("cs-secret")}),
        store(),
    );
    let e = adapter.publish(request(&text("hi"))).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::AuthExpired);
    assert!(!e.to_string().contains("secret"), "{e}");
    assert!(!format!("{adapter:?}").contains("secret"));
}

#[tokio::test]
async fn a_permanent_error_keeps_linkedins_message() {
    let fake = start(|_, _, _| {
        (
            422,
            vec![],
            json!({"status": 422, "message": "ERROR :: /commentary :: is too long"}).to_string(),
        )
    })
    .await;
    let adapter = build(&fake.base, json!({}), store());
    let e = adapter.publish(request(&text("hi"))).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Permanent);
    assert!(
        e.message.contains("/commentary :: is too long"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn a_5xx_on_create_is_outcome_unknown() {
    let fake = start(|_, _, _| (502, vec![], "<html>bad gateway</html>".into())).await;
    let adapter = build(&fake.base, json!({}), store());
    let e = adapter.publish(request(&text("hi"))).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::OutcomeUnknown);
}

#[tokio::test]
async fn check_reads_the_organization_name() {
    let fake = start(|seen, _, _| {
        assert_eq!(seen.path, "/rest/organizations/42");
        (
            200,
            vec![],
            json!({"id": 42, "localizedName": "Acme"}).to_string(),
        )
    })
    .await;
    let adapter = build(&fake.base, json!({}), store());
    let check = adapter.check().await.unwrap();
    assert_eq!(check.detail, "Acme (urn:li:organization:42)");
}

#[test]
fn bad_settings_are_refused() {
    let config = |settings: Value| ChannelConfig {
        name: "li".into(),
        kind: "linkedin".into(),
        listen: false,
        settings: settings.as_object().unwrap().clone(),
    };
    let ctx = AdapterContext::default();
    let e = configure(
        &config(json!({"author": "acme", "access_token": secret("x")})),
        &ctx,
    )
    .unwrap_err();
    assert!(e.to_string().contains("urn:li:organization"), "{e}");
    let e = configure(
        &config(json!({"author": "urn:li:person:abc", "access_token": secret("x"), "refresh_token": secret("y")})),
        &ctx,
    )
    .unwrap_err();
    assert!(e.to_string().contains("client_id"), "{e}");
}

fn reply_request<'a>(post: &'a OutboundPost, root: &'a str, parent: &'a str) -> PublishRequest<'a> {
    PublishRequest {
        reply_to: Some(ReplyTo { root, parent }),
        ..request(post)
    }
}

const C1: &str = "urn:li:comment:(urn:li:activity:7001,1)";

#[tokio::test]
async fn a_reply_to_a_post_is_a_top_level_comment() {
    let fake = start(|_, _, _| {
        (
            201,
            vec![("x-restli-id", "6636".to_owned())],
            json!({"actor": "urn:li:organization:42", "commentUrn": "urn:li:comment:(urn:li:activity:7001,6636)",
                   "id": "6636", "object": "urn:li:activity:7001", "message": {"text": "Thanks (all)!"},
                   "created": {"actor": "urn:li:organization:42", "time": 1}})
            .to_string(),
        )
    })
    .await;
    let adapter = build(&fake.base, json!({}), store());
    let receipt = adapter
        .publish(reply_request(
            &text("Thanks (all)!"),
            "urn:li:share:7001",
            "urn:li:share:7001",
        ))
        .await
        .unwrap();
    assert_eq!(
        receipt.platform_post_id.as_deref(),
        Some("urn:li:comment:(urn:li:activity:7001,6636)")
    );
    assert!(
        receipt
            .url
            .as_deref()
            .unwrap()
            .starts_with("https://www.linkedin.com/feed/update/urn:li:share:7001/?commentUrn=")
    );
    let seen = fake.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(
        seen[0].path,
        "/rest/socialActions/urn%3Ali%3Ashare%3A7001/comments"
    );
    assert_eq!(seen[0].version, "202510");
    let body: Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(body["actor"], "urn:li:organization:42");
    assert_eq!(body["object"], "urn:li:share:7001");
    assert_eq!(
        body["message"]["text"], "Thanks (all)!",
        "comments are not little text"
    );
    assert_eq!(body.get("parentComment"), None);
}

#[tokio::test]
async fn a_reply_to_a_comment_is_nested_with_parent_comment() {
    // Only the bare id in `x-restli-id`: the URN is built from the thread.
    let fake =
        start(|_, _, _| (201, vec![("x-restli-id", "6640".to_owned())], String::new())).await;
    let adapter = build(&fake.base, json!({}), store());
    let receipt = adapter
        .publish(reply_request(
            &text("Glad it helped"),
            "urn:li:share:7001",
            C1,
        ))
        .await
        .unwrap();
    assert_eq!(
        receipt.platform_post_id.as_deref(),
        Some("urn:li:comment:(urn:li:activity:7001,6640)")
    );
    assert!(receipt.url.as_deref().unwrap().contains("&replyUrn="));
    let seen = fake.requests();
    assert_eq!(
        seen[0].path,
        "/rest/socialActions/urn%3Ali%3Acomment%3A%28urn%3Ali%3Aactivity%3A7001%2C1%29/comments"
    );
    let body: Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(body["parentComment"], C1);
    assert_eq!(body["object"], "urn:li:activity:7001");
    assert_eq!(body["actor"], "urn:li:organization:42");
    assert_eq!(body["message"]["text"], "Glad it helped");
}

#[tokio::test]
async fn replies_that_cannot_be_comments_are_refused_naming_why() {
    let fake = start(|_, _, _| created("unused")).await;
    let adapter = build(&fake.base, json!({}), store());
    let e = adapter
        .publish(reply_request(
            &text(&"a".repeat(1251)),
            "urn:li:share:1",
            "urn:li:share:1",
        ))
        .await
        .unwrap_err();
    assert_eq!(e.class, ErrorClass::Permanent);
    assert!(e.message.contains("1250"), "{}", e.message);
    let e = adapter
        .publish(reply_request(&text("hi"), "12345", "12345"))
        .await
        .unwrap_err();
    assert_eq!(e.class, ErrorClass::Permanent);
    assert!(e.message.contains("not a post URN"), "{}", e.message);
    let e = adapter
        .publish(reply_request(
            &text("hi"),
            "urn:li:share:1",
            "urn:li:comment:broken",
        ))
        .await
        .unwrap_err();
    assert_eq!(e.class, ErrorClass::Permanent);
    let post = OutboundPost {
        text: "with image".into(),
        campaign: None,
        media: vec![Media {
            path: "/nonexistent.png".into(),
            alt: String::new(),
            mime: "image/png".into(),
            bytes: 1,
        }],
    };
    let e = adapter
        .publish(reply_request(&post, "urn:li:share:1", "urn:li:share:1"))
        .await
        .unwrap_err();
    assert!(e.message.contains("without a picture"), "{}", e.message);
    assert!(fake.requests().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn a_throttled_reply_is_rate_limited() {
    let fake = start(|_, _, _| {
        (
            429,
            vec![("retry-after", "12".to_owned())],
            json!({"status": 429, "message": "Comment create throttled"}).to_string(),
        )
    })
    .await;
    let adapter = build(&fake.base, json!({}), store());
    let e = adapter
        .publish(reply_request(&text("hi"), "urn:li:share:1", C1))
        .await
        .unwrap_err();
    assert_eq!(e.class, ErrorClass::RateLimited);
    assert_eq!(e.retry_after, Some(Duration::from_secs(12)));
}

#[test]
fn comment_urns_name_their_thread() {
    assert_eq!(comment_thread(C1), Some("urn:li:activity:7001"));
    assert_eq!(
        comment_thread("urn:li:comment:(urn:li:ugcPost:9,12)"),
        Some("urn:li:ugcPost:9")
    );
    assert_eq!(comment_thread("urn:li:comment:broken"), None);
    assert_eq!(comment_thread("urn:li:share:1"), None);
}
