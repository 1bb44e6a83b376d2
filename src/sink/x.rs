//! The X API v2 client: `POST /2/tweets`, `POST /2/dm_conversations/with/:id/messages`, the user lookups
//! `GET /2/users/by/username/:name` (DM recipients) and `GET /2/users/me?user.fields=protected` (the
//! protected-account guard), authorized with OAuth 1.0a or an OAuth 2.0 user token.
//!
//! Classification of X's answers follows docs/contract.md §6 and docs/protocols.md §2: 2xx sent; 403
//! "duplicate content" already posted; 429 rate-limited until the largest reset; 401 unauthorized (the
//! dispatcher refreshes an OAuth 2.0 token once); 402 and 403 access-level (code 453) or client-forbidden
//! pause the destination; other 4xx are dead letters with X's reason; 5xx, timeouts and resets retry.

use std::time::Duration;

use http::HeaderMap;
use serde_json::Value;

use crate::clock;
use crate::ratelimit::{self, ApiLimits};
use crate::sink::oauth1;
use crate::sink::{Answer, Outcome, RequestAuth};

/// A client for X's API v2 endpoints chirpd uses.
#[derive(Debug, Clone)]
pub struct XClient {
    http: reqwest::Client,
    api_base: String,
}

impl XClient {
    pub fn new(http: reqwest::Client, api_base: &str) -> XClient {
        XClient {
            http,
            api_base: api_base.trim_end_matches('/').to_string(),
        }
    }

    /// Posts a tweet and classifies X's answer.
    pub async fn post_tweet(&self, text: &str, auth: RequestAuth<'_>, timeout: Duration) -> Answer {
        let url = format!("{}/2/tweets", self.api_base);
        self.post_json(
            &url,
            &serde_json::json!({ "text": text }),
            auth,
            timeout,
            classify,
        )
        .await
    }

    /// Sends a direct message to one user id and classifies X's answer.
    pub async fn post_dm(
        &self,
        user_id: &str,
        text: &str,
        auth: RequestAuth<'_>,
        timeout: Duration,
    ) -> Answer {
        let url = format!(
            "{}/2/dm_conversations/with/{user_id}/messages",
            self.api_base
        );
        self.post_json(
            &url,
            &serde_json::json!({ "text": text }),
            auth,
            timeout,
            classify_dm,
        )
        .await
    }

    async fn post_json(
        &self,
        url: &str,
        body: &Value,
        auth: RequestAuth<'_>,
        timeout: Duration,
        classify: fn(u16, &HeaderMap, &[u8]) -> Answer,
    ) -> Answer {
        let sent = self
            .http
            .post(url)
            .header(
                http::header::AUTHORIZATION,
                self.authorization(auth, "POST", url, &[]),
            )
            .json(body)
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

    /// Looks up a user id by `@username` (without the @). `Ok(None)`: no such user.
    pub async fn user_id(
        &self,
        username: &str,
        auth: RequestAuth<'_>,
        timeout: Duration,
    ) -> Result<Option<String>, ReadError> {
        let url = format!("{}/2/users/by/username/{username}", self.api_base);
        let body = self.get_json(&url, &[], auth, timeout).await?;
        Ok(body
            .pointer("/data/id")
            .and_then(Value::as_str)
            .map(str::to_string))
    }

    /// Asks X whether the account is protected.
    pub async fn is_protected(
        &self,
        auth: RequestAuth<'_>,
        timeout: Duration,
    ) -> Result<bool, ReadError> {
        let url = format!("{}/2/users/me", self.api_base);
        let body = self
            .get_json(&url, &[("user.fields", "protected")], auth, timeout)
            .await?;
        body.pointer("/data/protected")
            .and_then(Value::as_bool)
            .ok_or_else(|| {
                ReadError::Other("GET /2/users/me answered without data.protected".to_string())
            })
    }

    async fn get_json(
        &self,
        url: &str,
        query: &[(&str, &str)],
        auth: RequestAuth<'_>,
        timeout: Duration,
    ) -> Result<Value, ReadError> {
        let full = if query.is_empty() {
            url.to_string()
        } else {
            format!("{url}?{}", crate::sink::oauth2::form_encode(query))
        };
        let response = self
            .http
            .get(&full)
            .header(
                http::header::AUTHORIZATION,
                self.authorization(auth, "GET", url, query),
            )
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| {
                ReadError::Other(format!(
                    "GET {} failed: {}",
                    path_of(url),
                    describe_transport(&e)
                ))
            })?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| {
            ReadError::Other(format!(
                "GET {} answered unreadable JSON: {e}",
                path_of(url)
            ))
        })?;
        if status.as_u16() == 404 && body.get("errors").is_some() {
            return Ok(Value::Null);
        }
        if !status.is_success() {
            let message = format!(
                "GET {} answered {}: {}",
                path_of(url),
                status.as_u16(),
                reason_of(&body)
            );
            return Err(if status.as_u16() == 401 {
                ReadError::Unauthorized(message)
            } else {
                ReadError::Other(message)
            });
        }
        // X answers 200 with `errors` and no `data` for an unknown username.
        Ok(body)
    }

    fn authorization(
        &self,
        auth: RequestAuth<'_>,
        method: &str,
        url: &str,
        params: &[(&str, &str)],
    ) -> String {
        match auth {
            RequestAuth::OAuth1(creds) => {
                let now_secs = u64::try_from(clock::now_ms() / 1000).unwrap_or(1);
                oauth1::authorization(creds, method, url, params, &oauth1::nonce(), now_secs)
            }
            RequestAuth::Bearer(token) => format!("Bearer {}", token.expose()),
        }
    }
}

/// Why a read (user lookup, protected check) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// 401: with OAuth 2.0, a refresh may help.
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Other(String),
}

fn path_of(url: &str) -> &str {
    url.find("/2/").map_or(url, |i| &url[i..])
}

/// Classifies an answer of `POST /2/dm_conversations/with/:id/messages`: a recipient who refuses DMs
/// fails that item only; an app without DM permission (code 93) pauses the destination.
pub fn classify_dm(status: u16, headers: &HeaderMap, body: &[u8]) -> Answer {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if status == 403 && has_code(&json, 93) {
        return Answer {
            outcome: Outcome::Pause {
                reason: format!("X answered 403: {}", reason_of(&json)),
            },
            limits: ratelimit::read_x_headers(headers, false),
        };
    }
    let mut answer = classify(status, headers, body);
    if let Outcome::Sent { remote_id: None } = answer.outcome {
        answer.outcome = Outcome::Sent {
            remote_id: json
                .pointer("/data/dm_event_id")
                .and_then(Value::as_str)
                .map(str::to_string),
        };
    }
    answer
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
        401 => Outcome::Unauthorized { reason: reason() },
        402 => Outcome::Pause { reason: reason() },
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
        limits: ApiLimits::default(),
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
            Outcome::Unauthorized { .. }
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
    fn dm_refusals_fail_the_recipient_and_missing_permission_pauses() {
        let refused = br#"{"detail":"You cannot send messages to this user.","type":"about:blank","title":"Forbidden","status":403}"#;
        assert!(matches!(
            classify_dm(403, &HeaderMap::new(), refused).outcome,
            Outcome::Dead { .. }
        ));
        let no_permission = br#"{"errors":[{"code":93,"message":"This application is not allowed to access or delete your direct messages."}]}"#;
        assert!(matches!(
            classify_dm(403, &HeaderMap::new(), no_permission).outcome,
            Outcome::Pause { .. }
        ));
        let ok = br#"{"data":{"dm_conversation_id":"1-2","dm_event_id":"99"}}"#;
        assert_eq!(
            classify_dm(201, &HeaderMap::new(), ok).outcome,
            Outcome::Sent {
                remote_id: Some("99".into())
            }
        );
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
