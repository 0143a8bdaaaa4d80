//! The Instagram adapter against a fake Graph API answering as Meta
//! documents: containers `{"id"}`, `{"status_code": "IN_PROGRESS" |
//! "FINISHED"}`, `media_publish` `{"id"}`.

use std::sync::atomic::{AtomicUsize, Ordering};

use clarion_core::{Media, MemoryAdapterStore};
use serde_json::json;

use super::*;
use crate::meta_graph::fake::{self, Seen, json as reply, secret};

fn build(base: &str, state: Arc<dyn AdapterStore>) -> InstagramAdapter {
    let settings = json!({
        "ig_user_id": "999",
        "access_token": secret("IGQ-insta-secret"),
        "api_base": base,
        "media_dir": "/srv/media",
        "public_media_url": "https://cdn.example.com/m",
        "poll_interval_secs": 0.05,
    });
    configure(
        &ChannelConfig {
            name: "ig".into(),
            kind: "instagram".into(),
            listen: false,
            settings: settings.as_object().unwrap().clone(),
        },
        &AdapterContext { state },
    )
    .unwrap()
}

fn store() -> Arc<dyn AdapterStore> {
    Arc::new(MemoryAdapterStore::default())
}

fn request(post: &OutboundPost, budget: Duration) -> PublishRequest<'_> {
    PublishRequest {
        post,
        idempotency_key: "k1",
        reply_to: None,
        post_id: 1,
        target_id: 1,
        scheduled_at_ms: 0,
        budget,
    }
}

fn post(text: &str) -> OutboundPost {
    OutboundPost {
        text: text.into(),
        campaign: None,
        media: vec![Media {
            path: "/srv/media/launch.jpg".into(),
            alt: String::new(),
            mime: "image/jpeg".into(),
            bytes: 100,
        }],
    }
}

fn instagram(finished_after: usize) -> impl Fn(&Seen, &[Seen]) -> fake::Reply {
    let polls = AtomicUsize::new(0);
    move |seen, _| match (seen.method.as_str(), seen.path.as_str()) {
        ("POST", "/v24.0/999/media") => reply(200, json!({"id": "cont1"})),
        ("GET", "/v24.0/cont1") => {
            let n = polls.fetch_add(1, Ordering::SeqCst);
            let status = if n >= finished_after {
                "FINISHED"
            } else {
                "IN_PROGRESS"
            };
            reply(200, json!({"status_code": status, "id": "cont1"}))
        }
        ("POST", "/v24.0/999/media_publish") => reply(200, json!({"id": "media42"})),
        _ => reply(
            404,
            json!({"error": {"message": "unknown path", "code": 803}}),
        ),
    }
}

#[tokio::test]
async fn an_image_post_is_created_polled_and_published() {
    let fake = fake::start(instagram(1)).await;
    let adapter = build(&fake.base, store());
    let p = post("caption #one");
    adapter.validate(&p).unwrap();
    let receipt = adapter
        .publish(request(&p, Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(receipt.platform_post_id.as_deref(), Some("media42"));
    let seen = fake.requests();
    assert_eq!(
        seen[0].param("image_url").as_deref(),
        Some("https://cdn.example.com/m/launch.jpg")
    );
    assert_eq!(seen[0].param("caption").as_deref(), Some("caption #one"));
    assert_eq!(seen[0].auth, "Bearer IGQ-insta-secret");
    assert_eq!(seen[1].param("fields").as_deref(), Some("status_code"));
    assert_eq!(
        seen.last().unwrap().param("creation_id").as_deref(),
        Some("cont1")
    );
}

#[test]
fn limits_are_checked_when_planned() {
    let adapter = build("http://127.0.0.1:9", store());
    assert!(adapter.validate(&post(&"a".repeat(2200))).is_ok());
    assert!(adapter.validate(&post(&"a".repeat(2201))).is_err());
    let tags = |n: usize| {
        (0..n)
            .map(|i| format!("#t{i}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(adapter.validate(&post(&tags(30))).is_ok());
    let e = adapter.validate(&post(&tags(31))).unwrap_err();
    assert!(e.to_string().contains("31 hashtags"), "{e}");
    let e = adapter
        .validate(&OutboundPost {
            text: "no image".into(),
            ..Default::default()
        })
        .unwrap_err();
    assert!(e.to_string().contains("needs an image"), "{e}");
}

#[test]
fn without_public_media_url_posts_are_refused_when_planned() {
    let settings = json!({"ig_user_id": "999", "access_token": secret("IGQ-insta-secret")});
    let adapter = configure(
        &ChannelConfig {
            name: "ig".into(),
            kind: "instagram".into(),
            listen: false,
            settings: settings.as_object().unwrap().clone(),
        },
        &AdapterContext::default(),
    )
    .unwrap();
    let e = adapter.validate(&post("hi")).unwrap_err();
    assert!(e.to_string().contains("public_media_url"), "{e}");
}

#[tokio::test]
async fn a_container_still_in_progress_resumes_without_a_second_container() {
    let fake = fake::start(instagram(usize::MAX / 2)).await;
    let state = store();
    let adapter = build(&fake.base, state.clone());
    let p = post("slow");
    let e = adapter
        .publish(request(&p, Duration::from_millis(200)))
        .await
        .unwrap_err();
    assert_eq!(e.class, ErrorClass::Unfinished);
    // The next attempt (another process, even) finds the saved container.
    let fake2 = fake::start(instagram(0)).await;
    let again = build(&fake2.base, state);
    let receipt = again
        .publish(request(&p, Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(receipt.platform_post_id.as_deref(), Some("media42"));
    let created = |seen: Vec<Seen>| {
        seen.iter()
            .filter(|s| s.path.ends_with("/999/media"))
            .count()
    };
    assert_eq!(created(fake.requests()), 1);
    assert_eq!(created(fake2.requests()), 0);
}

#[tokio::test]
async fn a_rate_limit_is_classified_then_succeeds() {
    let inner = instagram(0);
    let fake = fake::start(move |seen, earlier| {
        if earlier.is_empty() {
            let mut r = reply(400, json!({"error": {"message": "Application request limit reached", "type": "OAuthException", "code": 4, "is_transient": true, "fbtrace_id": "I1"}}));
            r.1.push(("x-business-use-case-usage", r#"{"999":[{"type":"instagram","call_count":100,"estimated_time_to_regain_access":1}]}"#.into()));
            r
        } else {
            inner(seen, earlier)
        }
    })
    .await;
    let adapter = build(&fake.base, store());
    let p = post("hi");
    let e = adapter
        .publish(request(&p, Duration::from_secs(30)))
        .await
        .unwrap_err();
    assert_eq!(e.class, ErrorClass::RateLimited);
    assert_eq!(e.retry_after, Some(Duration::from_secs(60)));
    adapter
        .publish(request(&p, Duration::from_secs(30)))
        .await
        .unwrap();
}

#[tokio::test]
async fn errors_keep_metas_words_and_never_the_token() {
    let fake = fake::start(|seen, _| {
        if seen.param("caption").as_deref() == Some("expired") {
            reply(400, json!({"error": {"message": "Error validating access token: Session has expired", "type": "OAuthException", "code": 190, "error_subcode": 463}}))
        } else {
            reply(400, json!({"error": {"message": "Only photo or video can be accepted as media type.", "type": "OAuthException", "code": 9004, "error_subcode": 2207052, "fbtrace_id": "I2"}}))
        }
    })
    .await;
    let adapter = build(&fake.base, store());
    let p = post("expired");
    let e = adapter
        .publish(request(&p, Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert_eq!(e.class, ErrorClass::AuthExpired);
    assert!(!e.to_string().contains("secret"), "{e}");
    let p = post("other");
    let e = adapter
        .publish(request(&p, Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert_eq!(e.class, ErrorClass::Permanent);
    assert!(e.message.contains("Only photo or video"), "{}", e.message);
    assert!(!format!("{adapter:?}").contains("secret"));
}

#[tokio::test]
async fn check_reads_the_username() {
    let fake = fake::start(|_, _| reply(200, json!({"id": "999", "username": "acme"}))).await;
    let check = build(&fake.base, store()).check().await.unwrap();
    assert_eq!(check.detail, "@acme (999)");
}
