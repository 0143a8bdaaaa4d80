//! Counters for `/metrics` (Prometheus text format), kept in-process.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds (seconds) of the publish-lateness histogram.
const LATENESS_BUCKETS: [f64; 9] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 30.0, 300.0];

#[derive(Debug, Default)]
pub struct Metrics {
    pub published: AtomicU64,
    pub failed: AtomicU64,
    pub retried: AtomicU64,
    pub outcome_unknown: AtomicU64,
    pub missed: AtomicU64,
    pub recovered: AtomicU64,
    lateness_buckets: [AtomicU64; LATENESS_BUCKETS.len()],
    lateness_count: AtomicU64,
    lateness_sum_ms: AtomicU64,
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Records how late a published post went out after its scheduled time.
    pub fn observe_lateness(&self, lateness_ms: i64) {
        let ms = lateness_ms.max(0) as u64;
        let secs = ms as f64 / 1000.0;
        for (bucket, bound) in self.lateness_buckets.iter().zip(LATENESS_BUCKETS) {
            if secs <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.lateness_count.fetch_add(1, Ordering::Relaxed);
        self.lateness_sum_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// Renders the counters; `extra` lines (gauges read from the store) are appended.
    pub fn render(&self, extra: &str) -> String {
        let mut out = String::new();
        let counters = [
            (
                "clarion_published_total",
                "Targets published.",
                &self.published,
            ),
            (
                "clarion_failed_total",
                "Targets that failed for good.",
                &self.failed,
            ),
            (
                "clarion_retries_total",
                "Attempts rescheduled after a retryable error.",
                &self.retried,
            ),
            (
                "clarion_outcome_unknown_total",
                "Targets parked because a resend could duplicate.",
                &self.outcome_unknown,
            ),
            (
                "clarion_missed_total",
                "Targets whose time passed beyond the grace period.",
                &self.missed,
            ),
            (
                "clarion_recovered_claims_total",
                "Claims taken over from a worker that stopped.",
                &self.recovered,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let name = "clarion_publish_lateness_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time from scheduled to published.\n# TYPE {name} histogram"
        );
        for (bucket, bound) in self.lateness_buckets.iter().zip(LATENESS_BUCKETS) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.lateness_count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.lateness_sum_ms.load(Ordering::Relaxed) as f64 / 1000.0
        );
        let _ = writeln!(out, "{name}_count {count}");
        out.push_str(extra);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lateness_lands_in_cumulative_buckets() {
        let m = Metrics::default();
        m.observe_lateness(80);
        m.observe_lateness(1_500);
        Metrics::inc(&m.published);
        let text = m.render("");
        assert!(
            text.contains("clarion_publish_lateness_seconds_bucket{le=\"0.05\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("clarion_publish_lateness_seconds_bucket{le=\"0.1\"} 1\n"));
        assert!(text.contains("clarion_publish_lateness_seconds_bucket{le=\"2\"} 2\n"));
        assert!(text.contains("clarion_publish_lateness_seconds_count 2\n"));
        assert!(text.contains("clarion_publish_lateness_seconds_sum 1.58\n"));
        assert!(text.contains("clarion_published_total 1\n"));
    }
}
