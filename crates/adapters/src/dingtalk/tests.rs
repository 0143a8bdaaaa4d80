//! The DingTalk adapter against a fake custom robot answering as DingTalk
//! documents: `{"errcode":0,"errmsg":"ok"}`, 130101 when sending too fast,
//! 310000 for a failed security check (keywords, signature, IP), 300001 for
//! an unknown token, always with HTTP 200.

use std::sync::Arc;

use clarion_core::OutboundPost;
use serde_json::json;

use super::*;
use crate::group_robot::fake::{self, Seen};

/// DingTalk's answers, picked by the token's first word (`ok-...`).
fn dingtalk(seen: &Seen, _earlier: &[Seen]) -> (u16, String) {
    let token = seen.param("access_token").unwrap_or_default();
    let case = token.split('-').next().unwrap_or_default();
    let (errcode, errmsg) = match case {
        "ok" => (0, "ok".to_owned()),
        "limited" => (
            130101,
            "send too fast, exceed 20 times per minute".to_owned(),
        ),
        "keyword" => (310000, "keywords not in content".to_owned()),
        "sign" => (310000, "sign not match".to_owned()),
        "timestamp" => (310000, "invalid timestamp".to_owned()),
        "ip" => (310000, "ip 203.0.113.7 not in whitelist".to_owned()),
        "security" => (310000, "security check failed".to_owned()),
        "external" => (300005, format!("token is not exist {token}")),
        "busy" => (-1, "系统繁忙".to_owned()),
        "param" => (40035, "缺少参数 json".to_owned()),
        "down" => return (502, "<html>502</html>".into()),
        "garbage" => return (200, "<html>ok</html>".into()),
        _ => (300001, "token is not exist".to_owned()),
    };
    (
        200,
        json!({"errcode": errcode, "errmsg": errmsg}).to_string(),
    )
}

fn set_env(prefix: &str, value: &str) -> String {
    let var = format!(
        "CLARION_TEST_DINGTALK_{prefix}_{}",
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
        json!({"name": "ding", "kind": "dingtalk", "access_token": {"env": var}, "base_url": base});
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
async fn dingtalk_markdown_has_a_title_line_breaks_and_mentions() {
    let fake = fake::start(dingtalk).await;
    let adapter = build(
        &fake.base,
        "ok-md",
        json!({"mention_mobiles": ["13800001111"], "mention_user_ids": ["manager1234"], "mention_all": true}),
    )
    .unwrap();
    let receipt = publish(
        adapter.as_ref(),
        "# 版本 1.2 发布\n**Clarion** is *out*\nsee [notes](https://x.test/n) <font color=\"red\">x</font>\n\n- one\n- two",
    )
    .await
    .unwrap();
    assert_eq!(
        receipt,
        PublishReceipt::default(),
        "the robot answers no id"
    );
    let seen = fake.requests();
    assert_eq!(seen[0].path, "/robot/send");
    assert_eq!(
        seen[0].query, "access_token=ok-md",
        "unsigned without `secret`"
    );
    assert_eq!(
        seen[0].body,
        json!({
            "msgtype": "markdown",
            "markdown": {
                "title": "版本 1.2 发布",
                "text": "**版本 1.2 发布**  \n**Clarion** is *out*  \nsee [notes](https://x.test/n) \
                         <\u{200B}font color=\"red\">x<\u{200B}/font>\n\n- one  \n- two\n\n@13800001111 @manager1234",
            },
            "at": {"atMobiles": ["13800001111"], "atUserIds": ["manager1234"], "isAtAll": true},
        })
    );
}

#[tokio::test]
async fn dingtalk_text_link_and_action_card_formats() {
    let fake = fake::start(dingtalk).await;
    let text = build(
        &fake.base,
        "ok-text",
        json!({"format": "text", "mention_mobiles": ["13800001111"]}),
    )
    .unwrap();
    publish(text.as_ref(), "**Hi** [docs](https://x.test/d)")
        .await
        .unwrap();
    let link = build(&fake.base, "ok-link", json!({"format": "link"})).unwrap();
    publish(
        link.as_ref(),
        "Spring release\nAll the news. [Read](https://x.test/spring) ![](https://x.test/c.jpg)",
    )
    .await
    .unwrap();
    let card = build(
        &fake.base,
        "ok-card",
        json!({"format": "action_card", "title": "Clarion", "button_title": "Open"}),
    )
    .unwrap();
    publish(card.as_ref(), "**New** post: [here](https://x.test/p)")
        .await
        .unwrap();
    // A card needs a link; without one the post goes out as markdown.
    publish(card.as_ref(), "No link").await.unwrap();
    let seen = fake.requests();
    assert_eq!(
        seen[0].body,
        json!({
            "msgtype": "text",
            "text": {"content": "Hi docs (https://x.test/d)\n@13800001111"},
            "at": {"atMobiles": ["13800001111"], "atUserIds": [], "isAtAll": false},
        })
    );
    assert_eq!(
        seen[1].body,
        json!({"msgtype": "link", "link": {
            "title": "Spring release",
            "text": "All the news. Read (https://x.test/spring) https://x.test/c.jpg",
            "messageUrl": "https://x.test/spring",
            "picUrl": "https://x.test/c.jpg",
        }})
    );
    assert_eq!(
        seen[2].body,
        json!({"msgtype": "actionCard", "actionCard": {
            "title": "Clarion",
            "text": "**New** post: [here](https://x.test/p)",
            "singleTitle": "Open",
            "singleURL": "https://x.test/p",
        }})
    );
    assert_eq!(
        seen[3].body,
        json!({"msgtype": "markdown", "markdown": {"title": "Clarion", "text": "No link"}})
    );
}

#[test]
fn dingtalk_sign_matches_a_vector_computed_with_openssl() {
    // printf '%s\n%s' 1700000000000 SECtest | openssl dgst -sha256 -hmac SECtest -binary | base64
    assert_eq!(
        sign("SECtest", 1_700_000_000_000),
        "aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g="
    );
}

#[tokio::test]
async fn dingtalk_signed_urls_carry_milliseconds_and_an_encoded_sign() {
    let fake = fake::start(dingtalk).await;
    let secret = set_env("SECRET", "SECS3CRETSIGNdingtalk");
    let adapter = build(&fake.base, "ok-signed", json!({"secret": {"env": secret}})).unwrap();
    publish(adapter.as_ref(), "hello").await.unwrap();
    let seen = &fake.requests()[0];
    let timestamp = seen.param("timestamp").unwrap();
    let millis: i64 = timestamp.parse().unwrap();
    assert!(
        (chrono::Utc::now().timestamp_millis() - millis).abs() < 60_000,
        "{timestamp}"
    );
    let sent = seen.param("sign").unwrap();
    // URL-encoded once: the base64 padding `=` (and any `+`, `/`) is escaped.
    let raw = seen.query.split("sign=").nth(1).unwrap();
    assert!(
        raw.ends_with("%3D") && !raw.contains(['+', '/', '=']),
        "{raw}"
    );
    match fake::openssl_hmac_base64(
        "SECS3CRETSIGNdingtalk",
        &format!("{timestamp}\nSECS3CRETSIGNdingtalk"),
    ) {
        Some(expected) => assert_eq!(sent, expected),
        None => {
            eprintln!("openssl is not installed: the sign is checked against the fixed vector only")
        }
    }
    assert!(!format!("{adapter:?}").contains("S3CRETSIGN"));
}

#[tokio::test]
async fn dingtalk_errors_are_classified_and_never_show_the_token() {
    let fake = fake::start(dingtalk).await;
    let secret = set_env("SECRET", "SECwrong");
    let fail = |token: &'static str, signed: bool| {
        let settings = if signed {
            json!({"secret": {"env": secret.clone()}})
        } else {
            json!({})
        };
        let adapter = build(&fake.base, token, settings).unwrap();
        async move { publish(adapter.as_ref(), "hello").await.unwrap_err() }
    };
    let limited = fail("limited-S3CRETA", false).await;
    assert_eq!(limited.class, ErrorClass::RateLimited);
    assert_eq!(
        limited.retry_after,
        Some(Duration::from_secs(600)),
        "blocked 10 minutes"
    );
    assert!(
        limited
            .message
            .starts_with("DingTalk errcode 130101, too many messages"),
        "{limited}"
    );
    let keyword = fail("keyword-S3CRETB", false).await;
    assert_eq!(keyword.class, ErrorClass::Permanent);
    assert!(
        keyword.message.contains("custom keywords")
            && keyword.message.ends_with("keywords not in content"),
        "{keyword}"
    );
    let sign = fail("sign-S3CRETC", true).await;
    assert_eq!(sign.class, ErrorClass::AuthExpired);
    assert!(sign.message.contains("check `secret`"), "{sign}");
    let unsigned = fail("sign-S3CRETD", false).await;
    assert_eq!(unsigned.class, ErrorClass::AuthExpired);
    assert!(unsigned.message.contains("set `secret`"), "{unsigned}");
    let timestamp = fail("timestamp-S3CRETE", true).await;
    assert!(timestamp.message.contains("clock"), "{timestamp}");
    let ip = fail("ip-S3CRETF", false).await;
    assert_eq!(ip.class, ErrorClass::Permanent);
    assert!(ip.message.contains("IP allowlist"), "{ip}");
    let security = fail("security-S3CRETG", false).await;
    assert_eq!(security.class, ErrorClass::Permanent);
    assert!(
        security.message.contains("custom keywords")
            && security.message.contains("加签")
            && security.message.contains("IP allowlist"),
        "names the three security settings: {security}"
    );
    let token = fail("unknown-S3CRETH", false).await;
    assert_eq!(token.class, ErrorClass::AuthExpired);
    assert!(token.message.contains("check `access_token`"), "{token}");
    let external = fail("external-S3CRETI", false).await;
    assert_eq!(external.class, ErrorClass::AuthExpired);
    assert!(
        external.message.ends_with("token is not exist ***"),
        "redacted: {external}"
    );
    assert_eq!(
        fail("busy-S3CRETJ", false).await.class,
        ErrorClass::Transient
    );
    let param = fail("param-S3CRETK", false).await;
    assert_eq!(
        (param.class, param.message.as_str()),
        (
            ErrorClass::Permanent,
            "DingTalk errcode 40035: 缺少参数 json"
        )
    );
    assert_eq!(
        fail("down-S3CRETL", false).await.class,
        ErrorClass::OutcomeUnknown
    );
    assert_eq!(
        fail("garbage-S3CRETM", false).await.class,
        ErrorClass::OutcomeUnknown
    );
    for e in [
        &limited, &keyword, &sign, &unsigned, &timestamp, &ip, &security, &token, &external, &param,
    ] {
        assert!(!e.to_string().contains("S3CRET"), "{e}");
    }
    let closed = build(&fake::closed_port(), "ok-S3CRETN", json!({})).unwrap();
    let error = publish(closed.as_ref(), "hello").await.unwrap_err();
    assert_eq!(error.class, ErrorClass::Transient);
    assert!(!error.to_string().contains("S3CRETN"), "{error}");
}

#[test]
fn dingtalk_limit_counts_utf8_bytes() {
    let adapter = build("http://127.0.0.1:9", "ok-limit", json!({"format": "text"})).unwrap();
    let error = adapter.validate(&post(&"字".repeat(6667))).unwrap_err();
    assert_eq!(
        error.message,
        "text is 20001 bytes long in UTF-8 as a DingTalk text message; the limit is 20000 bytes \
         (DingTalk counts bytes, not characters: a Chinese character takes 3)"
    );
    assert!(adapter.validate(&post(&"字".repeat(6666))).is_ok());
    assert!(adapter.validate(&post("")).is_err(), "nothing to send");
}

#[tokio::test]
async fn dingtalk_settings_and_pacing() {
    let fake = fake::start(dingtalk).await;
    let url = build(
        &fake.base,
        "https://oapi.dingtalk.com/robot/send?access_token=ok-fromurl",
        json!({}),
    )
    .unwrap();
    publish(url.as_ref(), "hi").await.unwrap();
    assert_eq!(fake.requests()[0].query, "access_token=ok-fromurl");

    let refused = |settings: serde_json::Value| {
        build("http://127.0.0.1:9", "ok-x", settings)
            .unwrap_err()
            .to_string()
    };
    assert!(
        refused(json!({"format": "link", "mention_all": true})).contains("cards cannot @ anyone")
    );
    assert!(
        refused(json!({"button_title": "Go"}))
            .contains("only applies with format = \"action_card\"")
    );
    assert!(refused(json!({"mention_mobiles": ["+86 138"]})).contains("not a phone number"));
    assert!(refused(json!({"format": "actionCard"})).contains("unknown variant `actionCard`"));

    assert_eq!(
        url.rate_window(),
        Some(RateWindow {
            max: 18,
            per: Duration::from_secs(60)
        }),
        "paced below DingTalk's 20 a minute"
    );
    assert_eq!(url.idempotency(), Idempotency::None);
    let check = url.check().await.unwrap();
    assert!(
        check.detail.ends_with("markdown messages, unsigned"),
        "{check:?}"
    );
    assert!(
        check
            .warning
            .as_deref()
            .is_some_and(|w| w.contains("access token"))
    );
}
