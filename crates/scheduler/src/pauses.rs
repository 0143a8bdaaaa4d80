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

/// Spaces sends on one channel at least `min_interval` apart (in this
/// process), so a large schedule is paced to the platform's documented
/// limits instead of being answered with 429s.
#[derive(Debug, Default)]
pub struct Pacer {
    next_slot: Mutex<HashMap<String, Instant>>,
}

impl Pacer {
    /// Waits for this channel's next free slot and takes it.
    pub async fn wait_turn(&self, channel: &str, min_interval: Option<Duration>) {
        let Some(interval) = min_interval else { return };
        let slot = {
            let Ok(mut slots) = self.next_slot.lock() else {
                return;
            };
            let now = Instant::now();
            let slot = slots
                .get(channel)
                .copied()
                .filter(|s| *s > now)
                .unwrap_or(now);
            slots.insert(channel.to_owned(), slot + interval);
            slot
        };
        tokio::time::sleep_until(slot.into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_pacer_spaces_sends_per_channel() {
        let pacer = Pacer::default();
        let start = Instant::now();
        for _ in 0..3 {
            pacer
                .wait_turn("slow", Some(Duration::from_millis(50)))
                .await;
        }
        pacer
            .wait_turn("other", Some(Duration::from_millis(50)))
            .await;
        pacer.wait_turn("free", None).await;
        // Three sends 50 ms apart take at least 100 ms.
        assert!(
            start.elapsed() >= Duration::from_millis(100),
            "{:?}",
            start.elapsed()
        );
    }

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
