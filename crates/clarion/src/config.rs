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
    /// IANA time zone (`Europe/Paris`) for times written without an offset
    /// (`--at 2027-03-01T09:00:00`, API and front matter `at`) and for
    /// times shown by the CLI. Default UTC.
    #[serde(default = "default_timezone", deserialize_with = "timezone")]
    pub timezone: clarion_core::time::Tz,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub scheduler: SchedulerConfig,
    #[serde(default)]
    pub channels: Vec<ChannelConfig>,
    /// Where failure alerts go (`[alerts] channel`); off when unset.
    #[serde(default)]
    pub alerts: clarion_scheduler::AlertsConfig,
    /// The only folder media named through the API or CLI may come from
    /// (default `<content_dir>/media`); `POST /api/v1/media` uploads into it.
    #[serde(default)]
    pub media_dir: Option<PathBuf>,
    /// How listeners (channels with `listen = true`) run.
    #[serde(default)]
    pub listen: clarion_engage::ListenConfig,
    /// Where new inbox items are shown and answered (Discord or Telegram).
    #[serde(default)]
    pub bridge: Option<clarion_engage::BridgeConfig>,
    /// Auto-rules run on each new inbox item.
    #[serde(default)]
    pub rules: Vec<clarion_engage::rules::RuleConfig>,
    /// Tracked links, shop webhooks and the default attribution model.
    #[serde(default)]
    pub attribution: clarion_analytics::AttributionConfig,
}

impl Config {
    /// `media_dir`, or `<content_dir>/media`.
    pub fn media_dir(&self) -> PathBuf {
        self.media_dir
            .clone()
            .unwrap_or_else(|| self.content_dir.join("media"))
    }
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

fn default_timezone() -> clarion_core::time::Tz {
    clarion_core::time::Tz::UTC
}

fn timezone<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<clarion_core::time::Tz, D::Error> {
    let name = String::deserialize(deserializer)?;
    clarion_core::time::parse_zone(&name).map_err(serde::de::Error::custom)
}

/// Top-level keys an env override may address; other `CLARION_*` variables
/// (secrets, test settings) are left alone.
const TOP_LEVEL_KEYS: &[&str] = &[
    "database_url",
    "max_connections",
    "content_dir",
    "secret_key_file",
    "log",
    "server",
    "scheduler",
    "timezone",
    "alerts",
    "media_dir",
    "listen",
    "attribution",
];

/// Top-level keys that are tables: `CLARION_<TABLE>` alone is not an
/// override of the whole table (`CLARION_LOG` is the log filter, read by
/// tracing), only `CLARION_<TABLE>__<KEY>` is.
const TABLE_KEYS: &[&str] = &[
    "log",
    "server",
    "scheduler",
    "alerts",
    "listen",
    "attribution",
];

impl Config {
    /// Reads the file (a missing file is an error only when it was asked
    /// for explicitly) and applies environment overrides.
    pub fn load(path: &Path, explicit: bool) -> anyhow::Result<Self> {
        Self::load_with(path, explicit, std::env::vars())
    }

    /// [`Config::load`] with the environment given. An error names where the
    /// bad value came from: the file, or the `CLARION_*` variable.
    fn load_with(
        path: &Path,
        explicit: bool,
        vars: impl Iterator<Item = (String, String)>,
    ) -> anyhow::Result<Self> {
        let value = match std::fs::read_to_string(path) {
            Ok(text) => text
                .parse::<toml::Table>()
                .with_context(|| format!("config {}", path.display()))?,
            Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => toml::Table::new(),
            Err(e) => bail!("config {}: {e}", path.display()),
        };
        let overrides: Vec<(String, String)> = vars
            .filter(|(name, _)| override_path(name).is_some())
            .collect();
        let mut merged = value.clone();
        apply_env_overrides(&mut merged, overrides.iter().cloned())?;
        let error = match Self::from_table(merged) {
            Ok(config) => return Ok(config),
            Err(error) => error,
        };
        // Blame the file when it is wrong on its own, else the first
        // environment variable that makes it wrong.
        if let Err(e) = Self::from_table(value.clone()) {
            return Err(e.context(format!("config {}", path.display())));
        }
        let mut table = value;
        for (name, raw) in overrides {
            apply_env_overrides(&mut table, std::iter::once((name.clone(), raw)))?;
            if let Err(e) = Self::from_table(table.clone()) {
                return Err(e.context(format!("environment variable {name}")));
            }
        }
        Err(error.context(format!(
            "config {} with its CLARION_* overrides",
            path.display()
        )))
    }

    /// Deserializes and checks the settings.
    fn from_table(table: toml::Table) -> anyhow::Result<Self> {
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end().replace('\n', " ")))?;
        config.check()?;
        Ok(config)
    }

    /// Values that would start silently and do nothing useful are refused.
    fn check(&self) -> anyhow::Result<()> {
        let s = &self.scheduler;
        let at_least_one: [(&str, i128, &str); 7] = [
            (
                "scheduler.max_attempts",
                s.max_attempts.into(),
                "attempts per target before a transient error fails it",
            ),
            (
                "scheduler.poll_interval_ms",
                s.poll_interval_ms.into(),
                "how often an idle dispatcher looks at the store",
            ),
            (
                "scheduler.concurrency",
                s.concurrency as i128,
                "publish calls in flight per process",
            ),
            (
                "scheduler.batch_size",
                s.batch_size as i128,
                "wake-up jobs fetched per poll",
            ),
            (
                "scheduler.sweep_interval_secs",
                s.sweep_interval_secs.into(),
                "how often expired claims are taken over",
            ),
            (
                "scheduler.publish_timeout_secs",
                s.publish_timeout_secs.into(),
                "how long one publish call may take",
            ),
            (
                "max_connections",
                self.max_connections.into(),
                "database connections per process",
            ),
        ];
        for (key, value, what) in at_least_one {
            if value < 1 {
                bail!("{key} = {value}: must be at least 1 ({what})");
            }
        }
        Ok(())
    }
}

/// The config path a `CLARION_*` variable overrides, if it is one.
fn override_path(name: &str) -> Option<Vec<String>> {
    let rest = name.strip_prefix("CLARION_")?;
    let path: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
    if path.len() == 1 && TABLE_KEYS.contains(&path[0].as_str()) {
        return None;
    }
    TOP_LEVEL_KEYS.contains(&path[0].as_str()).then_some(path)
}

fn apply_env_overrides(
    table: &mut toml::Table,
    vars: impl Iterator<Item = (String, String)>,
) -> anyhow::Result<()> {
    for (name, raw) in vars {
        let Some(path) = override_path(&name) else {
            continue;
        };
        let mut node = &mut *table;
        for key in &path[..path.len() - 1] {
            let entry = node
                .entry(key.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            node = match entry {
                toml::Value::Table(t) => t,
                _ => bail!("environment variable {name}: `{key}` is not a table in the config"),
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
                // The tracing filter, not an override of the [log] table.
                ("CLARION_LOG", "warn"),
                ("CLARION_LISTEN__LEASE_SECS", "7"),
            ]),
        )
        .unwrap();
        let config: Config = toml::Value::Table(table).try_into().unwrap();
        assert_eq!(config.database_url, "postgres://x@localhost/db");
        assert_eq!(config.scheduler.grace_period_secs, 60);
        assert_eq!(config.scheduler.max_attempts, 3);
        assert_eq!(config.server.bind, "0.0.0.0:9000");
        assert_eq!(config.listen.lease_secs, 7);
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

    /// Loads `text` as the config file with `env` as the environment;
    /// returns the whole error chain as the CLI prints it.
    fn load_error(text: &str, env: &[(&str, &str)]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clarion.toml");
        std::fs::write(&path, text).unwrap();
        let err = Config::load_with(&path, true, vars(env)).unwrap_err();
        format!("{err:#}").replace(&path.display().to_string(), "FILE")
    }

    #[test]
    fn a_bad_env_override_is_blamed_on_the_variable_not_the_file() {
        let err = load_error(
            "[scheduler]\nmax_attempts = 3\n",
            &[("CLARION_SCHEDULER__MAX_ATTEMPTS", "abc")],
        );
        assert!(
            err.starts_with("environment variable CLARION_SCHEDULER__MAX_ATTEMPTS: "),
            "{err}"
        );
        assert!(!err.contains("FILE"), "{err}");
        assert!(!err.contains('\n'), "one line: {err}");
        // A mistake in the file is still the file's.
        let err = load_error(
            "[scheduler]\nmax_attempts = \"x\"\n",
            &[("CLARION_SERVER__BIND", "127.0.0.1:1")],
        );
        assert!(err.starts_with("config FILE: "), "{err}");
        // An override that fixes the file wins.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clarion.toml");
        std::fs::write(&path, "[scheduler]\nmax_attempts = 0\n").unwrap();
        let config = Config::load_with(
            &path,
            true,
            vars(&[("CLARION_SCHEDULER__MAX_ATTEMPTS", "4")]),
        )
        .unwrap();
        assert_eq!(config.scheduler.max_attempts, 4);
    }

    #[test]
    fn zero_attempts_poll_interval_or_concurrency_are_refused() {
        for key in ["max_attempts", "poll_interval_ms", "concurrency"] {
            let err = load_error(&format!("[scheduler]\n{key} = 0\n"), &[]);
            assert!(
                err.starts_with(&format!(
                    "config FILE: scheduler.{key} = 0: must be at least 1 ("
                )),
                "{err}"
            );
            let var = format!("CLARION_SCHEDULER__{}", key.to_uppercase());
            let err = load_error("", &[(&var, "0")]);
            assert!(
                err.starts_with(&format!(
                    "environment variable {var}: scheduler.{key} = 0: must be at least 1"
                )),
                "{err}"
            );
        }
        let err = load_error("[scheduler]\nmax_attempts = -2\n", &[]);
        assert!(err.contains("scheduler.max_attempts = -2"), "{err}");
    }

    #[test]
    fn timezone_is_an_iana_name_checked_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clarion.toml");
        std::fs::write(&path, "timezone = \"Europe/Paris\"\n").unwrap();
        let config = Config::load_with(&path, true, vars(&[])).unwrap();
        assert_eq!(config.timezone.name(), "Europe/Paris");
        std::fs::write(&path, "").unwrap();
        let config = Config::load_with(&path, true, vars(&[])).unwrap();
        assert_eq!(config.timezone, clarion_core::time::Tz::UTC);
        let config = Config::load_with(
            &path,
            true,
            vars(&[("CLARION_TIMEZONE", "America/New_York")]),
        )
        .unwrap();
        assert_eq!(config.timezone.name(), "America/New_York");

        let err = load_error("timezone = \"Europe/Pariss\"\n", &[]);
        assert!(
            err.starts_with("config FILE: `Europe/Pariss` is not a time zone: give an IANA name"),
            "{err}"
        );
        let err = load_error("", &[("CLARION_TIMEZONE", "CEST")]);
        assert!(
            err.starts_with("environment variable CLARION_TIMEZONE: `CEST` is not a time zone"),
            "{err}"
        );
    }

    #[test]
    fn an_inline_secret_says_how_to_refer_to_it() {
        let err = load_error("[server]\napi_token = \"abc-s3cret\"\n", &[]);
        assert!(
            err.contains("use { env = \"NAME\" } or { file = \"path\" }"),
            "{err}"
        );
        assert!(
            !err.contains("abc-s3cret") && !err.contains("SecretRef"),
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
