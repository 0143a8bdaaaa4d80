//! `[listen]`, `[bridge]` and `[[rules]]` in the config file.

use serde::Deserialize;

/// `[listen]`: how listeners run.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenConfig {
    /// How long a process holds a listener without renewing; another
    /// process takes over this long after the holder dies.
    pub lease_secs: u64,
    /// `/readyz` turns red when a listener has failed for this long.
    pub failing_after_secs: u64,
    /// Auto-replies of `[[rules]]` allowed per hour, in all.
    pub auto_replies_per_hour: usize,
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            lease_secs: 20,
            failing_after_secs: 300,
            auto_replies_per_hour: 20,
        }
    }
}

/// `[bridge]`: where new inbox items are shown and answered.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeConfig {
    /// A configured Discord or Telegram channel with `listen = true`: the
    /// bridge posts there and hears the replies to its messages.
    pub channel: String,
    /// Platform user ids (Discord user ids, Telegram user ids) allowed to
    /// reply, write notes and give commands. Everyone else is refused.
    #[serde(default)]
    pub allow_users: Vec<String>,
    /// Discord role ids whose members may act, beside `allow_users`.
    #[serde(default)]
    pub allow_roles: Vec<String>,
    /// One thread per conversation (Discord: a thread in a text channel, a
    /// post in a forum channel; Telegram: a forum topic, with `topics = true`
    /// on the channel) instead of one message per item. Default: on where
    /// the channel can start threads.
    #[serde(default)]
    pub threads: Option<bool>,
}
