//! The Facebook Page adapter against a fake Graph API answering as Meta
//! documents: `{"id": "<page>_<post>"}`, `{"error": {...}}` failures.

use clarion_core::{Media, OutboundPost};
use serde_json::json;

use super::*;
use crate::meta_graph::fake::{self, Seen, json as reply, secret};

fn build(base: &str) -> FacebookAdapter {
    let settings = json!({
        "page_id": "1122",
        "page_access_token": secret("EAAG-page-secret"),
        "api_base": base,
    });
    configure(&ChannelConfig {
        name: "fb".into(),
        kind: "facebook".into(),
        listen: false,
        settings: settings.as_object().unwrap().clone(),
    })
    .unwrap()
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

fn graph_error(status: u16, code: i64, sub: Option<i64>, message: &str) -> fake::Reply {
    reply(
        status,
        json!({"error": {"message": message, "type": "OAuthException", "code": code,
            "error_subcode": sub, "fbtrace_id": "AxYz"}}),
    )
}

#[tokio::test]
async fn a_plain_post_goes_to_the_page_feed() {
    let fake = fake::start(|_, _| reply(200, json!({"id": "1122_3344"}))).await;
    let adapter = build(&fake.base);
    let receipt = adapter.publish(request(&text("Hello Page"))).await.unwrap();
    assert_eq!(receipt.platform_post_id.as_deref(), Some("1122_3344"));
    assert_eq!(
        receipt.url.as_deref(),
        Some("https://www.facebook.com/1122_3344")
    );
    let seen = fake.requests();
    assert_eq!(seen[0].path, "/v24.0/1122/feed");
    assert_eq!(seen[0].param("message").as_deref(), Some("Hello Page"));
    assert_eq!(seen[0].auth, "Bearer EAAG-page-secret");
    assert!(!seen[0].query.contains("secret"));
}

#[test]
fn the_limit_is_63206_characters() {
    let adapter = build("http://127.0.0.1:9");
    assert!(adapter.validate(&text(&"a".repeat(63_206))).is_ok());
    assert!(adapter.validate(&text(&"a".repeat(63_207))).is_err());
}

#[tokio::test]
async fn an_image_is_uploaded_to_photos() {
    let fake = fake::start(|_, _| reply(200, json!({"id": "5566", "post_id": "1122_7788"}))).await;
    let dir = std::env::temp_dir().join(format!("clarion-fb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("p.jpg");
    std::fs::write(&path, b"JPEGDATA").unwrap();
    let post = OutboundPost {
        text: "photo caption".into(),
        campaign: None,
        media: vec![Media {
            path,
            alt: String::new(),
            mime: "image/jpeg".into(),
            bytes: 8,
        }],
    };
    let adapter = build(&fake.base);
    adapter.validate(&post).unwrap();
    let receipt = adapter.publish(request(&post)).await.unwrap();
    assert_eq!(receipt.platform_post_id.as_deref(), Some("1122_7788"));
    let seen = fake.requests();
    assert_eq!(seen[0].path, "/v24.0/1122/photos");
    assert!(seen[0].body.contains("name=\"source\""));
    assert!(seen[0].body.contains("JPEGDATA"));
    assert!(seen[0].body.contains("photo caption"));
}

#[tokio::test]
async fn a_page_rate_limit_is_classified_then_succeeds() {
    let fake = fake::start(|_, earlier: &[Seen]| {
        if earlier.is_empty() {
            let mut r = graph_error(400, 32, None, "Page request limit reached");
            r.1.push((
                "x-business-use-case-usage",
                r#"{"1122":[{"type":"pages","call_count":100,"estimated_time_to_regain_access":5}]}"#.into(),
            ));
            r
        } else {
            reply(200, json!({"id": "1122_1"}))
        }
    })
    .await;
    let adapter = build(&fake.base);
    let e = adapter.publish(request(&text("hi"))).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::RateLimited);
    assert_eq!(e.retry_after, Some(Duration::from_secs(300)));
    adapter.publish(request(&text("hi"))).await.unwrap();
}

#[tokio::test]
async fn an_expired_token_is_rejected_credentials_without_the_token() {
    let fake = fake::start(|_, _| {
        graph_error(
            400,
            190,
            Some(463),
            "Error validating access token: Session has expired on Friday, 27-Nov-26 09:00:00 PST.",
        )
    })
    .await;
    let adapter = build(&fake.base);
    let e = adapter.publish(request(&text("hi"))).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::AuthExpired);
    assert!(e.message.contains("expired"), "{}", e.message);
    assert!(!e.to_string().contains("secret"), "{e}");
    assert!(!format!("{adapter:?}").contains("secret"));
}

#[tokio::test]
async fn permission_and_policy_errors_are_permanent_with_metas_words() {
    let fake = fake::start(|seen, _| {
        if seen.param("message").as_deref() == Some("policy") {
            graph_error(400, 368, Some(1390008), "The action attempted has been deemed abusive or is otherwise disallowed")
        } else {
            graph_error(403, 200, None, "(#200) If posting to a page, requires both pages_read_engagement and pages_manage_posts permission")
        }
    })
    .await;
    let adapter = build(&fake.base);
    let e = adapter.publish(request(&text("hi"))).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Permanent);
    assert!(e.message.contains("missing permission"), "{}", e.message);
    assert!(e.message.contains("(#200) If posting"), "{}", e.message);
    let e = adapter.publish(request(&text("policy"))).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Permanent);
    assert!(e.message.contains("deemed abusive"), "{}", e.message);
}

#[tokio::test]
async fn check_reads_the_page_name() {
    let fake = fake::start(|seen, _| {
        assert_eq!(seen.path, "/v24.0/1122");
        assert_eq!(seen.param("fields").as_deref(), Some("name"));
        reply(200, json!({"name": "Acme", "id": "1122"}))
    })
    .await;
    let check = build(&fake.base).check().await.unwrap();
    assert_eq!(check.detail, "Page Acme (1122)");
}
