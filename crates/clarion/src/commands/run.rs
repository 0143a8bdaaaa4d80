//! `clarion run`: HTTP server, publish workers, listeners and the bridge in one process.

use std::sync::Arc;

use anyhow::Context;
use clarion_engage::ListenerRuntime;
use clarion_engage::bridge::Bridge;
use clarion_engage::rules::Rules;
use clarion_scheduler::{Runtime, run_workers};
use clarion_server::{AppState, router};
use tracing::{info, warn};

use crate::app::{App, worker_id};
use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Listen address, overriding [server] bind.
    #[arg(long)]
    bind: Option<String>,
}

pub async fn run(args: Args, config: Config) -> anyhow::Result<()> {
    let app = App::open(config).await?;
    let bind = args.bind.unwrap_or_else(|| app.config.server.bind.clone());
    let api_token = match app.config.server.api_token.resolve("API token") {
        Ok(token) => Some(token),
        Err(e) => {
            warn!("HTTP API disabled ({e}); health and metrics endpoints still answer");
            None
        }
    };
    let runtime = Arc::new(Runtime::new(
        app.store.clone(),
        app.queue.clone(),
        app.registry.clone(),
        app.config.scheduler.clone(),
        worker_id(),
    ));
    clarion_scheduler::alerts::start(&app.config.alerts, &runtime)
        .map_err(|e| anyhow::anyhow!("config: {e}"))?;
    let bridge = match &app.config.bridge {
        Some(config) => Some(Arc::new(
            Bridge::new(
                config.clone(),
                app.inbox.clone(),
                app.registry.get(&config.channel).cloned(),
                &app.listeners,
            )
            .map_err(|e| anyhow::anyhow!("config: {e}"))?,
        )),
        None => None,
    };
    let channel_names: Vec<&str> = app.registry.names().collect();
    let rules = Rules::new(&app.config.rules, &channel_names)
        .map_err(|e| anyhow::anyhow!("config: {e}"))?
        .with_inbox(app.inbox.clone(), app.config.listen.auto_replies_per_hour);
    let listening = ListenerRuntime::new(
        app.store.clone(),
        app.listeners.clone(),
        runtime.worker_id.clone(),
        app.config.listen.clone(),
    )
    .with_bridge(bridge)
    .with_rules(Arc::new(rules));
    let state = AppState {
        service: app.service.clone(),
        metrics: runtime.metrics.clone(),
        health: Some(runtime.health.clone()),
        scheduler: app.config.scheduler.clone(),
        api_token,
        timezone: app.config.timezone,
        inbox: app.inbox.clone(),
        listen: app.config.listen.clone(),
        listening: Some(listening.clone()),
        analytics: app.analytics.clone(),
        team: clarion_server::team::TeamState {
            notify_channel: app.config.alerts.channel.clone(),
            public_url: clarion_analytics::link_base(&app.config.attribution, &bind)
                .unwrap_or_else(|_| format!("http://{bind}")),
            ..Default::default()
        },
    };
    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .with_context(|| format!("cannot listen on {bind}"))?;
    info!(
        addr = %listener.local_addr()?,
        worker = %runtime.worker_id,
        database = if app.store.is_postgres() { "postgres" } else { "sqlite" },
        channels = app.registry.names().count(),
        listeners = app.listeners.iter().count(),
        "clarion is running"
    );
    let dashboard = format!("http://{}/", listener.local_addr()?);
    if app.store.count_users().await? == 0 {
        warn!(
            dashboard,
            "no users yet: make the first owner with `clarion users add you@example.com --role owner --password-stdin`, then sign in at {dashboard}"
        );
    } else {
        info!(dashboard, "dashboard at {dashboard}");
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let mut http_stop = stop_rx.clone();
    let mut worker_stop = stop_rx.clone();
    let poller = clarion_analytics::MetricsPoller::new(
        app.store.clone(),
        app.registry.clone(),
        &app.config.attribution.metrics_after_secs,
        std::time::Duration::from_secs(app.config.attribution.metrics_poll_secs.max(1)),
    )
    .with_campaigns(app.analytics.campaigns.clone());
    tokio::spawn(poller.run(stop_rx.clone()));
    if let Some(bridge) = &app.config.bridge {
        let watch = crate::overdue_watch::OverdueWatch {
            service: app.service.clone(),
            campaigns: app.analytics.campaigns.clone(),
            channel: bridge.channel.clone(),
            timezone: app.config.timezone,
            every: std::time::Duration::from_secs(app.config.attribution.overdue_check_secs.max(1)),
        };
        tokio::spawn(watch.run(stop_rx.clone()));
    }
    let listeners = tokio::spawn(listening.run(stop_rx));
    let recorder = app.analytics.redirector.recorder().clone();
    // The peer address feeds the redirect's daily-salted visitor key.
    let service = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = axum::serve(listener, service).with_graceful_shutdown(async move {
        let _ = http_stop.wait_for(|s| *s).await;
    });
    let workers = run_workers(runtime, async move {
        let _ = worker_stop.wait_for(|s| *s).await;
    });
    let (served, worked, listened) = tokio::join!(server, workers, listeners);
    // Clicks still queued are written before the process ends.
    recorder.flush().await;
    served.context("HTTP server")?;
    worked.context("publish workers")?;
    listened.context("listeners")?;
    info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
