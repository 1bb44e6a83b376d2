//! The systemd notification protocol: READY, RELOADING, STOPPING, and a watchdog fed by real progress.
//!
//! Outside systemd (`$NOTIFY_SOCKET` unset) every call is a no-op, so the daemon runs the same by hand.
//! The watchdog keep-alive is sent only when the store's writer commits (a query would still answer with
//! the writer dead), the HTTP router answers `/healthz`, the accept loop has turned within the last
//! seconds, and every dispatcher worker has turned recently; a daemon wedged in any of them stops feeding
//! the watchdog, and systemd restarts it. The router is called in process, not through the listener, so
//! that clients holding every connection cannot make systemd restart a healthy daemon.

use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::dispatch;
use crate::health::Health;
use crate::ingress;

/// The accept loop beats every second; this long without a beat means it is stuck.
const HTTP_STALE: Duration = Duration::from_secs(10);
use crate::outbox::SharedStore;

/// Tells systemd the daemon is ready: the store is open, the config and templates are loaded, and the
/// listener accepts connections.
pub fn ready() {
    send(&[NotifyState::Ready], "READY");
}

/// Tells systemd what the daemon is doing while it starts (shown by `systemctl status`).
pub fn status(text: &str) {
    send(&[NotifyState::Status(text)], "STATUS");
}

/// Tells systemd a reload began; `ready` ends it.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now], "RELOADING"),
        Err(_) => send(&[NotifyState::Reloading], "RELOADING"),
    }
}

/// Tells systemd the daemon is stopping, so that it waits for the drain instead of declaring a failure.
pub fn stopping() {
    send(&[NotifyState::Stopping], "STOPPING");
}

fn send(states: &[NotifyState<'_>], what: &str) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "Cannot notify systemd of {what}.");
    }
}

/// Feeds the watchdog every `interval / 2`, but only after every probe passed. The request timeout that
/// bounds a worker's turn is read from the current config, so a reload applies it.
pub async fn watchdog(
    interval: Duration,
    store: SharedStore,
    router: axum::Router,
    health: Health,
    config: watch::Receiver<Arc<Config>>,
    shutdown: CancellationToken,
) {
    let period = interval / 2;
    let probe_timeout = period.max(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shutdown.cancelled() => return,
        }
        let store_ok = matches!(
            tokio::time::timeout(probe_timeout, store.probe_commit()).await,
            Ok(Ok(()))
        );
        let probe = http::Request::get("/healthz").body(axum::body::Body::empty());
        let http_ok = match probe {
            Ok(request) => matches!(
                tokio::time::timeout(probe_timeout, tower::ServiceExt::oneshot(router.clone(), request)).await,
                Ok(Ok(r)) if r.status().is_success()
            ),
            Err(_) => false,
        } && health
            .stale_workers(HTTP_STALE)
            .iter()
            .all(|w| w != ingress::HTTP_BEAT);
        // A worker turns at least every IDLE_POLL, or after one request; allow both, twice over.
        let request_timeout = config.borrow().dispatch.request_timeout;
        let stale = health.stale_workers((dispatch::IDLE_POLL + request_timeout) * 2);
        if store_ok && http_ok && stale.is_empty() {
            send(&[NotifyState::Watchdog], "WATCHDOG");
        } else {
            tracing::error!(store_ok, http_ok, stale_workers = ?stale, "A component made no progress; not feeding the watchdog.");
        }
    }
}
