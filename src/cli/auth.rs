//! `chirpd auth x`: the OAuth 2.0 PKCE flow for an X account. It prints the authorization URL, receives
//! the code on a loopback redirect (or pasted), trades it for tokens and keeps them in the store.

use std::path::Path;

use anyhow::{Context, bail};

use crate::outbox::Tokens;
use crate::sink::{Auth, oauth2};

use super::load;

pub(super) fn auth_x(
    flag: Option<&Path>,
    destination: &str,
    redirect_uri: &str,
) -> anyhow::Result<()> {
    let config = load(flag)?;
    let d = config
        .destinations
        .get(destination)
        .with_context(|| format!("no destination {destination:?} in the config"))?;
    let Auth::OAuth2(client) = &d.auth else {
        bail!("destination {destination} does not use auth = \"oauth2\"");
    };
    let (verifier, challenge) = oauth2::pkce_pair();
    let state = oauth2::pkce_pair().0;
    let url = oauth2::authorize_url(client, redirect_uri, &state, &challenge);
    println!("Open this URL while logged in as the account chirpd should post for:\n\n{url}\n");
    println!(
        "Then wait here for the redirect, or paste the code (or the whole redirect URL) and press Enter."
    );
    super::block_on(async {
        let code = receive_code(redirect_uri, &state).await?;
        let http = reqwest::Client::new();
        let now = crate::clock::now_ms();
        let tokens = oauth2::exchange_code(&http, client, &code, redirect_uri, &verifier, now)
            .await
            .map_err(|e| anyhow::anyhow!("X refused the code: {e}"))?;
        if tokens.refresh_token.is_none() {
            eprintln!(
                "warning: X issued no refresh token (is offline.access among the app's scopes?); the token lasts two hours"
            );
        }
        // The first setup step may come before the service ever ran, so this one command may create the
        // store; it says where, so a wrong path shows at once.
        let store = crate::outbox::open_configured(&config, crate::outbox::Role::Command).await?;
        let tokens = Tokens {
            access: tokens.access_token,
            refresh: tokens.refresh_token,
            expires_at: tokens.expires_at,
        };
        store.set_tokens(destination, tokens, now).await?;
        let place = match &config.fleet.url {
            Some(url) => format!("the PostgreSQL store ({})", url.reference),
            None => config.store_path.display().to_string(),
        };
        println!("Tokens stored for {destination} in {place}; chirpd refreshes them by itself.");
        Ok(())
    })
}

/// Waits for the authorization code: from the redirect on the loopback callback, or pasted on stdin.
async fn receive_code(redirect_uri: &str, state: &str) -> anyhow::Result<String> {
    let pasted = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    });
    let addr = redirect_uri
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .filter(|host| host.starts_with("127.0.0.1:") || host.starts_with("localhost:"))
        .map(str::to_string);
    let redirected = async {
        let Some(addr) = addr else {
            return std::future::pending::<anyhow::Result<String>>().await;
        };
        let Ok(listener) = tokio::net::TcpListener::bind(&addr).await else {
            return std::future::pending().await;
        };
        callback(listener, state).await
    };
    tokio::select! {
        line = pasted => {
            let line = line??;
            code_from(line.trim(), state)?.or_else(|| Some(line.trim().to_string()).filter(|c| !c.is_empty()))
                .context("no code was pasted")
        }
        code = redirected => code,
        _ = tokio::time::sleep(std::time::Duration::from_secs(600)) => bail!("no authorization arrived within 10 minutes"),
    }
}

/// Serves the OAuth 2.0 redirect on the loopback `listener` (HTTP parsed by hyper) until a request
/// brings a code with this run's `state`. Requests without it, or with another state, are answered 400
/// and ignored: a stray or forged request cannot end the flow, nor plant a code.
async fn callback(listener: tokio::net::TcpListener, state: &str) -> anyhow::Result<String> {
    use http_body_util::Full;
    use hyper::body::Bytes;

    let (found_tx, mut found_rx) = tokio::sync::mpsc::channel::<String>(1);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            Some(code) = found_rx.recv() => return Ok(code),
        };
        let (found_tx, state) = (found_tx.clone(), state.to_string());
        let service =
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let (found_tx, state) = (found_tx.clone(), state.clone());
                async move {
                    let target = req.uri().to_string();
                    let (status, text) = match code_from(&target, &state) {
                        Ok(Some(code)) => {
                            let _ = found_tx.try_send(code);
                            (
                                200,
                                "chirpd received the authorization; you can close this tab.\n"
                                    .to_string(),
                            )
                        }
                        Ok(None) => (
                            400,
                            "ignored: no authorization code in this request\n".to_string(),
                        ),
                        Err(e) => (400, format!("ignored: {e}\n")),
                    };
                    let mut response = hyper::Response::new(Full::new(Bytes::from(text)));
                    *response.status_mut() =
                        hyper::StatusCode::from_u16(status).unwrap_or_default();
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

/// Extracts `code` from a redirect URL or query string. The redirect must carry this run's `state`
/// (RFC 6749 §10.12): one without it, or with another, is refused. Values are percent-decoded.
fn code_from(target: &str, state: &str) -> anyhow::Result<Option<String>> {
    let Some(query) = target.split_once('?').map(|(_, q)| q) else {
        return Ok(None);
    };
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let get = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    if let Some(err) = get("error") {
        bail!("the authorization was refused: {err}");
    }
    let Some(code) = get("code") else {
        return Ok(None);
    };
    match get("state") {
        Some(given) if given == state => Ok(Some(code)),
        Some(_) => bail!("the redirect's state does not match this run"),
        None => bail!("the redirect carries no state"),
    }
}
