//! `clarion channels ls|check`.

use clap::Subcommand;

use crate::app::build_registry;
use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum ChannelsCommand {
    /// List configured channels with their kind and text limit.
    Ls,
    /// Verify against each platform what publishing needs (credentials; for
    /// Matrix, that the bot has joined the room). `warn`: reachable but not
    /// fully verified; any FAIL exits non-zero.
    Check,
}

pub async fn run(cmd: ChannelsCommand, config: Config) -> anyhow::Result<()> {
    match cmd {
        ChannelsCommand::Ls => {
            let registry = build_registry(&config, &clarion_core::AdapterContext::default())?;
            for (name, adapter) in registry.iter() {
                let rule = adapter.length_rule();
                let limit = if rule.max == usize::MAX {
                    "no limit".to_owned()
                } else {
                    format!("{} max", rule.max)
                };
                println!("{name:<24} {:<10} {limit}", adapter.kind());
            }
        }
        ChannelsCommand::Check => {
            // With the stored adapter state, as `clarion run` has it: a
            // Bluesky check reuses (and refreshes) the saved session instead
            // of logging in on every run (30 logins per 5 minutes).
            let app = crate::app::App::open(config).await?;
            let mut failures = 0;
            let mut warnings = 0;
            for (name, adapter) in app.registry.iter() {
                match adapter.check().await {
                    Ok(check) => match check.warning {
                        None => println!("ok    {name:<24} {}", check.detail),
                        Some(warning) => {
                            warnings += 1;
                            println!("warn  {name:<24} {}: {warning}", check.detail);
                        }
                    },
                    Err(e) => {
                        failures += 1;
                        println!("FAIL  {name:<24} {e}");
                    }
                }
            }
            if failures > 0 {
                anyhow::bail!("{failures} channel(s) failed the check");
            }
            if warnings > 0 {
                eprintln!(
                    "{warnings} channel(s) answered but could not be fully verified (see `warn`)"
                );
            }
        }
    }
    Ok(())
}
