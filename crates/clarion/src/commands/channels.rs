//! `clarion channels ls|check`.

use clap::Subcommand;

use crate::app::build_registry;
use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum ChannelsCommand {
    /// List configured channels with their kind and text limit.
    Ls,
    /// Verify each channel's credentials against its platform.
    Check,
}

pub async fn run(cmd: ChannelsCommand, config: Config) -> anyhow::Result<()> {
    let registry = build_registry(&config, &clarion_core::AdapterContext::default())?;
    match cmd {
        ChannelsCommand::Ls => {
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
            let mut failures = 0;
            for (name, adapter) in registry.iter() {
                match adapter.check().await {
                    Ok(check) => println!("ok    {name:<24} {}", check.detail),
                    Err(e) => {
                        failures += 1;
                        println!("FAIL  {name:<24} {e}");
                    }
                }
            }
            if failures > 0 {
                anyhow::bail!("{failures} channel(s) failed the check");
            }
        }
    }
    Ok(())
}
