//! The calendar page over HTTP: items land on their day in the configured
//! zone, filters narrow them, a failed target carries a Retry button, a
//! bad parameter is named, and a move through the page's API call shows
//! on the new day. (Dragging in a real browser: `browser.rs`.)

use std::time::Duration;

use serde_json::{Value, json};

use crate::dashboard::client;
use crate::harness::*;

/// The `<td>` of one day, up to the next day's cell.
fn day_cell<'a>(page: &'a str, date: &str) -> &'a str {
    let start = page
        .find(&format!("data-date=\"{date}\""))
        .unwrap_or_else(|| panic!("no cell for {date}"));
    let rest = &page[start..];
    let end = rest[1..].find("data-date=\"").map_or(rest.len(), |i| i + 1);
    &rest[..end]
}

#[tokio::test(flavor = "multi_thread")]
async fn calendar_places_filters_retries_and_moves_posts() {
    let sink = Sink::start(SinkRules::default()).await;
    let mut settings = Settings::new(&sink);
    // The sink's unknown path answers 404: a permanent failure.
    settings.extra_channels = format!(
        "[[channels]]\nname = \"broken\"\nkind = \"webhook\"\nurl = \"{}/missing\"\n",
        sink.url
    );
    let clarion = Clarion::new(None, &settings);
    let run = clarion.run();
    run.ready().await;
    let base = format!("http://127.0.0.1:{}", run.port);
    let c = client();
    let create = |body: Value| {
        c.post(format!("{base}/api/v1/posts"))
            .bearer_auth(&clarion.token)
            .json(&body)
            .send()
    };
    let page = |path: String| {
        let c = c.clone();
        let url = format!("{base}{path}");
        let token = clarion.token.clone();
        async move {
            let r = c.get(url).bearer_auth(token).send().await.unwrap();
            (r.status(), r.text().await.unwrap())
        }
    };
    let day = (chrono::Utc::now() + chrono::Duration::days(3)).date_naive();
    let other = day + chrono::Duration::days(1);
    let (d1, d2) = (
        day.format("%Y-%m-%d").to_string(),
        other.format("%Y-%m-%d").to_string(),
    );
    let a: Value = create(json!({"body": "Launch day", "channels": ["sink"], "at": format!("{d1}T10:00:00Z"), "campaign": "spring"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let b: Value = create(
        json!({"body": "Short one", "channels": ["short"], "at": format!("{d1}T15:30:00Z")}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let (a_id, b_id) = (a["id"].as_i64().unwrap(), b["id"].as_i64().unwrap());
    let item = |id: i64| format!("data-post-id=\"{id}\"");

    let (status, html) = page(format!("/calendar?date={d1}")).await;
    assert_eq!(status, 200);
    let cell = day_cell(&html, &d1);
    assert!(
        cell.contains(&item(a_id)) && cell.contains(&item(b_id)),
        "{cell}"
    );
    assert!(
        cell.find(&item(a_id)) < cell.find(&item(b_id)),
        "10:00 before 15:30"
    );
    assert!(
        cell.contains("data-time=\"10:00\""),
        "local time in the zone (UTC here)"
    );
    assert!(html.contains("Times in UTC"));
    assert!(!day_cell(&html, &d2).contains(&item(a_id)));

    let (_, filtered) = page(format!("/calendar?date={d1}&channel=short")).await;
    assert!(filtered.contains(&item(b_id)) && !filtered.contains(&item(a_id)));
    let (_, filtered) = page(format!("/calendar?date={d1}&campaign=spring")).await;
    assert!(filtered.contains(&item(a_id)) && !filtered.contains(&item(b_id)));
    let (_, week) = page(format!("/calendar?view=week&date={d1}")).await;
    assert!(day_cell(&week, &d1).contains(&item(a_id)));
    assert!(week.contains("data-view=\"week\""));

    let (status, err) = page("/calendar?date=tomorrow".into()).await;
    assert_eq!(status, 400);
    assert!(err.contains("date: `tomorrow` is not a date"), "{err}");

    // A failed target stands out with a Retry button.
    let failed: Value = create(json!({"body": "Goes nowhere", "channels": ["broken"]}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let failed_id = failed["id"].as_i64().unwrap();
    let store = clarion.db.store().await;
    let done = wait_until(Duration::from_secs(30), || async {
        all_targets(&store)
            .await
            .iter()
            .any(|t| t.post_id as i64 == failed_id && t.status == "failed")
    })
    .await;
    assert!(done, "the broken channel's target failed:\n{}", run.log());
    let (_, html) = page("/calendar".into()).await;
    let at = html
        .find(&item(failed_id))
        .expect("the failed post is on today's calendar");
    let snippet = &html[at..at + 1200.min(html.len() - at)];
    assert!(snippet.contains("data-status=\"failed\""), "{snippet}");
    assert!(
        snippet.contains(&format!(
            "data-api-path=\"/api/v1/posts/{failed_id}/retry\""
        )),
        "{snippet}"
    );

    // The page's move: same time of day, the other day.
    let r = c
        .post(format!("{base}/api/v1/posts/{a_id}/schedule"))
        .bearer_auth(&clarion.token)
        .json(&json!({"at": format!("{d2}T10:00:00")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let (_, html) = page(format!("/calendar?date={d1}")).await;
    if html.contains(&format!("data-date=\"{d2}\"")) {
        assert!(day_cell(&html, &d2).contains(&item(a_id)));
    }
    assert!(!day_cell(&html, &d1).contains(&item(a_id)));
    let moved = all_targets(&store)
        .await
        .into_iter()
        .find(|t| t.post_id as i64 == a_id)
        .unwrap();
    let want = chrono::DateTime::parse_from_rfc3339(&format!("{d2}T10:00:00Z")).unwrap();
    assert_eq!(moved.not_before_ms, Some(want.timestamp_millis()));
}
