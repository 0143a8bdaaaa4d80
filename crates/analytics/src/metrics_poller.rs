//! Post analytics: polls each published target's public counts on a
//! decaying schedule (by default 1 h, 6 h, 24 h, 72 h and 7 days after it
//! was published) and stores a snapshot per step. Platforms are reached only
//! through `ChannelAdapter::post_counts`; a platform that exposes nothing
//! gets an empty snapshot, so it is not asked again. Several processes may
//! poll the same target: one snapshot per step is kept. Campaign creators'
//! own posts, found among the captured engagements, are read the same way.

use std::sync::Arc;
use std::time::Duration;

use clarion_attribution::Campaigns;
use clarion_core::{AdapterRegistry, ErrorClass, PostCounts};
use clarion_store::{Store, now_ms};
use tokio::sync::watch;
use tracing::{info, warn};

/// Most snapshots taken in one round.
const ROUND: usize = 200;

/// Takes the due snapshots, round after round.
#[derive(Debug, Clone)]
pub struct MetricsPoller {
    store: Store,
    registry: Arc<AdapterRegistry>,
    steps_ms: Vec<i64>,
    every: Duration,
    /// With campaigns, creators' own posts are read too.
    campaigns: Option<Arc<Campaigns>>,
}

impl MetricsPoller {
    pub fn new(
        store: Store,
        registry: Arc<AdapterRegistry>,
        steps_secs: &[u64],
        every: Duration,
    ) -> Self {
        let mut steps_ms: Vec<i64> = steps_secs
            .iter()
            .map(|s| {
                i64::try_from(*s)
                    .unwrap_or(i64::MAX / 2_000)
                    .saturating_mul(1000)
            })
            .collect();
        steps_ms.sort_unstable();
        Self {
            store,
            registry,
            steps_ms,
            every,
            campaigns: None,
        }
    }

    /// Reads the public counts of these campaigns' creators' posts too.
    pub fn with_campaigns(mut self, campaigns: Arc<Campaigns>) -> Self {
        self.campaigns = Some(campaigns);
        self
    }

    /// Polls until `stop`.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            let taken = self.poll_once().await;
            if taken > 0 {
                info!(snapshots = taken, "post metrics: snapshots taken");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.every) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// One round; returns how many snapshots were stored.
    pub async fn poll_once(&self) -> usize {
        let due = match self
            .store
            .due_snapshots(&self.steps_ms, now_ms(), ROUND)
            .await
        {
            Ok(due) => due,
            Err(e) => {
                warn!(error = %e, "post metrics: cannot read due targets");
                return 0;
            }
        };
        let mut taken = 0;
        let mut limited: Vec<String> = Vec::new();
        for snapshot in due {
            let Some(counts) = self
                .counts(&snapshot.channel, &snapshot.platform_post_id, &mut limited)
                .await
            else {
                continue;
            };
            match self
                .store
                .record_snapshot(&snapshot, counts, now_ms())
                .await
            {
                Ok(()) => taken += 1,
                Err(e) => warn!(error = %e, "post metrics: cannot store a snapshot"),
            }
        }
        if let Some(campaigns) = &self.campaigns {
            taken += self.poll_creator_posts(campaigns, &mut limited).await;
        }
        taken
    }

    /// Campaign creators' own posts (as the listeners captured them), on
    /// the same schedule from the time they were posted.
    async fn poll_creator_posts(&self, campaigns: &Campaigns, limited: &mut Vec<String>) -> usize {
        let now = now_ms();
        let mut posts = Vec::new();
        for campaign in campaigns.iter() {
            match crate::report::creator_posts(&self.store, campaign, &self.registry).await {
                Ok(found) => posts.extend(found),
                Err(e) => warn!(error = %e, campaign = campaign.name, "creator posts: cannot read"),
            }
        }
        posts.sort_by_key(|p| p.engagement_id);
        posts.dedup_by_key(|p| p.engagement_id);
        let ids: Vec<i32> = posts.iter().map(|p| p.engagement_id).collect();
        let steps = match self.store.creator_post_steps(&ids).await {
            Ok(steps) => steps,
            Err(e) => {
                warn!(error = %e, "creator posts: cannot read snapshots");
                return 0;
            }
        };
        let mut taken = 0;
        for post in posts.iter().take(ROUND) {
            let step = steps.get(&post.engagement_id).copied().unwrap_or(0);
            let Some(wait) = usize::try_from(step)
                .ok()
                .and_then(|s| self.steps_ms.get(s))
            else {
                continue; // every step taken
            };
            if post.at_ms + wait > now {
                continue;
            }
            let Some(counts) = self.counts(&post.channel, &post.item_id, limited).await else {
                continue;
            };
            match self
                .store
                .record_creator_post_snapshot(post.engagement_id, step, counts, now_ms())
                .await
            {
                Ok(()) => taken += 1,
                Err(e) => warn!(error = %e, "creator posts: cannot store a snapshot"),
            }
        }
        taken
    }

    /// A post's counts from its channel's adapter: None to try again in a
    /// later round (rate limited, or a passing error); empty counts for a
    /// post that is gone or a channel no longer configured, so it is not
    /// asked again.
    async fn counts(
        &self,
        channel: &str,
        platform_post_id: &str,
        limited: &mut Vec<String>,
    ) -> Option<PostCounts> {
        if limited.iter().any(|c| c == channel) {
            return None;
        }
        let counts = match self.registry.get(channel) {
            None => Ok(None),
            Some(adapter) => adapter.post_counts(platform_post_id).await,
        };
        match counts {
            Ok(counts) => Some(counts.unwrap_or_default()),
            Err(e) if e.class == ErrorClass::RateLimited => {
                warn!(channel, "post metrics: rate limited; next round");
                limited.push(channel.to_owned());
                None
            }
            Err(e) if e.class == ErrorClass::Permanent => {
                // A deleted post: an empty snapshot, never asked again.
                warn!(channel, error = %e, "post metrics: no counts");
                Some(PostCounts::default())
            }
            Err(e) => {
                warn!(channel, error = %e, "post metrics: will retry");
                None
            }
        }
    }
}
