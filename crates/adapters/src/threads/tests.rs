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

// ---------------------------------------------------------------------------
// Listening: replies under the account's posts and mentions; answers.
// ---------------------------------------------------------------------------

mod listening {
    use clarion_core::{AdapterFactory, EngagementAuthor, EngagementKind, ListenBatch};
    use serde_json::Value;

    use super::*;
    use crate::facebook::listen::RATE_LIMIT_WAIT;

    /// 2026-01-05T10:00:00Z, the newest time of [`CURSOR`].
    const T0: i64 = 1_767_607_200;
    const CURSOR: &str = "v1 1767607200 1767606600";

    fn at(minute: u32) -> String {
        format!("2026-01-05T10:{minute:02}:00+0000")
    }

    fn listener(base: &str, extra: Value) -> Arc<dyn Listener> {
        let mut settings = json!({
            "user_id": "777",
            "access_token": secret("THQ-threads-secret"),
            "api_base": base,
        });
        for (k, v) in extra.as_object().unwrap() {
            settings[k] = v.clone();
        }
        Factory
            .build_listener(
                &ChannelConfig {
                    name: "th".into(),
                    kind: "threads".into(),
                    listen: true,
                    settings: settings.as_object().unwrap().clone(),
                },
                &AdapterContext::default(),
            )
            .unwrap()
            .expect("threads listens")
    }

    /// The account @acme (777) with posts 5001 (a conversation) and 5002
    /// (no replies), and one mention plus a reply that also names it.
    fn threads_listen_api(seen: &fake::Seen, _: &[fake::Seen]) -> fake::Reply {
        match seen.path.as_str() {
            "/v1.0/777" => reply(200, json!({"username": "acme", "id": "777"})),
            "/v1.0/777/threads" => reply(
                200,
                json!({"data": [
                    {"id": "5001", "timestamp": "2026-01-05T08:00:00+0000"},
                    {"id": "5002", "timestamp": "2026-01-04T08:00:00+0000"},
                    {"id": "5003", "timestamp": "2026-01-04T07:00:00+0000", "media_type": "TEXT_POST"},
                    {"id": "5004", "timestamp": "2026-01-04T06:00:00+0000", "media_type": "REPOST_FACADE"}
                ], "paging": {"cursors": {"before": "b", "after": "a"}}}),
            ),
            "/v1.0/5001/conversation" => reply(
                200,
                json!({"data": [
                    {"id": "6005", "text": "back at you @acme", "username": "bob", "timestamp": at(5),
                     "permalink": "https://www.threads.net/@bob/post/B5",
                     "replied_to": {"id": "6004"}, "root_post": {"id": "5001"},
                     "is_reply_owned_by_me": false},
                    {"id": "6004", "text": "thanks!", "username": "acme", "timestamp": at(4),
                     "replied_to": {"id": "6002"}, "root_post": {"id": "5001"},
                     "is_reply_owned_by_me": true},
                    {"id": "6003", "text": "I agree", "username": "carol", "timestamp": at(3),
                     "replied_to": {"id": "6002"}, "root_post": {"id": "5001"},
                     "is_reply_owned_by_me": false},
                    {"id": "6002", "text": "Nice", "username": "alice", "timestamp": at(2),
                     "permalink": "https://www.threads.net/@alice/post/A2",
                     "replied_to": {"id": "5001"}, "root_post": {"id": "5001"},
                     "is_reply_owned_by_me": false},
                    {"id": "6001", "text": "no time", "username": "eve"},
                    {"id": "6000", "text": "old", "username": "old", "timestamp": "2026-01-05T09:00:00+0000",
                     "replied_to": {"id": "5001"}, "root_post": {"id": "5001"}}
                ], "paging": {"cursors": {"before": "b", "after": "a"}}}),
            ),
            "/v1.0/5002/conversation" => reply(200, json!({"data": []})),
            // Deleted between the listing and the read.
            "/v1.0/5003/conversation" => reply(
                400,
                json!({"error": {"message": "Unsupported get request. Object with ID '5003' does not exist",
                    "type": "THApiException", "code": 100, "error_subcode": 33, "fbtrace_id": "Ab"}}),
            ),
            "/v1.0/777/mentions" => reply(
                200,
                json!({"data": [
                    {"id": "7001", "text": "have you seen @acme?", "username": "dave", "timestamp": at(6),
                     "permalink": "https://www.threads.net/@dave/post/D6"},
                    {"id": "6005", "text": "back at you @acme", "username": "bob", "timestamp": at(5),
                     "replied_to": "6004", "root_post": "5001"}
                ]}),
            ),
            other => panic!("unexpected request {other}"),
        }
    }

    fn summary(batch: &ListenBatch) -> Vec<(EngagementKind, &str, Option<&str>, &str)> {
        batch
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
            .collect()
    }

    #[tokio::test]
    async fn replies_and_mentions_become_engagements_without_the_accounts_own() {
        let fake = fake::start(threads_listen_api).await;
        let batch = listener(&fake.base, json!({}))
            .next_batch(Some(CURSOR))
            .await
            .unwrap();
        assert_eq!(
            summary(&batch),
            [
                // Answers the account's own reply 6004.
                (EngagementKind::Reply, "6005", Some("6004"), "5001"),
                // Answers Alice, not the account.
                (EngagementKind::Comment, "6003", Some("6002"), "5001"),
                (EngagementKind::Reply, "6002", Some("5001"), "5001"),
                (EngagementKind::Mention, "7001", None, "7001"),
            ],
            "the account's 6004, the old 6000 and the repeated 6005 are not events"
        );
        assert_eq!(batch.skipped.len(), 2, "{:?}", batch.skipped);
        assert_eq!(
            batch.skipped[0],
            "threads media 6001: missing field `timestamp`"
        );
        assert_eq!(
            batch.skipped[1], "5003: no longer exists (deleted?)",
            "a vanished post is reported, the others still read"
        );
        let alice = &batch.events[2];
        assert_eq!(
            alice.author,
            EngagementAuthor {
                id: "alice".into(),
                handle: "@alice".into(),
                display_name: String::new(),
                roles: Vec::new(),
            }
        );
        assert_eq!(alice.text, "Nice");
        assert_eq!(
            alice.url.as_deref(),
            Some("https://www.threads.net/@alice/post/A2")
        );
        assert_eq!(alice.created_at_ms, (T0 + 120) * 1000);
        assert_eq!(batch.wait, Duration::from_secs(300));

        let seen = fake.requests();
        assert!(seen.iter().all(|s| s.auth == "Bearer THQ-threads-secret"));
        assert!(seen.iter().all(|s| !s.query.contains("secret")));
        let find = |path: &str| seen.iter().find(|s| s.path == path).unwrap();
        let conversation = find("/v1.0/5001/conversation");
        assert_eq!(conversation.param("reverse").as_deref(), Some("true"));
        let fields = conversation.param("fields").unwrap();
        for field in [
            "replied_to",
            "root_post",
            "is_reply_owned_by_me",
            "username",
        ] {
            assert!(fields.contains(field), "{fields}");
        }
        let mentions = find("/v1.0/777/mentions");
        assert_eq!(
            mentions.param("since").as_deref(),
            Some("1767606600"),
            "mentions since the cursor's floor"
        );
        let listing = find("/v1.0/777/threads");
        let since: i64 = listing.param("since").unwrap().parse().unwrap();
        let week_ago = chrono::Utc::now().timestamp() - 7 * 86_400;
        assert!((since - week_ago).abs() < 60, "{since}");
        let profile = seen.iter().filter(|s| s.path == "/v1.0/777").count();
        assert_eq!(profile, 1, "the username is asked once");
        assert!(
            seen.iter().all(|s| s.path != "/v1.0/5004/conversation"),
            "a repost's replies are not the account's"
        );
    }

    #[tokio::test]
    async fn the_cursor_advances_and_the_next_poll_yields_nothing_new() {
        let fake = fake::start(threads_listen_api).await;
        let polling = listener(&fake.base, json!({}));
        let first = polling.next_batch(Some(CURSOR)).await.unwrap();
        let newest = T0 + 6 * 60;
        assert_eq!(
            first.cursor.as_deref(),
            Some(format!("v1 {newest} {} 6002 6003 6004 6005 7001", newest - 600).as_str())
        );
        let cursor = first.cursor.unwrap();
        let again = polling.next_batch(Some(&cursor)).await.unwrap();
        assert_eq!(again.events, vec![]);
        assert_eq!(again.cursor, None);
        let profile = fake
            .requests()
            .iter()
            .filter(|s| s.path == "/v1.0/777")
            .count();
        assert_eq!(profile, 1, "the username is asked once per listener");
    }

    #[tokio::test]
    async fn a_rate_limit_is_rate_limited_with_a_wait() {
        let fake = fake::start(|_, _| {
            reply(
                400,
                json!({"error": {"message": "Application request limit reached", "type": "OAuthException",
                    "code": 4, "fbtrace_id": "Ab"}}),
            )
        })
        .await;
        let e = listener(&fake.base, json!({}))
            .next_batch(Some(CURSOR))
            .await
            .unwrap_err();
        assert_eq!(e.class, ErrorClass::RateLimited);
        assert_eq!(e.retry_after, Some(RATE_LIMIT_WAIT));
    }

    #[tokio::test]
    async fn an_expired_token_is_auth_expired() {
        let fake = fake::start(|_, _| {
            reply(
                400,
                json!({"error": {"message": "Error validating access token: Session has expired",
                    "type": "OAuthException", "code": 190, "error_subcode": 463, "fbtrace_id": "Ab"}}),
            )
        })
        .await;
        let e = listener(&fake.base, json!({}))
            .next_batch(None)
            .await
            .unwrap_err();
        assert_eq!(e.class, ErrorClass::AuthExpired);
        assert!(!e.to_string().contains("THQ-threads-secret"), "{e}");
    }

    #[test]
    fn the_listen_settings_are_checked() {
        let config = |extra: Value| {
            let mut settings =
                json!({"user_id": "777", "access_token": secret("THQ-threads-secret")});
            for (k, v) in extra.as_object().unwrap() {
                settings[k] = v.clone();
            }
            ChannelConfig {
                name: "th".into(),
                kind: "threads".into(),
                listen: true,
                settings: settings.as_object().unwrap().clone(),
            }
        };
        let error = Factory
            .build_listener(
                &config(json!({"listen_interval_secs": 10})),
                &AdapterContext::default(),
            )
            .map(|_| ())
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "channel `th` listen_interval_secs: must be between 60 and 3600 seconds"
        );
        assert!(
            Factory
                .build_listener(
                    &config(json!({"listen_days": 14})),
                    &AdapterContext::default()
                )
                .is_ok()
        );
    }

    #[tokio::test]
    async fn answering_someone_elses_reply_names_it_in_reply_to_id() {
        let fake = fake::start(threads_api).await;
        let adapter = build(&fake.base, false);
        let post = text("Thanks Alice!");
        let receipt = adapter
            .publish(request(
                &post,
                Some(ReplyTo {
                    root: "5001",
                    parent: "6002",
                }),
            ))
            .await
            .unwrap();
        assert_eq!(receipt.platform_post_id.as_deref(), Some("p1"));
        let seen = fake.requests();
        assert_eq!(seen[0].path, "/v1.0/777/threads");
        assert_eq!(seen[0].param("reply_to_id").as_deref(), Some("6002"));
        assert_eq!(seen[0].param("text").as_deref(), Some("Thanks Alice!"));
        assert_eq!(seen[1].path, "/v1.0/777/threads_publish");
        assert_eq!(seen[1].param("creation_id").as_deref(), Some("c0"));
    }

    #[tokio::test]
    async fn a_refused_answer_names_threads_manage_replies() {
        let fake = fake::start(|_, _| {
            reply(
                403,
                json!({"error": {"message": "(#10) Application does not have permission for this action",
                    "type": "OAuthException", "code": 10, "fbtrace_id": "Ab"}}),
            )
        })
        .await;
        let post = text("hi");
        let e = build(&fake.base, false)
            .publish(request(
                &post,
                Some(ReplyTo {
                    root: "5001",
                    parent: "6002",
                }),
            ))
            .await
            .unwrap_err();
        assert_eq!(e.class, ErrorClass::Permanent);
        assert!(
            e.message.contains("threads_manage_replies"),
            "{}",
            e.message
        );
    }
}
