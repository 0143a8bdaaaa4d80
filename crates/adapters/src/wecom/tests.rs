//! The WeCom adapter against a fake robot answering as WeCom documents:
//! `{"errcode":0,"errmsg":"ok"}`, 45009 when rate limited, 93000 for a bad
//! key, always with HTTP 200.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use clarion_core::{AdapterStore, MemoryAdapterStore, OutboundPost};
use serde_json::json;

use super::*;
use crate::group_robot::fake::{self, Seen};

/// WeCom's answers, picked by the key's first word (`ok-...`, `limited-...`).
fn wecom(seen: &Seen, _earlier: &[Seen]) -> (u16, String) {
    let key = seen.param("key").unwrap_or_default();
    let case = key.split('-').next().unwrap_or_default();
    let body = match case {
        "ok" => json!({"errcode": 0, "errmsg": "ok"}),
        "limited" => {
            json!({"errcode": 45009, "errmsg": "api freq out of limit, hint: [1764158400_1_abc], from ip: 203.0.113.7, more info at https://open.work.weixin.qq.com/devtool/query?e=45009"})
        }
        "badkey" => {
            json!({"errcode": 93000, "errmsg": format!("invalid webhook url {key}, hint: [1764158400_2_def]")})
        }
        "busy" => json!({"errcode": -1, "errmsg": "system busy"}),
        "type" => json!({"errcode": 40008, "errmsg": "invalid message type"}),
        "down" => return (502, "<html>502 Bad Gateway</html>".into()),
        "garbage" => return (200, "<html>maintenance</html>".into()),
        "slow" => return (200, fake::SLOW.into()),
        _ => json!({"errcode": 93000, "errmsg": "invalid webhook url"}),
    };
    (200, body.to_string())
}

fn build(
    base: &str,
    key: &str,
    settings: serde_json::Value,
) -> Result<Arc<dyn ChannelAdapter>, ConfigError> {
    build_with(base, key, settings, Arc::new(MemoryAdapterStore::default()))
}

fn build_with(
    base: &str,
    key: &str,
    settings: serde_json::Value,
    state: Arc<dyn AdapterStore>,
) -> Result<Arc<dyn ChannelAdapter>, ConfigError> {
    // A variable per key: tests run in parallel in one process.
    let var = format!(
        "CLARION_TEST_WECOM_KEY_{}",
        key.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    );
    // SAFETY: each variable is set to one value only, by the tests using it.
    unsafe { std::env::set_var(&var, key) };
    let mut config = json!({"name": "wecom", "kind": "wecom", "key": {"env": var}});
    if !base.is_empty() {
        config["base_url"] = json!(base);
    }
    config
        .as_object_mut()
        .unwrap()
        .extend(settings.as_object().unwrap().clone());
    Factory.build(
        &serde_json::from_value(config).unwrap(),
        &AdapterContext { state },
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

#[tokio::test]
async fn wecom_markdown_is_rendered_and_userids_are_mentioned() {
    let fake = fake::start(wecom).await;
    let adapter = build(
        &fake.base,
        "ok-md",
        json!({"mention_users": ["zhangsan", "lisi"]}),
    )
    .unwrap();
    let receipt = publish(
        adapter.as_ref(),
        &post(
            "# 发布 1.2\n**Clarion** is *out*: [notes](https://x.test/r?a=1&b=2) `v1.2`\n\n> 引用",
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        receipt,
        PublishReceipt::default(),
        "the robot answers no id"
    );
    let seen = fake.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, "/cgi-bin/webhook/send");
    assert_eq!(seen[0].query, "key=ok-md");
    assert_eq!(
        seen[0].body,
        json!({"msgtype": "markdown", "markdown": {"content":
            "**发布 1.2**\n**Clarion** is out: [notes](https://x.test/r?a=1&b=2) `v1.2`\n\n> 引用\n<@zhangsan> <@lisi>"
        }})
    );
}

#[tokio::test]
async fn wecom_text_carries_plain_text_and_the_mention_lists() {
    let fake = fake::start(wecom).await;
    let adapter = build(
        &fake.base,
        "ok-text",
        json!({
            "format": "text",
            "mention_users": ["zhangsan"],
            "mention_mobiles": ["13800001111"],
            "mention_all": true,
        }),
    )
    .unwrap();
    publish(
        adapter.as_ref(),
        &post("**Release** out: [notes](https://x.test/n) <@wangwu>"),
    )
    .await
    .unwrap();
    assert_eq!(
        fake.requests()[0].body,
        json!({"msgtype": "text", "text": {
            // A `<@userid>` written in the post stays text: it mentions nobody.
            "content": "Release out: notes (https://x.test/n) <\u{200B}@wangwu>",
            "mentioned_list": ["zhangsan", "@all"],
            "mentioned_mobile_list": ["13800001111"],
        }})
    );
}

#[tokio::test]
async fn wecom_news_cards_need_a_link_and_fall_back_to_markdown() {
    let fake = fake::start(wecom).await;
    let adapter = build(&fake.base, "ok-news", json!({"format": "news"})).unwrap();
    let long = "很长的描述".repeat(60);
    publish(
        adapter.as_ref(),
        &post(&format!(
            "Spring release\n{long}\n[Read it](https://x.test/spring) ![cover](https://x.test/cover.png)"
        )),
    )
    .await
    .unwrap();
    publish(adapter.as_ref(), &post("No link here"))
        .await
        .unwrap();
    let seen = fake.requests();
    let article = &seen[0].body["news"]["articles"][0];
    assert_eq!(seen[0].body["msgtype"], "news");
    assert_eq!(article["title"], "Spring release");
    assert_eq!(article["url"], "https://x.test/spring");
    assert_eq!(article["picurl"], "https://x.test/cover.png");
    let description = article["description"].as_str().unwrap();
    assert!(
        description.len() <= 512 && description.ends_with('…'),
        "{description}"
    );
    assert_eq!(
        seen[1].body,
        json!({"msgtype": "markdown", "markdown": {"content": "No link here"}})
    );
}

#[tokio::test]
async fn wecom_limits_count_utf8_bytes_not_characters() {
    let adapter = build("http://127.0.0.1:9", "ok-limits", json!({})).unwrap();
    // 1,366 Chinese characters: 4,098 bytes, far under 4,096 characters.
    let chinese = "字".repeat(1366);
    let error = adapter.validate(&post(&chinese)).unwrap_err();
    assert_eq!(
        error.message,
        "text is 4098 bytes long in UTF-8 as a WeCom markdown message; the limit is 4096 bytes \
         (WeCom counts bytes, not characters: a Chinese character takes 3)"
    );
    assert!(adapter.validate(&post(&"字".repeat(1365))).is_ok());
    assert!(adapter.validate(&post(&"a".repeat(4096))).is_ok());
    assert!(adapter.validate(&post(&"a".repeat(4097))).is_err());

    let text = build(
        "http://127.0.0.1:9",
        "ok-limits-text",
        json!({"format": "text"}),
    )
    .unwrap();
    let error = text.validate(&post(&"字".repeat(683))).unwrap_err();
    assert!(
        error.message.starts_with(
            "text is 2049 bytes long in UTF-8 as a WeCom text message; the limit is 2048 bytes"
        ),
        "{error}"
    );
    assert!(text.validate(&post(&"字".repeat(682))).is_ok());
    assert_eq!(text.length_rule().max, 2048);
    assert!(text.validate(&post("  ")).is_err(), "nothing to send");
}

#[tokio::test]
async fn wecom_errors_are_classified_and_never_show_the_key() {
    let fake = fake::start(wecom).await;
    let fail = |key: &'static str, settings: serde_json::Value| {
        let adapter = build(&fake.base, key, settings).unwrap();
        async move { publish(adapter.as_ref(), &post("hello")).await.unwrap_err() }
    };
    let limited = fail("limited-S3CRETA", json!({})).await;
    assert_eq!(limited.class, ErrorClass::RateLimited);
    assert_eq!(limited.retry_after, Some(Duration::from_secs(60)));
    assert!(
        limited
            .message
            .starts_with("WeCom errcode 45009, too many messages (a robot sends at most 20 a minute): api freq out of limit"),
        "{limited}"
    );
    let bad = fail("badkey-S3CRETB", json!({})).await;
    assert_eq!(bad.class, ErrorClass::AuthExpired);
    assert!(bad.message.contains("check `key`"), "{bad}");
    assert!(
        !bad.message.contains("S3CRETB") && bad.message.contains("invalid webhook url ***"),
        "the key WeCom echoed is redacted: {bad}"
    );
    let busy = fail("busy-S3CRETC", json!({})).await;
    assert_eq!(busy.class, ErrorClass::Transient);
    let other = fail("type-S3CRETD", json!({})).await;
    assert_eq!(
        (other.class, other.message.as_str()),
        (
            ErrorClass::Permanent,
            "WeCom errcode 40008: invalid message type"
        )
    );
    let down = fail("down-S3CRETE", json!({})).await;
    assert_eq!(down.class, ErrorClass::OutcomeUnknown, "{down}");
    assert_eq!(down.status, Some(502));
    let garbage = fail("garbage-S3CRETF", json!({})).await;
    assert_eq!(garbage.class, ErrorClass::OutcomeUnknown, "{garbage}");
    let slow = fail("slow-S3CRETG", json!({"timeout_secs": 0.3})).await;
    assert_eq!(slow.class, ErrorClass::OutcomeUnknown, "{slow}");
    for e in [&limited, &busy, &other, &down, &garbage, &slow] {
        assert!(!e.to_string().contains("S3CRET"), "{e}");
    }
    // Nothing listening: nothing was sent.
    let closed = build(&fake::closed_port(), "ok-S3CRETH", json!({})).unwrap();
    let error = publish(closed.as_ref(), &post("hello")).await.unwrap_err();
    assert_eq!(error.class, ErrorClass::Transient, "{error}");
    assert!(!error.to_string().contains("S3CRETH"), "{error}");
    assert!(!format!("{closed:?}").contains("S3CRETH"));
}

const IMAGE: &[u8] = b"\x89PNG\r\n\x1a\nclarion-test-image";

fn image_post(text: &str, name: &str) -> OutboundPost {
    let dir = std::env::temp_dir().join(format!("clarion-wecom-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, IMAGE).unwrap();
    OutboundPost {
        text: text.into(),
        campaign: None,
        media: vec![Media {
            path,
            alt: "cover".into(),
            mime: "image/png".into(),
            bytes: IMAGE.len() as u64,
        }],
    }
}

#[tokio::test]
async fn wecom_images_go_as_base64_with_the_md5_of_their_bytes() {
    let fake = fake::start(wecom).await;
    let adapter = build(&fake.base, "ok-image", json!({})).unwrap();
    let post = image_post("Look **here**", "a.png");
    adapter.validate(&post).unwrap();
    publish(adapter.as_ref(), &post).await.unwrap();
    let seen = fake.requests();
    assert_eq!(seen.len(), 2, "the text, then the image");
    assert_eq!(seen[0].body["markdown"]["content"], "Look **here**");
    // printf '\x89PNG\r\n\x1a\nclarion-test-image' > img.bin
    // openssl dgst -md5 -r img.bin; base64 -w0 img.bin
    assert_eq!(
        seen[1].body,
        json!({"msgtype": "image", "image": {
            "base64": "iVBORw0KGgpjbGFyaW9uLXRlc3QtaW1hZ2U=",
            "md5": "4b76a668d1b2f90abd5ed5c2beff6e34",
        }})
    );

    // An image alone is one message.
    publish(adapter.as_ref(), &image_post("", "b.png"))
        .await
        .unwrap();
    assert_eq!(fake.requests()[2].body["msgtype"], "image");

    let mut gif = image_post("", "c.gif");
    gif.media[0].mime = "image/gif".into();
    assert!(adapter.validate(&gif).is_err(), "WeCom takes JPG and PNG");
    let mut big = image_post("", "d.png");
    big.media[0].bytes = 2 * 1024 * 1024 + 1;
    assert!(adapter.validate(&big).is_err());
}

#[tokio::test]
async fn wecom_text_is_not_sent_again_when_only_the_image_failed() {
    // The first image is rate limited; everything else is accepted.
    let images = Arc::new(AtomicUsize::new(0));
    let counter = images.clone();
    let fake = fake::start(move |seen: &Seen, _: &[Seen]| {
        if seen.body["msgtype"] == "image" && counter.fetch_add(1, Ordering::SeqCst) == 0 {
            return (
                200,
                json!({"errcode": 45009, "errmsg": "api freq out of limit"}).to_string(),
            );
        }
        (200, json!({"errcode": 0, "errmsg": "ok"}).to_string())
    })
    .await;
    let state = Arc::new(MemoryAdapterStore::default());
    let adapter = build_with(&fake.base, "ok-retry", json!({}), state.clone()).unwrap();
    let post = image_post("Caption", "e.png");
    let first = publish(adapter.as_ref(), &post).await.unwrap_err();
    assert_eq!(first.class, ErrorClass::RateLimited);
    assert!(
        first.message.starts_with(
            "the text went out (a retry will not send it again) but the image did not"
        ),
        "{first}"
    );
    publish(adapter.as_ref(), &post).await.unwrap();
    let types: Vec<String> = fake
        .requests()
        .iter()
        .map(|s| s.body["msgtype"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(types, ["markdown", "image", "image"]);
    assert!(
        state
            .load("wecom/text-sent", "post-7/target-9")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn wecom_settings_are_checked_without_repeating_the_key() {
    let refused = |settings: serde_json::Value| {
        build("http://127.0.0.1:9", "ok-settings", settings)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        refused(json!({"mention_mobiles": ["13800001111"]})),
        "channel `wecom` format: WeCom markdown messages can @ people only by userid \
         (`mention_users`); `mention_mobiles` and `mention_all` need format = \"text\""
    );
    assert!(
        refused(json!({"format": "news", "mention_users": ["a"]})).contains("news card cannot @")
    );
    assert!(refused(json!({"mention_users": ["@all"]})).contains("mention_all = true"));
    assert!(
        refused(json!({"format": "text", "mention_mobiles": ["call me"]}))
            .contains("not a phone number")
    );
    assert!(refused(json!({"mention_users": ["a b"]})).contains("is not an id"));
    assert!(refused(json!({"timeout_secs": 0})).contains("timeout_secs"));
    assert!(
        refused(json!({"format": "html"}))
            .starts_with("channel `wecom` (kind wecom): unknown variant `html`")
    );
    assert!(refused(json!({"keyy": 1})).contains("unknown field `keyy`"));

    // The whole webhook URL works as the key, as the app shows it.
    let fake = fake::start(wecom).await;
    let url = build(
        &fake.base,
        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=ok-fromurl",
        json!({}),
    )
    .unwrap();
    publish(url.as_ref(), &post("hi")).await.unwrap();
    assert_eq!(fake.requests()[0].query, "key=ok-fromurl");
    // Without `base_url`, the pasted URL's host is the one sent to (a
    // private deployment).
    let pasted = build(
        "",
        &format!("{}/cgi-bin/webhook/send?key=ok-pasted", fake.base),
        json!({}),
    )
    .unwrap();
    publish(pasted.as_ref(), &post("hi")).await.unwrap();
    assert_eq!(fake.requests()[1].query, "key=ok-pasted");
    let no_key = build(
        "http://127.0.0.1:9",
        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?token=S3CRETURL",
        json!({}),
    )
    .unwrap_err()
    .to_string();
    assert!(
        no_key.contains("without the robot's key") && !no_key.contains("S3CRETURL"),
        "{no_key}"
    );
    // Inline keys are refused without being repeated.
    let inline = Factory
        .build(
            &serde_json::from_value(
                json!({"name": "wecom", "kind": "wecom", "key": "S3CRETINLINE"}),
            )
            .unwrap(),
            &AdapterContext::default(),
        )
        .unwrap_err()
        .to_string();
    assert!(
        inline.contains("{ env = \"NAME\" }") && !inline.contains("S3CRETINLINE"),
        "{inline}"
    );
}

#[tokio::test]
async fn wecom_declares_its_pacing_and_contract() {
    let adapter = build("http://127.0.0.1:9", "ok-contract", json!({})).unwrap();
    assert_eq!(adapter.kind(), "wecom");
    assert_eq!(
        adapter.rate_window(),
        Some(RateWindow {
            max: 20,
            per: Duration::from_secs(60)
        })
    );
    assert_eq!(adapter.idempotency(), Idempotency::None);
    assert_eq!(adapter.markup(), Markup::Markdown);
    assert_eq!(adapter.length_rule().max, 4096);
    assert_eq!(adapter.media_rule().max_count, 1);
}

#[tokio::test]
async fn wecom_check_reaches_the_host_and_warns_the_key_is_unverified() {
    let fake = fake::start(wecom).await;
    let adapter = build(&fake.base, "ok-S3CRETCHECK", json!({})).unwrap();
    let check = adapter.check().await.unwrap();
    assert!(
        check
            .detail
            .ends_with("reachable (HEAD answered HTTP 200); markdown messages"),
        "{check:?}"
    );
    assert!(
        check
            .warning
            .as_deref()
            .is_some_and(|w| w.contains("verified only when a message is sent")),
        "{check:?}"
    );
    let seen = fake.requests();
    assert_eq!(
        (
            seen[0].method.as_str(),
            seen[0].path.as_str(),
            seen[0].query.as_str()
        ),
        ("HEAD", "/", "")
    );
    let closed = build(&fake::closed_port(), "ok-S3CRETCHECK", json!({})).unwrap();
    let error = closed.check().await.unwrap_err();
    assert_eq!(error.class, ErrorClass::Transient);
    assert!(!error.to_string().contains("S3CRETCHECK"));
}
