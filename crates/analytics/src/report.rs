//! Campaign reports from stored credits and clicks.
//!
//! Revenue is the sum of the credits (net of refunds) under the chosen
//! model and window; an order counts once in a row however many touches in
//! that row share it. Orders in another currency than the campaign's are
//! left out and counted in `other_currency_orders` (amounts are never
//! converted). Impressions and engagements come from post metrics where
//! they are known; without them the rates that need them are empty.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate};
use clarion_attribution::{Campaign, Totals};
use clarion_store::Store;
use serde::Serialize;

use crate::{AnalyticsError, Attributor, ModelKey};

/// One line of a report: a creator, a channel, a post, or the whole campaign.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReportRow {
    pub key: String,
    #[serde(flatten)]
    pub totals: Totals,
    /// Bot and link-preview fetches: recorded, never counted as clicks.
    pub bot_fetches: i64,
    pub conversion_rate: Option<f64>,
    pub aov_minor: Option<i64>,
    pub cpa_minor: Option<i64>,
    pub roi: Option<f64>,
    pub roas: Option<f64>,
}

impl ReportRow {
    fn finish(mut self) -> Self {
        let t = self.totals;
        self.conversion_rate = t.conversion_rate();
        self.aov_minor = t.aov_minor();
        self.cpa_minor = t.cpa_minor();
        self.roi = t.roi();
        self.roas = t.roas();
        self
    }
}

/// Orders and revenue of one day (UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Day {
    pub date: NaiveDate,
    pub orders: i64,
    pub revenue_minor: i64,
}

/// A campaign under one model and window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignReport {
    pub campaign: String,
    pub title: Option<String>,
    pub model: String,
    pub currency: String,
    pub budget_minor: Option<i64>,
    pub total: ReportRow,
    pub by_creator: Vec<ReportRow>,
    pub by_channel: Vec<ReportRow>,
    pub by_post: Vec<ReportRow>,
    pub daily: Vec<Day>,
    pub other_currency_orders: i64,
}

#[derive(Default)]
struct Acc {
    orders: BTreeSet<i32>,
    revenue: i64,
    clicks: i64,
    bots: i64,
}

impl Acc {
    fn row(&self, key: String, cost_minor: i64, contracted: i64) -> ReportRow {
        ReportRow {
            key,
            totals: Totals {
                posts_contracted: contracted,
                clicks: self.clicks,
                orders: self.orders.len() as i64,
                revenue_minor: self.revenue,
                cost_minor,
                ..Totals::default()
            },
            bot_fetches: self.bots,
            ..ReportRow::default()
        }
        .finish()
    }
}

/// Builds the report of `campaign` under `key` (computing credits under
/// `key` first if some orders have none yet).
pub async fn campaign_report(
    store: &Store,
    attributor: &Attributor,
    campaign: &Campaign,
    key: ModelKey,
) -> Result<CampaignReport, AnalyticsError> {
    attributor.ensure(key).await?;
    let credits = store
        .credits(&key.to_string(), Some(&campaign.name))
        .await?;
    let clicks = store.campaign_clicks(&campaign.name).await?;
    let currency = campaign.currency.to_string();

    let mut total = Acc::default();
    let mut creators: BTreeMap<String, Acc> = BTreeMap::new();
    let mut channels: BTreeMap<String, Acc> = BTreeMap::new();
    let mut posts: BTreeMap<String, Acc> = BTreeMap::new();
    let mut days: BTreeMap<NaiveDate, (BTreeSet<i32>, i64)> = BTreeMap::new();
    let mut other_currency: BTreeSet<i32> = BTreeSet::new();
    for creator in &campaign.creators {
        creators.entry(creator.name.clone()).or_default();
    }
    for credit in &credits {
        if credit.currency != currency {
            other_currency.insert(credit.order_row_id);
            continue;
        }
        let add = |acc: &mut Acc| {
            acc.orders.insert(credit.order_row_id);
            acc.revenue += credit.amount_minor;
        };
        add(&mut total);
        if let Some(creator) = &credit.creator {
            add(creators.entry(creator.clone()).or_default());
        }
        add(channels
            .entry(label(credit.channel.as_deref(), "(no channel)"))
            .or_default());
        add(posts.entry(post_label(credit.post_id)).or_default());
        let date = DateTime::from_timestamp_millis(credit.order_at_ms)
            .map(|t| t.date_naive())
            .unwrap_or_default();
        let day = days.entry(date).or_default();
        day.0.insert(credit.order_row_id);
        day.1 += credit.amount_minor;
    }
    for click in &clicks {
        let add = |acc: &mut Acc| {
            if click.is_bot {
                acc.bots += 1;
            } else {
                acc.clicks += 1;
            }
        };
        add(&mut total);
        if let Some(creator) = &click.creator {
            add(creators.entry(creator.clone()).or_default());
        }
        add(channels
            .entry(label(click.channel.as_deref(), "(no channel)"))
            .or_default());
        add(posts.entry(post_label(click.post_id)).or_default());
    }

    let mut total_cost = 0;
    let mut total_contracted = 0;
    let by_creator: Vec<ReportRow> = creators
        .iter()
        .map(|(name, acc)| {
            let terms = campaign.creator(name);
            let cost = terms.map_or(0, |c| c.cost_minor(acc.revenue));
            let contracted = terms.map_or(0, |c| i64::from(c.posts_contracted));
            total_cost += cost;
            total_contracted += contracted;
            acc.row(name.clone(), cost, contracted)
        })
        .collect();
    Ok(CampaignReport {
        campaign: campaign.name.clone(),
        title: campaign.title.clone(),
        model: key.to_string(),
        currency,
        budget_minor: campaign.budget_minor,
        total: total.row("total".into(), total_cost, total_contracted),
        by_creator,
        by_channel: channels
            .iter()
            .map(|(k, acc)| acc.row(k.clone(), 0, 0))
            .collect(),
        by_post: posts
            .iter()
            .map(|(k, acc)| acc.row(k.clone(), 0, 0))
            .collect(),
        daily: days
            .into_iter()
            .map(|(date, (orders, revenue))| Day {
                date,
                orders: orders.len() as i64,
                revenue_minor: revenue,
            })
            .collect(),
        other_currency_orders: other_currency.len() as i64,
    })
}

fn label(value: Option<&str>, none: &str) -> String {
    value.unwrap_or(none).to_owned()
}

fn post_label(post: Option<i32>) -> String {
    post.map_or_else(|| "(no post)".to_owned(), |p| format!("post {p}"))
}
