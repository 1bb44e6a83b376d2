//! A fake X API: a real HTTP server on 127.0.0.1:0 speaking X's contract for the endpoints chirpd uses.
//!
//! It checks every request's OAuth 1.0a HMAC-SHA1 signature with an implementation of its own (so the
//! daemon's signing is checked against an independent one), answers `POST /2/tweets` with 201 and
//! rate-limit headers, refuses a text it already has with X's duplicate-content 403, and answers
//! `GET /2/users/me`. Tests can script the next answers: any status and body, a 429 with reset headers,
//! or "create the post, then never answer" (a crash or timeout after X committed).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};

pub const CONSUMER_KEY: &str = "test-consumer-key";
pub const CONSUMER_SECRET: &str = "test-consumer-secret";
pub const ACCESS_TOKEN: &str = "test-access-token";
pub const ACCESS_TOKEN_SECRET: &str = "test-access-token-secret";

/// A scripted answer for the next `POST /2/tweets`.
#[derive(Debug, Clone)]
pub enum Script {
    /// Answer this status, headers and body without creating anything.
    Answer {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Create the post, then never answer (the connection hangs until the client gives up or dies).
    CreateThenHang,
    /// Wait this long, then answer as usual: a slow X.
    Delay(std::time::Duration),
    /// Never answer and create nothing: the client times out.
    Hang,
    /// Create the post, then drop the connection without an answer.
    CreateThenDrop,
    /// Drop the connection without creating anything.
    Drop,
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub text: Option<String>,
    pub at_unix_ms: i64,
    pub signature_ok: bool,
}

#[derive(Default)]
struct Inner {
    tweets: Vec<String>,
    seen: Vec<Seen>,
    script: VecDeque<Script>,
    protected: bool,
    next_id: u64,
    /// OAuth 2.0: valid access tokens, the one valid refresh token, codes issued (code → challenge).
    access_tokens: Vec<String>,
    refresh_token: Option<String>,
    codes: Vec<(String, String)>,
    token_serial: u32,
    token_lifetime_secs: i64,
    /// DMs sent, as (user id, text); users by name; user ids that refuse DMs.
    dms: Vec<(String, String)>,
    users: Vec<(String, String)>,
    refusing: Vec<String>,
    user_lookups: usize,
}

#[derive(Clone)]
pub struct FakeX {
    inner: Arc<Mutex<Inner>>,
    pub url: String,
}

impl FakeX {
    pub async fn start() -> FakeX {
        let inner = Arc::new(Mutex::new(Inner {
            protected: true,
            next_id: 1_445_880_548_472_328_192,
            token_lifetime_secs: 7200,
            ..Inner::default()
        }));
        let app = Router::new()
            .route("/2/tweets", post(create_tweet))
            .route("/2/users/me", get(users_me))
            .route("/2/users/by/username/{name}", get(user_by_name))
            .route("/2/dm_conversations/with/{id}/messages", post(create_dm))
            .route("/2/oauth2/token", post(token))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeX { inner, url }
    }

    /// Texts of the tweets created, in order.
    pub fn tweets(&self) -> Vec<String> {
        self.inner.lock().unwrap().tweets.clone()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.inner.lock().unwrap().seen.clone()
    }

    pub fn script(&self, s: Script) {
        self.inner.lock().unwrap().script.push_back(s);
    }

    pub fn set_protected(&self, protected: bool) {
        self.inner.lock().unwrap().protected = protected;
    }

    /// Pretends an earlier attempt already created `text`.
    pub fn preload(&self, text: &str) {
        self.inner.lock().unwrap().tweets.push(text.to_string());
    }

    /// Issues an authorization code for a PKCE challenge, as X's authorize page would.
    pub fn issue_code(&self, code: &str, challenge: &str) {
        self.inner
            .lock()
            .unwrap()
            .codes
            .push((code.to_string(), challenge.to_string()));
    }

    /// Makes every access token issued so far invalid, as if it had expired.
    pub fn expire_access_tokens(&self) {
        self.inner.lock().unwrap().access_tokens.clear();
    }

    pub fn set_token_lifetime(&self, secs: i64) {
        self.inner.lock().unwrap().token_lifetime_secs = secs;
    }

    /// The refresh token X currently accepts.
    pub fn refresh_token(&self) -> Option<String> {
        self.inner.lock().unwrap().refresh_token.clone()
    }

    pub fn add_user(&self, name: &str, id: &str) {
        self.inner
            .lock()
            .unwrap()
            .users
            .push((name.to_string(), id.to_string()));
    }

    pub fn refuse_dms(&self, id: &str) {
        self.inner.lock().unwrap().refusing.push(id.to_string());
    }

    pub fn dms(&self) -> Vec<(String, String)> {
        self.inner.lock().unwrap().dms.clone()
    }

    pub fn user_lookups(&self) -> usize {
        self.inner.lock().unwrap().user_lookups
    }

    /// Polls until `n` tweets exist, failing after `deadline`.
    pub async fn wait_for_tweets(&self, n: usize, deadline: Duration) -> Vec<String> {
        let start = Instant::now();
        loop {
            let tweets = self.tweets();
            if tweets.len() >= n {
                return tweets;
            }
            assert!(
                start.elapsed() < deadline,
                "expected {n} tweets within {deadline:?}, have {}: {tweets:?}",
                tweets.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls until `n` requests to `path` were seen.
    pub async fn wait_for_requests(&self, path: &str, n: usize, deadline: Duration) -> Vec<Seen> {
        let start = Instant::now();
        loop {
            let seen: Vec<Seen> = self.seen().into_iter().filter(|s| s.path == path).collect();
            if seen.len() >= n {
                return seen;
            }
            assert!(
                start.elapsed() < deadline,
                "expected {n} requests to {path} within {deadline:?}, saw {}",
                seen.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn rate_headers() -> [(&'static str, String); 3] {
    let reset = now_unix_ms() / 1000 + 900;
    [
        ("x-rate-limit-limit", "100".to_string()),
        ("x-rate-limit-remaining", "99".to_string()),
        ("x-rate-limit-reset", reset.to_string()),
    ]
}

/// A request is authorized by a valid OAuth 1.0a signature or a current OAuth 2.0 access token.
fn authorized(inner: &Inner, method: &Method, headers: &HeaderMap, uri: &Uri) -> bool {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match bearer {
        Some(token) => inner.access_tokens.iter().any(|t| t == token),
        None => check_oauth(method, headers, uri),
    }
}

async fn create_tweet(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let signature_ok = authorized(&inner.lock().unwrap(), &Method::POST, &headers, &uri);
    let text = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("text").and_then(Value::as_str).map(str::to_string));
    let script = {
        let mut g = inner.lock().unwrap();
        g.seen.push(Seen {
            path: uri.path().to_string(),
            text: text.clone(),
            at_unix_ms: now_unix_ms(),
            signature_ok,
        });
        if !signature_ok {
            return problem(401, "Unauthorized", "Unauthorized", "about:blank");
        }
        g.script.pop_front()
    };
    match script {
        Some(Script::Answer {
            status,
            headers,
            body,
        }) => {
            let mut r = (StatusCode::from_u16(status).unwrap(), body).into_response();
            for (k, v) in headers {
                r.headers_mut().insert(
                    axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
            r.headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            return r;
        }
        Some(Script::CreateThenHang) => {
            inner.lock().unwrap().tweets.push(text.unwrap_or_default());
            std::future::pending::<()>().await;
            unreachable!()
        }
        Some(Script::Delay(d)) => tokio::time::sleep(d).await,
        Some(Script::Hang) => {
            std::future::pending::<()>().await;
            unreachable!()
        }
        Some(Script::CreateThenDrop) => {
            inner.lock().unwrap().tweets.push(text.unwrap_or_default());
            // A panic in the handler makes the server drop the connection mid-request.
            panic!("fake X drops the connection after creating the post");
        }
        Some(Script::Drop) => panic!("fake X drops the connection"),
        None => {}
    }
    let Some(text) = text else {
        return problem(
            400,
            "Invalid Request",
            "text is required",
            "https://api.x.com/2/problems/invalid-request",
        );
    };
    let mut g = inner.lock().unwrap();
    if g.tweets.contains(&text) {
        return problem(
            403,
            "Forbidden",
            "You are not allowed to create a Tweet with duplicate content.",
            "about:blank",
        );
    }
    g.tweets.push(text.clone());
    g.next_id += 1;
    let id = g.next_id.to_string();
    let mut r = (
        StatusCode::CREATED,
        axum::Json(json!({"data": {"id": id, "text": text, "edit_history_tweet_ids": [id]}})),
    )
        .into_response();
    for (k, v) in rate_headers() {
        r.headers_mut().insert(k, v.parse().unwrap());
    }
    r
}

async fn users_me(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let mut g = inner.lock().unwrap();
    let signature_ok = authorized(&g, &Method::GET, &headers, &uri);
    g.seen.push(Seen {
        path: uri.path().to_string(),
        text: None,
        at_unix_ms: now_unix_ms(),
        signature_ok,
    });
    if !signature_ok {
        return problem(401, "Unauthorized", "Unauthorized", "about:blank");
    }
    let body = json!({"data": {"id": "2244994945", "name": "Acme", "username": "acme", "protected": g.protected}});
    (StatusCode::OK, axum::Json(body)).into_response()
}

async fn user_by_name(
    State(inner): State<Arc<Mutex<Inner>>>,
    axum::extract::Path(name): axum::extract::Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let mut g = inner.lock().unwrap();
    if !authorized(&g, &Method::GET, &headers, &uri) {
        return problem(401, "Unauthorized", "Unauthorized", "about:blank");
    }
    g.user_lookups += 1;
    match g.users.iter().find(|(n, _)| n.eq_ignore_ascii_case(&name)) {
        Some((n, id)) => axum::Json(json!({"data": {"id": id, "name": n, "username": n}})).into_response(),
        // X answers 200 with errors for an unknown username.
        None => axum::Json(json!({"errors": [{"value": name, "detail": format!("Could not find user with username: [{name}]."),
            "title": "Not Found Error", "resource_type": "user", "parameter": "username",
            "type": "https://api.twitter.com/2/problems/resource-not-found"}]}))
        .into_response(),
    }
}

async fn create_dm(
    State(inner): State<Arc<Mutex<Inner>>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let mut g = inner.lock().unwrap();
    let ok = authorized(&g, &Method::POST, &headers, &uri);
    let text = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("text").and_then(Value::as_str).map(str::to_string));
    g.seen.push(Seen {
        path: "/2/dm_conversations".to_string(),
        text: text.clone(),
        at_unix_ms: now_unix_ms(),
        signature_ok: ok,
    });
    if !ok {
        return problem(401, "Unauthorized", "Unauthorized", "about:blank");
    }
    if g.refusing.contains(&id) {
        return problem(
            403,
            "Forbidden",
            "You cannot send messages to this user.",
            "about:blank",
        );
    }
    g.dms.push((id.clone(), text.unwrap_or_default()));
    g.next_id += 1;
    let event = g.next_id.to_string();
    (
        StatusCode::CREATED,
        axum::Json(
            json!({"data": {"dm_conversation_id": format!("1-{id}"), "dm_event_id": event}}),
        ),
    )
        .into_response()
}

/// X's OAuth 2.0 token endpoint: authorization codes (checked against their PKCE challenge) and
/// rotating refresh tokens (each usable once).
async fn token(State(inner): State<Arc<Mutex<Inner>>>, body: Bytes) -> Response {
    let form: Vec<(String, String)> = String::from_utf8_lossy(&body)
        .split('&')
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (percent_decode(k), percent_decode(v)))
        })
        .collect();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut g = inner.lock().unwrap();
    let invalid = |d: &str| {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_request", "error_description": d})),
        )
            .into_response()
    };
    match get("grant_type").as_deref() {
        Some("authorization_code") => {
            let (Some(code), Some(verifier)) = (get("code"), get("code_verifier")) else {
                return invalid("code and code_verifier are required");
            };
            let Some(pos) = g.codes.iter().position(|(c, _)| *c == code) else {
                return invalid("Value passed for the authorization code was invalid.");
            };
            let (_, challenge) = g.codes.remove(pos);
            let digest = <sha2::Sha256 as sha2::Digest>::digest(verifier.as_bytes());
            if base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest) != challenge {
                return invalid("code_verifier does not match the challenge");
            }
        }
        Some("refresh_token") => {
            if get("refresh_token").is_none() || get("refresh_token") != g.refresh_token {
                return invalid("Value passed for the token was invalid.");
            }
        }
        _ => return invalid("unsupported grant_type"),
    }
    g.token_serial += 1;
    let access = format!("access-{}", g.token_serial);
    let refresh = format!("refresh-{}", g.token_serial);
    g.access_tokens.push(access.clone());
    // Rotation: the previous refresh token stops working.
    g.refresh_token = Some(refresh.clone());
    axum::Json(
        json!({"token_type": "bearer", "expires_in": g.token_lifetime_secs, "access_token": access,
        "scope": "tweet.write users.read tweet.read offline.access", "refresh_token": refresh}),
    )
    .into_response()
}

fn problem(status: u16, title: &str, detail: &str, kind: &str) -> Response {
    let body = json!({"title": title, "detail": detail, "type": kind, "status": status});
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}

/// Verifies an OAuth 1.0a HMAC-SHA1 `Authorization` header per RFC 5849 §3.4, independently of the crate
/// the daemon signs with.
fn check_oauth(method: &Method, headers: &HeaderMap, uri: &Uri) -> bool {
    let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(params) = auth.strip_prefix("OAuth ") else {
        return false;
    };
    let mut oauth: Vec<(String, String)> = Vec::new();
    for part in params.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else {
            return false;
        };
        oauth.push((k.to_string(), percent_decode(v.trim_matches('"'))));
    }
    let get = |k: &str| oauth.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if get("oauth_consumer_key").as_deref() != Some(CONSUMER_KEY)
        || get("oauth_token").as_deref() != Some(ACCESS_TOKEN)
        || get("oauth_signature_method").as_deref() != Some("HMAC-SHA1")
    {
        return false;
    }
    let Some(signature) = get("oauth_signature") else {
        return false;
    };
    let mut pairs: Vec<(String, String)> = oauth
        .iter()
        .filter(|(k, _)| k != "oauth_signature" && k != "realm")
        .map(|(k, v)| (encode(k), encode(v)))
        .collect();
    if let Some(q) = uri.query() {
        for kv in q.split('&') {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            pairs.push((encode(&percent_decode(k)), encode(&percent_decode(v))));
        }
    }
    pairs.sort();
    let param_string = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let base_url = format!("http://{host}{}", uri.path());
    let base = format!(
        "{}&{}&{}",
        method.as_str(),
        encode(&base_url),
        encode(&param_string)
    );
    let key = format!(
        "{}&{}",
        encode(CONSUMER_SECRET),
        encode(ACCESS_TOKEN_SECRET)
    );
    let mut mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(base.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    expected == signature
}

/// RFC 3986 percent-encoding as OAuth 1.0a requires: unreserved characters stay, all else is %XX.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn the_fake_encodes_like_the_x_docs() {
    // X's percent-encoding table.
    assert_eq!(encode("Ladies + Gentlemen"), "Ladies%20%2B%20Gentlemen");
    assert_eq!(encode("An encoded string!"), "An%20encoded%20string%21");
    assert_eq!(encode("Dogs, Cats & Mice"), "Dogs%2C%20Cats%20%26%20Mice");
    assert_eq!(encode("☃"), "%E2%98%83");
    assert_eq!(percent_decode("a%2Fb%3D"), "a/b=");
}
