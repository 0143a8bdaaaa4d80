//! `clarion listeners status` and `clarion rules test`.

use clap::{Args, Subcommand};
use clarion_engage::rules::{Candidate, Rules};
use clarion_store::now_ms;

use crate::app::App;
use crate::config::Config;
use crate::time;

#[derive(Debug, Subcommand)]
pub enum ListenersCommand {
    /// Per listening channel: state, holder, last event, lag and last error.
    Status,
}

pub async fn run(cmd: ListenersCommand, app: App) -> anyhow::Result<()> {
    match cmd {
        ListenersCommand::Status => {
            let rows = app.store.listeners().await?;
            let now = now_ms();
            let configured: Vec<&str> = app.listeners.iter().map(|(n, _)| n).collect();
            if configured.is_empty() && rows.is_empty() {
                println!("no listeners: set `listen = true` on a channel to capture its mentions");
                return Ok(());
            }
            println!(
                "{:<18} {:<13} {:<28} {:>8} {:<17} {:>9}  last error",
                "channel", "state", "holder", "events", "last event", "lag"
            );
            for name in &configured {
                let row = rows.iter().find(|r| r.channel == *name);
                let state = match row {
                    None => "not started",
                    Some(r) if r.lease_until_ms.is_none_or(|t| t < now) => "stopped",
                    Some(r) if r.failing_since_ms.is_some() => "failing",
                    Some(_) => "listening",
                };
                let lag = row
                    .and_then(|r| r.last_batch_at_ms)
                    .map(|t| format!("{}s", (now - t) / 1000))
                    .unwrap_or_else(|| "-".into());
                println!(
                    "{:<18} {:<13} {:<28} {:>8} {:<17} {:>9}  {}",
                    name,
                    state,
                    row.and_then(|r| r.holder.clone()).unwrap_or_default(),
                    row.map_or(0, |r| r.events_total),
                    row.and_then(|r| r.last_event_at_ms)
                        .map(time::show)
                        .unwrap_or_else(|| "-".into()),
                    lag,
                    row.and_then(|r| r.last_error.clone().map(|e| (e, r.failing_since_ms)))
                        .map(|(e, since)| match since {
                            Some(since) => format!("{e} (failing since {})", time::show(since)),
                            None => e,
                        })
                        .unwrap_or_default()
                );
            }
            for r in rows
                .iter()
                .filter(|r| !configured.contains(&r.channel.as_str()))
            {
                println!(
                    "{:<18} {:<13} (no longer configured; cursor kept)",
                    r.channel, "unconfigured"
                );
            }
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Dry run: which `[[rules]]` would fire on an item like this.
    #[command(after_help = "Example: clarion rules test --text 'I want a refund' --kind reply")]
    Test(TestArgs),
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// The item's text.
    #[arg(long)]
    text: String,
    /// mention, reply, comment, quote or dm.
    #[arg(long, default_value = "mention")]
    kind: String,
    /// The channel it arrived on.
    #[arg(long, default_value = "")]
    channel: String,
    /// The campaign of the post it answers.
    #[arg(long)]
    campaign: Option<String>,
    /// The author's handle or platform id.
    #[arg(long, default_value = "")]
    author: String,
}

pub fn run_rules(cmd: RulesCommand, config: &Config) -> anyhow::Result<()> {
    let channels: Vec<&str> = config.channels.iter().map(|c| c.name.as_str()).collect();
    let rules = Rules::new(&config.rules, &channels).map_err(|e| anyhow::anyhow!("config: {e}"))?;
    match cmd {
        RulesCommand::Test(args) => {
            let fired = rules.matching(&Candidate {
                text: &args.text,
                kind: &args.kind,
                channel: &args.channel,
                campaign: args.campaign.as_deref(),
                author_handle: &args.author,
                author_id: &args.author,
            });
            if rules.is_empty() {
                println!("no rules configured ([[rules]] in the config file)");
            } else if fired.is_empty() {
                println!("no rule fires");
            } else {
                for name in fired {
                    println!("fires: {name}");
                }
            }
        }
    }
    Ok(())
}
