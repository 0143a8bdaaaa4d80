//! `config/clarion.toml`, with every setting overridable by `CLARION_*`
//! environment variables: `CLARION_DATABASE_URL`, `CLARION_SERVER__BIND`,
//! `CLARION_SCHEDULER__GRACE_PERIOD_SECS` (a double underscore descends a table).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clarion_core::ChannelConfig;
use clarion_scheduler::SchedulerConfig;
use clarion_server::ServerConfig;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `sqlite://PATH?mode=rwc` (embedded default) or `postgres://USER@HOST/DB`.
    #[serde(default = "default_database_url")]
    pub database_url: String,
    /// Pool size per process.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Folder holding `posts/` and `templates/`.
    #[serde(default = "default_content_dir")]
    pub content_dir: PathBuf,
    /// The key file adapter state is encrypted with (at least 32 random
    /// bytes, base64 or raw; must exist). Default: `clarion.key` beside the
    /// SQLite database, created on first start. Also `CLARION_SECRET_KEY_FILE`.
    #[serde(default)]
    pub secret_key_file: Option<PathBuf>,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub scheduler: SchedulerConfig,
    #[serde(default)]
    pub channels: Vec<ChannelConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `pretty` for people, `json` for log shippers.
    pub format: LogFormat,
    /// tracing filter, e.g. `info` or `clarion_scheduler=debug,info`.
    pub level: String,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Pretty,
            level: "info".into(),
        }
    }
}

fn default_database_url() -> String {
    "sqlite://data/clarion.db?mode=rwc".into()
}

fn default_max_connections() -> u32 {
    8
}

fn default_content_dir() -> PathBuf {
    PathBuf::from("content")
}

/// Top-level keys an env override may address; other `CLARION_*` variables
/// (secrets, test settings) are left alone.
const TOP_LEVEL_KEYS: [&str; 7] = [
    "database_url",
    "max_connections",
    "content_dir",
    "secret_key_file",
    "log",
    "server",
    "scheduler",
];

impl Config {
    /// Reads the file (a missing file is an error only when it was asked
    /// for explicitly) and applies environment overrides.
    pub fn load(path: &Path, explicit: bool) -> anyhow::Result<Self> {
        let mut value = match std::fs::read_to_string(path) {
            Ok(text) => text
                .parse::<toml::Table>()
                .with_context(|| format!("config {}", path.display()))?,
            Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => toml::Table::new(),
            Err(e) => bail!("config {}: {e}", path.display()),
        };
        apply_env_overrides(&mut value, std::env::vars())?;
        let config: Config = toml::Value::Table(value)
            .try_into()
            .with_context(|| format!("config {}", path.display()))?;
        Ok(config)
    }
}

fn apply_env_overrides(
    table: &mut toml::Table,
    vars: impl Iterator<Item = (String, String)>,
) -> anyhow::Result<()> {
    for (name, raw) in vars {
        let Some(rest) = name.strip_prefix("CLARION_") else {
            continue;
        };
        let path: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
        if !TOP_LEVEL_KEYS.contains(&path[0].as_str()) {
            continue;
        }
        let mut node = &mut *table;
        for key in &path[..path.len() - 1] {
            let entry = node
                .entry(key.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            node = match entry {
                toml::Value::Table(t) => t,
                _ => bail!("{name}: `{key}` is not a table in the config"),
            };
        }
        node.insert(path[path.len() - 1].clone(), env_value(&raw));
    }
    Ok(())
}

/// `42` is a number, `true` a boolean, anything else a string.
fn env_value(raw: &str) -> toml::Value {
    if let Ok(i) = raw.parse::<i64>() {
        toml::Value::Integer(i)
    } else if let Ok(f) = raw.parse::<f64>() {
        toml::Value::Float(f)
    } else if let Ok(b) = raw.parse::<bool>() {
        toml::Value::Boolean(b)
    } else {
        toml::Value::String(raw.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn env_overrides_reach_nested_settings_and_skip_secrets() {
        let mut table: toml::Table =
            "database_url = \"sqlite://a.db\"\n[scheduler]\nmax_attempts = 3\n"
                .parse()
                .unwrap();
        apply_env_overrides(
            &mut table,
            vars(&[
                ("CLARION_DATABASE_URL", "postgres://x@localhost/db"),
                ("CLARION_SCHEDULER__GRACE_PERIOD_SECS", "60"),
                ("CLARION_SERVER__BIND", "0.0.0.0:9000"),
                ("CLARION_API_TOKEN", "secret"),
                ("CLARION_TEST_DATABASE_URL", "postgres://t"),
            ]),
        )
        .unwrap();
        let config: Config = toml::Value::Table(table).try_into().unwrap();
        assert_eq!(config.database_url, "postgres://x@localhost/db");
        assert_eq!(config.scheduler.grace_period_secs, 60);
        assert_eq!(config.scheduler.max_attempts, 3);
        assert_eq!(config.server.bind, "0.0.0.0:9000");
    }

    #[test]
    fn unknown_settings_are_refused_by_name() {
        let table: toml::Table = "[scheduler]\ngrace_period = 60\n".parse().unwrap();
        let err = toml::Value::Table(table).try_into::<Config>().unwrap_err();
        assert!(
            err.to_string().contains("unknown field `grace_period`"),
            "{err}"
        );
    }

    #[test]
    fn the_shipped_example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/clarion.toml");
        let config = Config::load(&path, true).unwrap();
        assert!(!config.channels.is_empty());
    }
}
