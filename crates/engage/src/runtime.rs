//! The listener runtime: one task per listening channel.
//!
//! Each task takes the channel's lease (so on a shared PostgreSQL exactly one
//! process listens per account), reads the stored cursor, then loops: ask
//! the listener for the next batch, store the batch and its cursor in one
//! transaction (guarded by the lease), acknowledge, repeat. A crash between
//! the platform call and the commit re-reads the same items next time, and
//! the store drops the ones already stored; a cursor is never stored ahead
//! of events that were not. While a call waits (long polls take ~25 s) the
//! lease is renewed every `lease / 4`; a process that dies stops renewing,
//! and another takes over once the lease runs out.

use std::sync::Arc;
use std::time::Duration;

use clarion_core::{ErrorClass, Listener, ListenerRegistry, PublishError};
use clarion_store::{Store, engagement, now_ms};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::ListenConfig;
use crate::bridge::Bridge;
use crate::rules::Rules;

/// Waits after a failure that named no wait, doubling up to the cap.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// An expired token needs a person: ask again rarely, never in a loop.
const AUTH_EXPIRED_WAIT: Duration = Duration::from_secs(300);

#[derive(Clone, Debug)]
pub struct ListenerRuntime {
    store: Store,
    listeners: Arc<ListenerRegistry>,
    holder: String,
    config: ListenConfig,
    bridge: Option<Arc<Bridge>>,
    rules: Arc<Rules>,
}

/// Why a pushed request was not stored.
#[derive(Debug, thiserror::Error)]
pub enum PushRefused {
    #[error("no listening channel of that name")]
    UnknownChannel,
    #[error(transparent)]
    Listener(clarion_core::PushError),
    #[error("could not store it: {0}")]
    Store(String),
}

/// How a wait ended.
enum Held<T> {
    /// The work finished with the lease kept.
    Done(T),
    /// Another process holds the lease now.
    Lost,
    Stopped,
}

impl ListenerRuntime {
    pub fn new(
        store: Store,
        listeners: Arc<ListenerRegistry>,
        holder: String,
        config: ListenConfig,
    ) -> Self {
        Self {
            store,
            listeners,
            holder,
            config,
            bridge: None,
            rules: Arc::new(Rules::default()),
        }
    }

    pub fn with_bridge(mut self, bridge: Option<Arc<Bridge>>) -> Self {
        self.bridge = bridge;
        self
    }

    pub fn with_rules(mut self, rules: Arc<Rules>) -> Self {
        self.rules = rules;
        self
    }

    /// Runs every listener (and the bridge) until `stop` turns true, then
    /// releases the leases so another process can take over at once.
    pub async fn run(self, stop: watch::Receiver<bool>) {
        let mut tasks = tokio::task::JoinSet::new();
        for (channel, listener) in self.listeners.iter() {
            let this = self.clone();
            let (channel, listener) = (channel.to_owned(), listener.clone());
            let stop = stop.clone();
            tasks.spawn(async move { this.run_channel(channel, listener, stop).await });
        }
        if let Some(bridge) = &self.bridge {
            tasks.spawn(bridge.clone().run(stop.clone()));
        }
        while tasks.join_next().await.is_some() {}
    }

    /// A request a platform pushed to `POST /hooks/<channel>`: checked by
    /// the channel's listener (secret, signature), then stored like a
    /// polled batch (dedupe, threading, bridge, rules). Nothing is stored
    /// when the listener refuses it.
    pub async fn accept_push(
        &self,
        channel: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<usize, PushRefused> {
        let listener = self
            .listeners
            .get(channel)
            .ok_or(PushRefused::UnknownChannel)?;
        let batch = listener
            .receive_push(headers, body)
            .await
            .map_err(PushRefused::Listener)?;
        let mut events = batch.events;
        if let Some(bridge) = &self.bridge
            && bridge.channel() == channel
        {
            events = bridge.take_chat_events(events).await;
        }
        let outcome = self
            .store
            .ingest_pushed(channel, &events, now_ms())
            .await
            .map_err(|e| PushRefused::Store(e.to_string()))?;
        if !outcome.new.is_empty() {
            self.after_ingest(&outcome.new).await;
        }
        Ok(outcome.new.len())
    }

    fn lease(&self) -> Duration {
        Duration::from_secs(self.config.lease_secs.max(2))
    }

    fn lease_until(&self) -> i64 {
        now_ms() + self.lease().as_millis() as i64
    }

    async fn run_channel(
        &self,
        channel: String,
        listener: Arc<dyn Listener>,
        mut stop: watch::Receiver<bool>,
    ) {
        let retry = self.lease() / 4;
        loop {
            if *stop.borrow() {
                return;
            }
            match self
                .store
                .acquire_listener(&channel, &self.holder, now_ms(), self.lease_until())
                .await
            {
                Ok(Some(row)) => {
                    info!(channel, holder = %self.holder, "listener started");
                    self.set_bridge_active(&channel, true);
                    let stopped = self
                        .listen(&channel, listener.as_ref(), row.cursor, &mut stop)
                        .await;
                    self.set_bridge_active(&channel, false);
                    if stopped {
                        let _ = self.store.release_listener(&channel, &self.holder).await;
                        info!(channel, "listener stopped");
                        return;
                    }
                    warn!(channel, "listener lease lost: another process listens now");
                }
                Ok(None) => debug!(channel, "listener held by another process"),
                Err(e) => warn!(channel, error = %e, "could not take the listener lease"),
            }
            tokio::select! {
                _ = tokio::time::sleep(retry) => {}
                _ = stopped(&mut stop) => return,
            }
        }
    }

    fn set_bridge_active(&self, channel: &str, active: bool) {
        if let Some(bridge) = &self.bridge
            && bridge.channel() == channel
        {
            bridge.set_active(active);
        }
    }

    /// Listens while the lease is held. True when stopped, false when the lease was lost.
    async fn listen(
        &self,
        channel: &str,
        listener: &dyn Listener,
        mut cursor: Option<String>,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let call = listener.next_batch(cursor.as_deref());
            let wait = match self.hold_while(channel, call, stop).await {
                Held::Stopped => return true,
                Held::Lost => return false,
                Held::Done(Ok(batch)) => {
                    for reason in &batch.skipped {
                        warn!(channel, reason, "skipped an unreadable item");
                    }
                    let mut events = batch.events;
                    if let Some(bridge) = &self.bridge
                        && bridge.channel() == channel
                    {
                        events = bridge.take_chat_events(events).await;
                    }
                    match self
                        .store
                        .ingest(
                            channel,
                            &self.holder,
                            &events,
                            batch.cursor.as_deref(),
                            now_ms(),
                            self.lease_until(),
                        )
                        .await
                    {
                        Ok(Some(outcome)) => {
                            if let Some(next) = batch.cursor {
                                if let Err(e) = listener.acknowledge(&next).await {
                                    debug!(channel, error = %e, "acknowledge failed");
                                }
                                cursor = Some(next);
                            }
                            if !outcome.new.is_empty() {
                                debug!(
                                    channel,
                                    new = outcome.new.len(),
                                    duplicates = outcome.duplicates,
                                    "engagements stored"
                                );
                                self.after_ingest(&outcome.new).await;
                            }
                            backoff = FIRST_BACKOFF;
                            batch.wait
                        }
                        Ok(None) => return false,
                        Err(e) => {
                            warn!(channel, error = %e, "could not store a batch; it will be read again");
                            self.failed(channel, &format!("store: {e}")).await;
                            next_backoff(&mut backoff)
                        }
                    }
                }
                Held::Done(Err(e)) => {
                    warn!(channel, class = e.class.as_str(), error = %e.message, "listener call failed");
                    self.failed(channel, &e.to_string()).await;
                    wait_after(&e, &mut backoff)
                }
            };
            if wait.is_zero() {
                continue;
            }
            match self
                .hold_while(channel, tokio::time::sleep(wait), stop)
                .await
            {
                Held::Done(()) => {}
                Held::Lost => return false,
                Held::Stopped => return true,
            }
        }
    }

    async fn failed(&self, channel: &str, error: &str) {
        if let Err(e) = self
            .store
            .listener_failed(channel, &self.holder, error, now_ms())
            .await
        {
            warn!(channel, error = %e, "could not record a listener failure");
        }
    }

    async fn after_ingest(&self, new: &[engagement::Model]) {
        self.rules.apply(new).await;
        if let Some(bridge) = &self.bridge {
            bridge.wake();
        }
    }

    /// Runs `work` while renewing the lease; stops early if the lease is
    /// lost or `stop` turns true.
    async fn hold_while<T>(
        &self,
        channel: &str,
        work: impl std::future::Future<Output = T>,
        stop: &mut watch::Receiver<bool>,
    ) -> Held<T> {
        let mut work = std::pin::pin!(work);
        let mut renew = tokio::time::interval(self.lease() / 4);
        renew.tick().await;
        loop {
            tokio::select! {
                out = &mut work => return Held::Done(out),
                _ = stopped(stop) => return Held::Stopped,
                _ = renew.tick() => {
                    match self.store.renew_listener(channel, &self.holder, self.lease_until()).await {
                        Ok(true) => {}
                        Ok(false) => return Held::Lost,
                        // A database hiccup: keep going; the lease has slack.
                        Err(e) => warn!(channel, error = %e, "could not renew the listener lease"),
                    }
                }
            }
        }
    }
}

/// Resolves once `stop` turns true (the guard `wait_for` returns is not
/// `Send`, so it must not live in a spawned task's state).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

fn next_backoff(backoff: &mut Duration) -> Duration {
    let wait = *backoff;
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
    wait
}

/// How long to wait after a failed call: what the platform asked for, a
/// long pause for an expired token, otherwise exponential back-off.
fn wait_after(error: &PublishError, backoff: &mut Duration) -> Duration {
    match error.class {
        ErrorClass::RateLimited => error
            .retry_after
            .unwrap_or_else(|| next_backoff(backoff))
            .max(Duration::from_millis(100)),
        ErrorClass::AuthExpired => AUTH_EXPIRED_WAIT,
        _ => next_backoff(backoff),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_follow_the_error_class() {
        let mut backoff = FIRST_BACKOFF;
        let limited = PublishError::new(ErrorClass::RateLimited, "slow down")
            .with_retry_after(Some(Duration::from_secs(34)));
        assert_eq!(wait_after(&limited, &mut backoff), Duration::from_secs(34));
        let expired = PublishError::new(ErrorClass::AuthExpired, "token");
        assert_eq!(wait_after(&expired, &mut backoff), AUTH_EXPIRED_WAIT);
        let down = PublishError::new(ErrorClass::Transient, "502");
        let waits: Vec<u64> = (0..8)
            .map(|_| wait_after(&down, &mut backoff).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
    }
}
