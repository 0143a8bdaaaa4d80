//! The stored path (one order credited as it arrives) and the bulk path
//! (every order recomputed in memory) must give the same credits.

use std::sync::Arc;

use clarion_attribution::{Campaign, Campaigns, Currency, Order, OrderSource, Utm};
use clarion_store::{CreditGroup, NewClick, Store};

use crate::{Attributor, LinkRequest, Links, ModelKey, OrderOutcome, Orders};

const HOUR: i64 = 3_600_000;

fn campaigns() -> Arc<Campaigns> {
    let text = r#"
name = "spring"
starts = "2026-01-01"
ends = "2026-12-31"
currency = "USD"
[[creators]]
name = "ann"
codes = ["ANN10"]
"#;
    let mut all = Campaigns::default();
    all.insert(
        "spring.toml",
        Campaign::parse("spring.toml", "spring", text).unwrap(),
    )
    .unwrap();
    Arc::new(all)
}

fn order(id: &str, at_ms: i64, minor: i64, click: Option<&str>, codes: &[&str]) -> Order {
    Order {
        source: OrderSource::Generic,
        order_id: id.into(),
        amount_minor: minor,
        currency: Currency::new("USD").unwrap(),
        at_ms,
        customer_key: Some("c1".into()),
        click_id: click.map(str::to_owned),
        discount_codes: codes.iter().map(|c| (*c).to_owned()).collect(),
        utm: Utm::default(),
        social_handles: Vec::new(),
    }
}

#[tokio::test]
async fn credits_as_orders_arrive_equal_a_full_recompute() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let store = Store::connect(&url, 2).await.unwrap();
    store.migrate().await.unwrap();
    let links = Links::new(store.clone(), "https://go.test");
    let mut made = Vec::new();
    for (channel, creator) in [("masto", None), ("bsky", Some("ann"))] {
        made.push(
            links
                .create(LinkRequest {
                    destination: "https://shop.test/".into(),
                    campaign: Some("spring".into()),
                    creator: creator.map(str::to_owned),
                    channel: Some(channel.into()),
                    ..Default::default()
                })
                .await
                .unwrap(),
        );
    }
    let t0 = 1_780_000_000_000;
    // One visitor clicks the Mastodon link, then Ann's link; a bot fetch.
    let click = |id: &str, link: usize, at_ms: i64, bot: bool| NewClick {
        click_id: id.into(),
        link_id: made[link].id,
        at_ms,
        campaign: made[link].campaign.clone(),
        creator: made[link].creator.clone(),
        channel: made[link].channel.clone(),
        post_id: None,
        target_id: None,
        referrer: None,
        is_bot: bot,
        visitor_key: "v1".into(),
    };
    store
        .record_clicks(&[
            click("c1", 0, t0, false),
            click("c2", 1, t0 + HOUR, false),
            click("c3", 1, t0 + HOUR, true),
        ])
        .await
        .unwrap();
    let key = ModelKey::parse("linear", 7).unwrap();
    let orders = Orders::new(
        store.clone(),
        Attributor::new(store.clone(), campaigns(), key),
    );
    for o in [
        order("o1", t0 + 2 * HOUR, 1000, Some("c2"), &[]),
        order("o2", t0 + 3 * HOUR, 999, None, &["ann10"]),
        // Outside the window: unattributed.
        order("o3", t0 + 9 * 24 * HOUR, 500, Some("c1"), &[]),
    ] {
        assert_eq!(
            orders.take_order(None, o).await.unwrap(),
            OrderOutcome::Stored
        );
    }
    assert_eq!(
        orders
            .take_order(None, order("o1", t0, 1, None, &[]))
            .await
            .unwrap(),
        OrderOutcome::Duplicate
    );
    let as_arrived = store.credits(&key.to_string(), None).await.unwrap();
    let summary = |credits: &[clarion_store::order_credit::Model]| {
        let mut rows: Vec<_> = credits
            .iter()
            .map(|c| {
                (
                    c.order_row_id,
                    c.click_row_id,
                    c.creator.clone(),
                    c.channel.clone(),
                    c.amount_minor,
                    c.decided_by.clone(),
                )
            })
            .collect();
        rows.sort();
        rows
    };
    // Linear over the visitor's two clicks: 500 + 500 (the bot fetch is no touch).
    let o1: Vec<_> = summary(&as_arrived)
        .into_iter()
        .filter(|r| r.0 == 1)
        .collect();
    assert_eq!(o1.len(), 2, "{o1:?}");
    assert_eq!(o1.iter().map(|r| r.4).sum::<i64>(), 1000);
    assert!(
        o1.iter()
            .any(|r| r.3.as_deref() == Some("masto") && r.4 == 500)
    );
    // The code decides; ann's latest touch carries it.
    let o2: Vec<_> = summary(&as_arrived)
        .into_iter()
        .filter(|r| r.0 == 2)
        .collect();
    assert_eq!(o2.len(), 1, "{o2:?}");
    assert_eq!((o2[0].2.as_deref(), o2[0].4), (Some("ann"), 999));
    assert_eq!(o2[0].5, "code:ann10");
    let o3: Vec<_> = summary(&as_arrived)
        .into_iter()
        .filter(|r| r.0 == 3)
        .collect();
    assert_eq!(o3[0].5, "unattributed");

    let stats = orders.attributor().recompute(key).await.unwrap();
    assert_eq!(
        (
            stats.orders,
            stats.by_code,
            stats.by_touches,
            stats.unattributed
        ),
        (3, 1, 1, 1)
    );
    let recomputed = store.credits(&key.to_string(), None).await.unwrap();
    assert_eq!(summary(&as_arrived), summary(&recomputed));
    rollups_equal_their_sources(&store, &key.to_string()).await;
    // Every order is credited under linear (the rollups count them); under
    // a model never computed, none is.
    assert!(store.credits_complete(&key.to_string()).await.unwrap());
    assert!(!store.credits_complete("position-based/7d").await.unwrap());

    // Another model's credits have rollups of their own; linear's stay.
    let first = ModelKey::parse("first-click", 7).unwrap();
    orders.attributor().recompute(first).await.unwrap();
    rollups_equal_their_sources(&store, &first.to_string()).await;
    rollups_equal_their_sources(&store, &key.to_string()).await;
    // A refund changes an order's credits: the rollups follow.
    orders
        .take_refund(
            None,
            clarion_attribution::Refund {
                source: OrderSource::Generic,
                order_id: "o1".into(),
                refund_id: "r1".into(),
                amount_minor: 400,
                currency: Currency::new("USD").unwrap(),
                at_ms: t0 + 4 * HOUR,
            },
        )
        .await
        .unwrap();
    rollups_equal_their_sources(&store, &key.to_string()).await;
    let total = store
        .campaign_credit_sums(&key.to_string(), "spring", "USD", CreditGroup::Total)
        .await
        .unwrap();
    assert_eq!((total[0].orders, total[0].revenue_minor), (2, Some(1599)));

    let clicks = store.campaign_click_counts("spring").await.unwrap();
    let mut clicks: Vec<_> = clicks
        .iter()
        .map(|c| (c.creator.clone(), c.channel.clone(), c.is_bot, c.n))
        .collect();
    clicks.sort();
    assert_eq!(
        clicks,
        [
            (None, Some("masto".to_owned()), false, 1),
            (Some("ann".to_owned()), Some("bsky".to_owned()), false, 1),
            (Some("ann".to_owned()), Some("bsky".to_owned()), true, 1),
        ]
    );
}

/// The campaign sums kept as credits are written equal the sums over the
/// credits themselves, for every grouping.
async fn rollups_equal_their_sources(store: &Store, model_key: &str) {
    use std::collections::{BTreeMap, BTreeSet};
    let credits = store.credits(model_key, Some("spring")).await.unwrap();
    for (by, key_of) in [
        (
            CreditGroup::Total,
            (|_| Some("total".to_owned()))
                as fn(&clarion_store::order_credit::Model) -> Option<String>,
        ),
        (CreditGroup::Creator, |c| c.creator.clone()),
        (CreditGroup::Channel, |c| c.channel.clone()),
        (CreditGroup::Post, |c| c.post_id.map(|p| p.to_string())),
        (CreditGroup::Target, |c| c.target_id.map(|t| t.to_string())),
        (CreditGroup::Day, |c| {
            Some((c.order_at_ms / 86_400_000).to_string())
        }),
    ] {
        let mut expected: BTreeMap<Option<String>, (i64, BTreeSet<i32>)> = BTreeMap::new();
        for c in &credits {
            let e = expected.entry(key_of(c)).or_default();
            e.0 += c.amount_minor;
            e.1.insert(c.order_row_id);
        }
        let expected: BTreeMap<_, _> = expected
            .into_iter()
            .map(|(k, (revenue, orders))| (k, (Some(revenue), orders.len() as i64)))
            .collect();
        let got: BTreeMap<_, _> = store
            .campaign_credit_sums(model_key, "spring", "USD", by)
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.key, (r.revenue_minor, r.orders)))
            .collect();
        assert_eq!(got, expected, "{model_key} by {by:?}");
    }
}
