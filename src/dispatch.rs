//! The dispatcher: one worker per destination drives that destination's outbox items to its sink.
//!
//! Each turn of a worker: ask the gate (the admin's windows, X's persisted holds, the monthly budget);
//! for tweets with `require_protected`, make sure the account is protected; apply `overflow` when more is
//! queued than the windows allow (fold the backlog into a digest, or drop the oldest); claim the next due
//! item (which commits `sending` and a ledger row before any request); make one request, refreshing an
//! OAuth 2.0 token first when needed; commit the outcome. Retries back off exponentially with jitter; 429s and
//! spent windows block the destination until X's largest reset, persisted so a restart honours them; an
//! account-level refusal (401, 402, 403 access level) holds the destination and tells `/readyz`.
//! Shutdown is checked between items, never in the middle of a request.
//! This is the only module that calls a sink, and it always passes the gate first.

use std::time::Duration;

use rand::Rng;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::clock::{self, UnixMillis};
use crate::config::Dispatch;
use crate::config::secret::Secret;
use crate::failpoint;
use crate::health::{Health, Hold};
use crate::outbox::{Finish, Item, Store, StoreError};
use crate::ratelimit::{self, Gate};
use crate::render::Templates;
use crate::render::digest::{self, Folded};
use crate::render::fit;
use crate::sink::mastodon::MastodonClient;
use crate::sink::oauth2;
use crate::sink::x::{ReadError, RequestAuth, XClient};
use crate::sink::{Answer, Auth, Destination, DestinationKind, Outcome, Overflow, UrlPolicy};

/// How long an account-level refusal holds a destination before one more try.
pub const PAUSE: Duration = Duration::from_secs(3600);
/// The longest a worker waits before looking at its queue again. New items wake it at once; this bounds
/// how late it notices items changed by `chirpd queue` from another process, and keeps its heartbeat.
pub const IDLE_POLL: Duration = Duration::from_secs(5);
/// How often a public account is checked again while tweets are held for it.
pub const PUBLIC_RECHECK: Duration = Duration::from_secs(15 * 60);

/// Everything one destination's worker needs.
pub struct Worker {
    pub destination: Destination,
    pub store: Store,
    /// For OAuth 2.0 token refreshes.
    pub http: reqwest::Client,
    pub client: Client,
    /// The config's templates, for digests.
    pub templates: Templates,
    pub settings: Dispatch,
    pub health: Health,
    /// Bumped by the fanout whenever new items are stored.
    pub planned: watch::Receiver<u64>,
}

/// The API client of a destination.
#[derive(Debug, Clone)]
pub enum Client {
    X(XClient),
    Mastodon(MastodonClient),
}

impl Client {
    pub fn for_destination(http: &reqwest::Client, d: &Destination) -> Client {
        match d.kind {
            DestinationKind::Mastodon => {
                Client::Mastodon(MastodonClient::new(http.clone(), &d.api_base))
            }
            _ => Client::X(XClient::new(http.clone(), &d.api_base)),
        }
    }
}

/// The protected-account guard's last finding.
struct Guard {
    protected: bool,
    checked_at: Option<tokio::time::Instant>,
}

/// An OAuth 2.0 problem that stops the destination until the admin acts.
struct AuthFailure(String);

impl Worker {
    pub async fn run(mut self, shutdown: CancellationToken) {
        let id = self.destination.id.clone();
        let mut guard = Guard {
            protected: false,
            checked_at: None,
        };
        loop {
            self.health.beat(&id);
            if shutdown.is_cancelled() {
                self.health.retire(&id);
                return;
            }
            let wait = match self.turn(&mut guard).await {
                Ok(None) => continue,
                Ok(Some(wait)) => wait,
                Err(e) => {
                    tracing::error!(destination = %id, error = %e, "Store error in the dispatcher; retrying in 1 s.");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait.min(IDLE_POLL)) => {}
                _ = self.planned.changed() => {}
                _ = shutdown.cancelled() => {
                    self.health.retire(&id);
                    return;
                }
            }
        }
    }

    /// One turn: folds, drops or sends at most one item. Returns how long to wait before the next turn,
    /// or none to go on at once.
    async fn turn(&mut self, guard: &mut Guard) -> Result<Option<Duration>, StoreError> {
        let now = clock::now_ms();
        let (gate, capacity) = self.gate(now).await?;
        if let Gate::Closed { until, reason } = gate {
            let needs_admin = reason.starts_with("paused");
            self.health.hold(
                &self.destination.id,
                Hold {
                    reason,
                    needs_admin,
                    until: Some(until),
                },
            );
            return Ok(Some(wait_until(now, until)));
        }
        let d = &self.destination;
        if d.require_protected && !d.dry_run && !self.account_is_protected(guard).await {
            return Ok(Some(
                PUBLIC_RECHECK.min(self.settings.protected_check_every),
            ));
        }
        self.health.clear(&self.destination.id);
        // Mark the planned counter seen before looking, so items planned after this look wake us.
        self.planned.borrow_and_update();
        if let Some(wait) = self.overflow(now, capacity).await? {
            return Ok(wait);
        }
        let Some(item) = self.store.claim(&self.destination.id, now).await? else {
            let next = self.store.next_due(&self.destination.id).await?;
            return Ok(Some(next.map_or(IDLE_POLL, |at| wait_until(now, at))));
        };
        let (item, cost) = match self.within_budget(item, now).await? {
            Ok(ready) => ready,
            Err(until) => return Ok(Some(wait_until(now, until))),
        };
        failpoint::hit(failpoint::AFTER_SENDING);
        let answer = self.send(&item).await;
        failpoint::hit(failpoint::AFTER_ANSWER);
        self.record(&item, answer, cost).await?;
        Ok(None)
    }

    /// The gate, and how many requests the admin's windows still allow (none: no windows).
    async fn gate(&self, now: UnixMillis) -> Result<(Gate, Option<u32>), StoreError> {
        let d = &self.destination;
        let blocked = self.store.blocked(&d.id).await?;
        let mut counts = Vec::with_capacity(d.limits.len());
        for w in &d.limits {
            counts.push(self.store.ledger(&d.id, now - w.per_ms()).await?);
        }
        let sent_in = |w: &ratelimit::Window| {
            d.limits
                .iter()
                .position(|x| x == w)
                .map_or((0, None), |i| counts[i])
        };
        let mut gate = ratelimit::check(now, blocked, &d.limits, &sent_in);
        let capacity = d
            .limits
            .iter()
            .zip(&counts)
            .map(|(w, (used, _))| w.count.saturating_sub(*used))
            .min();
        if gate == Gate::Open
            && let Some(b) = d.budget
        {
            let (month_start, next_month) = clock::month_bounds(now);
            let spent = self.store.spent_since(&d.id, month_start).await?;
            metrics::gauge!("chirpd_spend_dollars", "destination" => d.id.clone())
                .set(spent as f64 / 1e6);
            if spent + b.post_micros > b.monthly_micros {
                gate = Gate::Closed {
                    until: next_month,
                    reason: format!(
                        "monthly budget of ${:.2} spent (${:.2}); posts are held until the next month",
                        b.monthly_micros as f64 / 1e6,
                        spent as f64 / 1e6
                    ),
                };
            }
        }
        Ok((gate, capacity))
    }

    /// Applies `overflow` when more is queued than the windows allow. Returns `Some` when this turn was
    /// spent (folding, dropping, or waiting to gather a digest).
    async fn overflow(
        &self,
        now: UnixMillis,
        capacity: Option<u32>,
    ) -> Result<Option<Option<Duration>>, StoreError> {
        let d = &self.destination;
        let Some(room) = capacity.map(|c| c as usize) else {
            return Ok(None);
        };
        if d.overflow == Overflow::Queue {
            return Ok(None);
        }
        let due = self.store.due(&d.id, now, 1000).await?;
        if due.iter().any(|i| i.kind == "digest") {
            // A digest is waiting: it goes first, and folds nothing else until it is out.
            return Ok(None);
        }
        let queued: Vec<&Item> = due.iter().collect();
        match &d.overflow {
            Overflow::Drop if queued.len() > room => {
                let excess: Vec<String> = queued[..queued.len() - room]
                    .iter()
                    .map(|i| i.id.clone())
                    .collect();
                let n = self
                    .store
                    .drop_items(
                        excess,
                        "dropped: more was queued than the limits allow",
                        now,
                    )
                    .await?;
                metrics::counter!("chirpd_dropped_total", "destination" => d.id.clone())
                    .increment(n as u64);
                tracing::warn!(destination = %d.id, dropped = n, "More was queued than the limits allow; the oldest items were dropped.");
                Ok(Some(None))
            }
            Overflow::Digest { template, delay } => {
                let fold_now = if room >= 2 {
                    // Keep the last slot of the window for a digest of whatever comes next.
                    queued.len() > room - 1
                } else if let Some(oldest) = queued.first() {
                    let ready_at = oldest.created_at + delay.as_millis() as i64;
                    if now < ready_at {
                        return Ok(Some(Some(wait_until(now, ready_at))));
                    }
                    queued.len() >= 2
                } else {
                    false
                };
                if !fold_now {
                    return Ok(None);
                }
                let folded: Vec<Folded> = queued
                    .iter()
                    .map(|i| Folded {
                        kind: i.event_kind.clone(),
                        project: i.project.clone(),
                        text: digest::excerpt(&i.text),
                    })
                    .collect();
                let text = match self.templates.render(template, &digest::context(&folded)) {
                    Ok(t) if !t.is_empty() => t,
                    Ok(_) | Err(_) => format!("{} updates", folded.len()),
                };
                let fitted = fit::fit(&text, d.kind.limit());
                let ids: Vec<String> = queued.iter().map(|i| i.id.clone()).collect();
                let digest_id = self
                    .store
                    .fold(&d.id, ids, fitted.text, fitted.length, now)
                    .await?;
                metrics::counter!("chirpd_folded_total", "destination" => d.id.clone())
                    .increment(folded.len() as u64);
                tracing::info!(destination = %d.id, digest = %digest_id, events = folded.len(), "Backlog folded into a digest.");
                Ok(Some(None))
            }
            _ => Ok(None),
        }
    }

    /// Checks the item's price against the budget; removes its links when `url_policy` allows and that
    /// makes it fit. `Err(until)`: the item is released and the destination held until `until`.
    async fn within_budget(
        &self,
        item: Item,
        now: UnixMillis,
    ) -> Result<Result<(Item, i64), UnixMillis>, StoreError> {
        let d = &self.destination;
        let Some(b) = d.budget else {
            return Ok(Ok((item, 0)));
        };
        let (month_start, next_month) = clock::month_bounds(now);
        let spent = self.store.spent_since(&d.id, month_start).await?;
        let price = |text: &str| {
            if fit::has_url(text) {
                b.post_with_url_micros
            } else {
                b.post_micros
            }
        };
        let mut item = item;
        let mut cost = price(&item.text);
        if spent + cost > b.monthly_micros
            && d.url_policy == UrlPolicy::DropOverBudget
            && fit::has_url(&item.text)
        {
            let stripped = fit::fit(&fit::strip_urls(&item.text), d.kind.limit());
            if !stripped.text.is_empty() {
                self.store
                    .set_text(&item.id, stripped.text.clone(), stripped.length)
                    .await?;
                tracing::info!(destination = %d.id, item = %item.id, "Link removed to stay within the budget.");
                item.text = stripped.text;
                item.length = stripped.length;
                cost = b.post_micros;
            }
        }
        if spent + cost > b.monthly_micros {
            let reason = "the next post would exceed the monthly budget".to_string();
            self.store
                .finish(
                    &item.id,
                    Finish::Release {
                        at: next_month,
                        error: reason.clone(),
                    },
                    now,
                )
                .await?;
            self.store.block(&d.id, next_month, &reason).await?;
            tracing::warn!(destination = %d.id, "Monthly budget reached; posts are held until the next month.");
            return Ok(Err(next_month));
        }
        Ok(Ok((item, cost)))
    }

    /// Makes the one request for an item.
    async fn send(&self, item: &Item) -> Answer {
        let d = &self.destination;
        let timeout = self.settings.request_timeout;
        if d.dry_run {
            tracing::info!(destination = %d.id, item = %item.id, text = %item.text, "Dry run: recorded instead of posting.");
            return answer(Outcome::Sent { remote_id: None });
        }
        match &self.client {
            Client::Mastodon(m) => {
                let token = match &d.auth {
                    Auth::Bearer(t) => t.expose().to_string(),
                    _ => {
                        return answer(Outcome::Pause {
                            reason: "no Mastodon token".into(),
                        });
                    }
                };
                m.post_status(&item.text, &d.visibility, &item.id, &token, timeout)
                    .await
            }
            Client::X(x) => {
                let recipient = if item.kind == "dm" {
                    match self.recipient_id(x, &item.recipient).await {
                        Ok(id) => Some(id),
                        Err(outcome) => return answer(outcome),
                    }
                } else {
                    None
                };
                let mut refreshed = false;
                loop {
                    let bearer = match self.bearer(refreshed).await {
                        Ok(b) => b,
                        Err(AuthFailure(reason)) => return answer(Outcome::Pause { reason }),
                    };
                    let auth = match (&d.auth, &bearer) {
                        (Auth::OAuth1(c), _) => RequestAuth::OAuth1(c),
                        (_, Some(token)) => RequestAuth::Bearer(token.expose()),
                        _ => {
                            return answer(Outcome::Pause {
                                reason: "no X credentials".into(),
                            });
                        }
                    };
                    let a = match &recipient {
                        Some(user) => x.post_dm(user, &item.text, auth, timeout).await,
                        None => x.post_tweet(&item.text, auth, timeout).await,
                    };
                    // One refresh on a 401 with OAuth 2.0, then the answer stands.
                    if matches!(d.auth, Auth::OAuth2(_)) && !refreshed && is_unauthorized(&a) {
                        refreshed = true;
                        continue;
                    }
                    return a;
                }
            }
        }
    }

    /// The OAuth 2.0 access token, refreshed first when it expires within five minutes or `force` is set.
    /// The rotated refresh token is stored before the new access token is used.
    async fn bearer(&self, force: bool) -> Result<Option<Secret>, AuthFailure> {
        let d = &self.destination;
        let Auth::OAuth2(client) = &d.auth else {
            return Ok(None);
        };
        let stored = self
            .store
            .tokens(&d.id)
            .await
            .map_err(|e| AuthFailure(e.to_string()))?;
        let Some((access, refresh, expires_at)) = stored else {
            return Err(AuthFailure(format!(
                "paused: no OAuth 2.0 tokens; run chirpd auth x --destination {}",
                d.id
            )));
        };
        let now = clock::now_ms();
        if !force && expires_at - now > 5 * 60 * 1000 {
            return Ok(Some(access));
        }
        let Some(refresh) = refresh else {
            return Err(AuthFailure(format!(
                "paused: the OAuth 2.0 token expired and there is no refresh token (add offline.access); run chirpd auth x --destination {}",
                d.id
            )));
        };
        match oauth2::refresh(&self.http, client, &refresh, now).await {
            Ok(tokens) => {
                self.store
                    .set_tokens(
                        &d.id,
                        tokens.access_token.clone(),
                        tokens.refresh_token.clone(),
                        tokens.expires_at,
                        now,
                    )
                    .await
                    .map_err(|e| AuthFailure(format!("cannot store the refreshed tokens: {e}")))?;
                metrics::counter!("chirpd_oauth_refreshes_total", "destination" => d.id.clone(), "outcome" => "ok").increment(1);
                tracing::info!(destination = %d.id, "OAuth 2.0 tokens refreshed and stored.");
                Ok(Some(tokens.access_token))
            }
            Err(oauth2::RefreshError::Transient(e)) => {
                // Try with the current token; the next turn refreshes again.
                tracing::warn!(destination = %d.id, error = %e, "OAuth 2.0 refresh failed for now.");
                Ok(Some(access))
            }
            Err(oauth2::RefreshError::Rejected(e)) => {
                metrics::counter!("chirpd_oauth_refreshes_total", "destination" => d.id.clone(), "outcome" => "rejected").increment(1);
                Err(AuthFailure(format!(
                    "paused: X refused the OAuth 2.0 refresh token ({e}); run chirpd auth x --destination {}",
                    d.id
                )))
            }
        }
    }

    /// A DM recipient's user id: numeric ids as they are, `@username` resolved once and cached.
    async fn recipient_id(&self, x: &XClient, recipient: &str) -> Result<String, Outcome> {
        let name = recipient.trim_start_matches('@');
        if !recipient.starts_with('@') && name.chars().all(|c| c.is_ascii_digit()) {
            return Ok(name.to_string());
        }
        if let Ok(Some(id)) = self.store.user_id(name).await {
            return Ok(id);
        }
        let bearer = self
            .bearer(false)
            .await
            .map_err(|AuthFailure(reason)| Outcome::Pause { reason })?;
        let auth = match (&self.destination.auth, &bearer) {
            (Auth::OAuth1(c), _) => RequestAuth::OAuth1(c),
            (_, Some(t)) => RequestAuth::Bearer(t.expose()),
            _ => {
                return Err(Outcome::Pause {
                    reason: "no X credentials".into(),
                });
            }
        };
        match x.user_id(name, auth, self.settings.request_timeout).await {
            Ok(Some(id)) => {
                let _ = self.store.set_user_id(name, &id, clock::now_ms()).await;
                Ok(id)
            }
            Ok(None) => Err(Outcome::Dead {
                reason: format!("X has no user @{name}"),
            }),
            Err(e) => Err(Outcome::Retry {
                reason: e.to_string(),
            }),
        }
    }

    /// The protected-account guard: holds tweets while the account is public. Checks X at start and then
    /// every `protected_check_every` while protected, or every `PUBLIC_RECHECK` while public.
    async fn account_is_protected(&self, guard: &mut Guard) -> bool {
        let d = &self.destination;
        let Client::X(x) = &self.client else {
            return true;
        };
        let every = if guard.protected {
            self.settings.protected_check_every
        } else {
            PUBLIC_RECHECK.min(self.settings.protected_check_every)
        };
        let due = guard.checked_at.is_none_or(|t| t.elapsed() >= every);
        if !due {
            return guard.protected;
        }
        guard.checked_at = Some(tokio::time::Instant::now());
        let mut result = self.check_protected(x, false).await;
        if matches!(result, Err(ReadError::Unauthorized(_))) && matches!(d.auth, Auth::OAuth2(_)) {
            // The access token died early: one refresh, then the answer stands.
            result = self.check_protected(x, true).await;
        }
        match result {
            Ok(true) => {
                if !guard.protected {
                    tracing::info!(destination = %d.id, "The account is protected; tweets may go out.");
                }
                guard.protected = true;
            }
            Ok(false) => {
                guard.protected = false;
                let reason = "account is public: tweets are held until it is protected (require_protected = true)";
                tracing::warn!(destination = %d.id, "{reason}");
                self.health.hold(
                    &d.id,
                    Hold {
                        reason: reason.to_string(),
                        needs_admin: true,
                        until: None,
                    },
                );
            }
            Err(e) => {
                guard.protected = false;
                let reason =
                    format!("cannot tell whether the account is protected, tweets held: {e}");
                tracing::warn!(destination = %d.id, "{reason}");
                self.health.hold(
                    &d.id,
                    Hold {
                        reason,
                        needs_admin: true,
                        until: None,
                    },
                );
            }
        }
        guard.protected
    }

    async fn check_protected(&self, x: &XClient, refresh: bool) -> Result<bool, ReadError> {
        let bearer = self
            .bearer(refresh)
            .await
            .map_err(|AuthFailure(reason)| ReadError::Other(reason))?;
        let auth = match (&self.destination.auth, &bearer) {
            (Auth::OAuth1(c), _) => RequestAuth::OAuth1(c),
            (_, Some(t)) => RequestAuth::Bearer(t.expose()),
            _ => return Ok(true),
        };
        x.is_protected(auth, self.settings.request_timeout).await
    }

    /// Commits the outcome of one attempt and any rate-limit block it revealed.
    async fn record(
        &self,
        item: &Item,
        answer: Answer,
        cost_micros: i64,
    ) -> Result<(), StoreError> {
        let d = &self.destination;
        let now = clock::now_ms();
        if let Some(until) = answer.limits.spent_until {
            self.store
                .block(&d.id, until, "the API reports the rate-limit window spent")
                .await?;
        }
        let outcome_label = match &answer.outcome {
            Outcome::Sent { .. } if d.dry_run => "dry_run",
            Outcome::Sent { .. } => "sent",
            Outcome::AlreadyPosted => "already_posted",
            Outcome::Retry { .. } => "retry",
            Outcome::RateLimited { .. } => "rate_limited",
            Outcome::Pause { .. } => "paused",
            Outcome::Dead { .. } => "dead",
        };
        metrics::counter!("chirpd_posts_total", "destination" => d.id.clone(), "outcome" => outcome_label).increment(1);
        if let Some(remaining) = answer.limits.remaining {
            metrics::gauge!("chirpd_rate_limit_remaining", "destination" => d.id.clone())
                .set(remaining as f64);
        }
        let finish = match answer.outcome {
            Outcome::Sent { remote_id } => {
                tracing::info!(destination = %d.id, item = %item.id, remote_id = remote_id.as_deref().unwrap_or("-"), "Posted.");
                Finish::Sent {
                    remote_id,
                    note: None,
                    cost_micros: if d.dry_run { 0 } else { cost_micros },
                }
            }
            Outcome::AlreadyPosted => {
                tracing::warn!(destination = %d.id, item = %item.id, attempts = item.attempts,
                    "X refused the text as a duplicate: an earlier attempt posted it; marked sent.");
                Finish::Sent {
                    remote_id: None,
                    note: Some("X reported duplicate content: already posted".to_string()),
                    cost_micros: 0,
                }
            }
            Outcome::Retry { reason } => {
                let age = Duration::from_millis(u64::try_from(now - item.created_at).unwrap_or(0));
                if age >= self.settings.give_up_after {
                    tracing::error!(destination = %d.id, item = %item.id, %reason, "Giving up on an item after its retry budget.");
                    Finish::Dead {
                        error: format!("gave up after {} attempts: {reason}", item.attempts),
                    }
                } else {
                    let delay = backoff(
                        item.attempts,
                        self.settings.retry_base,
                        self.settings.retry_max,
                        &mut rand::rng(),
                    );
                    tracing::warn!(destination = %d.id, item = %item.id, %reason, retry_in_ms = delay.as_millis() as u64, "Attempt failed; will retry.");
                    Finish::Retry {
                        at: now + delay.as_millis() as i64,
                        error: reason,
                    }
                }
            }
            Outcome::RateLimited { until, reason } => {
                // Without a reset header, wait one 15-minute window, X's shortest.
                let until = until.unwrap_or(now + 15 * 60 * 1000).max(now + 1000);
                self.store.block(&d.id, until, &reason).await?;
                tracing::warn!(destination = %d.id, until, "Answered 429; holding the destination until its reset.");
                Finish::Release {
                    at: until,
                    error: reason,
                }
            }
            Outcome::Pause { reason } => {
                let until = now + PAUSE.as_millis() as i64;
                let why = if reason.starts_with("paused") {
                    reason.clone()
                } else {
                    format!("paused: {reason}")
                };
                self.store.block(&d.id, until, &why).await?;
                tracing::error!(destination = %d.id, %reason, "The account itself was refused; destination held for an hour. Fix the credentials or plan, then reload or wait.");
                self.health.hold(
                    &d.id,
                    Hold {
                        reason: why,
                        needs_admin: true,
                        until: Some(until),
                    },
                );
                Finish::Release {
                    at: until,
                    error: reason,
                }
            }
            Outcome::Dead { reason } => {
                tracing::error!(destination = %d.id, item = %item.id, %reason, "The post was refused; dead-lettered.");
                Finish::Dead { error: reason }
            }
        };
        self.store.finish(&item.id, finish, now).await
    }
}

fn answer(outcome: Outcome) -> Answer {
    Answer {
        outcome,
        limits: ratelimit::XLimits {
            spent_until: None,
            remaining: None,
        },
    }
}

fn is_unauthorized(a: &Answer) -> bool {
    matches!(&a.outcome, Outcome::Pause { reason } if reason.starts_with("X answered 401"))
}

/// Exponential backoff with equal jitter: half the delay is fixed, half random, so retries spread out
/// without ever firing at once.
pub fn backoff(attempts: i64, base: Duration, max: Duration, rng: &mut impl Rng) -> Duration {
    let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let full = base.saturating_mul(2u32.saturating_pow(exp)).min(max);
    let half = full / 2;
    let jitter_ms = rng.random_range(0..=half.as_millis() as u64);
    half + Duration::from_millis(jitter_ms)
}

fn wait_until(now: UnixMillis, until: UnixMillis) -> Duration {
    Duration::from_millis(u64::try_from(until - now).unwrap_or(0).max(1))
}

/// Keeps the send ledger small: rows older than the longest window any destination uses are deleted.
pub async fn prune_ledger_forever(store: Store, longest: Duration, shutdown: CancellationToken) {
    let keep_ms = (longest.max(Duration::from_secs(86_400)).as_millis() as i64).saturating_mul(2);
    loop {
        if let Err(e) = store.prune_ledger(clock::now_ms() - keep_ms).await {
            tracing::warn!(error = %e, "Cannot prune the send ledger.");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_grows_to_its_cap_with_jitter_in_the_upper_half() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let base = Duration::from_secs(5);
        let max = Duration::from_secs(900);
        for attempts in 1..12 {
            let full = (base * 2u32.pow(attempts as u32 - 1)).min(max);
            for _ in 0..50 {
                let d = backoff(attempts, base, max, &mut rng);
                assert!(
                    d >= full / 2 && d <= full,
                    "attempt {attempts}: {d:?} not in [{:?}, {full:?}]",
                    full / 2
                );
            }
        }
        assert!(backoff(1000, base, max, &mut rng) <= max);
    }
}
