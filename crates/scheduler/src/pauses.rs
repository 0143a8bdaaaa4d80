//! Per-channel pauses and pacing, kept in this process.
//!
//! - [`ChannelPauses`]: once a platform says "rate limited, retry after N",
//!   nothing in this process calls that channel again before then.
//! - [`Pacer`]: spaces sends on one channel by the adapter's `min_interval`
//!   and keeps them inside its `rate_window` (N per period). The dispatcher
//!   asks the pacer before claiming, so a target is claimed only when its
//!   channel has a slot: a long paced backlog waits in the store, not in a
//!   claimed task whose lease runs out.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clarion_core::RateWindow;

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

    /// Channels paused now.
    pub fn paused(&self) -> Vec<String> {
        let now = Instant::now();
        self.until
            .lock()
            .map(|map| {
                map.iter()
                    .filter(|(_, until)| **until > now)
                    .map(|(channel, _)| channel.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// How a channel must be paced (from its adapter).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pace {
    pub min_interval: Option<Duration>,
    pub window: Option<RateWindow>,
}

impl Pace {
    pub fn is_paced(&self) -> bool {
        self.min_interval.is_some() || self.window.is_some()
    }
}

#[derive(Debug)]
struct Lane {
    /// The earliest time the next send may start.
    next_free: Instant,
    /// Start times of recent sends, for the rate window (at most `max`).
    recent: VecDeque<Instant>,
}

#[derive(Debug, Default)]
pub struct Pacer {
    lanes: Mutex<HashMap<String, Lane>>,
}

impl Pacer {
    /// Takes this channel's next free slot and waits for it.
    pub async fn wait_turn(&self, channel: &str, pace: Pace) {
        if let Some(slot) = self.reserve(channel, pace) {
            tokio::time::sleep_until(slot.into()).await;
        }
    }

    /// Takes this channel's next free slot without waiting for it (the
    /// dispatcher reserves the slot of a target it claims, so the next
    /// round sees the channel busy). None when the channel is not paced.
    pub fn reserve(&self, channel: &str, pace: Pace) -> Option<Instant> {
        pace.is_paced()
            .then(|| self.take_slot(channel, pace, Instant::now()))
    }

    fn take_slot(&self, channel: &str, pace: Pace, now: Instant) -> Instant {
        let Ok(mut lanes) = self.lanes.lock() else {
            return now;
        };
        let lane = lanes.entry(channel.to_owned()).or_insert_with(|| Lane {
            next_free: now,
            recent: VecDeque::new(),
        });
        let slot = lane.next_free.max(now);
        lane.next_free = slot + pace.min_interval.unwrap_or_default();
        if let Some(window) = pace.window {
            let max = window.max.max(1) as usize;
            lane.recent.push_back(slot);
            while lane.recent.len() > max {
                lane.recent.pop_front();
            }
            if lane.recent.len() == max
                && let Some(oldest) = lane.recent.front()
            {
                // The (max+1)-th send waits until the oldest leaves the window.
                lane.next_free = lane.next_free.max(*oldest + window.per);
            }
        }
        slot
    }

    /// When `channel` can send next; None if it has never sent (free now).
    pub fn next_free(&self, channel: &str) -> Option<Instant> {
        self.lanes.lock().ok()?.get(channel).map(|l| l.next_free)
    }

    /// Whether a target of `channel` claimed now would get its slot by `horizon`.
    pub fn free_by(&self, channel: &str, horizon: Instant) -> bool {
        self.next_free(channel).is_none_or(|t| t <= horizon)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every(ms: u64) -> Pace {
        Pace {
            min_interval: Some(Duration::from_millis(ms)),
            window: None,
        }
    }

    #[tokio::test]
    async fn the_pacer_spaces_sends_per_channel() {
        let pacer = Pacer::default();
        let start = Instant::now();
        for _ in 0..3 {
            pacer.wait_turn("slow", every(50)).await;
        }
        pacer.wait_turn("other", every(50)).await;
        pacer.wait_turn("free", Pace::default()).await;
        // Three sends 50 ms apart take at least 100 ms.
        assert!(
            start.elapsed() >= Duration::from_millis(100),
            "{:?}",
            start.elapsed()
        );
        assert!(!pacer.free_by("slow", Instant::now()));
        assert!(pacer.free_by("free", Instant::now()));
    }

    #[test]
    fn a_rate_window_holds_the_next_send_until_the_oldest_leaves_it() {
        let pacer = Pacer::default();
        let pace = Pace {
            min_interval: None,
            window: Some(RateWindow {
                max: 3,
                per: Duration::from_secs(60),
            }),
        };
        let t0 = Instant::now();
        let slots: Vec<Instant> = (0..4).map(|_| pacer.take_slot("m", pace, t0)).collect();
        assert_eq!(&slots[..3], &[t0, t0, t0], "three fit in the window");
        assert_eq!(slots[3], t0 + Duration::from_secs(60), "the fourth waits");
        assert!(!pacer.free_by("m", t0 + Duration::from_secs(59)));
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
        assert_eq!(pauses.paused(), vec!["a".to_owned()]);
    }
}
