//! The inbox pages with the real binary: a mention on a fake Mastodon is
//! listed at `/inbox` (and hidden by a status filter), shown at
//! `/inbox/{id}` with the reply form; a reply sent the way that form sends
//! it reaches Mastodon threaded under the mention and appears on the page;
//! `/inbox/events` announces a new mention.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};

use crate::bridge::Fakes;
use crate::harness::*;

fn masto_channel(base: &str) -> String {
    format!(
        r#"
[[channels]]
name = "masto"
kind = "mastodon"
instance = "{base}"
access_token = {{ env = "E2E_MASTODON_TOKEN" }}
listen = true
listen_interval_secs = 5
"#
    )
}

/// One `/inbox/events` response read as a stream: the `id:` it carries and
/// whether it had a `data:` event.
async fn read_events(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    last: Option<&str>,
) -> (Option<String>, Option<Value>) {
    let mut req = http.get(url).bearer_auth(token);
    if let Some(last) = last {
        req = req.header("Last-Event-ID", last);
    }
    let res = req.send().await.expect("events request");
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/event-stream")
    );
    let mut stream = res.bytes_stream();
    let mut text = String::new();
    while let Some(chunk) = stream.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.expect("events body")));
    }
    let id = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("id: "))
        .map(str::to_owned);
    let data = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("data: "))
        .and_then(|d| serde_json::from_str(d).ok());
    (id, data)
}

/// The newest engagement id in a marker (`e-c-n-r`).
fn newest_item(marker: &str) -> i64 {
    marker
        .split('-')
        .next()
        .and_then(|e| e.parse().ok())
        .unwrap_or(-1)
}

async fn inbox_pages(db: Option<TestDb>) {
    let fakes = Fakes::start().await;
    fakes.mention("110001", "@clarion is the inbox page live?");
    let sink = Sink::start(SinkRules::default()).await;
    let mut settings = Settings::new(&sink);
    settings.extra_channels = masto_channel(&fakes.base);
    let mut clarion = Clarion::new(db, &settings);
    clarion.env = vec![("E2E_MASTODON_TOKEN".into(), "masto-token".into())];
    let run = clarion.run();
    run.ready().await;
    let base = format!("http://127.0.0.1:{}", run.port);
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        let token = clarion.token.clone();
        let url = format!("{base}{path}");
        async move {
            let res = http.get(url).bearer_auth(token).send().await.unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };

    // The mention is captured into a conversation.
    let listed = wait_until(Duration::from_secs(30), || async {
        let (_, body) = get("/api/v1/inbox".into()).await;
        serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.as_array().map(|a| !a.is_empty()))
            .unwrap_or(false)
    })
    .await;
    assert!(listed, "the mention reached the inbox:\n{}", run.log());
    let (_, body) = get("/api/v1/inbox".into()).await;
    let list: Value = serde_json::from_str(&body).unwrap();
    let id = list[0]["id"].as_i64().unwrap();

    // The list: one row linking to the conversation, author and excerpt.
    let (status, page) = get("/inbox".into()).await;
    assert_eq!(status, 200, "{page}");
    let row = format!(r#"<a class="conversation" data-id="{id}" href="/inbox/{id}">"#);
    assert!(page.contains(&row), "{page}");
    assert!(page.contains("is the inbox page live?"), "{page}");
    assert!(page.contains("fan"), "{page}");
    assert!(page.contains(r#"<label for="f-status">"#), "{page}");
    let (_, resolved) = get("/inbox?status=resolved".into()).await;
    assert!(!resolved.contains(&row), "a filter hides it: {resolved}");
    let (_, open) = get("/inbox?status=open&assignee=&label=&channel=masto".into()).await;
    assert!(open.contains(&row), "{open}");

    // The conversation: the item and the reply form.
    let (status, page) = get(format!("/inbox/{id}")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("is the inbox page live?"), "{page}");
    assert!(
        page.contains(&format!(
            r#"<form id="reply" data-api-path="/api/v1/inbox/{id}/reply""#
        )),
        "{page}"
    );
    assert!(
        page.contains(r#"<textarea id="reply-text" name="text""#),
        "{page}"
    );
    assert!(
        page.contains(r#"<label for="reply-text">Reply</label>"#),
        "{page}"
    );

    // Reply as the form does: its fields as JSON to the API.
    let res = http
        .post(format!("{base}/api/v1/inbox/{id}/reply"))
        .bearer_auth(&clarion.token)
        .json(&json!({"text": "Yes, it updates by itself!", "author": "api-token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        202,
        "{}",
        res.text().await.unwrap_or_default()
    );
    let sent = wait_until(Duration::from_secs(30), || async {
        fakes.statuses().iter().any(|s| {
            s["status"]
                .as_str()
                .is_some_and(|t| t.contains("updates by itself"))
        })
    })
    .await;
    assert!(sent, "the reply reached Mastodon:\n{}", run.log());
    let statuses = fakes.statuses();
    assert_eq!(statuses.len(), 1, "{statuses:?}");
    assert_eq!(
        statuses[0]["in_reply_to_id"],
        json!("110001"),
        "threaded under the mention"
    );
    let shown = wait_until(Duration::from_secs(30), || async {
        let (_, page) = get(format!("/inbox/{id}")).await;
        page.contains("Yes, it updates by itself!") && page.contains(r#"data-status="published""#)
    })
    .await;
    assert!(shown, "the page shows the published reply:\n{}", run.log());

    // Live updates: the current marker, then a new mention is announced.
    let events = format!("{base}/inbox/events");
    let (first, data) = tokio::time::timeout(
        Duration::from_secs(10),
        read_events(&http, &events, &clarion.token, Some("nothing-yet")),
    )
    .await
    .expect("a changed marker answers at once");
    let mut last = first.expect("an id");
    assert!(data.is_some(), "an event for an unknown marker");
    let before = newest_item(&last);
    assert!(before > 0, "{last}");
    fakes.mention("110002", "@clarion and a second question");
    let announced = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let (id, data) = read_events(&http, &events, &clarion.token, Some(&last)).await;
            if let Some(id) = id {
                last = id;
            }
            if let Some(data) = data
                && newest_item(data["latest"].as_str().unwrap_or_default()) > before
            {
                return data;
            }
        }
    })
    .await;
    assert!(
        announced.is_ok(),
        "a new mention is announced:\n{}",
        run.log()
    );
    let (_, page) = get("/inbox".into()).await;
    assert!(page.contains("and a second question"), "{page}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_inbox_sqlite() {
    inbox_pages(None).await;
}
