//! A destination's credentials for one request: OAuth 1.0a as configured, a Mastodon token, or an
//! OAuth 2.0 access token refreshed before it expires. `authorized` is the one way a request gets its
//! credentials, and the one place where a 401 leads to a refresh and a second try.

use crate::clock;
use crate::config::secret::Secret;
use crate::outbox::{StoreError, Tokens};
use crate::sink::{Auth, RequestAuth, oauth2};

use super::Worker;

/// Why a request could not be given credentials. Each of these holds the destination until the admin
/// acts (`reason` says how).
#[derive(Debug)]
pub(super) enum AuthFailure {
    /// `chirpd auth x` was never run for this destination.
    NoTokens,
    /// The access token expired and the app was not granted `offline.access`.
    NoRefreshToken,
    /// X refused the refresh token.
    RefreshRefused(String),
    /// The rotated tokens could not be stored, so they are not used.
    Store(StoreError),
    /// A dry-run destination has no credentials.
    NoCredentials,
}

impl AuthFailure {
    /// The one-line reason shown in the log and `/readyz`.
    pub(super) fn reason(&self, destination: &str) -> String {
        let again = format!("run chirpd auth x --destination {destination}");
        match self {
            AuthFailure::NoTokens => format!("no OAuth 2.0 tokens; {again}"),
            AuthFailure::NoRefreshToken => format!(
                "the OAuth 2.0 token expired and there is no refresh token (add offline.access); {again}"
            ),
            AuthFailure::RefreshRefused(e) => {
                format!("X refused the OAuth 2.0 refresh token ({e}); {again}")
            }
            AuthFailure::Store(e) => format!("cannot read or store the OAuth 2.0 tokens: {e}"),
            AuthFailure::NoCredentials => "the destination has no credentials".to_string(),
        }
    }
}

/// An access token is refreshed when it expires within this many milliseconds.
const REFRESH_AHEAD_MS: i64 = 5 * 60 * 1000;

impl Worker {
    /// Runs `request` with the destination's credentials. With OAuth 2.0, a result that `unauthorized`
    /// recognizes (a 401) leads to one token refresh and one more call, whose result stands.
    pub(super) async fn authorized<'s, T, Fut>(
        &'s self,
        request: impl Fn(RequestAuth<'s>) -> Fut,
        unauthorized: fn(&T) -> bool,
    ) -> Result<T, AuthFailure>
    where
        Fut: std::future::Future<Output = T>,
    {
        let oauth2 = matches!(self.destination.auth, Auth::OAuth2(_));
        let mut refreshed = false;
        loop {
            let bearer = self.bearer(refreshed).await?;
            let auth = match (&self.destination.auth, bearer) {
                (Auth::OAuth1(c), _) => RequestAuth::OAuth1(c),
                (Auth::Bearer(t), _) => RequestAuth::Bearer(t.clone()),
                (Auth::OAuth2(_), Some(t)) => RequestAuth::Bearer(t),
                _ => return Err(AuthFailure::NoCredentials),
            };
            let result = request(auth).await;
            if oauth2 && !refreshed && unauthorized(&result) {
                refreshed = true;
                continue;
            }
            return Ok(result);
        }
    }

    /// The OAuth 2.0 access token (none for other kinds of auth), refreshed first when it expires soon
    /// or `force` is set. The rotated refresh token is stored before the new access token is used.
    async fn bearer(&self, force: bool) -> Result<Option<Secret>, AuthFailure> {
        let d = &self.destination;
        let Auth::OAuth2(client) = &d.auth else {
            return Ok(None);
        };
        let stored = self
            .store
            .tokens(&d.id)
            .await
            .map_err(AuthFailure::Store)?
            .ok_or(AuthFailure::NoTokens)?;
        let now = clock::now_ms();
        if !force && stored.expires_at.saturating_sub(now) > REFRESH_AHEAD_MS {
            return Ok(Some(stored.access));
        }
        let refresh = stored.refresh.ok_or(AuthFailure::NoRefreshToken)?;
        match oauth2::refresh(&self.http, client, &refresh, now).await {
            Ok(tokens) => {
                let access = tokens.access_token.clone();
                let rotated = Tokens {
                    access: tokens.access_token,
                    refresh: tokens.refresh_token,
                    expires_at: tokens.expires_at,
                };
                self.store
                    .set_tokens(&d.id, rotated, now)
                    .await
                    .map_err(AuthFailure::Store)?;
                metrics::counter!("chirpd_oauth_refreshes_total", "destination" => d.id.clone(), "outcome" => "ok").increment(1);
                tracing::info!(destination = %d.id, "OAuth 2.0 tokens refreshed and stored.");
                Ok(Some(access))
            }
            Err(oauth2::RefreshError::Transient(e)) => {
                // Try with the current token; the next turn refreshes again.
                tracing::warn!(destination = %d.id, error = %e, "OAuth 2.0 refresh failed for now.");
                Ok(Some(stored.access))
            }
            Err(oauth2::RefreshError::Rejected(e)) => {
                metrics::counter!("chirpd_oauth_refreshes_total", "destination" => d.id.clone(), "outcome" => "rejected").increment(1);
                Err(AuthFailure::RefreshRefused(e))
            }
        }
    }
}
