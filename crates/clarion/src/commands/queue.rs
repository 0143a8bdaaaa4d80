//! `clarion queue status`.

use clap::Subcommand;
use clarion_core::TargetStatus;
use clarion_store::now_ms;

use crate::app::App;

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Targets by status, what is due soon, and anything stuck.
    Status,
}

pub async fn run(cmd: QueueCommand, app: App) -> anyhow::Result<()> {
    match cmd {
        QueueCommand::Status => {
            let counts = app.store.status_counts().await?;
            let total: i64 = counts.iter().map(|c| c.count).sum();
            println!("targets by status ({total} in all):");
            let widest = counts.iter().map(|c| c.count).max().unwrap_or(0).max(1);
            for status in TargetStatus::ALL {
                let n = counts
                    .iter()
                    .find(|c| c.status == status.as_str())
                    .map_or(0, |c| c.count);
                // A bar per status: people read proportions faster than numbers.
                let bar = "█".repeat(((n * 40) / widest) as usize);
                println!("  {:<16} {n:>8}  {bar}", status.as_str());
            }
            let now = now_ms();
            println!(
                "due in the next hour: {}",
                app.store.due_count(now, 3_600_000).await?
            );
            let stuck_ms = app.config.scheduler.stuck_after_secs as i64 * 1000;
            let stuck = app.store.overdue(now - stuck_ms, 1000).await?;
            if stuck.is_empty() {
                println!("stuck: none");
            } else {
                println!(
                    "stuck: {} target(s) more than {}s past due (is `clarion run` running?)",
                    stuck.len(),
                    stuck_ms / 1000
                );
            }
        }
    }
    Ok(())
}
