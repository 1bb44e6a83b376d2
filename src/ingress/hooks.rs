//! `POST /hooks/{source}`: the webhook endpoint.
//!
//! The order is the contract of docs/contract.md §1: find the source; refuse an oversized body before
//! reading it (413); refuse what the headers and URL alone prove wrong (401); reserve room in the shared
//! body budget (503); read the body at a minimum rate within the body timeout (408); verify the signature
//! on the exact raw bytes (401); answer provider handshakes; only then look at the body (400 if it is not
//! JSON); dedupe and store it with fsync; and only then answer 202 (or 200 for a duplicate). A store
//! failure, or no commit within `STORE_DEADLINE`, answers 503 so the sender retries, and nothing was
//! half-written.

use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::clock;
use crate::config::Config;
use crate::config::secret::Secret;
use crate::failpoint;
use crate::ingress::AppState;
use crate::normalize::{self, Handshake};
use crate::outbox::{NewDelivery, StoreError};
use crate::verify::{Incoming, Verifier, asana};

pub async fn receive(
    State(state): State<AppState>,
    Path(source_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    // One snapshot of the config serves the whole request, even if a reload lands meanwhile.
    let cfg = state.config.borrow().clone();
    let known = cfg.sources.contains_key(&source_id);
    let response = handle(&state, &cfg, &source_id, &uri, headers, body).await;
    let outcome = match response.extensions().get::<OutcomeLabel>() {
        Some(o) => o.0,
        None => by_status(response.status()),
    };
    // Only configured sources become label values, so a scan of random paths cannot grow the metrics.
    let source = if known {
        source_id
    } else {
        "unknown".to_string()
    };
    metrics::counter!("chirpd_webhooks_total", "source" => source, "outcome" => outcome)
        .increment(1);
    metrics::histogram!("chirpd_webhook_duration_seconds", "outcome" => outcome)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The outcome label of an answer whose status alone does not tell it (200 is a duplicate or a handshake).
#[derive(Debug, Clone, Copy)]
struct OutcomeLabel(&'static str);

fn tagged(mut response: Response, outcome: &'static str) -> Response {
    response.extensions_mut().insert(OutcomeLabel(outcome));
    response
}

fn by_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        202 => "accepted",
        200 => "handshake",
        400 => "bad_request",
        401 => "unauthorized",
        404 => "unknown_source",
        408 => "timeout",
        413 => "too_large",
        503 => "unavailable",
        _ => "other",
    }
}

async fn handle(
    state: &AppState,
    cfg: &Config,
    source_id: &str,
    uri: &Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let source_id = source_id.to_string();
    let Some(source) = cfg.sources.get(&source_id) else {
        return reject(
            StatusCode::NOT_FOUND,
            format!("unknown source {source_id:?}"),
        );
    };
    let max = cfg.server.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return too_large(max);
    }
    // What the headers and URL alone can refuse is refused before a byte of the body is read.
    if let Err(e) = source
        .verifier
        .precheck(&headers, uri.query(), clock::now_ms())
    {
        tracing::warn!(source = %source_id, reason = %e, "Webhook refused before its body: {e}");
        return reject(StatusCode::UNAUTHORIZED, e.to_string());
    }
    // Room for the body in the budget all requests share, held until the answer.
    let need = declared.map_or(max, |n| usize::try_from(n).unwrap_or(max));
    let Some(_reserved) = state.body_budget.reserve(need) else {
        tracing::warn!(source = %source_id, "Too many request bodies in memory; the sender was told to retry.");
        return reject(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many requests in flight; retry later".into(),
        );
    };
    let allowed = body_deadline(cfg.server.body_timeout, declared);
    let read = tokio::time::timeout(allowed, Limited::new(body, max).collect()).await;
    let body = match read {
        Err(_) => {
            return reject(
                StatusCode::REQUEST_TIMEOUT,
                format!("body not received within {} ms", allowed.as_millis()),
            );
        }
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => return too_large(max),
        Ok(Err(e)) => return reject(StatusCode::BAD_REQUEST, format!("cannot read body: {e}")),
        Ok(Ok(collected)) => collected.to_bytes(),
    };

    let now = clock::now_ms();
    let query = uri.query();
    // A request that carries a signature is an event, never a handshake, whatever else it carries.
    if let Verifier::Asana(asana) = &source.verifier
        && let Some(secret) = headers.get(asana::HANDSHAKE_HEADER)
        && !headers.contains_key(asana::SIGNATURE_HEADER)
    {
        return asana_handshake(state, &source_id, asana, query, secret.clone(), now).await;
    }
    let learned = match &source.verifier {
        Verifier::Asana(_) => match state.store.learned_secret(&source_id).await {
            Ok(s) => s,
            Err(e) => return store_failed(&source_id, &e),
        },
        _ => None,
    };
    let incoming = Incoming {
        headers: &headers,
        query,
        body: &body,
        learned_secret: learned.as_ref(),
    };
    if let Err(e) = source.verifier.verify(&incoming, now) {
        tracing::warn!(source = %source_id, reason = %e, "Webhook refused: {e}");
        return reject(StatusCode::UNAUTHORIZED, e.to_string());
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/x-www-form-urlencoded") {
        return reject(
            StatusCode::BAD_REQUEST,
            "form-encoded bodies are not accepted: set the webhook's content type to application/json".into(),
        );
    }
    let payload: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return reject(StatusCode::BAD_REQUEST, format!("body is not JSON: {e}")),
    };
    let meta = normalize::meta(&source.provider, &headers);
    let sha = hex::encode(Sha256::digest(&body));
    let delivery = NewDelivery {
        source: source_id.clone(),
        dedupe_key: meta
            .delivery_id
            .clone()
            .unwrap_or_else(|| format!("sha256:{sha}")),
        body_sha256: (!meta.id_is_signed).then_some(sha),
        event: meta.event.clone(),
        body,
        received_at: now,
        handshake: false,
    };
    if let Some(handshake) = normalize::handshake(&source.provider, &meta, &payload) {
        // Kept, never planned: replayed under another event name, the same signed body is a duplicate.
        let kept = NewDelivery {
            handshake: true,
            ..delivery
        };
        if let Err(e) = state.store.record_delivery(kept).await {
            return store_failed(&source_id, &e);
        }
        return match handshake {
            Handshake::Ping => {
                tracing::info!(source = %source_id, "Ping answered.");
                (StatusCode::OK, Json(json!({"ping": "pong"}))).into_response()
            }
            Handshake::SlackChallenge(challenge) => {
                tracing::info!(source = %source_id, "Slack URL verification answered.");
                (StatusCode::OK, Json(json!({"challenge": challenge}))).into_response()
            }
        };
    }

    // A store that does not answer (a stuck disk) must not hold the connection: the sender retries.
    let recorded = tokio::time::timeout(STORE_DEADLINE, state.store.record_delivery(delivery))
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(format!(
                "no commit within {} s",
                STORE_DEADLINE.as_secs()
            )))
        });
    match recorded {
        Ok(r) if r.duplicate => {
            tracing::info!(source = %source_id, id = %r.id, "Duplicate delivery acknowledged; nothing new to post.");
            tagged(
                (StatusCode::OK, Json(json!({"id": r.id, "duplicate": true}))).into_response(),
                "duplicate",
            )
        }
        Ok(r) => {
            failpoint::hit(failpoint::AFTER_COMMIT);
            state.fanout.notify_one();
            tracing::debug!(source = %source_id, id = %r.id, event = meta.event.as_deref().unwrap_or("-"), "Webhook stored.");
            (
                StatusCode::ACCEPTED,
                Json(json!({"id": r.id, "duplicate": false})),
            )
                .into_response()
        }
        Err(e) => store_failed(&source_id, &e),
    }
}

/// Asana's handshake: with the right `?token=`, when the source may take a secret now, keep the offered
/// one and echo it back. Every decision is logged at WARN: it changes who can post through this source.
async fn asana_handshake(
    state: &AppState,
    source_id: &str,
    asana: &crate::verify::asana::Asana,
    query: Option<&str>,
    offered: HeaderValue,
    now: i64,
) -> Response {
    let known = async {
        let has_secret = state.store.learned_secret(source_id).await?.is_some();
        let window_open = state.store.handshake_open(source_id, now).await?;
        Ok::<_, StoreError>(asana::HandshakeState {
            has_secret,
            window_open,
        })
    };
    let handshake_state = match known.await {
        Ok(s) => s,
        Err(e) => return store_failed(source_id, &e),
    };
    if let Err(e) = asana.verify_handshake(query, offered.as_bytes(), handshake_state) {
        tracing::warn!(source = %source_id, reason = %e, "Asana handshake refused: {e}");
        return reject(StatusCode::UNAUTHORIZED, e.to_string());
    }
    let secret = String::from_utf8_lossy(offered.as_bytes()).into_owned();
    if let Err(e) = state
        .store
        .set_learned_secret(source_id, Secret::new(secret), now)
        .await
    {
        return store_failed(source_id, &e);
    }
    tracing::warn!(source = %source_id, replaced = handshake_state.has_secret, "Asana handshake accepted; its secret now signs this source's events.");
    let mut response = StatusCode::OK.into_response();
    response
        .headers_mut()
        .insert(asana::HANDSHAKE_HEADER, offered);
    response
}

/// The longest a request waits for its delivery's commit before it is answered 503.
const STORE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// The slowest a body may arrive, after a short grace: a client trickling a small body a byte a second
/// is cut off long before `body_timeout`.
const MIN_BODY_RATE: u64 = 16 * 1024;
const BODY_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// How long a body of `declared` bytes may take: the grace plus its size at `MIN_BODY_RATE`, and never
/// more than `body_timeout` (which alone bounds a body of unknown length).
fn body_deadline(body_timeout: std::time::Duration, declared: Option<u64>) -> std::time::Duration {
    match declared {
        Some(n) => (BODY_GRACE
            + std::time::Duration::from_millis(n.saturating_mul(1000) / MIN_BODY_RATE))
        .min(body_timeout),
        None => body_timeout,
    }
}

fn store_failed(source_id: &str, e: &StoreError) -> Response {
    tracing::error!(source = %source_id, error = %e, "Cannot store a webhook; the sender was told to retry.");
    reject(
        StatusCode::SERVICE_UNAVAILABLE,
        "store unavailable; retry later".into(),
    )
}

/// `HEAD /hooks/{source}`: some senders (Trello) check that the URL exists before using it.
pub async fn head(State(state): State<AppState>, Path(source_id): Path<String>) -> StatusCode {
    if state.config.borrow().sources.contains_key(&source_id) {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    }
}

fn too_large(max: usize) -> Response {
    reject(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("body exceeds {max} bytes"),
    )
}

fn reject(status: StatusCode, reason: String) -> Response {
    (status, Json(json!({"error": reason}))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_body_must_arrive_at_a_minimum_rate_and_within_the_body_timeout() {
        let timeout = Duration::from_secs(30);
        // A small body gets the grace: trickled a byte a second, it is cut after 5 s, not 30.
        assert_eq!(
            body_deadline(timeout, Some(100)),
            Duration::from_millis(5006)
        );
        // 160 KiB at 16 KiB/s: 10 s more.
        assert_eq!(
            body_deadline(timeout, Some(160 * 1024)),
            Duration::from_secs(15)
        );
        assert_eq!(body_deadline(timeout, Some(1024 * 1024)), timeout);
        assert_eq!(body_deadline(timeout, None), timeout);
        assert_eq!(
            body_deadline(Duration::from_millis(300), Some(10)),
            Duration::from_millis(300)
        );
    }
}
