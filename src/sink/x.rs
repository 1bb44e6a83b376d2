//! The X API v2 client for tweets: `POST {api_base}/2/tweets` signed with OAuth 1.0a, and the account
//! lookup `GET /2/users/me?user.fields=protected` used by the protected-account guard.
//!
//! Classification of X's answers follows SPEC §6: 2xx sent; 403 "duplicate content" already posted;
//! 429 rate-limited until the largest reset; 401, 402 and 403 access-level (code 453) or client-forbidden
//! pause the destination; other 4xx are dead letters with X's reason; 5xx, timeouts and resets retry.

use std::time::Duration;

use http::HeaderMap;
use serde_json::Value;

use crate::clock;
use crate::ratelimit;
use crate::sink::oauth1::{self, Credentials};
use crate::sink::{Answer, Outcome};

/// A client for one destination's account.
#[derive(Debug, Clone)]
pub struct XClient {
    http: reqwest::Client,
    api_base: String,
    creds: Credentials,
}

impl XClient {
    pub fn new(http: reqwest::Client, api_base: &str, creds: Credentials) -> XClient {
        XClient {
            http,
            api_base: api_base.trim_end_matches('/').to_string(),
            creds,
        }
    }

    /// Posts a tweet and classifies X's answer.
    pub async fn post_tweet(&self, text: &str, timeout: Duration) -> Answer {
        let url = format!("{}/2/tweets", self.api_base);
        let auth = self.authorization("POST", &url, &[]);
        let sent = self
            .http
            .post(&url)
            .header(http::header::AUTHORIZATION, auth)
            .json(&serde_json::json!({ "text": text }))
            .timeout(timeout)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return transport_failure(&e),
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = match response.bytes().await {
            Ok(b) => b,
            Err(e) if status < 300 => {
                // X answered 2xx but the body was cut: the post exists; we only lack its id.
                tracing::warn!(error = %e, "X answered 2xx but its body could not be read");
                bytes::Bytes::new()
            }
            Err(e) => return transport_failure(&e),
        };
        classify(status, &headers, &body)
    }

    /// Asks X whether the account is protected.
    pub async fn is_protected(&self, timeout: Duration) -> Result<bool, String> {
        let base = format!("{}/2/users/me", self.api_base);
        let auth = self.authorization("GET", &base, &[("user.fields", "protected")]);
        let response = self
            .http
            .get(format!("{base}?user.fields=protected"))
            .header(http::header::AUTHORIZATION, auth)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| format!("GET /2/users/me failed: {}", describe_transport(&e)))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .map_err(|e| format!("GET /2/users/me answered unreadable JSON: {e}"))?;
        if !status.is_success() {
            return Err(format!(
                "GET /2/users/me answered {}: {}",
                status.as_u16(),
                reason_of(&body)
            ));
        }
        body.pointer("/data/protected")
            .and_then(Value::as_bool)
            .ok_or_else(|| "GET /2/users/me answered without data.protected".to_string())
    }

    fn authorization(&self, method: &str, url: &str, params: &[(&str, &str)]) -> String {
        let now_secs = u64::try_from(clock::now_ms() / 1000).unwrap_or(1);
        oauth1::authorization(&self.creds, method, url, params, &oauth1::nonce(), now_secs)
    }
}

/// Classifies an answer of `POST /2/tweets`.
pub fn classify(status: u16, headers: &HeaderMap, body: &[u8]) -> Answer {
    let limits = ratelimit::read_x_headers(headers, status == 429);
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let reason = || format!("X answered {status}: {}", reason_of(&json));
    let outcome = match status {
        200..=299 => Outcome::Sent {
            remote_id: json
                .pointer("/data/id")
                .and_then(Value::as_str)
                .map(str::to_string),
        },
        403 if is_duplicate(&json) => Outcome::AlreadyPosted,
        429 => Outcome::RateLimited {
            until: limits.spent_until,
            reason: reason(),
        },
        401 | 402 => Outcome::Pause { reason: reason() },
        403 if has_code(&json, 453)
            || type_contains(&json, "client-forbidden")
            || type_contains(&json, "client-not-enrolled") =>
        {
            Outcome::Pause { reason: reason() }
        }
        408 | 500..=599 => Outcome::Retry { reason: reason() },
        _ => Outcome::Dead { reason: reason() },
    };
    Answer { outcome, limits }
}

fn transport_failure(e: &reqwest::Error) -> Answer {
    Answer {
        outcome: Outcome::Retry {
            reason: describe_transport(e),
        },
        limits: ratelimit::XLimits {
            spent_until: None,
            remaining: None,
        },
    }
}

fn describe_transport(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "request to X timed out".to_string()
    } else if e.is_connect() {
        "could not connect to X".to_string()
    } else {
        // The error's own text can name the URL; the URL holds no secret (OAuth goes in a header), but a
        // short cause reads better in logs.
        let cause = std::error::Error::source(e).map_or_else(|| e.to_string(), ToString::to_string);
        format!("request to X failed: {cause}")
    }
}

fn is_duplicate(json: &Value) -> bool {
    let detail = json.get("detail").and_then(Value::as_str).unwrap_or("");
    detail.contains("duplicate content") || has_code(json, 187)
}

fn has_code(json: &Value, code: i64) -> bool {
    json.get("errors")
        .and_then(Value::as_array)
        .is_some_and(|errs| {
            errs.iter()
                .any(|e| e.get("code").and_then(Value::as_i64) == Some(code))
        })
}

fn type_contains(json: &Value, needle: &str) -> bool {
    json.get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.contains(needle))
}

/// X's one-line explanation from a problem or v1.1-style error body.
fn reason_of(json: &Value) -> String {
    let text = json
        .get("detail")
        .and_then(Value::as_str)
        .or_else(|| json.get("title").and_then(Value::as_str))
        .or_else(|| json.pointer("/errors/0/message").and_then(Value::as_str))
        .unwrap_or("no reason given");
    text.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify_json(status: u16, body: &str) -> Outcome {
        classify(status, &HeaderMap::new(), body.as_bytes()).outcome
    }

    #[test]
    fn created_tweets_carry_their_id() {
        let o = classify_json(201, r#"{"data":{"id":"1445880548472328192","text":"hi"}}"#);
        assert_eq!(
            o,
            Outcome::Sent {
                remote_id: Some("1445880548472328192".into())
            }
        );
    }

    #[test]
    fn duplicate_content_means_already_posted() {
        let body = r#"{"detail":"You are not allowed to create a Tweet with duplicate content.","type":"about:blank","title":"Forbidden","status":403}"#;
        assert_eq!(classify_json(403, body), Outcome::AlreadyPosted);
    }

    #[test]
    fn account_level_errors_pause() {
        let code453 = r#"{"errors":[{"message":"You currently have access to a subset of X API V2 endpoints","code":453}]}"#;
        assert!(matches!(classify_json(403, code453), Outcome::Pause { .. }));
        let credits = r#"{"detail":"credits depleted","status":402,"title":"Payment Required","type":"https://api.x.com/2/problems/credits-depleted"}"#;
        assert!(
            matches!(classify_json(402, credits), Outcome::Pause { reason } if reason.contains("credits depleted"))
        );
        let unauthorized =
            r#"{"title":"Unauthorized","type":"about:blank","status":401,"detail":"Unauthorized"}"#;
        assert!(matches!(
            classify_json(401, unauthorized),
            Outcome::Pause { .. }
        ));
    }

    #[test]
    fn request_errors_are_dead_and_server_errors_retry() {
        let invalid = r#"{"title": "Invalid Request", "detail": "The text is too long.", "type": "https://api.x.com/2/problems/invalid-request"}"#;
        assert_eq!(
            classify_json(400, invalid),
            Outcome::Dead {
                reason: "X answered 400: The text is too long.".into()
            }
        );
        assert!(matches!(
            classify_json(503, "<html>"),
            Outcome::Retry { .. }
        ));
        assert!(matches!(
            classify_json(403, r#"{"detail":"nope"}"#),
            Outcome::Dead { .. }
        ));
    }

    #[test]
    fn too_many_requests_reads_the_reset() {
        let mut h = HeaderMap::new();
        h.insert("x-rate-limit-remaining", "0".parse().unwrap());
        h.insert("x-rate-limit-reset", "1705420800".parse().unwrap());
        let a = classify(429, &h, br#"{"title":"Too Many Requests","detail":"Too Many Requests","type":"about:blank","status":429}"#);
        assert!(matches!(
            a.outcome,
            Outcome::RateLimited {
                until: Some(1_705_420_800_000),
                ..
            }
        ));
    }
}
