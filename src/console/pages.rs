//! The console's pages: each handler gathers what its page shows from the store, the config and the
//! daemon's health, and renders a view from `views/`. Actions (retry, drop, replay, approve, reject) are
//! POSTs that carry the session's CSRF token and answer with a redirect back to their page.
//!
//! Nothing here sends anything: an approved item is queued, and the dispatcher sends it within every limit.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Redirect, Response};
use minijinja::Environment;
use serde::Deserialize;
use serde_json::json;

use super::{Action, Admin, Console, SignIn, Tokened, chart};
use crate::clock::{self, UnixMillis};
use crate::outbox::{Item, ItemState, StoreError};
use crate::plan;
use crate::ratelimit::{self, Gate};

/// How many rows a list shows.
const ROWS: usize = 100;

/// The views, compiled into the binary. Names ending in `.html` are escaped as HTML.
pub fn views() -> Environment<'static> {
    let mut env = Environment::new();
    for (name, text) in [
        ("base.html", include_str!("views/base.html")),
        ("login.html", include_str!("views/login.html")),
        ("overview.html", include_str!("views/overview.html")),
        ("deliveries.html", include_str!("views/deliveries.html")),
        ("delivery.html", include_str!("views/delivery.html")),
        ("items.html", include_str!("views/items.html")),
        ("review.html", include_str!("views/review.html")),
        ("preview.html", include_str!("views/preview.html")),
    ] {
        if let Err(e) = env.add_template(name, text) {
            // A broken view is a bug caught by the tests; the console then answers 500 for that page.
            tracing::error!(view = name, error = %e, "A console view does not compile.");
        }
    }
    env.add_filter("time", |ms: i64| time(ms));
    env
}

/// A Unix-ms time as the console shows it.
fn time(ms: UnixMillis) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|_| ms.to_string())
}

/// A store error as a page: the console stays up and says what failed.
fn failed(e: StoreError) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("the store cannot answer right now: {e}"),
    )
        .into_response()
}

/// How many items wait for review, for the navigation's badge.
async fn waiting(console: &Console) -> i64 {
    console
        .counts()
        .await
        .ok()
        .and_then(|c| c.get("review").copied())
        .unwrap_or(0)
}

fn delivery_view(d: &crate::outbox::DeliveryRecord) -> serde_json::Value {
    json!({
        "id": d.id, "source": d.source, "event": d.event, "received_at": d.received_at,
        "state": d.state, "native": d.native, "kind": d.kind, "error": d.error,
    })
}

pub async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("views/style.css"),
    )
}

pub async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("views/console.js"),
    )
}

pub async fn login_form(State(console): State<Console>) -> Response {
    console.render("login.html", json!({ "error": None::<String> }))
}

#[derive(Deserialize)]
pub struct SignInForm {
    user: String,
    password: String,
}

pub async fn login(
    State(console): State<Console>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(form): Form<SignInForm>,
) -> Response {
    match console.sign_in(&form.user, &form.password, peer).await {
        Ok(cookie) => ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response(),
        Err(SignIn::Wrong) => {
            let mut res = console.render(
                "login.html",
                json!({ "error": "Wrong user name or password." }),
            );
            *res.status_mut() = StatusCode::UNAUTHORIZED;
            res
        }
        Err(SignIn::Locked(wait)) => {
            let mut res = console.render(
                "login.html",
                json!({
                    "error": format!("Too many failed sign-ins: try again in {} s.", wait.as_secs().max(1)),
                }),
            );
            *res.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            res
        }
    }
}

#[derive(Deserialize)]
pub struct Csrf {
    csrf: String,
}

pub async fn logout(
    State(console): State<Console>,
    headers: HeaderMap,
    _signed_in: Action<Csrf>,
) -> Response {
    console.sign_out(&headers);
    (
        [(
            header::SET_COOKIE,
            format!(
                "{}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict",
                super::COOKIE
            ),
        )],
        Redirect::to("/login"),
    )
        .into_response()
}

/// One destination as the overview shows it.
#[derive(serde::Serialize)]
struct DestinationView {
    id: String,
    kind: &'static str,
    dry_run: bool,
    leading: bool,
    review: bool,
    windows: Vec<serde_json::Value>,
    hold: Option<serde_json::Value>,
    next_slot: Option<String>,
    spend: Option<serde_json::Value>,
    chart: String,
}

pub async fn overview(State(console): State<Console>, admin: Admin) -> Response {
    // One read of the store a second, however many browsers poll the page: the others wait for it
    // and share it.
    let data = match console.overview.get(|| overview_data(&console)).await {
        Ok(data) => data,
        Err(e) => return failed(e),
    };
    let mut ctx = data;
    ctx["page"] = json!("overview");
    ctx["admin"] = json!(admin.user);
    ctx["csrf"] = json!(admin.csrf);
    console.render("overview.html", ctx)
}

/// What the overview shows, read from the store, the config and the daemon's health.
async fn overview_data(console: &Console) -> Result<serde_json::Value, StoreError> {
    let config = console.config.borrow().clone();
    let now = clock::now_ms();
    let mut reasons = crate::ingress::probes::unready_reasons(&console.health);
    let counts = match console.counts().await {
        Ok(c) => c,
        Err(e) => {
            reasons.insert(0, format!("store: {e}"));
            BTreeMap::new()
        }
    };
    let holds = console.health.holds();
    let mut destinations = Vec::new();
    for d in config.destinations.values() {
        destinations.push(destination_view(console, d, &holds, now).await?);
    }
    Ok(json!({
        "waiting": counts.get("review").copied().unwrap_or(0),
        "ready": reasons.is_empty(),
        "reasons": reasons,
        "counts": counts,
        "destinations": destinations,
        "instance": config.fleet.instance,
        "fleet": config.fleet.url.is_some(),
        "now": now,
    }))
}

async fn destination_view(
    console: &Console,
    d: &crate::sink::Destination,
    holds: &BTreeMap<String, crate::health::Hold>,
    now: UnixMillis,
) -> Result<DestinationView, StoreError> {
    let store = &console.store;
    let mut counts = Vec::with_capacity(d.limits.len());
    for w in &d.limits {
        counts.push(store.ledger(&d.id, now - w.per_ms()).await?);
    }
    let windows = d
        .limits
        .iter()
        .zip(&counts)
        .map(|(w, (used, _))| {
            json!({
                "label": format!("{}/{}", w.count, human(w.per)),
                "span": human(w.per),
                "used": used,
                "count": w.count,
                "percent": (f64::from(*used) * 100.0 / f64::from(w.count.max(1))).min(100.0).round(),
            })
        })
        .collect();
    let blocked = store.blocked(&d.id).await?;
    let sent_in = |w: &ratelimit::Window| {
        d.limits
            .iter()
            .position(|x| x == w)
            .map_or((0, None), |i| counts[i])
    };
    let gate = ratelimit::check(now, blocked, &d.limits, &sent_in);
    let next_slot = match &gate {
        Gate::Open => None,
        Gate::Closed { until, .. } => Some(time(*until)),
    };
    // What the worker saw last (protected guard, paused account, a spent budget), else the gate's own
    // verdict from the store (a 429's hold, a full window).
    let hold = match (holds.get(&d.id), &gate) {
        (Some(h), _) => Some(json!({
            "reason": h.reason,
            "until": h.until.map(time),
            "needs_admin": h.needs_admin,
        })),
        (
            None,
            Gate::Closed {
                until,
                reason,
                cause,
            },
        ) => Some(json!({
            "reason": reason,
            "until": time(*until),
            "needs_admin": cause.needs_admin(),
        })),
        (None, Gate::Open) => None,
    };
    let spend = match &d.budget {
        Some(b) => {
            let (month_start, _) = clock::month_bounds(now);
            let spent = store.spent_since(&d.id, month_start).await?;
            Some(json!({
                "spent": format!("{:.2}", spent as f64 / 1e6),
                "budget": format!("{:.2}", b.monthly_micros as f64 / 1e6),
                "percent": (spent as f64 * 100.0 / (b.monthly_micros.max(1)) as f64).min(100.0).round(),
            }))
        }
        None => None,
    };
    let day_ago = now - 24 * 3_600_000;
    let requests = store.requests_since(&d.id, day_ago).await?;
    Ok(DestinationView {
        id: d.id.clone(),
        kind: d.kind.name(),
        dry_run: d.dry_run,
        leading: console.health.leads(&d.id),
        review: console
            .config
            .borrow()
            .pipeline
            .targets
            .get(&d.id)
            .is_some_and(|t| t.review),
        windows,
        hold,
        next_slot,
        spend,
        chart: chart::requests_per_hour(&requests, now),
    })
}

/// A window's span as the admin wrote it: 15m, 1h, 24h, 7d.
fn human(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(86_400) && s >= 86_400 * 2 {
        format!("{}d", s / 86_400)
    } else if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

pub async fn deliveries(State(console): State<Console>, admin: Admin) -> Response {
    let list = match console.store.deliveries(ROWS).await {
        Ok(l) => l,
        Err(e) => return failed(e),
    };
    let rows: Vec<serde_json::Value> = list.iter().map(delivery_view).collect();
    console.render(
        "deliveries.html",
        json!({
            "page": "deliveries",
            "admin": admin.user,
            "csrf": admin.csrf,
            "waiting": waiting(&console).await,
            "rows": rows,
        }),
    )
}

pub async fn delivery(
    State(console): State<Console>,
    admin: Admin,
    Path(id): Path<String>,
) -> Response {
    let (record, body) = match console.store.delivery(&id).await {
        Ok(Some(found)) => found,
        Ok(None) => return (StatusCode::NOT_FOUND, format!("no delivery {id}")).into_response(),
        Err(e) => return failed(e),
    };
    let items = match console.store.delivery_items(&id).await {
        Ok(i) => i,
        Err(e) => return failed(e),
    };
    let config = console.config.borrow().clone();
    // The event as planning saw it: the same normalizer, on the stored body.
    let event =
        match (&body, config.sources.get(&record.source)) {
            (Some(body), Some(source)) => serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .map(|payload| {
                    let event = crate::normalize::normalize(
                        &source.provider,
                        record.event.as_deref(),
                        &payload,
                    );
                    serde_json::to_string_pretty(&event).unwrap_or_default()
                }),
            _ => None,
        };
    console.render(
        "delivery.html",
        json!({
            "page": "deliveries",
            "admin": admin.user,
            "csrf": admin.csrf,
            "waiting": waiting(&console).await,
            "d": delivery_view(&record),
            "body_kept": body.is_some(),
            "event": event,
            "items": items.iter().map(item_view).collect::<Vec<_>>(),
        }),
    )
}

fn item_view(i: &Item) -> serde_json::Value {
    json!({
        "id": i.id, "delivery": i.delivery_id, "destination": i.destination, "recipient": i.recipient,
        "kind": i.kind, "text": i.text, "length": i.length, "state": i.state.as_str(),
        "attempts": i.attempts, "created_at": i.created_at, "updated_at": i.updated_at,
        "sent_at": i.sent_at, "remote_id": i.remote_id, "last_error": i.last_error,
        "decision": i.decision, "decided_by": i.decided_by, "decided_at": i.decided_at,
        "retryable": matches!(i.state, ItemState::Dead | ItemState::Retry | ItemState::Pending),
        "droppable": matches!(i.state, ItemState::Pending | ItemState::Retry),
    })
}

#[derive(Deserialize)]
pub struct StateFilter {
    state: Option<String>,
}

pub async fn items(
    State(console): State<Console>,
    admin: Admin,
    Query(filter): Query<StateFilter>,
) -> Response {
    let state = filter
        .state
        .as_deref()
        .filter(|s| !s.is_empty())
        .and_then(ItemState::parse);
    let list = match console.store.items(state, ROWS).await {
        Ok(l) => l,
        Err(e) => return failed(e),
    };
    let counts = console.counts().await.unwrap_or_default();
    console.render(
        "items.html",
        json!({
            "page": "items",
            "admin": admin.user,
            "csrf": admin.csrf,
            "waiting": counts.get("review").copied().unwrap_or(0),
            "state": state.map(ItemState::as_str),
            "states": ["pending", "sending", "retry", "sent", "dead", "review", "rejected", "folded"],
            "counts": counts.into_iter().collect::<BTreeMap<String,
            i64>>(),
            "items": list.iter().map(item_view).collect::<Vec<_>>(),
        }),
    )
}

/// Where an action returns to: the page it was posted from, if it is the console's own.
fn back(headers: &HeaderMap, fallback: &str) -> Redirect {
    let to = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.find("://").map(|i| &r[i + 3..]))
        .and_then(|r| r.find('/').map(|i| r[i..].to_string()))
        .filter(|p| p.starts_with('/') && !p.starts_with("//"))
        .unwrap_or_else(|| fallback.to_string());
    Redirect::to(&to)
}

/// The answer to an admin's action: back to the page, or what failed.
fn acted(result: Result<(), StoreError>, headers: &HeaderMap, fallback: &str) -> Response {
    match result {
        Ok(()) => back(headers, fallback).into_response(),
        Err(StoreError::NotFound(what)) => {
            (StatusCode::CONFLICT, format!("nothing done: no {what}")).into_response()
        }
        Err(e) => failed(e),
    }
}

pub async fn retry(
    State(console): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Action { admin, .. }: Action<Csrf>,
) -> Response {
    tracing::info!(user = %admin.user, item = %id, "Retried from the console.");
    acted(
        console.store.retry_item(&id, clock::now_ms()).await,
        &headers,
        "/items",
    )
}

pub async fn drop_item(
    State(console): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Action { admin, .. }: Action<Csrf>,
) -> Response {
    tracing::info!(user = %admin.user, item = %id, "Dropped from the console.");
    acted(
        console.store.drop_item(&id, clock::now_ms()).await,
        &headers,
        "/items",
    )
}

pub async fn replay(
    State(console): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Action { admin, .. }: Action<Csrf>,
) -> Response {
    tracing::info!(user = %admin.user, delivery = %id, "Replayed from the console.");
    acted(
        console.store.replay_delivery(&id).await.map(|_| ()),
        &headers,
        "/deliveries",
    )
}

pub async fn review(State(console): State<Console>, admin: Admin) -> Response {
    let list = match console.store.items(Some(ItemState::Review), ROWS).await {
        Ok(l) => l,
        Err(e) => return failed(e),
    };
    let config = console.config.borrow().clone();
    // Oldest first: a queue is worked through in the order it filled.
    let items: Vec<serde_json::Value> = list
        .iter()
        .rev()
        .map(|i| {
            let max = config
                .pipeline
                .targets
                .get(&i.destination)
                .map_or(280, |t| t.limit.max());
            let mut v = item_view(i);
            v["max"] = json!(max);
            v
        })
        .collect();
    console.render(
        "review.html",
        json!({
            "page": "review",
            "admin": admin.user,
            "csrf": admin.csrf,
            "waiting": items.len(),
            "items": items,
        }),
    )
}

#[derive(Deserialize)]
pub struct Decision {
    csrf: String,
    text: Option<String>,
}

pub async fn approve(
    State(console): State<Console>,
    Path(id): Path<String>,
    Action { admin, form }: Action<Decision>,
) -> Response {
    let item = match console.store.item(&id).await {
        Ok(Some(i)) => i,
        Ok(None) => return (StatusCode::NOT_FOUND, format!("no item {id}")).into_response(),
        Err(e) => return failed(e),
    };
    // An unchanged text is an approval as planned; a changed one is fitted again, as planning does.
    let text = match form.text.as_deref().map(|t| t.replace("\r\n", "\n")) {
        Some(t) if t.trim() != item.text.trim() => {
            let config = console.config.borrow().clone();
            match plan::refit(&config.pipeline, &item.destination, &t) {
                Some(fitted) => Some(fitted),
                None => {
                    return (
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "nothing done: the text is empty, or its destination is no longer configured",
                    )
                        .into_response();
                }
            }
        }
        _ => None,
    };
    tracing::info!(user = %admin.user, item = %id, edited = text.is_some(), "Approved from the console.");
    acted(
        console
            .store
            .approve(&id, &admin.user, text, clock::now_ms())
            .await
            .map(|_| ()),
        &HeaderMap::new(),
        "/review",
    )
}

pub async fn reject(
    State(console): State<Console>,
    Path(id): Path<String>,
    Action { admin, .. }: Action<Csrf>,
) -> Response {
    tracing::info!(user = %admin.user, item = %id, "Rejected from the console.");
    acted(
        console
            .store
            .reject(&id, &admin.user, clock::now_ms())
            .await,
        &HeaderMap::new(),
        "/review",
    )
}

#[derive(Deserialize)]
pub struct LengthForm {
    csrf: String,
    destination: String,
    text: String,
}

/// The weighted length of a text being edited, as its destination counts it, and what it becomes once
/// fitted: the review page asks as the admin types.
pub async fn length(
    State(console): State<Console>,
    Action { form, .. }: Action<LengthForm>,
) -> Response {
    let config = console.config.borrow().clone();
    let Some(target) = config.pipeline.targets.get(&form.destination) else {
        return (StatusCode::NOT_FOUND, "no such destination").into_response();
    };
    let text = form.text.replace("\r\n", "\n");
    let length = target.limit.measure(&text);
    Json(json!({
        "length": length,
        "max": target.limit.max(),
        "fits": length <= target.limit.max(),
    }))
    .into_response()
}

pub async fn preview_form(State(console): State<Console>, admin: Admin) -> Response {
    let config = console.config.borrow().clone();
    console.render(
        "preview.html",
        json!({
            "page": "preview",
            "admin": admin.user,
            "csrf": admin.csrf,
            "waiting": waiting(&console).await,
            "sources": config.sources.keys().cloned().collect::<Vec<_>>(),
            "form": json!({}),
            "result": None::<serde_json::Value>,
        }),
    )
}

#[derive(Deserialize, serde::Serialize)]
pub struct PreviewForm {
    csrf: String,
    source: String,
    event: String,
    payload: String,
}

/// What `chirpd preview` prints, for a pasted payload: the same `plan::plan` the fanout runs.
pub async fn preview(
    State(console): State<Console>,
    Action { admin, form }: Action<PreviewForm>,
) -> Response {
    let config = console.config.borrow().clone();
    let result = match (
        config.sources.get(&form.source),
        serde_json::from_str::<serde_json::Value>(&form.payload),
    ) {
        (None, _) => json!({ "error": format!("no source {:?} in the config", form.source) }),
        (_, Err(e)) => json!({ "error": format!("the payload is not JSON: {e}") }),
        (Some(source), Ok(payload)) => {
            let event = Some(form.event.trim()).filter(|e| !e.is_empty());
            let planned = plan::plan(
                &config.pipeline,
                &form.source,
                &source.provider,
                event,
                &payload,
            );
            json!({
                "posts": planned.posts.iter().map(|p| json!({
                    "route": p.route, "destination": p.destination, "kind": p.kind, "text": p.text,
                    "length": p.length, "max": p.limit.max(), "shortened": p.shortened, "review": p.review,
                })).collect::<Vec<_>>(),
                "errors": planned.errors.iter().map(|(r, e)| format!("route {r}: {e}")).collect::<Vec<_>>(),
                "event": serde_json::to_string_pretty(&planned.event).unwrap_or_default(),
            })
        }
    };
    console.render(
        "preview.html",
        json!({
            "page": "preview",
            "admin": admin.user,
            "csrf": admin.csrf,
            "waiting": waiting(&console).await,
            "sources": config.sources.keys().cloned().collect::<Vec<_>>(),
            "form": json!({ "source": form.source, "event": form.event, "payload": form.payload }),
            "result": result,
        }),
    )
}

impl Tokened for Csrf {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl Tokened for Decision {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl Tokened for LengthForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl Tokened for PreviewForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every view renders with the data its handler gives it: a template error is a test failure here,
    /// not a 500 in front of the admin.
    #[test]
    fn every_view_renders_with_its_handlers_data() {
        let env = views();
        let item = json!({
            "id": "i1", "delivery": "d1", "destination": "team", "recipient": "", "kind": "tweet",
            "text": "a <b>post</b>", "length": 12, "state": "dead", "attempts": 1, "created_at": 1,
            "updated_at": 2, "sent_at": null, "remote_id": null, "last_error": "X answered 400",
            "decision": "edited", "decided_by": "alice", "decided_at": 3, "retryable": true,
            "droppable": false, "max": 280,
        });
        let nav = json!({ "admin": "admin", "csrf": "t", "waiting": 2 });
        let with = |page: &str, extra: serde_json::Value| {
            let mut v = nav.clone();
            v["page"] = json!(page);
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            v
        };
        let cases = [
            (
                "login.html",
                json!({ "error": "Wrong user name or password." }),
            ),
            (
                "overview.html",
                with(
                    "overview",
                    json!({
                        "ready": false, "reasons": ["store: down"], "counts": { "sent": 3 },
                        "instance": "a", "fleet": true, "now": 1_700_000_000_000i64,
                        "destinations": [{
                            "id": "team", "kind": "tweet", "dry_run": false, "leading": true, "review": true,
                            "windows": [{ "label": "5/15m", "span": "15m", "used": 2, "count": 5, "percent": 40.0 }],
                            "hold": { "reason": "429", "until": "later", "needs_admin": false },
                            "next_slot": "later", "spend": { "spent": "1.00", "budget": "5.00", "percent": 20.0 },
                            "chart": chart::requests_per_hour(&[1], 2),
                        }],
                    }),
                ),
            ),
            (
                "deliveries.html",
                with(
                    "deliveries",
                    json!({ "rows": [{ "id": "d1", "source": "gh", "event": "issues",
                    "received_at": 1, "state": "planned", "native": "issues.opened", "kind": "task.created",
                    "error": null }] }),
                ),
            ),
            (
                "delivery.html",
                with(
                    "deliveries",
                    json!({ "d": { "id": "d1", "source": "gh", "event": "issues",
                    "received_at": 1, "state": "planned", "native": null, "kind": null, "error": null },
                    "body_kept": true, "event": "{}", "items": [item.clone()] }),
                ),
            ),
            (
                "items.html",
                with(
                    "items",
                    json!({ "state": "dead", "states": ["dead"], "counts": { "dead": 1 },
                    "items": [item.clone()] }),
                ),
            ),
            (
                "review.html",
                with("review", json!({ "items": [item.clone()] })),
            ),
            (
                "preview.html",
                with(
                    "preview",
                    json!({ "sources": ["gh"], "form": { "source": "gh", "event": "", "payload": "{}" },
                    "result": { "posts": [{ "route": 0, "destination": "team", "kind": "tweet", "text": "t",
                    "length": 1, "max": 280, "shortened": false, "review": true }], "errors": [], "event": "{}" } }),
                ),
            ),
        ];
        for (name, ctx) in cases {
            let html = env
                .get_template(name)
                .and_then(|t| t.render(minijinja::Value::from(minijinja::value::Serde(&ctx))))
                .unwrap_or_else(|e| panic!("{name}: {e:#}"));
            // Values are escaped: a payload's markup never becomes the console's.
            assert!(!html.contains("<b>post</b>"), "{name} did not escape");
        }
    }
}
