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

/// The name under which the accept loop beats `Health`.
pub const HTTP_BEAT: &str = "(http server)";

/// Answers a connection over the cap: 503 and close, within a second.
async fn refuse_busy(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let answer = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 40\r\n\r\n{\"error\":\"too many connections; retry\"}\n";
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(answer)).await;
    let _ = stream.shutdown().await;
}

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
    /// The bytes of request bodies all connections together may hold.
    pub body_budget: BodyBudget,
}

/// A budget of buffered body bytes shared by every request, counted in KiB. A request reserves what its
/// body may take before reading it, and gives it back when it is answered.
#[derive(Clone)]
pub struct BodyBudget(Arc<Semaphore>);

impl BodyBudget {
    pub fn new(bytes: usize) -> BodyBudget {
        BodyBudget(Arc::new(Semaphore::new((bytes / 1024).max(1))))
    }

    /// Reserves room for a body of up to `bytes`, or none if the budget is spent.
    pub fn reserve(&self, bytes: usize) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let kib = u32::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
        self.0.clone().try_acquire_many_owned(kib).ok()
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/hooks/{source}", post(hooks::receive).head(hooks::head))
        .route("/healthz", get(probes::healthz))
        .route("/readyz", get(probes::readyz))
        .route("/readyz/ingress", get(probes::readyz_ingress))
        .route("/metrics", get(probes::metrics))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown`, then drains in-flight requests for up to `DRAIN`.
/// Each new connection gets the header timeout of the config current when it is accepted, so a reload
/// applies it; the connection cap is fixed at start. A connection beyond the cap is answered 503 at once
/// and closed, rather than left waiting in the backlog where the sender cannot tell why. The accept loop
/// beats `health` under the name `HTTP_BEAT` every second, which the watchdog reads: a busy listener
/// cannot starve the watchdog, and a stuck one stops it.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: watch::Receiver<Arc<Config>>,
    health: Health,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(config.borrow().server.max_connections));
    let graceful = GracefulShutdown::new();
    let mut beat = tokio::time::interval(Duration::from_secs(1));
    loop {
        health.beat(HTTP_BEAT);
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
            _ = beat.tick() => continue,
            _ = shutdown.cancelled() => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics::counter!("chirpd_connections_refused_total").increment(1);
            tokio::spawn(refuse_busy(stream));
            continue;
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
