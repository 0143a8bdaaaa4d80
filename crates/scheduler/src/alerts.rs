//! Failure alerts: a message to one configured channel (`[alerts] channel`)
//! when a target ends `failed` or `outcome_unknown`, when a due post is
//! stuck past `stuck_after_secs`, and when a channel's credentials are
//! rejected. Each says what happened and what to type next.
//!
//! The publish path never waits on an alert: [`Runtime::report`] and the
//! sweeper hand an event to a bounded channel with `try_send` (a full
//! channel counts the alert as suppressed), and one background task per
//! process renders it, rate-limits it and sends it through the channel's
//! own adapter ([`ChannelAdapter::publish`] with a fresh idempotency key).
//! Alerts are not stored as posts: an alert that cannot be sent is logged
//! and dropped, never retried in a loop, and nothing about the alerts
//! channel's own targets is ever sent to it (no loops).
//!
//! The hook is looked up by the runtime's `worker_id` (unique per process),
//! so the publish path's structs need no new field.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use clarion_core::{
    AdapterRegistry, ChannelAdapter, ConfigError, ErrorClass, Idempotency, Markup, OutboundPost,
    PublishRequest, truncate_graphemes,
};
use clarion_store::{Claim, Store, now_ms};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::Runtime;
use crate::sweeper::Health;
use crate::worker::{format_ms, human_duration};
use crate::writer::Finished;

/// Events waiting for the alert task, at most. Beyond that an alert is
/// counted as suppressed rather than making the publish path wait.
const QUEUE: usize = 1_024;
/// Longest reason quoted in an alert; the full text is on the attempt.
const MAX_REASON: usize = 400;
/// Overdue targets looked at per sweep.
const STUCK_BATCH: u64 = 200;
/// Publish calls per alert, at most (a newsletter's batches).
const MAX_CALLS: usize = 100;

/// `[alerts]` in clarion.toml.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// The configured channel alerts go to (any kind). None: no alerts.
    pub channel: Option<String>,
    /// Alerts sent per window, at most; the rest are counted and one
    /// summary ("N more alerts suppressed") is sent when the window ends.
    pub max_per_window: u32,
    /// The rate-limit window (one hour by default).
    pub window_secs: u64,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            channel: None,
            max_per_window: 30,
            window_secs: 3600,
        }
    }
}

impl AlertsConfig {
    /// The alerts channel must be one of the configured channels.
    pub fn validate(&self, registry: &AdapterRegistry) -> Result<(), ConfigError> {
        let Some(channel) = &self.channel else {
            return Ok(());
        };
        if registry.get(channel).is_none() {
            let names: Vec<&str> = registry.names().collect();
            return Err(ConfigError::new(format!(
                "[alerts] channel = \"{channel}\" is not a configured channel ({})",
                if names.is_empty() {
                    "no channels are configured".to_owned()
                } else {
                    format!("configured: {}", names.join(", "))
                }
            )));
        }
        if self.max_per_window == 0 {
            return Err(ConfigError::new(
                "[alerts] max_per_window must be at least 1 (leave `channel` out to turn alerts off)",
            ));
        }
        if self.window_secs == 0 {
            return Err(ConfigError::new("[alerts] window_secs must be at least 1"));
        }
        Ok(())
    }
}

/// What the publish path tells the alert task.
#[derive(Debug)]
enum Event {
    /// A target ended `failed` or `outcome_unknown`.
    Final {
        target_id: i32,
        channel: String,
        /// The last attempt's outcome class (`permanent`, `auth_expired`, ...).
        outcome: String,
        unknown: bool,
        error: String,
    },
    /// The sweeper finished a pass: look for stuck posts.
    Sweep,
}

/// This process's way into its alert task.
#[derive(Debug)]
struct Hook {
    tx: mpsc::Sender<Event>,
    /// The alerts channel: never alerted about.
    channel: String,
    /// Channels whose rejected credentials were already reported; re-armed
    /// by the channel's next successful publish.
    auth_alerted: Arc<Mutex<HashSet<String>>>,
    /// `auth_alerted.len()`, read without the lock on every published result.
    auth_count: Arc<AtomicUsize>,
    /// Alerts dropped because the queue was full, reported with the summary.
    overflow: Arc<AtomicUsize>,
}

fn hooks() -> &'static RwLock<HashMap<String, Hook>> {
    static HOOKS: OnceLock<RwLock<HashMap<String, Hook>>> = OnceLock::new();
    HOOKS.get_or_init(RwLock::default)
}

/// Starts this process's alert task (if `[alerts] channel` is set) and
/// attaches it to `runtime`. Returns whether alerts are on. Must be called
/// inside a Tokio runtime.
pub fn start(config: &AlertsConfig, runtime: &Arc<Runtime>) -> Result<bool, ConfigError> {
    config.validate(&runtime.registry)?;
    let Some(channel) = config.channel.clone() else {
        return Ok(false);
    };
    let adapter = runtime
        .registry
        .get(&channel)
        .cloned()
        .ok_or_else(|| ConfigError::new(format!("[alerts] channel `{channel}` is gone")))?;
    let (tx, rx) = mpsc::channel(QUEUE);
    let auth_alerted: Arc<Mutex<HashSet<String>>> = Arc::default();
    let auth_count: Arc<AtomicUsize> = Arc::default();
    let overflow: Arc<AtomicUsize> = Arc::default();
    let task = AlertTask {
        store: runtime.store.clone(),
        registry: runtime.registry.clone(),
        health: runtime.health.clone(),
        adapter,
        channel: channel.clone(),
        stuck_after_ms: runtime.config.stuck_after_secs as i64 * 1000,
        timeout: runtime.config.publish_timeout(),
        limiter: Limiter::new(
            config.max_per_window,
            Duration::from_secs(config.window_secs),
        ),
        stuck_alerted: HashSet::new(),
        auth_alerted: auth_alerted.clone(),
        auth_count: auth_count.clone(),
        overflow: overflow.clone(),
    };
    tokio::spawn(task.run(rx));
    if let Ok(mut hooks) = hooks().write() {
        hooks.insert(
            runtime.worker_id.clone(),
            Hook {
                tx,
                channel: channel.clone(),
                auth_alerted,
                auth_count,
                overflow,
            },
        );
    }
    info!(channel, "failure alerts go to channel `{channel}`");
    Ok(true)
}

/// Called by [`Runtime::report`] once a result is written. Never waits.
pub(crate) fn on_report(runtime: &Runtime, f: &Finished) {
    let Ok(hooks) = hooks().read() else { return };
    let Some(hook) = hooks.get(&runtime.worker_id) else {
        return;
    };
    let (unknown, error) = match &f.finish.next {
        Claim::Failed { error } => (false, error),
        Claim::OutcomeUnknown { error } => (true, error),
        Claim::Published { .. } => {
            // A success on a channel whose credentials were reported
            // rejected: the next rejection is news again.
            if hook.auth_count.load(Ordering::Relaxed) > 0
                && let Ok(mut set) = hook.auth_alerted.lock()
                && set.remove(&f.channel)
            {
                hook.auth_count.store(set.len(), Ordering::Relaxed);
            }
            return;
        }
        Claim::Retry { .. } => return,
    };
    if f.channel == hook.channel {
        // Never through the channel that is failing (no loops).
        debug!(channel = %f.channel, "not alerting about the alerts channel's own target");
        return;
    }
    hook.send(Event::Final {
        target_id: f.finish.attempt.target_id,
        channel: f.channel.clone(),
        outcome: f.finish.attempt.outcome.clone(),
        unknown,
        error: error.clone(),
    });
}

/// Called by the sweeper after each pass: the alert task looks for stuck
/// posts itself, so the sweeper never waits on it.
pub(crate) fn on_sweep(runtime: &Runtime) {
    if let Ok(hooks) = hooks().read()
        && let Some(hook) = hooks.get(&runtime.worker_id)
    {
        hook.send(Event::Sweep);
    }
}

impl Hook {
    fn send(&self, event: Event) {
        match self.tx.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(Event::Sweep)) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.overflow.fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                debug!("alert task stopped; alert dropped");
            }
        }
    }
}

/// At most `max` alerts per window; the window starts with its first alert.
#[derive(Debug)]
struct Limiter {
    max: u32,
    window: Duration,
    started: Option<Instant>,
    sent: u32,
    suppressed: usize,
}

impl Limiter {
    fn new(max: u32, window: Duration) -> Self {
        Self {
            max: max.max(1),
            window,
            started: None,
            sent: 0,
            suppressed: 0,
        }
    }

    /// When the current window ends, if one is open.
    fn window_end(&self) -> Option<Instant> {
        self.started.map(|s| s + self.window)
    }

    /// Closes the window if it has ended; returns how many alerts it
    /// suppressed (for the summary), if any.
    fn roll(&mut self, now: Instant) -> Option<usize> {
        let end = self.window_end()?;
        if now < end {
            return None;
        }
        let suppressed = std::mem::take(&mut self.suppressed);
        self.started = None;
        self.sent = 0;
        (suppressed > 0).then_some(suppressed)
    }

    /// Whether one more alert may go out now.
    fn admit(&mut self, now: Instant) -> bool {
        if self.started.is_none() {
            self.started = Some(now);
        }
        if self.sent < self.max {
            self.sent += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    fn suppress(&mut self, n: usize, now: Instant) {
        if n > 0 {
            self.started.get_or_insert(now);
            self.suppressed += n;
        }
    }
}

struct AlertTask {
    store: Store,
    registry: Arc<AdapterRegistry>,
    health: Arc<Health>,
    adapter: Arc<dyn ChannelAdapter>,
    channel: String,
    stuck_after_ms: i64,
    timeout: Duration,
    limiter: Limiter,
    /// Stuck targets already reported, with the due time they were stuck at.
    stuck_alerted: HashSet<(i32, i64)>,
    auth_alerted: Arc<Mutex<HashSet<String>>>,
    auth_count: Arc<AtomicUsize>,
    overflow: Arc<AtomicUsize>,
}

impl AlertTask {
    async fn run(mut self, mut rx: mpsc::Receiver<Event>) {
        loop {
            let end = self
                .limiter
                .window_end()
                .filter(|_| self.limiter.suppressed > 0);
            let event = tokio::select! {
                event = rx.recv() => match event {
                    Some(event) => Some(event),
                    None => break,
                },
                _ = sleep_until(end) => None,
            };
            self.roll().await;
            match event {
                Some(Event::Final {
                    target_id,
                    channel,
                    outcome,
                    unknown,
                    error,
                }) => {
                    self.final_outcome(target_id, &channel, &outcome, unknown, &error)
                        .await
                }
                Some(Event::Sweep) => self.stuck().await,
                None => {}
            }
        }
        // Shutting down: say what was held back rather than lose it silently.
        self.limiter
            .suppress(self.overflow.swap(0, Ordering::Relaxed), Instant::now());
        if self.limiter.suppressed > 0 {
            let n = std::mem::take(&mut self.limiter.suppressed);
            self.deliver(summary(n)).await;
        }
    }

    /// Sends the summary of a window that has ended.
    async fn roll(&mut self) {
        let now = Instant::now();
        self.limiter
            .suppress(self.overflow.swap(0, Ordering::Relaxed), now);
        if let Some(n) = self.limiter.roll(now) {
            self.deliver(summary(n)).await;
        }
    }

    async fn final_outcome(
        &mut self,
        target_id: i32,
        channel: &str,
        outcome: &str,
        unknown: bool,
        error: &str,
    ) {
        let post_id = match self.store.target(target_id).await {
            Ok(Some(t)) => Some(t.post_id),
            Ok(None) => None,
            Err(e) => {
                warn!(target_id, error = %e, "alert: could not read the target; alerting without its post id");
                None
            }
        };
        if outcome == "auth_expired" {
            let first = self.auth_alerted.lock().is_ok_and(|mut set| {
                let first = set.insert(channel.to_owned());
                self.auth_count.store(set.len(), Ordering::Relaxed);
                first
            });
            if first {
                self.alert(auth_text(channel, error)).await;
            }
        }
        let idempotency = self.registry.get(channel).map(|a| a.idempotency());
        self.alert(final_text(
            post_id,
            target_id,
            channel,
            unknown,
            error,
            idempotency,
        ))
        .await;
    }

    async fn stuck(&mut self) {
        let now = now_ms();
        // A backlog that is draining (something was claimed recently) is
        // behind, not stuck: `/readyz` draws the same line.
        if now - self.health.last_claim_ms() <= self.stuck_after_ms {
            return;
        }
        let overdue = match self
            .store
            .overdue(now - self.stuck_after_ms, STUCK_BATCH)
            .await
        {
            Ok(targets) => targets,
            Err(e) => {
                warn!(error = %e, "alert: could not look for stuck posts");
                return;
            }
        };
        let current: HashSet<(i32, i64)> = overdue
            .iter()
            .map(|t| (t.id, t.not_before_ms.unwrap_or_default()))
            .collect();
        // Forget targets that moved on, so the set stays small.
        self.stuck_alerted.retain(|k| current.contains(k));
        for t in overdue {
            let due = t.not_before_ms.unwrap_or_default();
            if t.channel == self.channel || !self.stuck_alerted.insert((t.id, due)) {
                continue;
            }
            let text = format!(
                "Clarion alert: post {post} is stuck on `{channel}`: due at {due_at}, \
                 waiting {waited} without being picked up (stuck_after_secs = {limit}).\n\
                 Check: clarion queue status, and the log of `clarion run`.\n\
                 Post: clarion post show {post}",
                post = t.post_id,
                channel = t.channel,
                due_at = format_ms(due),
                waited = human_duration(now - due),
                limit = self.stuck_after_ms / 1000,
            );
            self.alert(text).await;
        }
    }

    /// Sends `text` if the rate limit allows, else counts it.
    async fn alert(&mut self, text: String) {
        if self.limiter.admit(Instant::now()) {
            self.deliver(text).await;
        } else {
            debug!("alert suppressed by the rate limit");
        }
    }

    /// One publish call with a fresh key. A failure is logged, not retried.
    async fn deliver(&self, text: String) {
        let text = fit(self.adapter.as_ref(), text);
        let post = OutboundPost {
            text,
            campaign: None,
            media: Vec::new(),
        };
        let key = format!("clarion-alert-{}", uuid::Uuid::new_v4().simple());
        let scheduled_at_ms = now_ms();
        // A newsletter goes out in batches (`Unfinished` after progress):
        // continue it, a bounded number of times; any other error ends it.
        for _ in 0..MAX_CALLS {
            let request = PublishRequest {
                post: &post,
                idempotency_key: &key,
                reply_to: None,
                post_id: 0,
                target_id: 0,
                scheduled_at_ms,
                budget: self.timeout,
            };
            match tokio::time::timeout(self.timeout, self.adapter.publish(request)).await {
                Ok(Ok(_)) => {
                    debug!(channel = %self.channel, "alert sent");
                    return;
                }
                Ok(Err(e)) if e.class == ErrorClass::Unfinished => continue,
                Ok(Err(e)) => {
                    warn!(channel = %self.channel, error = %e, "could not send an alert; it is dropped (what it was about is in the log above and in `clarion post show`)");
                    return;
                }
                Err(_) => {
                    warn!(
                        channel = %self.channel,
                        "could not send an alert: no answer within {}s; it is dropped",
                        self.timeout.as_secs()
                    );
                    return;
                }
            }
        }
        warn!(channel = %self.channel, "an alert was still unfinished after {MAX_CALLS} calls; the rest is dropped");
    }
}

async fn sleep_until(end: Option<Instant>) {
    match end {
        Some(end) => tokio::time::sleep_until(end).await,
        None => std::future::pending().await,
    }
}

fn summary(n: usize) -> String {
    format!(
        "Clarion alert: {n} more alert{s} suppressed by the rate limit ([alerts] max_per_window).\n\
         See: clarion post ls --status failed; clarion post ls --status outcome_unknown",
        s = if n == 1 { "" } else { "s" }
    )
}

fn auth_text(channel: &str, error: &str) -> String {
    format!(
        "Clarion alert: channel `{channel}` rejected its credentials: {reason}\n\
         Reconnect it (new token in the config or its secret), then: clarion channels check\n\
         Posts on `{channel}` fail until then.",
        reason = short(error)
    )
}

fn final_text(
    post_id: Option<i32>,
    target_id: i32,
    channel: &str,
    unknown: bool,
    error: &str,
    idempotency: Option<Idempotency>,
) -> String {
    let post = match post_id {
        Some(id) => id.to_string(),
        None => format!("<post of target {target_id}>"),
    };
    let reason = short(error);
    if unknown {
        let force = match idempotency {
            Some(Idempotency::Honoured { .. }) => "",
            _ => " --force",
        };
        format!(
            "Clarion alert: post {post} on `{channel}`: outcome unknown (it may or may not have been published).\n\
             Reason: {reason}\n\
             Check `{channel}`; if the post is missing, retry: clarion post retry {post} --channel {channel}{force}\n\
             If it is there, record it: clarion post settle {post} --channel {channel} --published URL"
        )
    } else {
        format!(
            "Clarion alert: post {post} failed on `{channel}`.\n\
             Reason: {reason}\n\
             Retry: clarion post retry {post} --channel {channel}\n\
             Post: clarion post show {post}"
        )
    }
}

fn short(text: &str) -> String {
    let text = text.trim();
    if text.chars().count() <= MAX_REASON {
        return text.to_owned();
    }
    let cut: String = text.chars().take(MAX_REASON).collect();
    format!("{cut}…")
}

/// The alert in the channel's markup, cut to the channel's length rule.
fn fit(adapter: &dyn ChannelAdapter, text: String) -> String {
    let text = match adapter.markup() {
        // Platform text may hold `<` and `&`; an HTML channel must not parse it.
        Markup::Html => text
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;"),
        Markup::Plain | Markup::Markdown => text,
    };
    let rule = adapter.length_rule();
    if rule.check(&text).is_ok() {
        return text;
    }
    // As much as fits (the first line says what happened).
    let (mut lo, mut hi) = (0, text.chars().count());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if rule.check(&truncate_graphemes(&text, mid)).is_ok() {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    truncate_graphemes(&text, lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_admits_max_per_window_then_counts_and_summarises_once() {
        let t0 = Instant::now();
        let mut limiter = Limiter::new(2, Duration::from_secs(60));
        assert!(limiter.admit(t0));
        assert!(limiter.admit(t0 + Duration::from_secs(1)));
        assert!(!limiter.admit(t0 + Duration::from_secs(2)));
        assert!(!limiter.admit(t0 + Duration::from_secs(3)));
        assert_eq!(limiter.roll(t0 + Duration::from_secs(59)), None);
        assert_eq!(limiter.roll(t0 + Duration::from_secs(60)), Some(2));
        // A fresh window, and nothing left to summarise.
        assert_eq!(limiter.roll(t0 + Duration::from_secs(200)), None);
        assert!(limiter.admit(t0 + Duration::from_secs(200)));
        assert_eq!(limiter.window_end(), Some(t0 + Duration::from_secs(260)));
    }

    #[test]
    fn texts_name_post_channel_reason_and_the_exact_retry_command() {
        let text = final_text(
            Some(12),
            40,
            "masto",
            false,
            "HTTP 422: Validation failed",
            Some(Idempotency::None),
        );
        assert!(text.contains("post 12 failed on `masto`"), "{text}");
        assert!(
            text.contains("Reason: HTTP 422: Validation failed"),
            "{text}"
        );
        assert!(
            text.contains("clarion post retry 12 --channel masto\n"),
            "{text}"
        );
        let unknown = final_text(
            Some(12),
            40,
            "hook",
            true,
            "timed out",
            Some(Idempotency::None),
        );
        assert!(
            unknown.contains("clarion post retry 12 --channel hook --force"),
            "{unknown}"
        );
        let deduped = final_text(
            Some(12),
            40,
            "masto",
            true,
            "timed out",
            Some(Idempotency::honoured_for(Duration::from_secs(3600))),
        );
        assert!(
            deduped.contains("clarion post retry 12 --channel masto\n"),
            "{deduped}"
        );
        assert!(summary(3).contains("3 more alerts suppressed"));
        assert!(short(&"x".repeat(1000)).chars().count() <= MAX_REASON + 1);
    }

    #[test]
    fn an_unknown_alerts_channel_is_refused_by_name() {
        let config = AlertsConfig {
            channel: Some("chat".into()),
            ..Default::default()
        };
        let err = config.validate(&AdapterRegistry::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "[alerts] channel = \"chat\" is not a configured channel (no channels are configured)"
        );
        assert!(
            AlertsConfig::default()
                .validate(&AdapterRegistry::default())
                .is_ok()
        );
    }
}
