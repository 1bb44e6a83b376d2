//! The admin's web console: server-rendered pages on a listener of their own (`[admin] listen`, loopback
//! by default), off until `admin.password_hash` is set.
//!
//! This file holds the server and what guards it: sign-in against an argon2 hash (checked on a blocking
//! thread), sessions that expire (in memory: a restart signs everyone out), a CSRF token per session that
//! every action must carry, failed sign-ins counted and refused in a burst, at most `CONCURRENCY` requests
//! at once, and headers that keep the pages out of frames and caches. `pages.rs` has the pages, `chart.rs`
//! the server-side SVG, `views/` the templates and assets, compiled into the binary.
//!
//! The console reads through the same `Store` as the daemon's queries (never the writer, except for the
//! admin's own actions), and never calls a sink: approving an item queues it, and the dispatcher sends it.

mod chart;
mod pages;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::Environment;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::health::Health;
use crate::outbox::SharedStore;

/// The session cookie's name.
const COOKIE: &str = "chirpd_session";
/// Requests the console serves at once; more wait. The ingress has its own listener and limits, so a busy
/// console slows only itself.
const CONCURRENCY: usize = 8;
/// Failed sign-ins allowed within `FAILURE_WINDOW` before sign-in is refused for `LOCKOUT`.
const MAX_FAILURES: usize = 5;
const FAILURE_WINDOW: Duration = Duration::from_secs(300);
const LOCKOUT: Duration = Duration::from_secs(60);
/// How long the overview's reads are shared by every browser showing it.
const OVERVIEW_FRESH: Duration = Duration::from_secs(1);

/// What every page handler shares.
#[derive(Clone)]
pub struct Console {
    pub config: watch::Receiver<Arc<Config>>,
    pub store: SharedStore,
    pub health: Health,
    sessions: Arc<Mutex<HashMap<String, Session>>>,
    /// When recent sign-ins failed, oldest first.
    failures: Arc<Mutex<VecDeque<Instant>>>,
    views: Arc<Environment<'static>>,
    /// The overview's data: a second's worth of browsers share one read.
    overview: Arc<Shared<serde_json::Value>>,
    /// The queue's counts by state, shared the same way by every page's navigation badge: counting reads
    /// every item.
    counts: Arc<Shared<BTreeMap<String, i64>>>,
}

/// A value read at most once per `OVERVIEW_FRESH`, shared by every request that asks meanwhile. A request
/// that finds it stale reads it again while the others wait for that read, so a crowd of pages costs one
/// read; a failed read is not kept.
#[derive(Default)]
struct Shared<T>(tokio::sync::Mutex<Option<(Instant, T)>>);

impl<T: Clone> Shared<T> {
    async fn get<E, F>(&self, read: impl FnOnce() -> F) -> Result<T, E>
    where
        F: std::future::Future<Output = Result<T, E>>,
    {
        let mut kept = self.0.lock().await;
        if let Some((at, value)) = &*kept
            && at.elapsed() < OVERVIEW_FRESH
        {
            return Ok(value.clone());
        }
        let value = read().await?;
        *kept = Some((Instant::now(), value.clone()));
        Ok(value)
    }
}

/// A signed-in admin.
#[derive(Debug, Clone)]
struct Session {
    user: String,
    csrf: String,
    expires: Instant,
}

impl Console {
    pub fn new(
        config: watch::Receiver<Arc<Config>>,
        store: SharedStore,
        health: Health,
    ) -> Console {
        Console {
            config,
            store,
            health,
            sessions: Arc::default(),
            failures: Arc::default(),
            views: Arc::new(pages::views()),
            overview: Arc::default(),
            counts: Arc::default(),
        }
    }

    /// The queue's counts by state, read at most once per `OVERVIEW_FRESH` however many pages ask.
    async fn counts(&self) -> Result<BTreeMap<String, i64>, crate::outbox::StoreError> {
        self.counts
            .get(|| async { Ok(self.store.counts().await?.into_iter().collect()) })
            .await
    }

    /// Renders a view, or a plain error page if the view itself fails (a bug, logged).
    fn render(&self, name: &str, ctx: serde_json::Value) -> Response {
        match self
            .views
            .get_template(name)
            .and_then(|t| t.render(minijinja::Value::from(minijinja::value::Serde(&ctx))))
        {
            Ok(html) => Html(html).into_response(),
            Err(e) => {
                tracing::error!(view = name, error = %e, "A console page failed to render.");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the page failed to render; see the log",
                )
                    .into_response()
            }
        }
    }
}

/// Serves the console on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, console: Console, shutdown: CancellationToken) {
    let addr = listener.local_addr().ok();
    let app = router(console);
    tracing::info!(listen = ?addr, "The admin console is up.");
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "The admin console stopped.");
    }
}

pub fn router(console: Console) -> Router {
    Router::new()
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/", get(pages::overview))
        .route("/deliveries", get(pages::deliveries))
        .route("/deliveries/{id}", get(pages::delivery))
        .route("/deliveries/{id}/replay", post(pages::replay))
        .route("/items", get(pages::items))
        .route("/items/{id}/retry", post(pages::retry))
        .route("/items/{id}/drop", post(pages::drop_item))
        .route("/review", get(pages::review))
        .route("/review/{id}/approve", post(pages::approve))
        .route("/review/{id}/reject", post(pages::reject))
        .route("/length", post(pages::length))
        .route("/preview", get(pages::preview_form).post(pages::preview))
        .route("/assets/style.css", get(pages::style))
        .route("/assets/console.js", get(pages::script))
        .layer(axum::middleware::map_response(guard_headers))
        .layer(tower::limit::ConcurrencyLimitLayer::new(CONCURRENCY))
        .with_state(console)
}

/// Headers on every answer: no framing (clickjacking), no caching of pages with queue contents, scripts
/// and styles from the console itself only.
async fn guard_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Same-origin only: an action returns to the page it came from, and no other site learns the
    // console's paths.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    res
}

/// The signed-in admin of a request. Extracting it from a request without a live session answers with a
/// redirect to the sign-in page.
#[derive(Debug, Clone)]
pub struct Admin {
    pub user: String,
    pub csrf: String,
}

impl FromRequestParts<Console> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, Response> {
        let token = cookie(&parts.headers, COOKIE).ok_or_else(to_login)?;
        let mut sessions = console.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        let s = sessions.get(&token).ok_or_else(to_login)?;
        Ok(Admin {
            user: s.user.clone(),
            csrf: s.csrf.clone(),
        })
    }
}

fn to_login() -> Response {
    Redirect::to("/login").into_response()
}

impl Admin {
    /// Refuses an action whose form does not carry this session's CSRF token: a page of another site
    /// cannot post to the console with the admin's cookie, since it cannot read the token.
    pub fn check(&self, token: &str) -> Result<(), Forged> {
        use subtle::ConstantTimeEq;
        if bool::from(self.csrf.as_bytes().ct_eq(token.as_bytes())) {
            Ok(())
        } else {
            tracing::warn!(user = %self.user, "A console action without this session's CSRF token was refused.");
            Err(Forged)
        }
    }
}

/// A form that carries the session's CSRF token.
pub trait Tokened {
    fn csrf(&self) -> &str;
}

/// An admin's action: a live session, its form, and in that form the session's CSRF token. Extracting
/// it answers a request without a session with the sign-in page, an unreadable form with 4xx, and a
/// forged or missing token with 403, before the handler runs.
pub struct Action<F> {
    pub admin: Admin,
    pub form: F,
}

impl<F> FromRequest<Console> for Action<F>
where
    F: serde::de::DeserializeOwned + Tokened + Send,
{
    type Rejection = Response;

    async fn from_request(req: Request, console: &Console) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let admin = Admin::from_request_parts(&mut parts, console).await?;
        let axum::Form(form) =
            axum::Form::<F>::from_request(Request::from_parts(parts, body), console)
                .await
                .map_err(IntoResponse::into_response)?;
        admin
            .check(form.csrf())
            .map_err(IntoResponse::into_response)?;
        Ok(Action { admin, form })
    }
}

/// An action whose CSRF token is not its session's: answered 403.
#[derive(Debug)]
pub struct Forged;

impl IntoResponse for Forged {
    fn into_response(self) -> Response {
        (
            StatusCode::FORBIDDEN,
            "refused: the form's CSRF token does not match your session (reload the page)",
        )
            .into_response()
    }
}

/// The value of cookie `name` in the request.
fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A new random token for a session or a CSRF check: 256 bits, hex.
fn token() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// Why a sign-in was refused.
#[derive(Debug, PartialEq, Eq)]
enum SignIn {
    Wrong,
    /// Too many failures lately; retry after this long.
    Locked(Duration),
}

impl Console {
    /// Checks a sign-in; on success opens a session and returns its cookie.
    async fn sign_in(
        &self,
        user: &str,
        password: &str,
        peer: SocketAddr,
    ) -> Result<String, SignIn> {
        let now = Instant::now();
        {
            let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            while failures
                .front()
                .is_some_and(|t| now.duration_since(*t) > FAILURE_WINDOW)
            {
                failures.pop_front();
            }
            if failures.len() >= MAX_FAILURES
                && let Some(last) = failures.back()
                && now.duration_since(*last) < LOCKOUT
            {
                return Err(SignIn::Locked(LOCKOUT - now.duration_since(*last)));
            }
        }
        let config = self.config.borrow().clone();
        let Some(admin) = config.admin.clone() else {
            return Err(SignIn::Wrong);
        };
        let hash = admin.password_hash.expose().to_string();
        let password = password.to_string();
        // Argon2 is slow on purpose: it runs off the async workers, which the ingress shares.
        let verified = tokio::task::spawn_blocking(move || verify_password(&hash, &password))
            .await
            .unwrap_or(false);
        if !verified || user != admin.user {
            self.failures
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push_back(Instant::now());
            metrics::counter!("chirpd_console_sign_in_failures_total").increment(1);
            tracing::warn!(%peer, user, "A console sign-in failed.");
            return Err(SignIn::Wrong);
        }
        let session = token();
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                session.clone(),
                Session {
                    user: admin.user.clone(),
                    csrf: token(),
                    expires: now + admin.session_ttl,
                },
            );
        tracing::info!(%peer, user, "Signed in to the console.");
        let secure = if admin.secure_cookie { "; Secure" } else { "" };
        Ok(format!(
            "{COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
            admin.session_ttl.as_secs()
        ))
    }

    fn sign_out(&self, headers: &axum::http::HeaderMap) {
        if let Some(t) = cookie(headers, COOKIE) {
            self.sessions
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&t);
        }
    }
}

/// Whether `password` matches the argon2 PHC string `hash`.
pub fn verify_password(hash: &str, password: &str) -> bool {
    use argon2::PasswordVerifier;
    argon2::PasswordHash::new(hash)
        .map(|h| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// An argon2id PHC string for `password`, with a random salt (`chirpd admin hash-password`).
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::PasswordHasher;
    use argon2::password_hash::SaltString;
    use argon2::password_hash::rand_core::OsRng;
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(&hash, "correct horse"));
        assert!(!verify_password(&hash, "correct horse "));
        assert!(!verify_password("not a hash", "correct horse"));
    }
}

#[cfg(test)]
mod http_tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    fn console(dir: &tempfile::TempDir) -> Console {
        let hash = hash_password("the right password").unwrap();
        let path = dir.path().join("chirpd.toml");
        std::fs::write(
            &path,
            format!(
                "[store]\npath = \"{}\"\n[admin]\npassword_hash = \"{hash}\"\n",
                dir.path().join("s.db").display()
            ),
        )
        .unwrap();
        let config = crate::config::load(Some(&path), &crate::config::EmptyEnv).unwrap();
        let store = crate::outbox::open(&config.store_path, None).unwrap();
        let (_tx, rx) = watch::channel(Arc::new(config));
        // The sender may go: the receiver keeps the last config.
        Console::new(rx, store, Health::default())
    }

    async fn sign_in(app: &Router, password: &str) -> axum::http::Response<Body> {
        let mut req = Request::post("/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(format!("user=admin&password={password}")))
            .unwrap();
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(SocketAddr::from((
                [127, 0, 0, 1],
                1,
            ))));
        app.clone().oneshot(req).await.unwrap()
    }

    /// The overview, as the browser holding `session` (a `name=value` cookie) asks for it.
    async fn overview(app: &Router, session: &str) -> axum::http::Response<Body> {
        let req = Request::get("/")
            .header(header::COOKIE, session)
            .body(Body::empty())
            .unwrap();
        app.clone().oneshot(req).await.unwrap()
    }

    #[tokio::test]
    async fn pages_need_a_session_and_failed_sign_ins_lock_sign_in_for_a_while() {
        let dir = tempfile::tempdir().unwrap();
        let app = router(console(&dir));
        let page = app
            .clone()
            .oneshot(Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::SEE_OTHER);
        assert_eq!(page.headers()[header::LOCATION], "/login");

        let ok = sign_in(&app, "the%20right%20password").await;
        assert_eq!(ok.status(), StatusCode::SEE_OTHER);
        let cookie = ok.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        let session = cookie.split(';').next().unwrap().to_string();
        let page = overview(&app, &session).await;
        assert_eq!(page.status(), StatusCode::OK);
        assert!(
            page.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
        let first = axum::body::to_bytes(page.into_body(), 1 << 20)
            .await
            .unwrap();
        // A second load within the second shares the first's reads: the same "as of" instant.
        let again = overview(&app, &session).await;
        let again = axum::body::to_bytes(again.into_body(), 1 << 20)
            .await
            .unwrap();
        assert_eq!(first, again);
        // An action without the session's token does nothing.
        let forged = app
            .clone()
            .oneshot(
                Request::post("/items/x/retry")
                    .header(header::COOKIE, &session)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(Body::from("csrf=guess"))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(forged.status(), StatusCode::FORBIDDEN);

        for _ in 0..MAX_FAILURES {
            assert_eq!(
                sign_in(&app, "wrong").await.status(),
                StatusCode::UNAUTHORIZED
            );
        }
        // Locked: even the right password waits.
        let locked = sign_in(&app, "the%20right%20password").await;
        assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    }
}
