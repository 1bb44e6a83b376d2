//! The composition root: builds the store, the HTTP server, the fanout and the dispatchers, and runs them
//! under one shutdown token and task tracker.
//!
//! `run` takes an already-bound listener and a cancellation token from its caller (the CLI or a test), so
//! tests run the real daemon on 127.0.0.1:0 and stop it at will.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock;
use crate::config::Config;
use crate::dispatch;
use crate::fanout;
use crate::health::Health;
use crate::ingress::{self, AppState};
use crate::outbox::Store;
use crate::sink::x::XClient;
use crate::systemd;

/// How long the dispatchers may take to finish their in-flight request after shutdown begins. The
/// request timeout bounds each request; this bounds the wait for all of them together.
pub const STOP_GRACE: Duration = Duration::from_secs(30);

/// Runs the daemon until `shutdown` is cancelled, then stops accepting, lets in-flight sends finish and
/// returns. Items not yet sent stay queued in the store.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let store = Store::open(&config.store_path)
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
    let destinations: Vec<_> = config.destinations.values().cloned().collect();
    let longest_window = destinations
        .iter()
        .flat_map(|d| d.limits.iter().map(|w| w.per))
        .max()
        .unwrap_or_default();
    let server = config.server.clone();
    let settings = config.dispatch.clone();
    let (_config_tx, config_rx) = watch::channel(Arc::new(config));

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
    for d in &destinations {
        let worker = dispatch::Worker {
            client: XClient::new(http.clone(), &d.api_base, d.credentials.clone()),
            destination: d.clone(),
            store: store.clone(),
            settings: settings.clone(),
            health: health.clone(),
            planned: planned_rx.clone(),
        };
        tracker.spawn(worker.run(workers.clone()));
    }
    tracker.spawn(dispatch::prune_ledger_forever(
        store.clone(),
        longest_window,
        workers.clone(),
    ));
    tracker.close();

    let state = AppState {
        config: config_rx,
        store: store.clone(),
        fanout: fanout_wake,
        health,
    };
    tracing::info!(listen = %listener.local_addr()?, destinations = destinations.len(), "chirpd is ready.");
    systemd::ready();
    ingress::serve(
        listener,
        ingress::router(state),
        server.header_timeout,
        server.max_connections,
        shutdown,
    )
    .await;
    systemd::stopping();
    tracing::info!("Stopped accepting webhooks; finishing in-flight sends.");
    workers.cancel();
    if tokio::time::timeout(STOP_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "Some sends did not finish in time; their items stay queued and are sent again on start."
        );
    }
    tracing::info!("chirpd stopped.");
    Ok(())
}
