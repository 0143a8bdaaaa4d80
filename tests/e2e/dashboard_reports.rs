//! The queue and channels page (`/queue`, `GET /api/v1/channels`,
//! `POST /api/v1/channels/{name}/check`) and the campaign pages
//! (`/campaigns`, `/campaigns/{name}` with its chart and CSV export).
//!
//! A failed target comes from a channel whose webhook URL answers 404
//! (a permanent error: failed at once, no retry).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::dashboard::client;
use crate::harness::*;

const CAMPAIGN: &str = r##"
name = "spring"
starts = "2026-01-01"
ends = "2030-12-31"
currency = "USD"
budget = "1000.00"

[[creators]]
name = "ann"
fee = "100.00"
codes = ["ANN10"]

[[creators]]
name = "bob"
fee = "50.00"
codes = ["BOB15"]
"##;

/// The `<figure id="…">` … `</figure>` part of a page.
fn figure<'a>(page: &'a str, id: &str) -> &'a str {
    let start = page
        .find(&format!("<figure id=\"{id}\""))
        .unwrap_or_else(|| panic!("no figure #{id}"));
    let end = start + page[start..].find("</figure>").expect("figure not closed");
    &page[start..end]
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_shows_failures_and_channels_and_campaign_reports_chart_and_csv() {
    let sink = Sink::start(SinkRules::default()).await;
    let mut settings = Settings::new(&sink);
    // Same sink, unknown path: 404, a permanent failure.
    settings.extra_channels = format!(
        "[[channels]]\nname = \"broken\"\nkind = \"webhook\"\nurl = \"{}/missing\"\n",
        sink.url
    );
    let clarion = Clarion::new(None, &settings);
    let campaigns = clarion.dir.path().join("content/campaigns");
    std::fs::create_dir_all(&campaigns).unwrap();
    std::fs::write(campaigns.join("spring.toml"), CAMPAIGN).unwrap();
    let run = clarion.run();
    run.ready().await;
    let base = format!("http://127.0.0.1:{}", run.port);
    let c = client();
    let token = clarion.token.clone();
    let get = |path: &str| c.get(format!("{base}{path}")).bearer_auth(&token).send();

    // A post to the broken channel fails; one to `sink` is published.
    let created: Value = c
        .post(format!("{base}/api/v1/posts"))
        .bearer_auth(&token)
        .json(&json!({"body": "doomed", "channels": ["broken", "sink"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let post_id = created["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("{created}"));
    let settled = wait_until(Duration::from_secs(20), || async {
        let v: Value = get("/api/v1/queue").await.unwrap().json().await.unwrap();
        v["targets"]["failed"] == json!(1) && v["targets"]["published"] == json!(1)
    })
    .await;
    assert!(settled, "the broken target did not fail:\n{}", run.log());

    let r = get("/queue").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    let failed = &page[page.find("<table id=\"failed\"").expect("no #failed")..];
    let failed = &failed[..failed.find("</table>").unwrap()];
    assert!(failed.contains("broken"), "{failed}");
    assert!(
        failed.contains(&format!("data-api-path=\"/api/v1/posts/{post_id}/retry\"")),
        "no Retry for post {post_id}: {failed}"
    );
    assert!(failed.contains(">Retry</button>"), "{failed}");
    assert!(
        !failed.contains(">sink<"),
        "a published target listed as failed"
    );
    assert!(page.contains("data-count=\"failed\">1<"), "{page}");
    for name in ["sink", "short", "broken"] {
        assert!(
            page.contains(&format!("<tr data-channel=\"{name}\"")),
            "no row for {name}"
        );
    }
    assert!(page.contains("aria-live=\"polite\""));

    // The channels API: every channel, with the last outcome.
    let v: Value = get("/api/v1/channels").await.unwrap().json().await.unwrap();
    let channels = v["channels"].as_array().expect("channels");
    let row = |name: &str| {
        channels
            .iter()
            .find(|c| c["channel"] == name)
            .unwrap_or_else(|| panic!("no `{name}` in {v}"))
            .clone()
    };
    assert_eq!(row("sink")["kind"], json!("webhook"));
    assert_eq!(row("sink")["last_status"], json!("published"), "{v}");
    assert_eq!(row("broken")["last_status"], json!("failed"), "{v}");
    assert!(row("broken")["last_error"].is_string(), "{v}");

    // Check now: an answer for a known channel, 404 JSON for an unknown one.
    let r = c
        .post(format!("{base}/api/v1/channels/sink/check"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let check: Value = r.json().await.unwrap();
    assert_eq!(check["channel"], json!("sink"), "{check}");
    assert!(
        check["ok"].is_boolean() && check["message"].is_string(),
        "{check}"
    );
    let r = c
        .post(format!("{base}/api/v1/channels/ghost/check"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let err: Value = r.json().await.unwrap();
    assert!(err["error"].as_str().is_some_and(|e| e.contains("ghost")));

    // Orders on two days, by code: ann on the 27th, bob on the 28th.
    for (id, amount, at, code) in [
        ("O-1", 2000, "2026-11-27T10:00:00Z", "ANN10"),
        ("O-2", 1500, "2026-11-27T12:00:00Z", "ANN10"),
        ("O-3", 2500, "2026-11-28T09:00:00Z", "BOB15"),
    ] {
        let r = c
            .post(format!("{base}/api/v1/orders"))
            .bearer_auth(&token)
            .json(
                &json!({"order_id": id, "amount_minor": amount, "currency": "USD",
                          "at": at, "discount_codes": [code]}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    }

    let page = get("/campaigns").await.unwrap().text().await.unwrap();
    assert!(page.contains("href=\"/campaigns/spring\""), "{page}");

    let r = get("/campaigns/spring").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    for control in ["model", "window"] {
        assert!(
            page.contains(&format!("<label for=\"{control}\"")),
            "{control}"
        );
        assert!(
            page.contains(&format!("<select id=\"{control}\"")),
            "{control}"
        );
    }
    let creators = &page[page.find("<table id=\"creators\"").expect("no #creators")..];
    let creators = &creators[..creators.find("</table>").unwrap()];
    // ann: 20.00 + 15.00 by her code.
    assert!(
        creators.contains("data-creator=\"ann\"") && creators.contains("35.00"),
        "{creators}"
    );
    let chart = figure(&page, "revenue-chart");
    assert!(
        chart.contains("<svg") && chart.contains("<figcaption>"),
        "{chart}"
    );
    // One bar per day with credited orders: the 27th and the 28th.
    assert_eq!(chart.matches("<rect class=\"bar\"").count(), 2, "{chart}");
    assert!(figure(&page, "best-times").contains("<svg"));
    assert!(page.contains("id=\"csv\""));

    let r = get("/campaigns/spring?model=linear&window=14&format=csv")
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let kind = r.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(kind.starts_with("text/csv"), "{kind}");
    let csv = r.text().await.unwrap();
    assert!(csv.starts_with("group,key,clicks,"), "{csv}");
    assert!(csv.contains("total,total,0,0,3,60.00"), "{csv}");

    // A bad parameter is a 400 page naming it.
    let r = get("/campaigns/spring?window=week").await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("window"));
    let r = get("/campaigns/spring?model=coin-flip").await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("model"));
    assert_eq!(
        get("/campaigns/nope").await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
}
