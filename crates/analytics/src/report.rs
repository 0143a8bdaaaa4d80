//! Campaign reports from stored credits and clicks.
//!
//! Revenue is the sum of the credits (net of refunds) under the chosen
//! model and window; an order counts once in a row however many touches in
//! that row share it. Orders in another currency than the campaign's are
//! left out and counted in `other_currency_orders` (amounts are never
//! converted). Impressions and engagements come from post metrics where
//! they are known; without them the rates that need them are empty.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate};
use clarion_attribution::{Campaign, Totals};
use clarion_store::{CreditGroup, Store};
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
    pub engagement_rate: Option<f64>,
    pub ctr: Option<f64>,
    pub conversion_rate: Option<f64>,
    pub aov_minor: Option<i64>,
    pub cpa_minor: Option<i64>,
    pub roi: Option<f64>,
    pub roas: Option<f64>,
    /// Earned media value: impressions at the campaign's `cpm` plus
    /// engagements at its `cost_per_engagement` (None without either rate).
    pub emv_minor: Option<i64>,
}

impl ReportRow {
    fn finish(mut self) -> Self {
        let t = self.totals;
        self.engagement_rate = t.engagement_rate();
        self.ctr = t.ctr();
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
    /// A/B variants of the campaign's posts (orders summed per target).
    pub by_variant: Vec<ReportRow>,
    pub daily: Vec<Day>,
    pub other_currency_orders: i64,
    /// Creators' own posts the listeners captured during the campaign.
    pub creator_posts: Vec<CreatorPost>,
    /// Creators past their deadline with contracted posts still missing.
    pub overdue_creators: Vec<String>,
}

/// A post by one of the campaign's creators that mentions the brand (a
/// mention, quote or comment the listeners captured) or carries the
/// campaign's hashtag, keyword or a tracked link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreatorPost {
    pub creator: String,
    pub channel: String,
    pub kind: String,
    pub url: Option<String>,
    pub text: String,
    pub at_ms: i64,
    /// The captured engagement (`engagements.id`) and the platform's id
    /// of the post, which its public counts are read by.
    #[serde(skip)]
    pub engagement_id: i32,
    #[serde(skip)]
    pub item_id: String,
    /// Its newest public counts (the metrics poller reads them on the
    /// same schedule as our posts'); None before the first read.
    pub counts: Option<clarion_core::PostCounts>,
}

/// Clicks, bot fetches, orders and revenue of one row, before the ratios.
#[derive(Default)]
struct Acc {
    orders: i64,
    revenue: i64,
    clicks: i64,
    bots: i64,
    /// Published posts (targets), with their latest counts.
    posts: i64,
    engagements: i64,
    impressions: Option<i64>,
}

impl Acc {
    fn row(&self, key: String, cost_minor: i64, contracted: i64) -> ReportRow {
        ReportRow {
            key,
            totals: Totals {
                posts_contracted: contracted,
                posts_delivered: self.posts,
                engagements: self.engagements,
                impressions: self.impressions,
                clicks: self.clicks,
                orders: self.orders,
                revenue_minor: self.revenue,
                cost_minor,
            },
            bot_fetches: self.bots,
            ..ReportRow::default()
        }
        .finish()
    }
}

/// Builds the report of `campaign` under `key` (computing credits under
/// `key` first if some orders have none yet). Sums and counts are made by
/// the database; only one row per group comes back.
pub async fn campaign_report(
    store: &Store,
    attributor: &Attributor,
    campaign: &Campaign,
    key: ModelKey,
    registry: &clarion_core::AdapterRegistry,
    today: NaiveDate,
) -> Result<CampaignReport, AnalyticsError> {
    attributor.ensure(key).await?;
    let model = key.to_string();
    let currency = campaign.currency.to_string();
    let sums = |by| store.campaign_credit_sums(&model, &campaign.name, &currency, by);
    let fill = |rows: Vec<clarion_store::CreditSum>, none: &str| {
        let mut map: BTreeMap<String, Acc> = BTreeMap::new();
        for r in rows {
            let acc = map
                .entry(r.key.unwrap_or_else(|| none.to_owned()))
                .or_default();
            acc.orders += r.orders;
            acc.revenue += r.revenue_minor.unwrap_or(0);
        }
        map
    };
    let mut total = fill(sums(CreditGroup::Total).await?, "total")
        .remove("total")
        .unwrap_or_default();
    let mut creators = fill(sums(CreditGroup::Creator).await?, NO_CREATOR);
    creators.remove(NO_CREATOR);
    for creator in &campaign.creators {
        creators.entry(creator.name.clone()).or_default();
    }
    let mut channels = fill(sums(CreditGroup::Channel).await?, NO_CHANNEL);
    let mut posts: BTreeMap<String, Acc> = fill(sums(CreditGroup::Post).await?, NO_POST)
        .into_iter()
        .map(|(k, acc)| (post_label(&k), acc))
        .collect();
    // Published posts, their variants and latest public counts.
    let targets = store.campaign_targets(&campaign.name).await?;
    let variant_of: BTreeMap<i32, String> = targets
        .iter()
        .filter_map(|(t, _, _, v)| Some((*t, v.clone()?)))
        .collect();
    let mut variants: BTreeMap<String, Acc> = BTreeMap::new();
    for r in sums(CreditGroup::Target).await? {
        let Some(variant) = r
            .key
            .and_then(|k| k.parse::<i32>().ok())
            .and_then(|t| variant_of.get(&t))
        else {
            continue;
        };
        let acc = variants.entry(variant.clone()).or_default();
        acc.orders += r.orders;
        acc.revenue += r.revenue_minor.unwrap_or(0);
    }
    for c in store.campaign_click_counts(&campaign.name).await? {
        let add = |acc: &mut Acc| {
            if c.is_bot {
                acc.bots += c.n;
            } else {
                acc.clicks += c.n;
            }
        };
        add(&mut total);
        if let Some(creator) = &c.creator {
            add(creators.entry(creator.clone()).or_default());
        }
        add(channels
            .entry(c.channel.clone().unwrap_or_else(|| NO_CHANNEL.to_owned()))
            .or_default());
        let post = c
            .post_id
            .map_or_else(|| NO_POST.to_owned(), |p| p.to_string());
        add(posts.entry(post_label(&post)).or_default());
        if let Some(variant) = c.target_id.and_then(|t| variant_of.get(&t)) {
            add(variants.entry(variant.clone()).or_default());
        }
    }
    let ids: Vec<i32> = targets.iter().map(|t| t.0).collect();
    let snapshots: BTreeMap<i32, clarion_store::post_metric::Model> = store
        .latest_snapshots(&ids)
        .await?
        .into_iter()
        .map(|m| (m.target_id, m))
        .collect();
    for (target, post, channel, variant) in &targets {
        let snapshot = snapshots.get(target);
        let add = |acc: &mut Acc| {
            acc.posts += 1;
            if let Some(m) = snapshot {
                acc.engagements += [m.likes, m.reposts, m.replies, m.quotes]
                    .into_iter()
                    .flatten()
                    .sum::<i64>();
                if let Some(views) = m.views {
                    acc.impressions = Some(acc.impressions.unwrap_or(0) + views);
                }
            }
        };
        add(&mut total);
        add(channels.entry(channel.clone()).or_default());
        add(posts.entry(post_label(&post.to_string())).or_default());
        if let Some(variant) = variant {
            add(variants.entry(variant.clone()).or_default());
        }
    }
    let mut creator_posts = creator_posts(store, campaign, registry).await?;
    let ids: Vec<i32> = creator_posts.iter().map(|p| p.engagement_id).collect();
    let counts = store.latest_creator_post_counts(&ids).await?;
    for post in &mut creator_posts {
        post.counts = counts.get(&post.engagement_id).copied();
        let acc = creators.entry(post.creator.clone()).or_default();
        acc.posts += 1;
        if let Some(c) = &post.counts {
            acc.engagements += c.engagements();
            if let Some(views) = c.views {
                acc.impressions = Some(acc.impressions.unwrap_or(0) + views);
            }
        }
    }
    let overdue_creators = campaign
        .creators
        .iter()
        .filter(|c| {
            let delivered = creators.get(&c.name).map_or(0, |acc| acc.posts);
            c.is_overdue(u32::try_from(delivered).unwrap_or(u32::MAX), today)
        })
        .map(|c| c.name.clone())
        .collect();
    let daily = sums(CreditGroup::Day)
        .await?
        .into_iter()
        .filter_map(|r| {
            let day: i64 = r.key?.parse().ok()?;
            Some(Day {
                date: DateTime::from_timestamp_millis(day * DAY_MS)?.date_naive(),
                orders: r.orders,
                revenue_minor: r.revenue_minor.unwrap_or(0),
            })
        })
        .collect::<Vec<_>>();

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
    let mut daily = daily;
    daily.sort_by_key(|d| d.date);
    Ok(CampaignReport {
        campaign: campaign.name.clone(),
        title: campaign.title.clone(),
        other_currency_orders: store
            .campaign_other_currency_orders(&model, &campaign.name, &currency)
            .await?,
        model,
        currency,
        budget_minor: campaign.budget_minor,
        total: {
            let mut row = total.row("total".into(), total_cost, total_contracted);
            row.emv_minor = emv(campaign, &row.totals);
            row
        },
        by_creator,
        by_channel: channels
            .iter()
            .map(|(k, acc)| acc.row(k.clone(), 0, 0))
            .collect(),
        by_post: posts
            .iter()
            .map(|(k, acc)| acc.row(k.clone(), 0, 0))
            .collect(),
        by_variant: variants
            .iter()
            .map(|(k, acc)| acc.row(k.clone(), 0, 0))
            .collect(),
        daily,
        creator_posts,
        overdue_creators,
    })
}

/// A creator whose deadline has passed with fewer posts delivered than
/// contracted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OverdueCreator {
    pub campaign: String,
    pub creator: String,
    pub contracted: u32,
    pub delivered: u32,
    pub deadline: Option<NaiveDate>,
}

impl OverdueCreator {
    /// What a person is told (the bridge notice).
    pub fn notice(&self) -> String {
        let deadline = self
            .deadline
            .map(|d| format!(" (deadline {d})"))
            .unwrap_or_default();
        format!(
            "Campaign {}: creator {} has delivered {} of {} contracted post(s){deadline}.",
            self.campaign, self.creator, self.delivered, self.contracted
        )
    }
}

/// The overdue creators of every campaign on `today`, from the posts the
/// listeners captured (the same count the campaign report shows).
pub async fn overdue_creators(
    store: &Store,
    campaigns: &clarion_attribution::Campaigns,
    registry: &clarion_core::AdapterRegistry,
    today: NaiveDate,
) -> Result<Vec<OverdueCreator>, AnalyticsError> {
    let mut overdue = Vec::new();
    for campaign in campaigns.iter() {
        if !campaign.creators.iter().any(|c| c.is_overdue(0, today)) {
            continue; // no deadline has passed: no engagement read
        }
        let posts = creator_posts(store, campaign, registry).await?;
        for c in &campaign.creators {
            let delivered = posts.iter().filter(|p| p.creator == c.name).count();
            let delivered = u32::try_from(delivered).unwrap_or(u32::MAX);
            if c.is_overdue(delivered, today) {
                overdue.push(OverdueCreator {
                    campaign: campaign.name.clone(),
                    creator: c.name.clone(),
                    contracted: c.posts_contracted,
                    delivered,
                    deadline: c.deadline,
                });
            }
        }
    }
    Ok(overdue)
}

/// The campaign's creators' posts among the captured engagements.
pub(crate) async fn creator_posts(
    store: &Store,
    campaign: &Campaign,
    registry: &clarion_core::AdapterRegistry,
) -> Result<Vec<CreatorPost>, AnalyticsError> {
    let bare = |h: &str| h.trim_start_matches('@').to_lowercase();
    let handles: Vec<String> = campaign
        .creators
        .iter()
        .flat_map(|c| c.handles.values().cloned())
        .collect();
    let day_ms = |d: NaiveDate| {
        d.and_hms_opt(0, 0, 0)
            .map_or(0, |t| t.and_utc().timestamp_millis())
    };
    let from = day_ms(campaign.starts);
    let to = day_ms(campaign.ends) + DAY_MS - 1;
    let marks: Vec<String> = campaign
        .hashtags
        .iter()
        .chain(&campaign.keywords)
        .map(|m| m.to_lowercase())
        .chain(std::iter::once("/r/".to_owned()))
        .collect();
    let mut found = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for e in store.engagements_by_handles(&handles, from, to).await? {
        let Some(platform) = registry.get(&e.channel).map(|a| a.kind()) else {
            continue;
        };
        let author = bare(&e.author_handle);
        let Some(creator) = campaign
            .creators
            .iter()
            .find(|c| c.handles.get(platform).is_some_and(|h| bare(h) == author))
        else {
            continue;
        };
        // A mention, quote or comment names the brand; a reply counts when
        // it carries the campaign's mark.
        let text = e.text.to_lowercase();
        let names_brand = matches!(e.kind.as_str(), "mention" | "quote" | "comment");
        if !(names_brand || marks.iter().any(|m| text.contains(m.as_str()))) {
            continue;
        }
        if !seen.insert((e.channel.clone(), e.item_id.clone())) {
            continue;
        }
        found.push(CreatorPost {
            creator: creator.name.clone(),
            channel: e.channel,
            kind: e.kind,
            url: e.url,
            text: e.text,
            at_ms: e.created_at_ms,
            engagement_id: e.id,
            item_id: e.item_id,
            counts: None,
        });
    }
    Ok(found)
}

/// EMV of `totals` under the campaign's rates; None when it sets neither.
fn emv(campaign: &Campaign, totals: &Totals) -> Option<i64> {
    if campaign.cpm_minor.is_none() && campaign.cost_per_engagement_minor.is_none() {
        return None;
    }
    Some(clarion_attribution::emv_minor(
        totals.impressions.unwrap_or(0),
        campaign.cpm_minor.unwrap_or(0),
        totals.engagements,
        campaign.cost_per_engagement_minor.unwrap_or(0),
    ))
}

const DAY_MS: i64 = 86_400_000;
const NO_CREATOR: &str = "(no creator)";
const NO_CHANNEL: &str = "(no channel)";
const NO_POST: &str = "(no post)";

fn post_label(post: &str) -> String {
    if post == NO_POST {
        post.to_owned()
    } else {
        format!("post {post}")
    }
}
