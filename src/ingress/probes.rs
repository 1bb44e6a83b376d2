//! The probes: `/healthz` (the process answers), `/readyz` (it can do its job, with the reasons if not),
//! `/readyz/ingress` (it can accept webhooks: what a load balancer in front of a fleet should check)
//! and `/metrics` (Prometheus text).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;

use crate::ingress::AppState;

/// How long `/readyz` waits for the store to commit before calling it not ready.
const STORE_PROBE: std::time::Duration = std::time::Duration::from_secs(5);

pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Prometheus text. Queue depth is read from the store at each scrape, so it is the truth, not a sum of
/// counters that a restart would reset.
pub async fn metrics(
    State(state): State<AppState>,
) -> (
    StatusCode,
    [(axum::http::HeaderName, &'static str); 1],
    String,
) {
    if let Ok(counts) = state.store.counts().await {
        for st in [
            "pending", "sending", "retry", "sent", "dead", "review", "rejected",
        ] {
            let n = counts.iter().find(|(s, _)| s == st).map_or(0, |(_, n)| *n);
            metrics::gauge!("chirpd_queue_items", "state" => st).set(n as f64);
            if st == "review" {
                // What the people reviewing posts have to decide, for an alert of its own.
                metrics::gauge!("chirpd_review_waiting").set(n as f64);
            }
        }
    }
    let body = crate::telemetry::metrics_handle().render();
    (
        StatusCode::OK,
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    )
}

/// Ready to accept webhooks: the store commits. For a load balancer in front of several instances, which
/// must keep sending webhooks to an instance whose destination waits for the admin (every instance shares
/// that wait, and refusing webhooks would lose them), but not to one that cannot store them.
pub async fn readyz_ingress(
    State(state): State<AppState>,
) -> (StatusCode, Json<serde_json::Value>) {
    let reason = store_commits(&state.store).await;
    let status = if reason.is_none() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(
            json!({ "ready": reason.is_none(), "reasons": reason.into_iter().collect::<Vec<_>>() }),
        ),
    )
}

/// Why the store cannot commit right now, if it cannot.
async fn store_commits(store: &crate::outbox::SharedStore) -> Option<String> {
    match tokio::time::timeout(STORE_PROBE, store.probe_commit()).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("store: {e}")),
        Err(_) => Some(format!(
            "store: no commit within {} s",
            STORE_PROBE.as_secs()
        )),
    }
}

/// Why the daemon is not ready, the store aside: failing stages, and destinations that need the admin.
/// The console shows these without the commit probe, since reading it must not write.
pub fn unready_reasons(health: &crate::health::Health) -> Vec<String> {
    let mut reasons = Vec::new();
    for (stage, reason) in health.failing_stages() {
        reasons.push(format!("{stage}: {reason}"));
    }
    for (dest, hold) in &health.holds() {
        if hold.needs_admin {
            reasons.push(format!("destination {dest}: {}", hold.reason));
        }
    }
    reasons
}

/// Ready when the store commits, every stage works and no destination needs the admin. Rate-limit waits
/// are listed but do not make the daemon unready: they end on their own.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let mut reasons = Vec::new();
    // A commit, not a query: a stuck writer leaves queries answering.
    reasons.extend(store_commits(&state.store).await);
    reasons.extend(unready_reasons(&state.health));
    let holds = state.health.holds();
    let ready = reasons.is_empty();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let config = state.config.borrow().clone();
    (
        status,
        Json(json!({
            "ready": ready,
            "reasons": reasons,
            "holds": holds,
            "config": config.path.as_ref().map(|p| p.display().to_string()),
            "sources": config.sources.len(),
            "destinations": config.destinations.len(),
            "routes": config.pipeline.routes.len(),
            "store": if config.fleet.url.is_some() { "postgres" } else { "sqlite" },
            "instance": config.fleet.instance,
            "leading": state.health.leading(),
        })),
    )
}
