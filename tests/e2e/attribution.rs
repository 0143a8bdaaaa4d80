//! Click to order, end to end with the real binary: a creator's tracked
//! link is clicked by a person and fetched by a link-preview bot; a signed
//! Shopify order carries the click id; the campaign report credits the
//! order to the right creator and channel; a creator's discount code
//! decides on its own; a refund reduces the revenue; forged, replayed and
//! malformed webhooks change nothing.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;

const SECRET: &str = "shpss_e2e-signing-secret";

const CAMPAIGN: &str = r##"
name = "spring"
starts = "2026-01-01"
ends = "2030-12-31"
currency = "USD"
budget = "1000.00"
cpm = "8.00"
cost_per_engagement = "0.10"

[[creators]]
name = "ann"
handles = { bluesky = "ann.bsky.social", mastodon = "fan@masto.test" }
fee = "100.00"
commission_percent = "10"
codes = ["ANN10"]
posts_contracted = 1
deadline = "2026-01-02"

[[creators]]
name = "bob"
fee = "50.00"
codes = ["BOB15"]
posts_contracted = 1
deadline = "2026-01-02"
"##;

/// The Shopify signature, computed by openssl (not by the code under test).
fn openssl_hmac(body: &str) -> String {
    openssl_hmac_with(SECRET, body)
}

fn shopify_order(id: u64, total: &str, landing: &str, codes: &[&str]) -> String {
    json!({
        "id": id, "name": format!("#{id}"), "total_price": total, "currency": "USD",
        "created_at": chrono::Utc::now().to_rfc3339(),
        "customer": {"id": 7001, "email": "fan@example.com"},
        "discount_codes": codes.iter().map(|c| json!({"code": c, "amount": "5.00", "type": "percentage"})).collect::<Vec<_>>(),
        "landing_site": landing, "referring_site": "https://bsky.app/",
        "note_attributes": [], "source_name": "web"
    })
    .to_string()
}

async fn webhook(
    base: &str,
    topic: &str,
    delivery: &str,
    body: &str,
    signature: &str,
) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}/webhooks/shopify"))
        .header("Content-Type", "application/json")
        .header("X-Shopify-Topic", topic)
        .header("X-Shopify-Webhook-Id", delivery)
        .header("X-Shopify-Hmac-Sha256", signature)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn fakes_statuses_contain(fakes: &crate::bridge::Fakes, text: &str) -> bool {
    fakes
        .statuses()
        .iter()
        .any(|s| s["status"].as_str().is_some_and(|t| t.contains(text)))
}

fn report(clarion: &Clarion) -> Value {
    let out = clarion.ok(&["report", "campaign", "spring", "--format", "json"]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn row<'a>(rows: &'a Value, key: &str) -> &'a Value {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == json!(key))
        .unwrap_or_else(|| panic!("no row {key} in {rows}"))
}

async fn click_to_order(db: Option<TestDb>) {
    let sink = Sink::start(SinkRules::default()).await;
    let mut settings = Settings::new(&sink);
    let masto = crate::bridge::Fakes::start().await;
    settings.extra_channels = format!(
        r#"
[[channels]]
name = "masto"
kind = "mastodon"
instance = "{}"
access_token = {{ env = "E2E_MASTODON_TOKEN" }}
listen = true
listen_interval_secs = 5

[attribution]
shopify_secret = {{ env = "E2E_SHOPIFY_SECRET" }}
metrics_after_secs = [1, 3600]
metrics_poll_secs = 1
"#,
        masto.base
    );
    let mut clarion = Clarion::new(db, &settings);
    clarion.env = vec![
        ("E2E_SHOPIFY_SECRET".into(), SECRET.into()),
        ("E2E_MASTODON_TOKEN".into(), "masto-token".into()),
    ];
    let campaigns = clarion.dir.path().join("content/campaigns");
    std::fs::create_dir_all(&campaigns).unwrap();
    std::fs::write(campaigns.join("spring.toml"), CAMPAIGN).unwrap();
    let run = clarion.run();
    run.ready().await;
    let base = format!("http://127.0.0.1:{}", run.port);

    // A creator's link, used on the `sink` channel.
    let short = clarion.ok(&[
        "links",
        "create",
        "https://shop.test/products/tee?color=blue",
        "--campaign",
        "spring",
        "--creator",
        "ann",
        "--channel",
        "sink",
    ]);
    let short = short.trim();
    assert!(short.starts_with(&format!("{base}/r/")), "{short}");
    let refused = clarion.cli(&["links", "create", "https://x.test", "--creator", "ann"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("needs its campaign"),
        "{refused:?}"
    );

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // Discord unfurls the link: redirected, never counted.
    let bot = client
        .get(short)
        .header(
            "User-Agent",
            "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(bot.status().as_u16(), 302);
    // A person clicks.
    let person = client
        .get(short)
        .header(
            "User-Agent",
            "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
        )
        .header("Referer", "https://bsky.app/profile/ann.bsky.social")
        .send()
        .await
        .unwrap();
    assert_eq!(person.status().as_u16(), 302);
    let location = person.headers()["location"].to_str().unwrap().to_owned();
    let url = reqwest::Url::parse(&location).unwrap();
    assert_eq!(url.host_str(), Some("shop.test"), "{location}");
    let params: std::collections::HashMap<String, String> =
        url.query_pairs().into_owned().collect();
    assert_eq!(params["color"], "blue", "{location}");
    assert_eq!(params["utm_source"], "webhook", "{location}");
    assert_eq!(params["utm_medium"], "kol", "{location}");
    assert_eq!(params["utm_campaign"], "spring", "{location}");
    let cid = params["clarion_cid"].clone();
    assert!(cid.len() >= 12, "{location}");
    // An unknown code is 404, whatever the request asks for.
    let unknown = client
        .get(format!("{base}/r/nope?to=https://evil.test"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
    assert!(unknown.headers().get("location").is_none());

    // The clicks are written in batches: wait for them.
    let written = wait_until(Duration::from_secs(10), || async {
        let ls = clarion.ok(&["links", "ls", "--json"]);
        let link: Value = serde_json::from_str(ls.lines().next().unwrap_or("{}")).unwrap();
        link["clicks"] == json!(1) && link["bot_fetches"] == json!(1)
    })
    .await;
    assert!(written, "{}", clarion.ok(&["links", "ls"]));

    // A forged signature and a malformed body change nothing.
    let order = shopify_order(
        820982911946154508,
        "40.00",
        &format!("/products/tee?color=blue&clarion_cid={cid}"),
        &[],
    );
    let forged = openssl_hmac(&format!("{order} "));
    let (status, _) = webhook(&base, "orders/create", "d-0", &order, &forged).await;
    assert_eq!(status, 401);
    let (status, _) = webhook(&base, "orders/create", "d-1", &order, "").await;
    assert_eq!(status, 401);
    let broken = r#"{"id": 1, "total_price": "abc", "currency": "USD"}"#;
    let (status, body) =
        webhook(&base, "orders/create", "d-2", broken, &openssl_hmac(broken)).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("total_price"), "{body}");
    assert_eq!(report(&clarion)["total"]["orders"], json!(0));

    // The signed order, then its replay and a second delivery of it.
    let signature = openssl_hmac(&order);
    let (status, body) = webhook(&base, "orders/create", "d-3", &order, &signature).await;
    assert_eq!(
        (status, body["outcome"].clone()),
        (200, json!("stored")),
        "{body}"
    );
    let (_, body) = webhook(&base, "orders/create", "d-3", &order, &signature).await;
    assert_eq!(body["outcome"], json!("replayed_delivery"));
    let (_, body) = webhook(&base, "orders/paid", "d-4", &order, &signature).await;
    assert_eq!(body["outcome"], json!("duplicate"));

    // A second order with bob's code and no click: the code decides.
    let coded = shopify_order(820982911946154509, "25.00", "/", &["bob15"]);
    let (status, _) = webhook(&base, "orders/create", "d-5", &coded, &openssl_hmac(&coded)).await;
    assert_eq!(status, 200);

    // A campaign post: its link is rewritten into a tracked link when it
    // is rendered; with --no-track-links it is sent as written.
    clarion.ok(&[
        "post",
        "create",
        "-C",
        "sink",
        "--campaign",
        "spring",
        "--text",
        "Spring sale! https://shop.test/sale?x=1.",
    ]);
    clarion.ok(&[
        "post",
        "create",
        "-C",
        "sink",
        "--campaign",
        "spring",
        "--no-track-links",
        "--text",
        "Raw: https://shop.test/raw",
    ]);
    let arrived = wait_until(Duration::from_secs(20), || async {
        sink.arrivals().len() >= 2
    })
    .await;
    assert!(arrived, "{}", run.log());
    let texts: Vec<String> = sink
        .arrivals()
        .iter()
        .map(|a| a.body["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    let tracked = texts
        .iter()
        .find(|t| t.starts_with("Spring sale!"))
        .unwrap();
    assert!(!tracked.contains("shop.test"), "{tracked}");
    let prefix = format!("{base}/r/");
    assert!(
        tracked.contains(&prefix) && tracked.ends_with('.'),
        "{tracked}"
    );
    let post_link = tracked
        .split_whitespace()
        .last()
        .unwrap()
        .trim_end_matches('.')
        .to_owned();
    assert!(
        texts.iter().any(|t| t == "Raw: https://shop.test/raw"),
        "{texts:?}"
    );
    let followed = client
        .get(&post_link)
        .header(
            "User-Agent",
            "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(followed.status().as_u16(), 302, "{post_link}");
    let location = followed.headers()["location"].to_str().unwrap().to_owned();
    let url = reqwest::Url::parse(&location).unwrap();
    let params: std::collections::HashMap<String, String> =
        url.query_pairs().into_owned().collect();
    assert_eq!(url.path(), "/sale", "{location}");
    assert_eq!(params["x"], "1", "{location}");
    assert_eq!(params["utm_medium"], "social", "{location}");
    assert_eq!(params["utm_campaign"], "spring", "{location}");
    assert!(params["utm_content"].starts_with("target-"), "{location}");
    let ls = clarion.ok(&["links", "ls", "--campaign", "spring", "--json"]);
    let post_links: Vec<Value> = ls
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|l: &Value| l["post_id"].is_number())
        .collect();
    assert_eq!(post_links.len(), 1, "{ls}");
    assert_eq!(
        post_links[0]["destination"],
        json!("https://shop.test/sale?x=1"),
        "{ls}"
    );

    // What is checked against the limit is what is sent: the tracked link
    // is longer than this 20-character channel allows.
    let long = clarion.cli(&[
        "post",
        "create",
        "-C",
        "short",
        "--campaign",
        "spring",
        "--text",
        "https://a.io",
    ]);
    let stderr = String::from_utf8_lossy(&long.stderr);
    assert!(!long.status.success(), "{stderr}");
    assert!(stderr.contains("with its links tracked"), "{stderr}");

    // Post analytics: a campaign post on Mastodon; a second after it is
    // published its counts are read and shown in the report.
    clarion.ok(&[
        "post",
        "create",
        "-C",
        "masto",
        "--campaign",
        "spring",
        "--text",
        "On Mastodon too",
    ]);
    let counted = wait_until(Duration::from_secs(30), || async {
        let r = report(&clarion);
        r["by_channel"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["key"] == json!("masto") && c["engagements"] == json!(12))
    })
    .await;
    assert!(counted, "{}\n{}", report(&clarion), run.log());

    // Ann's own post mentioning the brand, captured by the Mastodon
    // listener, is a creator post; Bob, past his deadline without one, is
    // overdue.
    masto.mention("110001", "@clarion my #spring haul is here");
    let delivered = wait_until(Duration::from_secs(30), || async {
        report(&clarion)["creator_posts"]
            .as_array()
            .is_some_and(|p| p.len() == 1)
    })
    .await;
    assert!(delivered, "{}\n{}", report(&clarion), run.log());
    let r = report(&clarion);
    assert_eq!(r["creator_posts"][0]["creator"], json!("ann"), "{r}");
    assert_eq!(
        row(&r["by_creator"], "ann")["posts_delivered"],
        json!(1),
        "{r}"
    );
    assert_eq!(r["overdue_creators"], json!(["bob"]), "{r}");
    // Her post's public counts are read like ours (the fake: 7 favourites,
    // 3 reblogs, 2 replies) and count as her engagements.
    let counted = wait_until(Duration::from_secs(30), || async {
        report(&clarion)["creator_posts"][0]["counts"]["likes"] == json!(7)
    })
    .await;
    assert!(counted, "{}\n{}", report(&clarion), run.log());
    let r = report(&clarion);
    assert_eq!(r["creator_posts"][0]["counts"]["reposts"], json!(3), "{r}");
    assert_eq!(
        row(&r["by_creator"], "ann")["engagements"],
        json!(12),
        "{r}"
    );

    // Best times: the Mastodon post's slot carries its 12 engagements.
    let grid: Value = serde_json::from_str(&clarion.ok(&[
        "report",
        "best-times",
        "--channel",
        "masto",
        "--format",
        "json",
    ]))
    .unwrap();
    let slots: Vec<&Value> = grid["slots"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|day| day.as_array().unwrap())
        .filter(|s| s["posts"] != json!(0))
        .collect();
    assert_eq!(slots.len(), 1, "{grid}");
    assert_eq!(slots[0]["engagements"], json!(12), "{grid}");
    let table = clarion.ok(&["report", "best-times"]);
    assert!(table.contains("fewer than 5 posts"), "{table}");
    let heatmap = clarion.ok(&["report", "best-times", "--format", "svg"]);
    assert!(heatmap.starts_with("<svg"), "{heatmap}");

    // A/B variants: one post, two texts; the first channel takes A, the
    // second B; the report compares them.
    clarion.ok(&[
        "post",
        "create",
        "-C",
        "sink",
        "-C",
        "masto",
        "--campaign",
        "spring",
        "--variant",
        "A=Deal A https://shop.test/a",
        "--variant",
        "B=Deal B https://shop.test/b",
    ]);
    let got_a = wait_until(Duration::from_secs(20), || async {
        sink.arrivals().iter().any(|a| {
            a.body["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("Deal A "))
        })
    })
    .await;
    assert!(got_a, "{}", run.log());
    let a_text = sink
        .arrivals()
        .into_iter()
        .find_map(|a| {
            a.body["text"]
                .as_str()
                .filter(|t| t.starts_with("Deal A "))
                .map(str::to_owned)
        })
        .unwrap();
    let a_link = a_text.trim_start_matches("Deal A ").to_owned();
    assert!(a_link.starts_with(&prefix), "{a_text}");
    let clicked = client
        .get(&a_link)
        .header(
            "User-Agent",
            "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(clicked.status().as_u16(), 302);
    let compared = wait_until(Duration::from_secs(30), || async {
        let r = report(&clarion);
        let variants = r["by_variant"].as_array().cloned().unwrap_or_default();
        let get = |k: &str| variants.iter().find(|v| v["key"] == json!(k)).cloned();
        matches!(
            (get("A"), get("B")),
            (Some(a), Some(b)) if a["clicks"] == json!(1)
                && a["posts_delivered"] == json!(1)
                && b["posts_delivered"] == json!(1)
        )
    })
    .await;
    assert!(compared, "{}", report(&clarion));
    assert!(
        fakes_statuses_contain(&masto, "Deal B"),
        "B went to Mastodon: {:?}",
        masto.statuses()
    );

    // A customer answers variant B's Mastodon status; their order names
    // their Mastodon account: the engagement is the touch (channel masto,
    // variant B), with no click and no code.
    let store = clarion.db.store().await;
    let deal_b = all_targets(&store)
        .await
        .into_iter()
        .find(|t| t.channel == "masto" && t.rendered_text.starts_with("Deal B"))
        .and_then(|t| t.platform_post_id)
        .expect("variant B's status id");
    masto.reply_by("buyer", "130001", Some(&deal_b), "does it come in blue?");
    let captured = wait_until(Duration::from_secs(30), || async {
        clarion
            .ok(&["inbox", "ls", "--platform", "mastodon"])
            .contains("does it come in blue?")
    })
    .await;
    assert!(captured, "{}", run.log());
    let engaged = reqwest::Client::new()
        .post(format!("{base}/api/v1/orders"))
        .bearer_auth(&clarion.token)
        .json(&json!({
            "order_id": "E-1", "amount_minor": 1500, "currency": "USD",
            // After the reply (the fake dates it 10:00), inside the window.
            "at": "2026-11-27T12:00:00Z", "customer_key": "fan-1",
            "social_handles": ["Mastodon:@Buyer@masto.test"]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(engaged.status().as_u16(), 200, "{:?}", engaged.text().await);
    let r = report(&clarion);
    assert_eq!(
        row(&r["by_variant"], "B")["revenue_minor"],
        json!(1500),
        "the engagement credits variant B: {r}"
    );
    assert_eq!(row(&r["by_channel"], "masto")["orders"], json!(1), "{r}");

    let r = report(&clarion);
    assert_eq!(r["model"], json!("last-click/7d"));
    assert_eq!(r["total"]["orders"], json!(3), "{r}");
    assert_eq!(r["total"]["revenue_minor"], json!(8000), "{r}");
    // The creator's link, the post's link and variant A's link.
    assert_eq!(r["total"]["clicks"], json!(3), "{r}");
    assert_eq!(r["total"]["bot_fetches"], json!(1), "{r}");
    let ann = row(&r["by_creator"], "ann");
    assert_eq!(ann["revenue_minor"], json!(4000), "{r}");
    assert_eq!(ann["orders"], json!(1));
    // Fee 100.00 + 10% of 40.00.
    assert_eq!(ann["cost_minor"], json!(10400), "{r}");
    assert_eq!(row(&r["by_creator"], "bob")["revenue_minor"], json!(2500));
    assert_eq!(row(&r["by_channel"], "sink")["revenue_minor"], json!(4000));

    // A refund of 10.00 on the first order.
    let refund = json!({
        "id": 509562969, "order_id": 820982911946154508u64,
        "created_at": chrono::Utc::now().to_rfc3339(),
        "transactions": [{"kind": "refund", "status": "success", "amount": "10.00", "currency": "USD"}],
        "refund_line_items": []
    })
    .to_string();
    let (status, body) = webhook(
        &base,
        "refunds/create",
        "d-6",
        &refund,
        &openssl_hmac(&refund),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let r = report(&clarion);
    assert_eq!(
        row(&r["by_creator"], "ann")["revenue_minor"],
        json!(3000),
        "{r}"
    );

    // Other models over the same data; the chart is an SVG.
    let linear = clarion.ok(&[
        "report", "campaign", "spring", "--model", "linear", "--format", "json",
    ]);
    let linear: Value = serde_json::from_str(&linear).unwrap();
    assert_eq!(linear["model"], json!("linear/7d"));
    assert_eq!(linear["total"]["revenue_minor"], json!(7000), "{linear}");
    let svg = clarion.ok(&["report", "campaign", "spring", "--format", "svg"]);
    assert!(
        svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
        "{svg}"
    );
    // Earned media value: no impressions from Mastodon, 0.10 per engagement.
    let engagements = r["total"]["engagements"].as_i64().unwrap();
    assert!(engagements >= 12, "{r}");
    assert_eq!(r["total"]["emv_minor"], json!(engagements * 10), "{r}");
    let creators = clarion.ok(&["report", "campaign", "spring", "--format", "svg-creators"]);
    assert!(
        creators.starts_with("<svg") && creators.contains("ann"),
        "{creators}"
    );
    let csv = clarion.ok(&["report", "campaign", "spring", "--format", "csv"]);
    assert!(
        csv.lines().any(|l| l.starts_with("creator,ann,1,")),
        "{csv}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn click_to_order_sqlite() {
    click_to_order(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn click_to_order_postgres() {
    if let Some(db) = TestDb::postgres().await {
        click_to_order(Some(db)).await;
    }
}

const WC_SECRET: &str = "wc-e2e-secret";

/// WooCommerce webhooks, the JSON API and CSV import: each refuses what is
/// wrong with nothing stored, and counts an order once.
#[tokio::test(flavor = "multi_thread")]
async fn woocommerce_api_and_csv_orders_count_once() {
    let sink = Sink::start(SinkRules::default()).await;
    let mut settings = Settings::new(&sink);
    settings.extra_channels =
        "[attribution]\nwoocommerce_secret = { env = \"E2E_WC_SECRET\" }\n".into();
    let mut clarion = Clarion::new(None, &settings);
    clarion.env = vec![("E2E_WC_SECRET".into(), WC_SECRET.into())];
    let campaigns = clarion.dir.path().join("content/campaigns");
    std::fs::create_dir_all(&campaigns).unwrap();
    std::fs::write(campaigns.join("spring.toml"), CAMPAIGN).unwrap();
    let run = clarion.run();
    run.ready().await;
    let base = format!("http://127.0.0.1:{}", run.port);
    let http = reqwest::Client::new();

    let order = json!({
        "id": 727, "status": "processing", "currency": "USD", "total": "19.90",
        "date_created_gmt": "2026-11-27T10:00:00", "customer_id": 12,
        "billing": {"email": "fan@example.com"},
        "coupon_lines": [{"code": "ANN10"}], "meta_data": []
    })
    .to_string();
    let woo = |body: String, signature: String, delivery: &'static str| {
        http.post(format!("{base}/webhooks/woocommerce"))
            .header("Content-Type", "application/json")
            .header("X-WC-Webhook-Topic", "order.created")
            .header("X-WC-Webhook-Delivery-ID", delivery)
            .header("X-WC-Webhook-Signature", signature)
            .body(body)
            .send()
    };
    let forged = woo(order.clone(), openssl_hmac_with("wrong", &order), "w1")
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 401);
    let ok = woo(order.clone(), openssl_hmac_with(WC_SECRET, &order), "w2")
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let again = woo(order.clone(), openssl_hmac_with(WC_SECRET, &order), "w2")
        .await
        .unwrap();
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["outcome"], json!("replayed_delivery"));

    // The JSON API: a token, a body that names its problem.
    let api = |body: Value, token: &str| {
        http.post(format!("{base}/api/v1/orders"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let body = json!({
        "order_id": "A-1", "amount_minor": 2500, "currency": "USD",
        "at": "2026-11-27T11:00:00Z", "discount_codes": ["BOB15"]
    });
    assert_eq!(
        api(body.clone(), "nope").await.unwrap().status().as_u16(),
        401
    );
    let bad = api(json!({"order_id": "A-2", "amount_minor": "lots", "currency": "USD", "at": "2026-11-27T11:00:00Z"}), &clarion.token)
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let bad: Value = bad.json().await.unwrap();
    assert!(bad.to_string().contains("amount_minor"), "{bad}");
    let stored: Value = api(body.clone(), &clarion.token)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stored["outcome"], json!("stored"), "{stored}");
    let twice: Value = api(body, &clarion.token)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(twice["outcome"], json!("duplicate"), "{twice}");

    // CSV: a good row, a bad row (named), and a row already imported.
    let csv = clarion.dir.path().join("orders.csv");
    std::fs::write(
        &csv,
        "order_id,amount,currency,at,customer_key,click_id,discount_codes\n\
         C-1,12.50,USD,2026-11-27T12:00:00Z,,,ANN10\n\
         C-2,abc,USD,2026-11-27T12:00:00Z,,,\n\
         C-1,12.50,USD,2026-11-27T12:00:00Z,,,ANN10\n",
    )
    .unwrap();
    let out = clarion.cli(&["orders", "import", csv.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("1 orders imported, 1 already known, 1 rejected"),
        "{stdout}"
    );
    assert!(
        stderr.contains(":3:") && stderr.contains("amount"),
        "{stderr}"
    );

    // The campaign, as the CLI and the API list it.
    let listed: Value =
        serde_json::from_str(clarion.ok(&["campaigns", "ls", "--json"]).trim()).unwrap();
    assert_eq!(listed["name"], json!("spring"), "{listed}");
    assert_eq!(listed["creators"][0]["codes"], json!(["ANN10"]), "{listed}");
    let api: Value = http
        .get(format!("{base}/api/v1/campaigns"))
        .bearer_auth(&clarion.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(api[0]["budget_minor"], json!(100000), "{api}");

    // Codes decide: ann has the Woo order (19.90) and the CSV one (12.50);
    // bob the API one (25.00).
    let r = report(&clarion);
    assert_eq!(r["total"]["orders"], json!(3), "{r}");
    assert_eq!(
        row(&r["by_creator"], "ann")["revenue_minor"],
        json!(3240),
        "{r}"
    );
    assert_eq!(
        row(&r["by_creator"], "bob")["revenue_minor"],
        json!(2500),
        "{r}"
    );
}

/// A click still queued when `clarion run` is asked to stop (SIGTERM) is
/// written before the process ends: clicks are batched every 250 ms, and
/// the stop comes well inside that.
#[tokio::test(flavor = "multi_thread")]
async fn queued_clicks_are_written_on_a_graceful_stop() {
    let sink = Sink::start(SinkRules::default()).await;
    let settings = Settings::new(&sink);
    let clarion = Clarion::new(None, &settings);
    let mut run = clarion.run();
    run.ready().await;
    let short = clarion.ok(&["links", "create", "https://shop.test/stop"]);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let followed = client
        .get(short.trim())
        .header(
            "User-Agent",
            "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(followed.status().as_u16(), 302);
    let term = Command::new("kill")
        .args(["-TERM", &run.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let exited = run.child.wait().unwrap();
    assert!(exited.success(), "{exited:?}\n{}", run.log());
    let ls = clarion.ok(&["links", "ls", "--json"]);
    let link: Value = serde_json::from_str(ls.lines().next().unwrap()).unwrap();
    assert_eq!(link["clicks"], json!(1), "{ls}");
}

/// The codes in a text, in order: `{base}/r/CODE` -> CODE.
fn codes_in(text: &str, base: &str) -> Vec<String> {
    let prefix = format!("{base}/r/");
    text.match_indices(&prefix)
        .map(|(i, _)| {
            text[i + prefix.len()..]
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect()
        })
        .collect()
}

/// Content kept as files and edits are tracked like every other path: the
/// plan shows the links as they will be sent, a re-planned or re-synced
/// file keeps its codes (no change, no new link), an edited file or post
/// keeps the codes of links it already had and registers only new ones.
async fn files_and_edits_keep_their_codes(db: Option<TestDb>) {
    let sink = Sink::start(SinkRules::default()).await;
    let mut settings = Settings::new(&sink);
    settings.extra_channels = "[attribution]\nbase_url = \"https://go.test\"\n".into();
    let clarion = Clarion::new(db, &settings);
    let campaigns = clarion.dir.path().join("content/campaigns");
    std::fs::create_dir_all(&campaigns).unwrap();
    std::fs::write(campaigns.join("spring.toml"), CAMPAIGN).unwrap();
    let base = "https://go.test";
    let at = at_in(3_600_000);
    let file = |body: &str| {
        format!("+++\nat = \"{at}\"\nchannels = [\"sink\"]\ncampaign = \"spring\"\n+++\n{body}\n")
    };
    let post = clarion.posts_dir().join("launch.md");
    std::fs::write(&post, file("New tee: https://shop.test/tee?color=blue")).unwrap();

    let plan = clarion.ok(&["content", "plan"]);
    assert!(
        plan.contains("tracks https://shop.test/tee?color=blue as https://go.test/r/"),
        "{plan}"
    );
    clarion.ok(&["content", "sync"]);
    let store = clarion.db.store().await;
    let text = |targets: &[clarion_store::target::Model]| targets[0].rendered_text.clone();
    let first = text(&all_targets(&store).await);
    let codes = codes_in(&first, base);
    assert_eq!(codes.len(), 1, "{first}");
    assert!(!first.contains("shop.test"), "{first}");

    // Planned and synced again: nothing changes, no new link.
    let plan = clarion.ok(&["content", "plan"]);
    assert!(
        plan.contains("unchanged") && !plan.contains("tracks"),
        "{plan}"
    );
    let synced = clarion.ok(&["content", "sync"]);
    assert!(synced.contains("1 unchanged"), "{synced}");
    assert_eq!(text(&all_targets(&store).await), first);
    // One JSON object per line.
    let links = |out: String| -> Vec<Value> {
        out.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let ls = links(clarion.ok(&["links", "ls", "--json"]));
    assert_eq!(ls.len(), 1, "{ls:?}");

    // The file gains a second link: the first keeps its code.
    let id_line = std::fs::read_to_string(&post).unwrap();
    let id_line = id_line
        .lines()
        .find(|l| l.starts_with("id = "))
        .unwrap()
        .to_owned();
    std::fs::write(
        &post,
        file("New tee: https://shop.test/tee?color=blue and https://shop.test/hat").replacen(
            "+++\n",
            &format!("+++\n{id_line}\n"),
            1,
        ),
    )
    .unwrap();
    let plan = clarion.ok(&["content", "plan"]);
    assert!(plan.contains("tracks https://shop.test/hat as"), "{plan}");
    assert!(!plan.contains("tracks https://shop.test/tee"), "{plan}");
    clarion.ok(&["content", "sync"]);
    let second = text(&all_targets(&store).await);
    let second_codes = codes_in(&second, base);
    assert_eq!(second_codes.len(), 2, "{second}");
    assert_eq!(second_codes[0], codes[0], "{first} -> {second}");
    assert_eq!(links(clarion.ok(&["links", "ls", "--json"])).len(), 2);

    // A post edited through the CLI: the same rule.
    let created = clarion.ok(&[
        "post",
        "create",
        "-C",
        "sink",
        "--campaign",
        "spring",
        "--at",
        &at,
        "--text",
        "Sale: https://shop.test/sale",
    ]);
    let targets = all_targets(&store).await;
    let made = targets.iter().max_by_key(|t| t.post_id).unwrap();
    let sale = codes_in(&made.rendered_text, base);
    assert_eq!(sale.len(), 1, "{created}\n{}", made.rendered_text);
    clarion.ok(&[
        "post",
        "edit",
        &made.post_id.to_string(),
        "--text",
        "Sale ends soon: https://shop.test/sale and https://shop.test/last",
    ]);
    let edited = all_targets(&store)
        .await
        .into_iter()
        .find(|t| t.id == made.id)
        .unwrap()
        .rendered_text;
    let edited_codes = codes_in(&edited, base);
    assert_eq!(edited_codes.len(), 2, "{edited}");
    assert_eq!(edited_codes[0], sale[0], "{edited}");
    let ls = links(clarion.ok(&["links", "ls", "--json"]));
    assert_eq!(ls.len(), 4, "{ls:?}");
    assert!(
        ls.iter().any(|l| l.to_string().contains(&edited_codes[1])
            && l.to_string().contains("https://shop.test/last")),
        "the edit's new link is registered: {ls:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn files_and_edits_keep_their_codes_sqlite() {
    files_and_edits_keep_their_codes(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn files_and_edits_keep_their_codes_postgres() {
    if let Some(db) = TestDb::postgres().await {
        files_and_edits_keep_their_codes(Some(db)).await;
    }
}

/// An A/B test over time slots: one post per variant, each on every
/// channel, each at its own slot (never early); the report compares them.
async fn variants_over_time_slots(db: Option<TestDb>) {
    let sink = Sink::start(SinkRules::default()).await;
    let clarion = Clarion::new(db, &Settings::new(&sink));
    let campaigns = clarion.dir.path().join("content/campaigns");
    std::fs::create_dir_all(&campaigns).unwrap();
    std::fs::write(campaigns.join("spring.toml"), CAMPAIGN).unwrap();
    let run = clarion.run();
    run.ready().await;

    let refused = clarion.cli(&[
        "post",
        "create",
        "-C",
        "sink",
        "--variant",
        "A=only one",
        "--variant-every",
        "1s",
    ]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("give at least two variants"),
        "{refused:?}"
    );
    let at = chrono::Utc::now() + chrono::Duration::milliseconds(500);
    let out = clarion.ok(&[
        "post",
        "create",
        "-C",
        "sink",
        "--campaign",
        "spring",
        "--at",
        &at.to_rfc3339(),
        "--variant",
        "morning=Slot A",
        "--variant",
        "evening=Slot B",
        "--variant-every",
        "2s",
    ]);
    assert_eq!(out.matches(" scheduled for ").count(), 2, "{out}");
    let both = wait_until(Duration::from_secs(30), || async {
        sink.distinct_keys() >= 2
    })
    .await;
    assert!(both, "{:?}\n{}", sink.arrivals(), run.log());
    let arrived = |text: &str| {
        sink.arrivals()
            .into_iter()
            .find(|a| a.body["text"] == json!(text))
            .unwrap_or_else(|| panic!("{text} not sent: {:?}", sink.arrivals()))
            .at_ms
    };
    let (a, b) = (arrived("Slot A"), arrived("Slot B"));
    let at_ms = at.timestamp_millis();
    assert!(a >= at_ms, "A early: {a} < {at_ms}");
    assert!(b >= at_ms + 2_000, "B went before its slot: {b}");
    let r = report(&clarion);
    for variant in ["morning", "evening"] {
        assert_eq!(
            row(&r["by_variant"], variant)["posts_delivered"],
            json!(1),
            "{r}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn variants_over_time_slots_sqlite() {
    variants_over_time_slots(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn variants_over_time_slots_postgres() {
    if let Some(db) = TestDb::postgres().await {
        variants_over_time_slots(Some(db)).await;
    }
}
