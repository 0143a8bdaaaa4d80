//! The composer (`/compose`) and its preview API (`POST /api/v1/posts:preview`):
//! the page lists the channels; a preview renders and checks each channel
//! as creating would (one channel refusing a text too long for it while
//! another accepts it), names request problems beside their fields, and
//! stores nothing.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::dashboard::{add_user, client};
use crate::harness::*;

/// The `id` of the channel checkbox for `channel` in the page, if any.
fn checkbox_id(page: &str, channel: &str) -> Option<String> {
    let at = page.find(&format!("name=\"channels\" value=\"{channel}\""))?;
    let start = page[..at].rfind('<')?;
    let end = at + page[at..].find('>')?;
    let id = page[start..end].split("id=\"").nth(1)?.split('"').next()?;
    Some(id.to_owned())
}

/// The text of the label for `id`, if there is one.
fn label_for<'a>(page: &'a str, id: &str) -> Option<&'a str> {
    let at = page.find(&format!("<label for=\"{id}\""))?;
    let text = &page[at..];
    Some(&text[text.find('>')? + 1..text.find("</label>")?])
}

fn channel<'a>(answer: &'a Value, name: &str) -> &'a Value {
    answer["channels"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["channel"] == name))
        .unwrap_or_else(|| panic!("no preview of `{name}` in {answer}"))
}

fn has_error(answer: &Value, field: &str, words: &str) -> bool {
    answer["errors"].as_array().is_some_and(|errors| {
        errors.iter().any(|e| {
            e["field"] == field && e["message"].as_str().is_some_and(|m| m.contains(words))
        })
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn composer_lists_channels_and_previews_each_without_storing() {
    let sink = Sink::start(SinkRules::default()).await;
    let mut clarion = Clarion::new(None, &Settings::new(&sink));
    let run = clarion.run();
    run.ready().await;
    let base = format!("http://127.0.0.1:{}", run.port);
    let c = client();

    // The page: a form with a labelled checkbox per configured channel.
    let r = c
        .get(format!("{base}/compose"))
        .bearer_auth(&clarion.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    assert!(page.contains("id=\"compose\""), "{page}");
    for name in ["sink", "short"] {
        let id = checkbox_id(&page, name).unwrap_or_else(|| panic!("no checkbox for {name}"));
        let label = label_for(&page, &id).unwrap_or_default();
        assert!(label.starts_with(name), "no label for {name}: {label:?}");
    }
    for control in [
        "body",
        "vars",
        "thread",
        "media-file",
        "media-alt",
        "campaign",
        "variant",
        "at",
        "draft",
        "template",
    ] {
        assert!(page.contains(&format!("id=\"{control}\"")), "no #{control}");
        assert!(
            label_for(&page, control).is_some(),
            "no label for #{control}"
        );
    }
    assert!(
        page.contains("<option value=\"shout\">"),
        "templates listed"
    );

    let preview = |body: Value| {
        let c = c.clone();
        let url = format!("{base}/api/v1/posts:preview");
        let token = clarion.token.clone();
        async move {
            let r = c
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            r.json::<Value>().await.unwrap()
        }
    };

    // 30 characters: fine for `sink`, too long for `short` (20).
    let text = "x".repeat(30);
    let answer = preview(json!({ "body": text, "channels": ["sink", "short"] })).await;
    let short = channel(&answer, "short");
    assert_eq!(short["ok"], false, "{answer}");
    assert_eq!(short["length"], 30);
    assert_eq!(short["limit"], 20);
    assert_eq!(short["unit"], "characters");
    let error = short["error"].as_str().unwrap_or_default();
    assert!(error.contains("30") && error.contains("20"), "{error}");
    let sink_preview = channel(&answer, "sink");
    assert_eq!(sink_preview["ok"], true, "{answer}");
    assert_eq!(sink_preview["error"], Value::Null);
    assert_eq!(sink_preview["text"], text.as_str());
    assert_eq!(sink_preview["length"], 30);
    assert_eq!(answer["ok"], false);
    assert_eq!(answer["errors"], json!([]), "a channel's limit is its own");

    // Threads are split; a template and variables render as creating would.
    let answer = preview(json!({
        "body": "one\n---\ntwo {{tag}}",
        "channels": ["short"],
        "thread": true,
        "vars": {"tag": "t"},
    }))
    .await;
    let short = channel(&answer, "short");
    assert_eq!(short["parts"], json!(["one", "two t"]), "{answer}");
    assert_eq!(answer["ok"], true, "{answer}");
    let answer = preview(json!({
        "body": "hi", "channels": ["sink"], "template": "shout", "vars": {"tag": "go"},
    }))
    .await;
    assert_eq!(channel(&answer, "sink")["text"], "hi #go", "{answer}");

    // Request problems come back as field errors, not a 4xx.
    let answer = preview(json!({
        "body": "hello {{who}}",
        "channels": ["sink", "ghost"],
        "at": "tomorrow",
    }))
    .await;
    assert!(
        has_error(&answer, "channels", "channel `ghost`: unknown channel"),
        "{answer}"
    );
    assert!(has_error(&answer, "at", "tomorrow"), "{answer}");
    assert!(
        has_error(&answer, "vars", "missing variable `who`"),
        "{answer}"
    );
    assert_eq!(channel(&answer, "sink")["ok"], false);
    let answer =
        preview(json!({ "body": "hi", "channels": ["sink"], "at": "2001-01-01T00:00:00Z" })).await;
    assert!(has_error(&answer, "at", "in the past"), "{answer}");
    let answer = preview(json!({ "body": "hi" })).await;
    assert!(has_error(&answer, "channels", "missing field"), "{answer}");

    // Nothing was stored.
    let posts: Value = c
        .get(format!("{base}/api/v1/posts"))
        .bearer_auth(&clarion.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(posts, json!([]), "a preview stores nothing");

    // What the preview accepts, creating accepts.
    let ok = json!({ "body": "hello", "channels": ["sink", "short"], "draft": true });
    assert_eq!(preview(ok.clone()).await["ok"], true);
    let r = c
        .post(format!("{base}/api/v1/posts"))
        .bearer_auth(&clarion.token)
        .json(&ok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    // A viewer may preview but is shown no form.
    add_user(&mut clarion, "vi@example.com", "viewer");
    let token = clarion.ok(&["users", "token", "vi@example.com", "--name", "t"]);
    let token = token.trim();
    let page = c
        .get(format!("{base}/compose"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("id=\"compose-readonly\""), "{page}");
    assert!(!page.contains("id=\"compose\""), "{page}");
    let r = c
        .post(format!("{base}/api/v1/posts:preview"))
        .bearer_auth(token)
        .json(&json!({ "body": "hi", "channels": ["sink"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}
