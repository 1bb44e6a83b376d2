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

use crate::config::{self, Config, ProcessEnv};
use crate::dispatch::{Sink, Worker, lead};
use crate::fanout::Fanout;
use crate::health::Health;
use crate::ingress::{self, AppState};
use crate::outbox::{self, SharedStore};
use crate::retention;
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
    // Installed before anything records a metric (the CLI installs it first, labelled, in a fleet).
    let metrics = telemetry::metrics_handle();
    let store = open_store(&config, &control.shutdown)
        .await
        .with_context(|| match &config.fleet.url {
            Some(url) => format!("cannot open the PostgreSQL store ({})", url.reference),
            None => format!("cannot open the store at {}", config.store_path.display()),
        })?;
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("chirpd/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot build the HTTP client")?;
    let health = Health::default();
    let fanout_wake = Arc::new(Notify::new());
    let (planned_tx, planned_rx) = watch::channel(0u64);
    let planned_tx = Arc::new(planned_tx);
    let local = listener.local_addr()?;
    let (config_tx, config_rx) = watch::channel(Arc::new(config));

    let tracker = TaskTracker::new();
    // The fanout and the dispatchers stop on their own token, after the HTTP server, so that nothing the
    // server accepted during the drain is left unplanned longer than needed.
    let workers = CancellationToken::new();
    let fanout = Fanout {
        store: store.clone(),
        config: config_rx.clone(),
        wake: fanout_wake.clone(),
        planned: planned_tx.clone(),
        health: health.clone(),
    };
    tracker.spawn(supervise(
        "fanout",
        health.clone(),
        workers.clone(),
        move |shutdown| fanout.clone().run(shutdown),
    ));
    let team = Team {
        store: store.clone(),
        http: http.clone(),
        health: health.clone(),
        planned: planned_rx,
    };
    let mut generation = team.spawn(&config_rx.borrow(), &workers);
    tracker.spawn(supervise("leases", health.clone(), workers.clone(), {
        let (store, config, health, planned) = (
            store.clone(),
            config_rx.clone(),
            health.clone(),
            planned_tx.clone(),
        );
        move |shutdown| {
            lead::lead_forever(
                store.clone(),
                config.clone(),
                health.clone(),
                planned.clone(),
                shutdown,
            )
        }
    }));
    if let Some(changes) = store.changes() {
        tracker.spawn(relay_changes(
            changes,
            fanout_wake.clone(),
            planned_tx.clone(),
            workers.clone(),
        ));
    }
    tracker.spawn(retention::prune_forever(
        store.clone(),
        config_rx.clone(),
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

    let state = AppState {
        config: config_rx.clone(),
        store: store.clone(),
        fanout: fanout_wake,
        health: health.clone(),
        body_budget: ingress::BodyBudget::new(config_rx.borrow().server.max_buffered_bytes),
    };
    if let Some(interval) = sd_notify::watchdog_enabled() {
        tracker.spawn(systemd::watchdog(
            interval,
            store.clone(),
            ingress::router(state.clone()),
            health.clone(),
            config_rx.clone(),
            workers.clone(),
        ));
    }
    tracker.close();
    // The console listens on its own address, so that it is reached only where the admin allows and a
    // busy console never competes with senders for the webhook listener's connections.
    let admin = config_rx.borrow().admin.clone();
    if let Some(admin) = admin {
        let console_listener = TcpListener::bind(admin.listen)
            .await
            .with_context(|| format!("cannot listen on admin.listen {}", admin.listen))?;
        tokio::spawn(crate::console::serve(
            console_listener,
            crate::console::Console::new(config_rx.clone(), store.clone(), health.clone()),
            control.shutdown.clone(),
        ));
    }
    let serving = tokio::spawn(ingress::serve(
        listener,
        ingress::router(state.clone()),
        config_rx.clone(),
        health.clone(),
        control.shutdown.clone(),
    ));
    tracing::info!(listen = %local, destinations = config_rx.borrow().destinations.len(), "chirpd is ready.");
    systemd::ready();

    loop {
        tokio::select! {
            _ = control.reload.notified() => {
                systemd::reloading();
                if let Some(next) = reload(&config_tx).await {
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
    // The workers stopped: another instance may take over their destinations at once.
    let led: Vec<String> = health.leading().into_iter().collect();
    if let Err(e) = store.release(&led).await {
        tracing::warn!(error = %e, "Cannot release the destinations' leases; another instance takes over when they lapse.");
    }
    tracing::info!("chirpd stopped.");
    Ok(())
}

/// How long the daemon waits at start for a PostgreSQL store that cannot be reached, before it gives up
/// and lets systemd start it again: well within the unit's start timeout, and long enough that systemd's
/// start limit (5 starts in 10 s) never gives up on a database that is rebooting.
const STORE_PATIENCE: Duration = Duration::from_secs(60);

/// Opens the store the config names. A database that cannot be reached yet (it is rebooting too) is
/// tried again with a growing delay for `STORE_PATIENCE`; anything else fails at once.
async fn open_store(
    config: &Config,
    shutdown: &CancellationToken,
) -> Result<SharedStore, outbox::StoreError> {
    let started = tokio::time::Instant::now();
    let mut wait = Duration::from_millis(500);
    loop {
        match outbox::open_configured(config, outbox::Role::Daemon).await {
            Err(outbox::StoreError::Unavailable(e))
                if config.fleet.url.is_some() && started.elapsed() + wait < STORE_PATIENCE =>
            {
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "Cannot reach PostgreSQL yet; trying again.");
                systemd::status(&format!("waiting for PostgreSQL: {e}"));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.cancelled() => return Err(outbox::StoreError::Closed),
                }
                wait = (wait * 2).min(Duration::from_secs(8));
            }
            opened => return opened,
        }
    }
}

/// Turns other instances' announcements into wake-ups: new deliveries wake the fanout, new items the
/// workers, and a resync (announcements may have been missed) both.
async fn relay_changes(
    mut changes: tokio::sync::broadcast::Receiver<outbox::Change>,
    fanout: Arc<Notify>,
    planned: Arc<watch::Sender<u64>>,
    shutdown: CancellationToken,
) {
    use tokio::sync::broadcast::error::RecvError;
    let bump = || planned.send_modify(|n| *n = n.wrapping_add(1));
    loop {
        let change = tokio::select! {
            c = changes.recv() => c,
            _ = shutdown.cancelled() => return,
        };
        match change {
            Ok(outbox::Change::Deliveries) => fanout.notify_one(),
            Ok(outbox::Change::Items(_)) => bump(),
            Ok(outbox::Change::Resync) | Err(RecvError::Lagged(_)) => {
                fanout.notify_one();
                bump();
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// Loads and validates the config file again and publishes it; on any error keeps the running one.
/// Loading reads files and compiles templates, so it runs on a blocking thread.
async fn reload(config_tx: &watch::Sender<Arc<Config>>) -> Option<Arc<Config>> {
    let current = config_tx.borrow().clone();
    let Some(path) = current.path.clone() else {
        tracing::warn!(
            "Reload requested, but chirpd runs on its embedded defaults: nothing to reload."
        );
        return None;
    };
    let loaded = tokio::task::spawn_blocking(move || config::load(Some(&path), &ProcessEnv)).await;
    let mut next = match loaded {
        Ok(Ok(c)) => c,
        Ok(Err(errors)) => {
            tracing::error!("Reload refused; still running the previous config:\n{errors}");
            return None;
        }
        Err(e) => {
            tracing::error!(error = %e, "Reload failed; still running the previous config.");
            return None;
        }
    };
    for key in keep_restart_only(&current, &mut next) {
        tracing::warn!(
            key,
            "This setting changes on restart only; the running value is kept until then."
        );
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

/// Keeps in `next` the settings bound at start (the socket is open, the store is in use, the connection
/// semaphore is sized), and names each one the new file changed. Every other setting applies on reload:
/// `server.header_timeout` to new connections, `server.max_body_bytes` and `server.body_timeout` to new
/// requests, `[dispatch]` (the watchdog's request timeout too) to the new generation of workers.
pub fn keep_restart_only(current: &Config, next: &mut Config) -> Vec<&'static str> {
    let mut kept = Vec::new();
    if next.server.listen != current.server.listen {
        next.server.listen = current.server.listen;
        kept.push("server.listen");
    }
    if next.server.max_connections != current.server.max_connections {
        next.server.max_connections = current.server.max_connections;
        kept.push("server.max_connections");
    }
    if next.server.max_buffered_bytes != current.server.max_buffered_bytes {
        next.server.max_buffered_bytes = current.server.max_buffered_bytes;
        kept.push("server.max_buffered_mb");
    }
    if next.store_path != current.store_path {
        next.store_path = current.store_path.clone();
        kept.push("store.path");
    }
    if next.store_max_bytes != current.store_max_bytes {
        next.store_max_bytes = current.store_max_bytes;
        kept.push("store.max_size_mb");
    }
    let url = |c: &Config| c.fleet.url.as_ref().map(|u| u.reference.clone());
    if url(next) != url(current) {
        next.fleet.url = current.fleet.url.clone();
        kept.push("store.url");
    }
    if next.fleet.instance != current.fleet.instance {
        next.fleet.instance = current.fleet.instance.clone();
        kept.push("store.instance");
    }
    let console = |c: &Config| c.admin.as_ref().map(|a| a.listen);
    if console(next) != console(current) {
        match (&mut next.admin, &current.admin) {
            (Some(n), Some(c)) => n.listen = c.listen,
            // Turning the console on or off takes a restart too: its listener is bound at start.
            (n, c) => *n = c.clone(),
        }
        kept.push("admin.listen");
    }
    if next.fleet.pool_size != current.fleet.pool_size {
        next.fleet.pool_size = current.fleet.pool_size;
        kept.push("store.pool_size");
    }
    kept
}

/// Runs a long-lived stage, and restarts it (after a second) if it ends while `shutdown` is not
/// cancelled, which only a panic should cause. Each restart is logged, counted in
/// `chirpd_stage_restarts_total` and shown by `/readyz` until the stage works again.
async fn supervise<F, Fut>(
    stage: &'static str,
    health: Health,
    shutdown: CancellationToken,
    start: F,
) where
    F: Fn(CancellationToken) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        let ended = tokio::spawn(start(shutdown.clone())).await;
        if shutdown.is_cancelled() {
            return;
        }
        let why = match ended {
            Ok(()) => "it stopped on its own".to_string(),
            Err(e) => format!("it failed: {e}"),
        };
        metrics::counter!("chirpd_stage_restarts_total", "stage" => stage).increment(1);
        tracing::error!(stage, %why, "A stage ended unexpectedly; restarting it in 1 s.");
        health.stage_failed(stage, format!("restarted after {why}"));
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// What every dispatcher worker shares, to spawn a generation of them.
struct Team {
    store: SharedStore,
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
                sink: Sink::for_destination(&self.http, d),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn load(dir: &std::path::Path, server: &str, store: &str) -> Config {
        let path = dir.join("chirpd.toml");
        std::fs::write(&path, format!("[server]\n{server}\n[store]\n{store}\n")).unwrap();
        config::load(Some(&path), &config::EmptyEnv).unwrap()
    }

    #[test]
    fn a_reload_names_and_keeps_every_setting_bound_at_start_and_applies_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let current = load(
            dir.path(),
            "listen = \"127.0.0.1:9000\"\nmax_connections = 10\nheader_timeout = \"5s\"",
            "path = \"a.db\"",
        );
        let mut next = load(
            dir.path(),
            "listen = \"127.0.0.1:9001\"\nmax_connections = 20\nheader_timeout = \"2s\"",
            "path = \"b.db\"\nmax_size_mb = 64",
        );
        let kept = keep_restart_only(&current, &mut next);
        assert_eq!(
            kept,
            vec![
                "server.listen",
                "server.max_connections",
                "store.path",
                "store.max_size_mb"
            ]
        );
        assert_eq!(next.server.listen, current.server.listen);
        assert_eq!(next.server.max_connections, 10);
        assert_eq!(next.store_path, current.store_path);
        assert_eq!(next.store_max_bytes, current.store_max_bytes);
        // Applied on reload: new connections get the new header timeout.
        assert_eq!(next.server.header_timeout, Duration::from_secs(2));
        let mut same = next.clone();
        assert!(keep_restart_only(&next, &mut same).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stage_that_panics_is_restarted_and_shown_until_it_works() {
        let health = Health::default();
        let shutdown = CancellationToken::new();
        let starts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let task = tokio::spawn(supervise("fanout", health.clone(), shutdown.clone(), {
            let (starts, health) = (starts.clone(), health.clone());
            move |stop: CancellationToken| {
                let n = starts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let health = health.clone();
                async move {
                    if n == 0 {
                        panic!("a bug in the stage");
                    }
                    // Working again: clears the mark, as the fanout does after a batch.
                    health.stage_ok("fanout");
                    stop.cancelled().await;
                }
            }
        }));
        // Paused time runs the one-second restart delay as soon as every task is idle.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while starts.load(std::sync::atomic::Ordering::SeqCst) < 2 {
            assert!(tokio::time::Instant::now() < deadline, "not restarted");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !health.failing_stages().is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "still shown as failing"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        shutdown.cancel();
        task.await.unwrap();
        assert_eq!(starts.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
