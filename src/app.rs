//! The composition root: builds the store, the HTTP server, the fanout and the dispatchers, runs them
//! under one shutdown token, and applies reloads.
//!
//! `run` takes an already-bound listener and a `Control` from its caller (the CLI or a test), so tests run
//! the real daemon on 127.0.0.1:0, reload it and stop it at will. A reload goes through the same path as
//! startup: a complete new `Config` is validated first, then swapped in atomically, and the destinations'
//! workers are replaced as one generation; an invalid config leaves everything as it was.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock;
use crate::config::{self, Config, ProcessEnv};
use crate::dispatch::{self, Worker};
use crate::fanout;
use crate::health::Health;
use crate::ingress::{self, AppState};
use crate::outbox::Store;
use crate::systemd;
use crate::telemetry;

/// How long the dispatchers may take to finish their in-flight request after shutdown begins. The
/// request timeout bounds each request; this bounds the wait for all of them together.
pub const STOP_GRACE: Duration = Duration::from_secs(30);

/// How the caller steers a running daemon.
#[derive(Clone, Default)]
pub struct Control {
    /// Cancelled to stop: stop accepting, drain, finish in-flight sends, return.
    pub shutdown: CancellationToken,
    /// Notified to reload the config file (SIGHUP).
    pub reload: Arc<Notify>,
}

/// Runs the daemon until `control.shutdown` is cancelled. Items not yet sent stay queued in the store.
pub async fn run(config: Config, listener: TcpListener, control: Control) -> anyhow::Result<()> {
    // Installed before anything records a metric.
    let metrics = telemetry::metrics_handle();
    let store = Store::open_with_cap(&config.store_path, config.store_max_bytes)
        .with_context(|| format!("cannot open the store at {}", config.store_path.display()))?;
    let recovered = store.recover_interrupted(clock::now_ms()).await?;
    if recovered > 0 {
        tracing::warn!(
            items = recovered,
            "Items were being sent when chirpd last stopped; they will be sent again with the same text (X refuses true duplicates)."
        );
    }
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("chirpd/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot build the HTTP client")?;
    let health = Health::default();
    let fanout_wake = Arc::new(Notify::new());
    let (planned_tx, planned_rx) = watch::channel(0u64);
    let server = config.server.clone();
    let local = listener.local_addr()?;
    let (config_tx, config_rx) = watch::channel(Arc::new(config));

    let tracker = TaskTracker::new();
    // The fanout and the dispatchers stop on their own token, after the HTTP server, so that nothing the
    // server accepted during the drain is left unplanned longer than needed.
    let workers = CancellationToken::new();
    tracker.spawn(fanout::run(
        store.clone(),
        config_rx.clone(),
        fanout_wake.clone(),
        planned_tx,
        workers.clone(),
    ));
    let team = Team {
        store: store.clone(),
        http: http.clone(),
        health: health.clone(),
        planned: planned_rx,
    };
    let mut generation = team.spawn(&config_rx.borrow(), &workers);
    tracker.spawn(dispatch::prune_ledger_forever(
        store.clone(),
        Duration::from_secs(86_400),
        workers.clone(),
    ));
    tracker.spawn({
        let workers = workers.clone();
        async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => metrics.run_upkeep(),
                    _ = workers.cancelled() => return,
                }
            }
        }
    });
    if let Some(interval) = sd_notify::watchdog_enabled() {
        tracker.spawn(systemd::watchdog(
            interval,
            store.clone(),
            local,
            health.clone(),
            config_rx.borrow().dispatch.request_timeout,
            workers.clone(),
        ));
    }
    tracker.close();

    let state = AppState {
        config: config_rx.clone(),
        store: store.clone(),
        fanout: fanout_wake,
        health: health.clone(),
    };
    let serving = tokio::spawn(ingress::serve(
        listener,
        ingress::router(state),
        server.header_timeout,
        server.max_connections,
        control.shutdown.clone(),
    ));
    tracing::info!(listen = %local, destinations = config_rx.borrow().destinations.len(), "chirpd is ready.");
    systemd::ready();

    loop {
        tokio::select! {
            _ = control.reload.notified() => {
                systemd::reloading();
                if let Some(next) = reload(&config_tx) {
                    // The new destinations take over once the old workers finished their current item.
                    generation.stop().await;
                    health.clear_all();
                    generation = team.spawn(&next, &workers);
                }
                systemd::ready();
            }
            _ = control.shutdown.cancelled() => break,
        }
    }

    let _ = serving.await;
    systemd::stopping();
    tracing::info!("Stopped accepting webhooks; finishing in-flight sends.");
    workers.cancel();
    generation.stop().await;
    if tokio::time::timeout(STOP_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "Some tasks did not finish in time; queued items are sent on the next start."
        );
    }
    tracing::info!("chirpd stopped.");
    Ok(())
}

/// Loads and validates the config file again and publishes it; on any error keeps the running one.
fn reload(config_tx: &watch::Sender<Arc<Config>>) -> Option<Arc<Config>> {
    let current = config_tx.borrow().clone();
    let Some(path) = current.path.clone() else {
        tracing::warn!(
            "Reload requested, but chirpd runs on its embedded defaults: nothing to reload."
        );
        return None;
    };
    let mut next = match config::load(Some(&path), &ProcessEnv) {
        Ok(c) => c,
        Err(errors) => {
            tracing::error!("Reload refused; still running the previous config:\n{errors}");
            return None;
        }
    };
    // These are bound at start: the socket is open and the store is in use.
    if next.server.listen != current.server.listen {
        tracing::warn!(kept = %current.server.listen, "server.listen changes on restart only.");
        next.server.listen = current.server.listen;
    }
    if next.store_path != current.store_path {
        tracing::warn!(kept = %current.store_path.display(), "store.path changes on restart only.");
        next.store_path = current.store_path.clone();
    }
    let next = Arc::new(next);
    config_tx.send_replace(next.clone());
    tracing::info!(
        sources = next.sources.len(),
        destinations = next.destinations.len(),
        routes = next.pipeline.routes.len(),
        "Config reloaded."
    );
    Some(next)
}

/// What every dispatcher worker shares, to spawn a generation of them.
struct Team {
    store: Store,
    http: reqwest::Client,
    health: Health,
    planned: watch::Receiver<u64>,
}

/// One generation of workers: one per destination of one config.
struct Generation {
    token: CancellationToken,
    tracker: TaskTracker,
}

impl Team {
    fn spawn(&self, config: &Config, parent: &CancellationToken) -> Generation {
        let token = parent.child_token();
        let tracker = TaskTracker::new();
        for d in config.destinations.values() {
            let worker = Worker {
                client: dispatch::Client::for_destination(&self.http, d),
                http: self.http.clone(),
                templates: config.pipeline.templates.clone(),
                destination: d.clone(),
                store: self.store.clone(),
                settings: config.dispatch.clone(),
                health: self.health.clone(),
                planned: self.planned.clone(),
            };
            tracker.spawn(worker.run(token.clone()));
        }
        tracker.close();
        Generation { token, tracker }
    }
}

impl Generation {
    /// Stops the workers between items and waits for them, within `STOP_GRACE`.
    async fn stop(&self) {
        self.token.cancel();
        if tokio::time::timeout(STOP_GRACE, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "A send did not finish in time; its item is sent again on the next start."
            );
        }
    }
}
