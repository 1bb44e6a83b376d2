//! OAuth 2.0 user tokens for X: the PKCE authorization code flow (`chirpd auth x`), and refresh with
//! rotating refresh tokens.
//!
//! X's refresh tokens are single-use: each refresh returns a new one and spends the old. The caller (the
//! dispatcher, or `chirpd auth x`) stores what `exchange_code` and `refresh` return before using the new
//! access token, so a crash can never leave the store holding only a spent refresh token.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::clock::UnixMillis;
use crate::config::secret::Secret;

/// The X app as an OAuth 2.0 client, from the destination's config.
#[derive(Debug, Clone)]
pub struct App {
    pub client_id: String,
    /// Confidential clients (web app, automated app) authenticate with it; public clients have none.
    pub client_secret: Option<Secret>,
    pub authorize_url: String,
    pub token_url: String,
    pub scopes: Vec<String>,
}

/// A token set as the token endpoint returned it.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access_token: Secret,
    pub refresh_token: Option<Secret>,
    pub expires_at: UnixMillis,
}

/// Why a refresh failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshError {
    /// The refresh token was refused (spent, revoked, expired): the admin must run `chirpd auth x` again.
    #[error("the refresh token was refused: {0}")]
    Rejected(String),
    /// The token endpoint could not be reached or failed; try again later.
    #[error("token refresh failed: {0}")]
    Transient(String),
}

/// A PKCE code verifier and its S256 challenge.
pub fn pkce_pair() -> (String, String) {
    let verifier: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(64)
        .map(char::from)
        .collect();
    let challenge = challenge_of(&verifier);
    (verifier, challenge)
}

/// The S256 code challenge of a verifier: base64url(SHA-256(verifier)) without padding.
pub fn challenge_of(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The URL the admin opens to authorize the app.
pub fn authorize_url(app: &App, redirect_uri: &str, state: &str, challenge: &str) -> String {
    let params = [
        ("response_type", "code"),
        ("client_id", app.client_id.as_str()),
        ("redirect_uri", redirect_uri),
        ("scope", &app.scopes.join(" ")),
        ("state", state),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ];
    format!("{}?{}", app.authorize_url, form_encode(&params))
}

/// Exchanges an authorization code for tokens.
pub async fn exchange_code(
    http: &reqwest::Client,
    app: &App,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
    now: UnixMillis,
) -> Result<Tokens, RefreshError> {
    let params = [
        ("code", code),
        ("grant_type", "authorization_code"),
        ("client_id", app.client_id.as_str()),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
    ];
    token_request(http, app, &params, now).await
}

/// Trades a refresh token for a new token set (with a new refresh token: they rotate).
pub async fn refresh(
    http: &reqwest::Client,
    app: &App,
    refresh_token: &Secret,
    now: UnixMillis,
) -> Result<Tokens, RefreshError> {
    let params = [
        ("refresh_token", refresh_token.expose()),
        ("grant_type", "refresh_token"),
        ("client_id", app.client_id.as_str()),
    ];
    token_request(http, app, &params, now).await
}

async fn token_request(
    http: &reqwest::Client,
    app: &App,
    params: &[(&str, &str)],
    now: UnixMillis,
) -> Result<Tokens, RefreshError> {
    let mut req = http
        .post(&app.token_url)
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(form_encode(params))
        .timeout(std::time::Duration::from_secs(30));
    if let Some(secret) = &app.client_secret {
        let basic = STANDARD.encode(format!("{}:{}", app.client_id, secret.expose()));
        req = req.header(http::header::AUTHORIZATION, format!("Basic {basic}"));
    }
    let response = req
        .send()
        .await
        .map_err(|e| RefreshError::Transient(format!("token endpoint unreachable: {e}")))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status.is_server_error() {
        return Err(RefreshError::Transient(format!(
            "token endpoint answered {}",
            status.as_u16()
        )));
    }
    if !status.is_success() {
        let reason = body
            .get("error_description")
            .or_else(|| body.get("error"))
            .and_then(Value::as_str)
            .unwrap_or("no reason given");
        return Err(RefreshError::Rejected(format!(
            "{} {reason}",
            status.as_u16()
        )));
    }
    let access = body
        .get("access_token")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            RefreshError::Rejected("token endpoint answered without access_token".into())
        })?;
    let expires_in = body
        .get("expires_in")
        .and_then(Value::as_i64)
        .unwrap_or(7200);
    Ok(Tokens {
        access_token: Secret::new(access.to_string()),
        refresh_token: body
            .get("refresh_token")
            .and_then(Value::as_str)
            .map(|r| Secret::new(r.to_string())),
        expires_at: now + expires_in * 1000,
    })
}

/// Every byte but RFC 3986's unreserved characters is percent-encoded, as OAuth 2.0's examples do
/// (a space is `%20`, which both a query and a form body decode as a space).
const RFC3986: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `application/x-www-form-urlencoded` (or a query string) with RFC 3986 percent-encoding.
pub fn form_encode(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                percent_encoding::utf8_percent_encode(k, RFC3986),
                percent_encoding::utf8_percent_encode(v, RFC3986)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636 appendix B.
    #[test]
    fn pkce_challenge_matches_the_rfc_example() {
        assert_eq!(
            challenge_of("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let (v, c) = pkce_pair();
        assert_eq!(v.len(), 64);
        assert_eq!(challenge_of(&v), c);
    }

    #[test]
    fn the_authorize_url_carries_pkce_and_scopes() {
        let client = App {
            client_id: "abc".into(),
            client_secret: None,
            authorize_url: "https://x.com/i/oauth2/authorize".into(),
            token_url: "https://api.x.com/2/oauth2/token".into(),
            scopes: vec![
                "tweet.read".into(),
                "tweet.write".into(),
                "offline.access".into(),
            ],
        };
        let url = authorize_url(&client, "http://127.0.0.1:8788/callback", "st", "ch");
        assert_eq!(
            url,
            "https://x.com/i/oauth2/authorize?response_type=code&client_id=abc&redirect_uri=http%3A%2F%2F127.0.0.1%3A8788%2Fcallback&scope=tweet.read%20tweet.write%20offline.access&state=st&code_challenge=ch&code_challenge_method=S256"
        );
    }
}
