//! Best times to post, from the team's own data: per weekday and hour (in
//! the configured time zone) of publishing, the mean engagements (latest
//! post metrics) and clicks of the posts published then. A slot with fewer
//! than [`ENOUGH`] posts is flagged: its mean says little.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Timelike};
use clarion_core::time::Tz;
use clarion_store::Store;
use serde::Serialize;

use crate::AnalyticsError;

/// Posts a slot needs before its mean is worth reading.
pub const ENOUGH: i64 = 5;

/// One weekday × hour slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Slot {
    pub posts: i64,
    pub engagements: i64,
    pub clicks: i64,
}

impl Slot {
    /// Mean engagements plus clicks per post.
    pub fn score(&self) -> Option<f64> {
        (self.posts > 0).then(|| (self.engagements + self.clicks) as f64 / self.posts as f64)
    }

    pub fn enough(&self) -> bool {
        self.posts >= ENOUGH
    }
}

/// 7 weekdays (Monday first) × 24 hours.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BestTimes {
    pub channel: Option<String>,
    pub timezone: String,
    pub slots: Vec<Vec<Slot>>,
}

impl BestTimes {
    /// The best slots with enough posts, best first: `(weekday, hour, slot)`.
    pub fn ranked(&self) -> Vec<(usize, usize, Slot)> {
        let mut all: Vec<(usize, usize, Slot)> = self
            .slots
            .iter()
            .enumerate()
            .flat_map(|(d, hours)| hours.iter().enumerate().map(move |(h, s)| (d, h, *s)))
            .filter(|(_, _, s)| s.posts > 0)
            .collect();
        all.sort_by(|a, b| {
            (b.2.enough(), b.2.score().unwrap_or(0.0))
                .partial_cmp(&(a.2.enough(), a.2.score().unwrap_or(0.0)))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        all
    }
}

pub const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// Builds the grid for one channel or all.
pub async fn best_times(
    store: &Store,
    zone: Tz,
    channel: Option<&str>,
) -> Result<BestTimes, AnalyticsError> {
    let targets = store.published_targets(channel).await?;
    let ids: Vec<i32> = targets.iter().map(|t| t.0).collect();
    let engagements: HashMap<i32, i64> = store
        .latest_snapshots(&ids)
        .await?
        .into_iter()
        .map(|m| {
            let sum = [m.likes, m.reposts, m.replies, m.quotes]
                .into_iter()
                .flatten()
                .sum();
            (m.target_id, sum)
        })
        .collect();
    let clicks: HashMap<i32, i64> = store.clicks_by_target().await?.into_iter().collect();
    let mut slots = vec![vec![Slot::default(); 24]; 7];
    for (id, _, at) in targets {
        let Some(at) = at.and_then(DateTime::from_timestamp_millis) else {
            continue;
        };
        let local = at.with_timezone(&zone);
        let slot =
            &mut slots[local.weekday().num_days_from_monday() as usize][local.hour() as usize];
        slot.posts += 1;
        slot.engagements += engagements.get(&id).copied().unwrap_or(0);
        slot.clicks += clicks.get(&id).copied().unwrap_or(0);
    }
    Ok(BestTimes {
        channel: channel.map(str::to_owned),
        timezone: zone.to_string(),
        slots,
    })
}
