//! Mastodon: `POST {instance}/api/v1/statuses` with a bearer token.
//!
//! "Protected updates" map to `private` visibility (followers only). The outbox item id is sent as the
//! `Idempotency-Key`, so a retry after a crash cannot create a second status. Rate limits come in
//! `X-RateLimit-Remaining` and `X-RateLimit-Reset` (an ISO-8601 time).

use std::time::Duration;

use http::HeaderMap;
use serde_json::Value;

use crate::clock;
use crate::ratelimit::ApiLimits;
use crate::sink::{Answer, Outcome};

#[derive(Debug, Clone)]
pub struct MastodonClient {
    http: reqwest::Client,
    instance: String,
}

impl MastodonClient {
    pub fn new(http: reqwest::Client, instance: &str) -> MastodonClient {
        MastodonClient {
            http,
            instance: instance.trim_end_matches('/').to_string(),
        }
    }

    pub async fn post_status(
        &self,
        text: &str,
        visibility: &str,
        idempotency_key: &str,
        token: &str,
        timeout: Duration,
    ) -> Answer {
        let sent = self
            .http
            .post(format!("{}/api/v1/statuses", self.instance))
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
            .header("Idempotency-Key", idempotency_key)
            .json(&serde_json::json!({ "status": text, "visibility": visibility }))
            .timeout(timeout)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                return Answer {
                    outcome: Outcome::Retry {
                        reason: format!("request to Mastodon failed: {e}"),
                    },
                    limits: ApiLimits::default(),
                };
            }
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap_or_default();
        classify(status, &headers, &body)
    }
}

/// Classifies an answer of `POST /api/v1/statuses`.
pub fn classify(status: u16, headers: &HeaderMap, body: &[u8]) -> Answer {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let reset = headers
        .get("x-ratelimit-reset")
        .and_then(|v| v.to_str().ok())
        .and_then(clock::parse_timestamp);
    let remaining = headers
        .get("x-ratelimit-remaining")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let spent = status == 429 || remaining == Some(0);
    let limits = ApiLimits {
        spent_until: if spent { reset } else { None },
        remaining,
    };
    let reason = format!(
        "Mastodon answered {status}: {}",
        json.get("error")
            .and_then(Value::as_str)
            .unwrap_or("no reason given")
    );
    let outcome = match status {
        200..=299 => Outcome::Sent {
            remote_id: json.get("id").and_then(Value::as_str).map(str::to_string),
        },
        429 => Outcome::RateLimited {
            until: reset,
            reason,
        },
        401 => Outcome::Unauthorized { reason },
        403 => Outcome::Pause { reason },
        408 | 500..=599 => Outcome::Retry { reason },
        _ => Outcome::Dead { reason },
    };
    Answer { outcome, limits }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_with_iso_resets() {
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining", "0".parse().unwrap());
        h.insert(
            "x-ratelimit-reset",
            "2026-11-25T18:00:00.000Z".parse().unwrap(),
        );
        let a = classify(200, &h, br#"{"id":"109"}"#);
        assert_eq!(
            a.outcome,
            Outcome::Sent {
                remote_id: Some("109".into())
            }
        );
        assert_eq!(a.limits.spent_until, Some(1_795_629_600_000));
        let a = classify(429, &h, br#"{"error":"Too many requests"}"#);
        assert!(matches!(
            a.outcome,
            Outcome::RateLimited {
                until: Some(1_795_629_600_000),
                ..
            }
        ));
        assert!(matches!(
            classify(
                422,
                &HeaderMap::new(),
                br#"{"error":"Validation failed: Text character limit of 500 exceeded"}"#
            )
            .outcome,
            Outcome::Dead { .. }
        ));
        assert!(matches!(
            classify(401, &HeaderMap::new(), b"{}").outcome,
            Outcome::Unauthorized { .. }
        ));
    }
}
