//! The Threads adapter against a fake Threads API answering as Meta
//! documents: `{"id": ...}` for containers and published posts.

use clarion_core::{ErrorClass, Media, ReplyTo};
use serde_json::json;

use super::*;
use crate::meta_graph::fake::{self, json as reply, secret};

fn build(base: &str, public: bool) -> ThreadsAdapter {
    let mut settings = json!({
        "user_id": "777",
        "access_token": secret("THQ-threads-secret"),
        "api_base": base,
        "media_dir": "/srv/media",
    });
    if public {
        settings["public_media_url"] = json!("https://cdn.example.com/m/");
    }
    configure(&ChannelConfig {
        name: "th".into(),
        kind: "threads".into(),
        listen: false,
        settings: settings.as_object().unwrap().clone(),
    })
    .unwrap()
}

fn request<'a>(post: &'a OutboundPost, reply_to: Option<ReplyTo<'a>>) -> PublishRequest<'a> {
    PublishRequest {
        post,
        idempotency_key: "k1",
        reply_to,
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

fn image_post() -> OutboundPost {
    OutboundPost {
        text: "look".into(),
        campaign: None,
        media: vec![Media {
            path: "/srv/media/uploads/a.jpg".into(),
            alt: "a cat".into(),
            mime: "image/jpeg".into(),
            bytes: 100,
        }],
    }
}

/// Containers get `c<n>`, published posts `p<n>`.
fn threads_api(seen: &fake::Seen, earlier: &[fake::Seen]) -> fake::Reply {
    let n = earlier.len();
    if seen.path.ends_with("/threads") {
        reply(200, json!({"id": format!("c{n}")}))
    } else {
        reply(200, json!({"id": format!("p{n}")}))
    }
}

#[tokio::test]
async fn a_text_post_is_a_container_then_published() {
    let fake = fake::start(threads_api).await;
    let adapter = build(&fake.base, false);
    let receipt = adapter
        .publish(request(&text("hello"), None))
        .await
        .unwrap();
    assert_eq!(receipt.platform_post_id.as_deref(), Some("p1"));
    let seen = fake.requests();
    assert_eq!(seen[0].path, "/v1.0/777/threads");
    assert_eq!(seen[0].param("media_type").as_deref(), Some("TEXT"));
    assert_eq!(seen[0].param("text").as_deref(), Some("hello"));
    assert_eq!(seen[0].auth, "Bearer THQ-threads-secret");
    assert_eq!(seen[1].path, "/v1.0/777/threads_publish");
    assert_eq!(seen[1].param("creation_id").as_deref(), Some("c0"));
}

#[test]
fn the_limit_is_500_characters() {
    let adapter = build("http://127.0.0.1:9", false);
    assert!(adapter.validate(&text(&"ü".repeat(500))).is_ok());
    assert!(adapter.validate(&text(&"ü".repeat(501))).is_err());
}

#[tokio::test]
async fn an_image_goes_by_public_url() {
    let fake = fake::start(threads_api).await;
    let adapter = build(&fake.base, true);
    let post = image_post();
    adapter.validate(&post).unwrap();
    adapter.publish(request(&post, None)).await.unwrap();
    let seen = fake.requests();
    assert_eq!(seen[0].param("media_type").as_deref(), Some("IMAGE"));
    assert_eq!(
        seen[0].param("image_url").as_deref(),
        Some("https://cdn.example.com/m/uploads/a.jpg")
    );
    assert_eq!(seen[0].param("alt_text").as_deref(), Some("a cat"));
}

#[test]
fn images_without_public_media_url_are_refused_when_planned() {
    let adapter = build("http://127.0.0.1:9", false);
    let e = adapter.validate(&image_post()).unwrap_err();
    assert!(e.to_string().contains("public_media_url"), "{e}");
}

#[tokio::test]
async fn thread_parts_reply_to_the_previous_part() {
    let fake = fake::start(threads_api).await;
    let adapter = build(&fake.base, false);
    let first = adapter.publish(request(&text("1/2"), None)).await.unwrap();
    let root = first.platform_post_id.unwrap();
    let post = text("2/2");
    adapter
        .publish(request(
            &post,
            Some(ReplyTo {
                root: &root,
                parent: &root,
            }),
        ))
        .await
        .unwrap();
    assert_eq!(adapter.thread_style(), ThreadStyle::Native);
    let seen = fake.requests();
    assert_eq!(seen[2].param("reply_to_id").as_deref(), Some("p1"));
    assert_eq!(seen[0].param("reply_to_id"), None);
}

#[tokio::test]
async fn a_rate_limit_is_classified_then_succeeds() {
    let fake = fake::start(|seen, earlier| {
        if earlier.is_empty() {
            let mut r = reply(
                429,
                json!({"error": {"message": "Application request limit reached", "type": "OAuthException", "code": 4, "fbtrace_id": "T1"}}),
            );
            r.1.push(("retry-after", "60".into()));
            r
        } else {
            threads_api(seen, earlier)
        }
    })
    .await;
    let adapter = build(&fake.base, false);
    let e = adapter
        .publish(request(&text("hi"), None))
        .await
        .unwrap_err();
    assert_eq!(e.class, ErrorClass::RateLimited);
    assert_eq!(e.retry_after, Some(Duration::from_secs(60)));
    adapter.publish(request(&text("hi"), None)).await.unwrap();
}

#[tokio::test]
async fn an_expired_token_is_rejected_credentials() {
    let fake = fake::start(|_, _| {
        reply(
            401,
            json!({"error": {"message": "Error validating access token: Session has expired", "type": "OAuthException", "code": 190, "error_subcode": 463, "fbtrace_id": "T2"}}),
        )
    })
    .await;
    let adapter = build(&fake.base, false);
    let e = adapter
        .publish(request(&text("hi"), None))
        .await
        .unwrap_err();
    assert_eq!(e.class, ErrorClass::AuthExpired);
    assert!(!e.to_string().contains("secret"), "{e}");
}

#[tokio::test]
async fn a_permanent_error_keeps_the_message_and_a_publish_5xx_is_unknown() {
    let fake = fake::start(|seen, _| {
        if seen.param("text").as_deref() == Some("bad") {
            reply(
                400,
                json!({"error": {"message": "Param text must be at most 500 characters long.", "type": "THApiException", "code": 100, "fbtrace_id": "T3"}}),
            )
        } else if seen.path.ends_with("/threads_publish") {
            (500, vec![], String::new())
        } else {
            reply(200, json!({"id": "c"}))
        }
    })
    .await;
    let adapter = build(&fake.base, false);
    let e = adapter
        .publish(request(&text("bad"), None))
        .await
        .unwrap_err();
    assert_eq!(e.class, ErrorClass::Permanent);
    assert!(
        e.message.contains("at most 500 characters"),
        "{}",
        e.message
    );
    let e = adapter
        .publish(request(&text("ok"), None))
        .await
        .unwrap_err();
    assert_eq!(e.class, ErrorClass::OutcomeUnknown);
}

#[tokio::test]
async fn check_reads_the_username() {
    let fake = fake::start(|_, _| reply(200, json!({"id": "777", "username": "acme"}))).await;
    let check = build(&fake.base, true).check().await.unwrap();
    assert_eq!(check.detail, "@acme (777)");
    assert!(check.warning.is_none());
}
