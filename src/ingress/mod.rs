//! The HTTP front: accepts connections under a cap and timeouts, and routes requests.
//!
//! Connections are served by hyper's HTTP/1 server with a header read timeout (slowloris), a semaphore
//! caps open connections, and `hooks` enforces the body limit and body timeout itself. The listener and
//! the shutdown token are passed in, so tests run the real server on 127.0.0.1:0.
//! This module must not parse a body before `verify` accepted it, nor talk to X.

pub mod hooks;
pub mod probes;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore, watch};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::health::Health;
use crate::outbox::SharedStore;

/// How long in-flight requests may take to finish after shutdown begins.
pub const DRAIN: Duration = Duration::from_secs(10);

/// What every request handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The current config; a reload swaps it atomically.
    pub config: watch::Receiver<Arc<Config>>,
    pub store: SharedStore,
    /// Wakes the fanout after a delivery is stored.
    pub fanout: Arc<Notify>,
    pub health: Health,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/hooks/{source}", post(hooks::receive).head(hooks::head))
        .route("/healthz", get(probes::healthz))
        .route("/readyz", get(probes::readyz))
        .route("/metrics", get(probes::metrics))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown`, then drains in-flight requests for up to `DRAIN`.
/// Each new connection gets the header timeout of the config current when it is accepted, so a reload
/// applies it; the connection cap is fixed at start.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: watch::Receiver<Arc<Config>>,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(config.borrow().server.max_connections));
    let graceful = GracefulShutdown::new();
    loop {
        // Waiting for a permit before accepting leaves extra connections in the kernel's backlog.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = shutdown.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Usually EMFILE: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(config.borrow().server.header_timeout);
        let conn = http.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN) => {
            tracing::warn!("Some requests were still in flight after the drain period; closing them.");
        }
    }
}
