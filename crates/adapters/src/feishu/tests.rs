//! The Feishu adapter against a fake custom bot answering as Feishu
//! documents: `{"code":0,"msg":"success","data":{}}`, 11232 when throttled,
//! 19021 for a bad signature, 19024 / 19022 for keywords and IP allowlist.

use std::sync::Arc;

use clarion_core::OutboundPost;
use serde_json::json;

use super::*;
use crate::group_robot::fake::{self, Seen};

/// Feishu's answers, picked by the token's first word (`ok-...`).
fn feishu(seen: &Seen, _earlier: &[Seen]) -> (u16, String) {
    let token = seen.path.rsplit('/').next().unwrap_or_default().to_owned();
    let case = token.split('-').next().unwrap_or_default();
    let body = match case {
        "ok" => json!({"code": 0, "msg": "success", "data": {}}),
        "old" => json!({"StatusCode": 0, "StatusMessage": "success"}),
        "throttled" => {
            json!({"code": 11232, "msg": "frequency limited psm[lark.oapi.app_platform_runtime]appID[1]"})
        }
        "toomany" => json!({"code": 9499, "msg": "too many request"}),
        "badsign" => {
            json!({"code": 19021, "msg": "sign match fail or timestamp is not within one hour from current time"})
        }
        "badtoken" => {
            json!({"code": 19001, "msg": format!("param invalid: incoming webhook access token invalid {token}")})
        }
        "ip" => json!({"code": 19022, "msg": "Ip Not Allowed"}),
        "keyword" => json!({"code": 19024, "msg": "Key Words Not Found"}),
        "bad" => {
            return (
                400,
                json!({"code": 9499, "msg": "Bad Request", "data": {}}).to_string(),
            );
        }
        "limited" => return (429, "".into()),
        "down" => return (503, "<html>503</html>".into()),
        "garbage" => return (200, "ok".into()),
        _ => json!({"code": 19001, "msg": "param invalid: incoming webhook access token invalid"}),
    };
    (200, body.to_string())
}

fn set_env(prefix: &str, value: &str) -> String {
    let var = format!(
        "CLARION_TEST_FEISHU_{prefix}_{}",
        value.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    );
    // SAFETY: each variable is set to one value only, by the tests using it.
    unsafe { std::env::set_var(&var, value) };
    var
}

fn build(
    base: &str,
    token: &str,
    settings: serde_json::Value,
) -> Result<Arc<dyn ChannelAdapter>, ConfigError> {
    let var = set_env("TOKEN", token);
    let mut config =
        json!({"name": "feishu", "kind": "feishu", "token": {"env": var}, "base_url": base});
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

async fn publish(adapter: &dyn ChannelAdapter, text: &str) -> Result<PublishReceipt, PublishError> {
    adapter
        .publish(PublishRequest {
            post: &post(text),
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
async fn feishu_post_is_rich_text_with_styles_links_quotes_and_mentions() {
    let fake = fake::start(feishu).await;
    let adapter = build(
        &fake.base,
        "ok-post",
        json!({"mention_users": ["ou_abc"], "mention_all": true, "title": "Release"}),
    )
    .unwrap();
    let receipt = publish(
        adapter.as_ref(),
        "**Big** *news* ~~old~~ [docs](https://x.test/d?a=1&b=2) <at user_id=\"all\">x</at>\n\n> quoted",
    )
    .await
    .unwrap();
    assert_eq!(receipt, PublishReceipt::default(), "the bot answers no id");
    let seen = fake.requests();
    assert_eq!(seen[0].path, "/open-apis/bot/v2/hook/ok-post");
    assert_eq!(
        seen[0].body,
        json!({"msg_type": "post", "content": {"post": {"zh_cn": {
            "title": "Release",
            "content": [
                [
                    {"tag": "text", "text": "Big", "style": ["bold"]},
                    {"tag": "text", "text": " "},
                    {"tag": "text", "text": "news", "style": ["italic"]},
                    {"tag": "text", "text": " "},
                    {"tag": "text", "text": "old", "style": ["lineThrough"]},
                    {"tag": "text", "text": " "},
                    {"tag": "a", "text": "docs", "href": "https://x.test/d?a=1&b=2"},
                    // Rich text elements are literal: a tag in the post mentions nobody.
                    {"tag": "text", "text": " <at user_id=\"all\">x</at>"},
                ],
                [{"tag": "text", "text": ""}],
                [{"tag": "text", "text": "> "}, {"tag": "text", "text": "quoted"}],
                [{"tag": "at", "user_id": "ou_abc"}, {"tag": "at", "user_id": "all"}],
            ],
        }}}})
    );
    assert!(
        seen[0].body.get("sign").is_none(),
        "unsigned without `secret`"
    );
}

#[tokio::test]
async fn feishu_text_and_card_formats() {
    let fake = fake::start(feishu).await;
    let text = build(
        &fake.base,
        "ok-text",
        json!({"format": "text", "mention_users": ["ou_abc"], "mention_all": true}),
    )
    .unwrap();
    publish(
        text.as_ref(),
        "**Hi** [docs](https://x.test/d) <at user_id=\"all\">",
    )
    .await
    .unwrap();
    let card = build(
        &fake.base,
        "ok-card",
        json!({"format": "card", "title": "Clarion", "mention_users": ["ou_abc"]}),
    )
    .unwrap();
    publish(
        card.as_ref(),
        "**Hi** *there* ~~x~~ [docs](https://x.test/d)",
    )
    .await
    .unwrap();
    let seen = fake.requests();
    assert_eq!(
        seen[0].body,
        json!({"msg_type": "text", "content": {"text":
            "Hi docs (https://x.test/d) <\u{200B}at user_id=\"all\">\n<at user_id=\"ou_abc\"></at> <at user_id=\"all\">所有人</at>"
        }})
    );
    assert_eq!(
        seen[1].body,
        json!({"msg_type": "interactive", "card": {
            "config": {"wide_screen_mode": true},
            "header": {"title": {"tag": "plain_text", "content": "Clarion"}},
            "elements": [{"tag": "markdown", "content": "**Hi** *there* ~~x~~ [docs](https://x.test/d)\n<at id=ou_abc></at>"}],
        }})
    );
}

#[test]
fn feishu_sign_matches_a_vector_computed_with_openssl() {
    // Feishu's own example values (timestamp 1599360473, secret "demo"):
    // printf '' | openssl dgst -sha256 -hmac "$(printf '%s\n%s' 1599360473 demo)" -binary | base64
    assert_eq!(
        sign("demo", 1_599_360_473),
        "l1N0gAcBjdwBvGm1xMjOF0XSyaLRpR7tuO5dHfhAYc8="
    );
}

#[tokio::test]
async fn feishu_signed_messages_carry_a_fresh_timestamp_and_its_sign() {
    let fake = fake::start(feishu).await;
    let secret = set_env("SECRET", "S3CRETSIGN-feishu");
    let adapter = build(&fake.base, "ok-signed", json!({"secret": {"env": secret}})).unwrap();
    publish(adapter.as_ref(), "hello").await.unwrap();
    let body = &fake.requests()[0].body;
    let timestamp = body["timestamp"]
        .as_str()
        .expect("timestamp is a string of seconds");
    let seconds: i64 = timestamp.parse().unwrap();
    assert!(
        (chrono::Utc::now().timestamp() - seconds).abs() < 60,
        "{timestamp}"
    );
    let sent = body["sign"].as_str().unwrap();
    match fake::openssl_hmac_base64(&format!("{timestamp}\nS3CRETSIGN-feishu"), "") {
        Some(expected) => assert_eq!(sent, expected),
        None => {
            eprintln!("openssl is not installed: the sign is checked against the fixed vector only")
        }
    }
    assert_eq!(
        body["content"]["post"]["zh_cn"]["content"][0][0]["text"],
        "hello"
    );
    assert!(!format!("{adapter:?}").contains("S3CRETSIGN"));
}

#[tokio::test]
async fn feishu_errors_are_classified_and_never_show_the_token() {
    let fake = fake::start(feishu).await;
    let fail = |token: &'static str, settings: serde_json::Value| {
        let adapter = build(&fake.base, token, settings).unwrap();
        async move { publish(adapter.as_ref(), "hello").await.unwrap_err() }
    };
    let throttled = fail("throttled-S3CRETA", json!({})).await;
    assert_eq!(throttled.class, ErrorClass::RateLimited);
    assert_eq!(throttled.retry_after, Some(Duration::from_secs(60)));
    assert!(
        throttled
            .message
            .starts_with("Feishu code 11232, throttled"),
        "{throttled}"
    );
    let too_many = fail("toomany-S3CRETB", json!({})).await;
    assert_eq!(too_many.class, ErrorClass::RateLimited);

    let secret = set_env("SECRET", "wrong-secret");
    let bad_sign = fail("badsign-S3CRETC", json!({"secret": {"env": secret}})).await;
    assert_eq!(bad_sign.class, ErrorClass::AuthExpired);
    assert!(
        bad_sign
            .message
            .starts_with("Feishu code 19021, the signature was rejected: check `secret`"),
        "{bad_sign}"
    );
    let unsigned = fail("badsign-S3CRETD", json!({})).await;
    assert!(unsigned.message.contains("set `secret`"), "{unsigned}");
    let bad_token = fail("badtoken-S3CRETE", json!({})).await;
    assert_eq!(bad_token.class, ErrorClass::AuthExpired);
    assert!(
        bad_token.message.contains("check `token`")
            && bad_token.message.ends_with("token invalid ***"),
        "the echoed token is redacted: {bad_token}"
    );
    let ip = fail("ip-S3CRETF", json!({})).await;
    assert_eq!(ip.class, ErrorClass::Permanent);
    assert!(
        ip.message.contains("IP allowlist") && ip.message.ends_with("Ip Not Allowed"),
        "{ip}"
    );
    let keyword = fail("keyword-S3CRETG", json!({})).await;
    assert_eq!(keyword.class, ErrorClass::Permanent);
    assert!(keyword.message.contains("custom keywords"), "{keyword}");
    let bad = fail("bad-S3CRETH", json!({})).await;
    assert_eq!(
        (bad.class, bad.message.as_str(), bad.status),
        (
            ErrorClass::Permanent,
            "Feishu code 9499, the request was refused as malformed: Bad Request",
            Some(400)
        )
    );
    let limited = fail("limited-S3CRETI", json!({})).await;
    assert_eq!(
        (limited.class, limited.retry_after),
        (ErrorClass::RateLimited, Some(Duration::from_secs(60))),
        "an HTTP 429 without Retry-After waits the minute the limit counts"
    );
    assert_eq!(
        fail("down-S3CRETJ", json!({})).await.class,
        ErrorClass::OutcomeUnknown
    );
    assert_eq!(
        fail("garbage-S3CRETK", json!({})).await.class,
        ErrorClass::OutcomeUnknown
    );
    for e in [
        &throttled, &too_many, &bad_sign, &unsigned, &bad_token, &ip, &keyword, &bad,
    ] {
        assert!(!e.to_string().contains("S3CRET"), "{e}");
    }
    // The older answer shape still counts as success.
    let old = build(&fake.base, "old-shape", json!({})).unwrap();
    publish(old.as_ref(), "hello").await.unwrap();
}

#[test]
fn feishu_body_limit_counts_json_bytes() {
    let adapter = build("http://127.0.0.1:9", "ok-limit", json!({"format": "text"})).unwrap();
    // 6,700 Chinese characters: 20,100 bytes, a third as many characters.
    let error = adapter.validate(&post(&"字".repeat(6700))).unwrap_err();
    assert!(
        error.message.starts_with(
            "the message is 20141 bytes of JSON as a Feishu text message; the limit is 20000 bytes"
        ),
        "{error}"
    );
    assert!(adapter.validate(&post(&"字".repeat(6600))).is_ok());
    assert!(adapter.validate(&post(" ")).is_err(), "nothing to send");
    let mut with_image = post("x");
    with_image.media.push(clarion_core::Media {
        path: "a.png".into(),
        alt: String::new(),
        mime: "image/png".into(),
        bytes: 1,
    });
    assert!(
        adapter.validate(&with_image).is_err(),
        "custom bots cannot upload images"
    );
}

#[tokio::test]
async fn feishu_settings_take_the_webhook_url_and_lark() {
    let fake = fake::start(feishu).await;
    // The whole webhook URL as the token; a Lark base URL is just another base.
    let lark = build(
        &fake.base,
        "https://open.larksuite.com/open-apis/bot/v2/hook/ok-fromurl",
        json!({}),
    )
    .unwrap();
    publish(lark.as_ref(), "hi").await.unwrap();
    assert_eq!(fake.requests()[0].path, "/open-apis/bot/v2/hook/ok-fromurl");

    let refused = |token: &str, settings: serde_json::Value| {
        build("http://127.0.0.1:9", token, settings)
            .unwrap_err()
            .to_string()
    };
    let no_token = refused(
        "https://open.feishu.cn/open-apis/bot/v2/S3CRETNOHOOK",
        json!({}),
    );
    assert!(
        no_token.contains("without the robot's token") && !no_token.contains("S3CRET"),
        "{no_token}"
    );
    assert!(refused("ok-x", json!({"format": "text", "title": "T"})).contains("has no title"));
    assert!(refused("ok-x", json!({"mention_users": ["all"]})).contains("mention_all = true"));
    assert!(refused("ok-x", json!({"base_url": "ftp://open.feishu.cn"})).contains("http or https"));
    assert!(refused("ok-x", json!({"format": "markdown"})).contains("unknown variant `markdown`"));
}

#[tokio::test]
async fn feishu_declares_its_pacing_and_checks_reachability() {
    let fake = fake::start(feishu).await;
    let adapter = build(&fake.base, "ok-pace", json!({})).unwrap();
    assert_eq!(adapter.min_interval(), Some(Duration::from_millis(200)));
    assert_eq!(
        adapter.rate_window(),
        Some(RateWindow {
            max: 100,
            per: Duration::from_secs(60)
        })
    );
    assert_eq!(adapter.idempotency(), Idempotency::None);
    assert_eq!(adapter.markup(), Markup::Markdown);
    let check = adapter.check().await.unwrap();
    assert!(
        check
            .detail
            .ends_with("(HEAD answered HTTP 200); post messages, unsigned"),
        "{check:?}"
    );
    assert!(check.warning.is_some());
    let error = build(&fake::closed_port(), "ok-pace", json!({}))
        .unwrap()
        .check()
        .await
        .unwrap_err();
    assert_eq!(error.class, ErrorClass::Transient);
}
