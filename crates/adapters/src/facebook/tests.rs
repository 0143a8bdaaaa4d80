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

// ---------------------------------------------------------------------------
// Listening: comments under the Page's posts, and inbox answers.
// ---------------------------------------------------------------------------

mod listening {
    use clarion_core::{AdapterFactory, EngagementAuthor, EngagementKind, ListenBatch, ReplyTo};
    use serde_json::Value;

    use super::*;
    use crate::facebook::listen::{MAX_PAGES_PER_CALL, RATE_LIMIT_WAIT};

    /// 2026-01-05T10:00:00Z, the newest time of [`CURSOR`].
    const T0: i64 = 1_767_607_200;
    /// Everything before 09:50 and nothing listed has been read.
    const CURSOR: &str = "v1 1767607200 1767606600";

    fn at(minute: u32) -> String {
        format!("2026-01-05T10:{minute:02}:00+0000")
    }

    fn listener(base: &str, extra: Value) -> Arc<dyn Listener> {
        let mut settings = json!({
            "page_id": "1122",
            "page_access_token": secret("EAAG-page-secret"),
            "api_base": base,
        });
        for (k, v) in extra.as_object().unwrap() {
            settings[k] = v.clone();
        }
        Factory
            .build_listener(
                &ChannelConfig {
                    name: "fb".into(),
                    kind: "facebook".into(),
                    listen: true,
                    settings: settings.as_object().unwrap().clone(),
                },
                &AdapterContext::default(),
            )
            .unwrap()
            .expect("facebook listens")
    }

    /// Two posts: 1122_10 with its comments in the listing (the Page's
    /// own answer, a reply, a comment, a malformed one, an old one), and
    /// 1122_20 whose first page goes on to a second, older one.
    fn page_api(seen: &Seen, _: &[Seen]) -> fake::Reply {
        match seen.path.as_str() {
            "/v24.0/1122/published_posts" => reply(
                200,
                json!({"data": [
                    {"id": "1122_10", "created_time": "2026-01-05T08:00:00+0000", "comments": {
                        "data": [
                            {"id": "10_103", "from": {"id": "1122", "name": "Acme"},
                             "message": "Thanks!", "created_time": at(3), "parent": {"id": "10_101"}},
                            {"id": "10_102", "from": {"id": "900", "name": "Bob"},
                             "message": "me too", "created_time": at(2), "parent": {"id": "10_101"},
                             "permalink_url": "https://www.facebook.com/1122/posts/10?comment_id=102"},
                            {"id": "10_101", "from": {"id": "901", "name": "Alice"},
                             "message": "Great post", "created_time": at(1),
                             "permalink_url": "https://www.facebook.com/1122/posts/10?comment_id=101"},
                            {"id": "10_100", "from": {"id": "902", "name": "Eve"}, "message": "no time"},
                            {"id": "10_99", "from": {"id": "903", "name": "Old"},
                             "message": "old", "created_time": "2026-01-05T09:40:00+0000"}
                        ],
                        "paging": {"cursors": {"before": "b10", "after": "a10"}}
                    }},
                    {"id": "1122_20", "created_time": "2026-01-04T08:00:00+0000", "comments": {
                        "data": [
                            {"id": "20_202", "from": {"id": "904", "name": "Dan"},
                             "message": "Where can I buy it?", "created_time": at(5)}
                        ],
                        "paging": {"cursors": {"before": "b20", "after": "p2"},
                                   "next": "https://graph.facebook.com/v24.0/1122_20/comments?after=p2"}
                    }},
                    {"id": "1122_30", "created_time": "2026-01-03T08:00:00+0000"}
                ], "paging": {"cursors": {"before": "x", "after": "y"}}}),
            ),
            "/v24.0/1122_20/comments" => {
                assert_eq!(seen.param("after").as_deref(), Some("p2"));
                reply(
                    200,
                    json!({"data": [
                        {"id": "20_201", "from": {"id": "905", "name": "Fay"},
                         "message": "older", "created_time": "2026-01-05T09:30:00+0000"}
                    ], "paging": {"cursors": {"before": "b", "after": "a"}}}),
                )
            }
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
    async fn comments_and_replies_become_engagements_without_the_pages_own() {
        let fake = fake::start(page_api).await;
        let batch = listener(&fake.base, json!({}))
            .next_batch(Some(CURSOR))
            .await
            .unwrap();
        assert_eq!(
            summary(&batch),
            [
                (EngagementKind::Reply, "10_102", Some("10_101"), "10_101"),
                (EngagementKind::Comment, "10_101", Some("1122_10"), "10_101"),
                (EngagementKind::Comment, "20_202", Some("1122_20"), "20_202"),
            ],
            "the Page's own 10_103 and the old 10_99 are not events"
        );
        assert_eq!(
            batch.skipped,
            ["comment 10_100: missing field `created_time`"]
        );
        let comment = &batch.events[1];
        assert_eq!(
            comment.author,
            EngagementAuthor {
                id: "901".into(),
                handle: String::new(),
                display_name: "Alice".into(),
                roles: Vec::new(),
            }
        );
        assert_eq!(comment.text, "Great post");
        assert_eq!(
            comment.url.as_deref(),
            Some("https://www.facebook.com/1122/posts/10?comment_id=101")
        );
        assert_eq!(comment.created_at_ms, (T0 + 60) * 1000);
        assert_eq!(comment.place, None);
        assert_eq!(batch.wait, Duration::from_secs(300));

        let seen = fake.requests();
        let paths: Vec<_> = seen.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(
            paths,
            ["/v24.0/1122/published_posts", "/v24.0/1122_20/comments"],
            "one listing call, one more page for the busy post only"
        );
        let listing = &seen[0];
        assert_eq!(listing.auth, "Bearer EAAG-page-secret");
        assert!(!listing.query.contains("secret"));
        let fields = listing.param("fields").unwrap();
        assert!(
            fields.contains("comments.filter(stream).order(reverse_chronological)"),
            "{fields}"
        );
        assert!(fields.contains("parent{id}"), "{fields}");
        assert_eq!(listing.param("limit").as_deref(), Some("10"));
        let since: i64 = listing.param("since").unwrap().parse().unwrap();
        let week_ago = chrono::Utc::now().timestamp() - 7 * 86_400;
        assert!((since - week_ago).abs() < 60, "{since}");
        assert_eq!(seen[1].param("filter").as_deref(), Some("stream"));
        assert_eq!(
            seen[1].param("order").as_deref(),
            Some("reverse_chronological")
        );
    }

    #[tokio::test]
    async fn the_cursor_advances_and_the_next_poll_yields_nothing_new() {
        let fake = fake::start(page_api).await;
        let polling = listener(&fake.base, json!({}));
        let first = polling.next_batch(Some(CURSOR)).await.unwrap();
        let newest = T0 + 5 * 60;
        assert_eq!(
            first.cursor.as_deref(),
            Some(format!("v1 {newest} {} 10_101 10_102 10_103 20_202", newest - 600).as_str())
        );
        let cursor = first.cursor.unwrap();
        let again = polling.next_batch(Some(&cursor)).await.unwrap();
        assert_eq!(again.events, vec![]);
        assert_eq!(again.cursor, None, "nothing new: the stored cursor stays");

        // The first run starts now: what was written before is history.
        let fresh = listener(&fake.base, json!({}));
        let start = fresh.next_batch(None).await.unwrap();
        assert_eq!(start.events, vec![]);
        assert!(
            start
                .cursor
                .as_deref()
                .is_some_and(|c| c.starts_with("v1 ")),
            "{:?}",
            start.cursor
        );
    }

    #[tokio::test]
    async fn a_busy_post_is_read_over_several_calls_before_the_cursor_moves() {
        // 1122_40 has one new comment a page, 41 pages deep.
        let fake = fake::start(|seen: &Seen, _: &[Seen]| {
            let page = |n: i64| {
                let comment = json!({"id": format!("40_{}", 1000 - n), "from": {"id": "9", "name": "N"},
                    "message": "hi", "created_time": format!("2026-01-05T10:{:02}:{:02}+0000", (100 - n) / 60, (100 - n) % 60)});
                let mut paging = json!({"cursors": {"after": format!("p{}", n + 1)}});
                if n < 40 {
                    paging["next"] = json!("https://graph.facebook.com/next");
                }
                json!({"data": [comment], "paging": paging})
            };
            if seen.path.ends_with("/published_posts") {
                reply(200, json!({"data": [{"id": "1122_40", "comments": page(0)}]}))
            } else {
                let n: i64 = seen.param("after").unwrap()[1..].parse().unwrap();
                reply(200, page(n))
            }
        })
        .await;
        let listener = listener(&fake.base, json!({}));
        let first = listener.next_batch(Some(CURSOR)).await.unwrap();
        assert_eq!(first.events.len(), 1 + MAX_PAGES_PER_CALL);
        assert_eq!(first.cursor, None, "unfinished: the stored cursor stays");
        assert_eq!(first.wait, Duration::ZERO, "the walk goes on at once");

        let second = listener.next_batch(Some(CURSOR)).await.unwrap();
        assert_eq!(second.events.len(), 41 - 1 - MAX_PAGES_PER_CALL);
        let mut ids: Vec<_> = first
            .events
            .iter()
            .chain(&second.events)
            .map(|e| e.item_id.clone())
            .collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 41, "every comment once");
        assert!(second.cursor.is_some());
        assert_eq!(second.wait, Duration::from_secs(300));
        let listings = fake
            .requests()
            .iter()
            .filter(|s| s.path.ends_with("/published_posts"))
            .count();
        assert_eq!(
            listings, 1,
            "the second call resumes, it does not list again"
        );
    }

    #[tokio::test]
    async fn rate_limits_wait_as_meta_says_or_a_default() {
        // No usage header: the default wait.
        let fake =
            fake::start(|_, _| graph_error(400, 32, None, "Page request limit reached")).await;
        let e = listener(&fake.base, json!({}))
            .next_batch(Some(CURSOR))
            .await
            .unwrap_err();
        assert_eq!(e.class, ErrorClass::RateLimited);
        assert_eq!(e.retry_after, Some(RATE_LIMIT_WAIT));

        let fake = fake::start(|_, _| {
            let mut r = graph_error(400, 4, None, "Application request limit reached");
            r.1.push((
                "x-business-use-case-usage",
                r#"{"1122":[{"type":"pages","call_count":100,"total_cputime":1,"total_time":1,"estimated_time_to_regain_access":5}]}"#.into(),
            ));
            r
        })
        .await;
        let e = listener(&fake.base, json!({}))
            .next_batch(Some(CURSOR))
            .await
            .unwrap_err();
        assert_eq!(e.class, ErrorClass::RateLimited);
        assert_eq!(e.retry_after, Some(Duration::from_secs(300)));

        let fake =
            fake::start(|_, _| graph_error(400, 613, None, "Calls within one hour exceeded")).await;
        let e = listener(&fake.base, json!({}))
            .next_batch(Some(CURSOR))
            .await
            .unwrap_err();
        assert_eq!(e.class, ErrorClass::RateLimited);
        assert!(e.retry_after.is_some());
    }

    #[tokio::test]
    async fn a_nearly_spent_quota_stretches_the_wait() {
        let fake = fake::start(|_, _| {
            let mut r = reply(200, json!({"data": []}));
            r.1.push((
                "x-app-usage",
                r#"{"call_count":96,"total_time":10,"total_cputime":10}"#.into(),
            ));
            r
        })
        .await;
        let batch = listener(&fake.base, json!({}))
            .next_batch(Some(CURSOR))
            .await
            .unwrap();
        assert_eq!(batch.wait, RATE_LIMIT_WAIT);
    }

    #[tokio::test]
    async fn an_expired_token_is_auth_expired_without_the_token() {
        let fake = fake::start(|_, _| {
            graph_error(
                400,
                190,
                Some(463),
                "Error validating access token: Session has expired",
            )
        })
        .await;
        let e = listener(&fake.base, json!({}))
            .next_batch(Some(CURSOR))
            .await
            .unwrap_err();
        assert_eq!(e.class, ErrorClass::AuthExpired);
        assert!(!e.to_string().contains("EAAG-page-secret"), "{e}");
    }

    #[tokio::test]
    async fn a_missing_read_permission_fails_the_poll_naming_it() {
        let fake = fake::start(|seen: &Seen, _: &[Seen]| {
            if seen.path.ends_with("/published_posts") {
                reply(
                    200,
                    json!({"data": [{"id": "1122_20", "comments": {
                        "data": [{"id": "20_202", "from": {"id": "904", "name": "Dan"},
                                  "message": "new", "created_time": at(5)}],
                        "paging": {"cursors": {"after": "p2"}, "next": "https://graph.facebook.com/next"}
                    }}]}),
                )
            } else {
                graph_error(403, 10, None, "(#10) This endpoint requires the 'pages_read_engagement' permission")
            }
        })
        .await;
        let e = listener(&fake.base, json!({}))
            .next_batch(Some(CURSOR))
            .await
            .unwrap_err();
        assert_eq!(
            e.class,
            ErrorClass::Permanent,
            "not skipped: the cursor must not pass it"
        );
        assert!(
            e.message.contains("pages_read_user_engagement"),
            "{}",
            e.message
        );
    }

    #[test]
    fn the_listen_settings_are_checked() {
        let build = |extra: Value| {
            let mut settings =
                json!({"page_id": "1122", "page_access_token": secret("EAAG-page-secret")});
            for (k, v) in extra.as_object().unwrap() {
                settings[k] = v.clone();
            }
            Factory
                .build_listener(
                    &ChannelConfig {
                        name: "fb".into(),
                        kind: "facebook".into(),
                        listen: true,
                        settings: settings.as_object().unwrap().clone(),
                    },
                    &AdapterContext::default(),
                )
                .map(|_| ())
        };
        assert_eq!(
            build(json!({"listen_interval_secs": 5}))
                .unwrap_err()
                .to_string(),
            "channel `fb` listen_interval_secs: must be between 60 and 3600 seconds"
        );
        assert_eq!(
            build(json!({"listen_days": 0})).unwrap_err().to_string(),
            "channel `fb` listen_days: must be between 1 and 90 days"
        );
        assert!(build(json!({"listen_interval_secs": 120, "listen_days": 30})).is_ok());
    }

    fn answer<'a>(post: &'a OutboundPost, root: &'a str, parent: &'a str) -> PublishRequest<'a> {
        PublishRequest {
            reply_to: Some(ReplyTo { root, parent }),
            ..request(post)
        }
    }

    #[tokio::test]
    async fn an_answer_comments_under_the_threads_root() {
        let fake = fake::start(|_, _| reply(200, json!({"id": "10_104"}))).await;
        let adapter = build(&fake.base);
        let post = text("Thanks Bob!");
        // Answering Bob's reply 10_102 under Alice's comment 10_101.
        let receipt = adapter
            .publish(answer(&post, "10_101", "10_102"))
            .await
            .unwrap();
        assert_eq!(receipt.platform_post_id.as_deref(), Some("10_104"));
        assert_eq!(receipt.url, None);
        // Answering a comment on the post itself.
        adapter
            .publish(answer(&post, "1122_10", "1122_10"))
            .await
            .unwrap();
        let seen = fake.requests();
        assert_eq!(seen[0].method, "POST");
        assert_eq!(seen[0].path, "/v24.0/10_101/comments");
        assert_eq!(seen[0].param("message").as_deref(), Some("Thanks Bob!"));
        assert_eq!(seen[0].auth, "Bearer EAAG-page-secret");
        assert_eq!(seen[1].path, "/v24.0/1122_10/comments");
    }

    #[tokio::test]
    async fn an_answer_to_something_not_an_id_is_refused_unsent() {
        let fake = fake::start(|_, _| reply(200, json!({"id": "1"}))).await;
        let adapter = build(&fake.base);
        let post = text("hi");
        let e = adapter
            .publish(answer(&post, "../1122/feed", "x"))
            .await
            .unwrap_err();
        assert_eq!(e.class, ErrorClass::Permanent);
        assert!(fake.requests().is_empty());
    }

    #[tokio::test]
    async fn a_missing_permission_to_answer_names_pages_manage_engagement() {
        let fake =
            fake::start(|_, _| graph_error(403, 200, None, "(#200) Permissions error")).await;
        let post = text("hi");
        let e = build(&fake.base)
            .publish(answer(&post, "10_101", "10_101"))
            .await
            .unwrap_err();
        assert_eq!(e.class, ErrorClass::Permanent);
        assert!(
            e.message.contains("pages_manage_engagement"),
            "{}",
            e.message
        );
    }
}
