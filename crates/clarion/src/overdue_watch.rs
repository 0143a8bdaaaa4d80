//! Tells the chat bridge about creators past their deadline: once per
//! creator and shortfall, across restarts and processes. The notice is an
//! ordinary post to the bridge's channel whose import key (its text, no
//! time) makes a second copy a no-op, so the publish path's promises hold
//! for it too.

use std::time::Duration;

use clarion_analytics::report::overdue_creators;
use clarion_scheduler::{ImportPost, PostInput, PostService};
use tokio::sync::watch;
use tracing::{info, warn};

pub struct OverdueWatch {
    pub service: PostService,
    pub campaigns: std::sync::Arc<clarion_attribution::Campaigns>,
    /// The bridge's chat channel.
    pub channel: String,
    pub timezone: clarion_core::time::Tz,
    pub every: Duration,
}

impl OverdueWatch {
    /// Checks now, then every `every`, until `stop`.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.check_once().await {
                warn!(error = %e, "overdue creators: check failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.every) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// Posts a notice for each overdue creator not told before; returns
    /// how many were posted.
    pub async fn check_once(&self) -> anyhow::Result<usize> {
        let today = chrono::Utc::now()
            .with_timezone(&self.timezone)
            .date_naive();
        let overdue = overdue_creators(
            self.service.store(),
            &self.campaigns,
            self.service.registry(),
            today,
        )
        .await?;
        if overdue.is_empty() {
            return Ok(0);
        }
        let posts: Vec<ImportPost> = overdue
            .iter()
            .map(|o| {
                ImportPost::new(PostInput {
                    // Sent as written: never a template, never tracked.
                    body: o.notice().replace("{{", "{ {"),
                    channels: vec![self.channel.clone()],
                    untracked: true,
                    ..PostInput::default()
                })
            })
            .collect();
        let valid = self.service.check_import(posts).map_err(|errors| {
            anyhow::anyhow!(
                "{}",
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        })?;
        let stored = self.service.store_import(valid).await?;
        let told = stored.iter().flatten().count();
        if told > 0 {
            info!(notices = told, channel = %self.channel, "overdue creators: bridge told");
        }
        Ok(told)
    }
}
