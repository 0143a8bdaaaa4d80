//! Per-channel pauses: once a platform says "rate limited, retry after N",
//! no worker in this process calls that channel again before then. Avoids
//! hammering a platform that is already refusing us.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct ChannelPauses {
    until: Mutex<HashMap<String, Instant>>,
}

impl ChannelPauses {
    pub fn pause(&self, channel: &str, wait: Duration) {
        let until = Instant::now() + wait;
        if let Ok(mut map) = self.until.lock() {
            let entry = map.entry(channel.to_owned()).or_insert(until);
            if *entry < until {
                *entry = until;
            }
        }
    }

    /// How long `channel` is still paused, if at all.
    pub fn remaining(&self, channel: &str) -> Option<Duration> {
        let map = self.until.lock().ok()?;
        let until = *map.get(channel)?;
        until
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pause_only_grows() {
        let pauses = ChannelPauses::default();
        assert_eq!(pauses.remaining("a"), None);
        pauses.pause("a", Duration::from_secs(10));
        pauses.pause("a", Duration::from_secs(1));
        let left = pauses.remaining("a").unwrap();
        assert!(left > Duration::from_secs(9), "{left:?}");
        assert_eq!(pauses.remaining("b"), None);
    }
}
