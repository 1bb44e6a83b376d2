//! The dispatcher: one worker per destination drives that destination's outbox items to its sink.
//!
//! Each turn of a worker: ask the gate (`gate.rs`: the admin's windows, persisted holds, the monthly
//! budget); for tweets with `require_protected`, make sure the account is protected (`guard.rs`); apply
//! `overflow` when more is queued than the windows allow (`overflow.rs`: fold the backlog into digests,
//! or drop the oldest); claim the next due item (which commits `sending` and a ledger row before any
//! request); make one request with the destination's credentials (`auth.rs`: OAuth 2.0 refresh, one retry
//! on a 401); commit the outcome (`record.rs`). Retries back off exponentially with jitter.
//!
//! What kind of request an item becomes follows from its destination's kind alone (`Sink`), never from
//! the item: a DM destination's worker has no way to post a tweet.
//! Shutdown is checked between items, never in the middle of a request.
//! This is the only module that calls a sink, and it always passes the gate first.

mod auth;
mod gate;
mod guard;
pub mod lead;
mod overflow;
mod recipient;
mod record;

use std::time::Duration;

use rand::Rng;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::clock::{self, UnixMillis};
use crate::config::Dispatch;
use crate::failpoint;
use crate::health::{Health, Hold};
use crate::outbox::{Item, SharedStore, StoreError};
use crate::ratelimit::Gate;
use crate::render::Templates;
use crate::sink::mastodon::MastodonClient;
use crate::sink::x::XClient;
use crate::sink::{Answer, Destination, DestinationKind, Outcome, RequestAuth};

use self::gate::Priced;
use self::guard::Guard;

/// How long an account-level refusal holds a destination before one more try.
pub const PAUSE: Duration = Duration::from_secs(3600);
/// The longest a worker waits before looking at its queue again. New items wake it at once; this bounds
/// how late it notices items changed by `chirpd queue` from another process, and keeps its heartbeat.
pub const IDLE_POLL: Duration = Duration::from_secs(5);
/// The longest single wait while recording an outcome the store cannot take yet; the waits double from
/// 250 ms up to this, about a minute in all.
const RECORD_PATIENCE: Duration = Duration::from_secs(32);
/// How often a public account is checked again while tweets are held for it.
pub const PUBLIC_RECHECK: Duration = Duration::from_secs(15 * 60);

/// Everything one destination's worker needs.
pub struct Worker {
    pub destination: Destination,
    pub store: SharedStore,
    /// For OAuth 2.0 token refreshes.
    pub http: reqwest::Client,
    /// The API client, chosen by the destination's kind.
    pub sink: Sink,
    /// The config's templates, for digests.
    pub templates: Templates,
    pub settings: Dispatch,
    pub health: Health,
    /// Bumped by the fanout whenever new items are stored.
    pub planned: watch::Receiver<u64>,
}

/// Where a destination's items go. Built from `DestinationKind`, so that the request an item becomes is
/// decided by its destination and by nothing in the item.
#[derive(Debug, Clone)]
pub enum Sink {
    /// Status posts from the team account.
    XTweets(XClient),
    /// Direct messages, each item to its own recipient.
    XDms(XClient),
    /// Statuses on a Mastodon instance.
    Mastodon(MastodonClient),
}

impl Sink {
    pub fn for_destination(http: &reqwest::Client, d: &Destination) -> Sink {
        match d.kind {
            DestinationKind::XTweet => Sink::XTweets(XClient::new(http.clone(), &d.api_base)),
            DestinationKind::XDm => Sink::XDms(XClient::new(http.clone(), &d.api_base)),
            DestinationKind::Mastodon => {
                Sink::Mastodon(MastodonClient::new(http.clone(), &d.api_base))
            }
        }
    }
}

/// What a worker does after a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turn {
    /// Take the next turn at once: this one made progress.
    Again,
    /// Nothing to do before this long (or before new items arrive).
    Wait(Duration),
}

impl Worker {
    pub async fn run(mut self, shutdown: CancellationToken) {
        let id = self.destination.id.clone();
        let mut guard = Guard::default();
        // Whether the fanout still announces new items. If it is gone, the worker says so once and falls
        // back to polling, instead of spinning on a closed channel.
        let mut announced = true;
        loop {
            self.health.beat(&id);
            if shutdown.is_cancelled() {
                self.health.retire(&id);
                return;
            }
            let wait = match self.turn(&mut guard).await {
                Ok(Turn::Again) => continue,
                Ok(Turn::Wait(wait)) => wait,
                Err(e) => {
                    metrics::counter!("chirpd_stage_errors_total", "stage" => "dispatch")
                        .increment(1);
                    tracing::error!(destination = %id, error = %e, "Store error in the dispatcher; retrying in 1 s.");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait.min(IDLE_POLL)) => {}
                changed = self.planned.changed(), if announced => {
                    if changed.is_err() {
                        announced = false;
                        tracing::error!(destination = %id, "The fanout no longer announces new items; polling every {} s.", IDLE_POLL.as_secs());
                    }
                }
                _ = shutdown.cancelled() => {
                    self.health.retire(&id);
                    return;
                }
            }
        }
    }

    /// One turn: folds, drops or sends at most one item.
    async fn turn(&mut self, guard: &mut Guard) -> Result<Turn, StoreError> {
        if !self.health.leads(&self.destination.id) {
            // Another instance sends for this destination (or this one is taking over); its holds are that
            // instance's to show. Leadership changes wake this worker.
            self.health.clear(&self.destination.id);
            return Ok(Turn::Wait(IDLE_POLL));
        }
        let now = clock::now_ms();
        let (gate, capacity) = self.gate(now).await?;
        if let Gate::Closed {
            until,
            cause,
            reason,
        } = gate
        {
            self.health.hold(
                &self.destination.id,
                Hold {
                    reason,
                    needs_admin: cause.needs_admin(),
                    until: Some(until),
                },
            );
            return Ok(Turn::Wait(wait_until(now, until)));
        }
        if let Sink::XTweets(x) = &self.sink
            && self.destination.require_protected
            && !self.destination.dry_run
            && !self.account_is_protected(x, guard).await
        {
            return Ok(Turn::Wait(self.recheck_while_public()));
        }
        self.health.clear(&self.destination.id);
        // Mark the planned counter seen before looking, so items planned after this look wake us.
        self.planned.borrow_and_update();
        if let Some(turn) = self.overflow(now, capacity).await? {
            return Ok(turn);
        }
        let Some(item) = self.store.claim(&self.destination.id, now).await? else {
            let next = self.store.next_due(&self.destination.id).await?;
            return Ok(Turn::Wait(next.map_or(IDLE_POLL, |at| wait_until(now, at))));
        };
        let (item, cost) = match self.price(item, now).await? {
            Priced::Ready { item, cost_micros } => (item, cost_micros),
            Priced::Held { until } => return Ok(Turn::Wait(wait_until(now, until))),
        };
        failpoint::hit(failpoint::AFTER_SENDING);
        let answer = self.send(&item).await;
        failpoint::hit(failpoint::AFTER_ANSWER);
        // The request was made: its outcome must be committed, or the item stays `sending` until another
        // process takes the destination over. A store that is briefly unavailable (PostgreSQL restarting,
        // a failover) is waited for.
        let mut wait = Duration::from_millis(250);
        loop {
            match self.record(&item, answer.clone(), cost).await {
                Ok(()) => return Ok(Turn::Again),
                Err(StoreError::Unavailable(e)) if wait <= RECORD_PATIENCE => {
                    tracing::warn!(destination = %self.destination.id, item = %item.id, error = %e, "Cannot record how the request ended; trying again in {} ms.", wait.as_millis());
                    tokio::time::sleep(wait).await;
                    wait = wait.saturating_mul(2);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Makes the one request for an item, of the kind its destination posts.
    async fn send(&self, item: &Item) -> Answer {
        let d = &self.destination;
        let timeout = self.settings.request_timeout;
        if d.dry_run {
            tracing::info!(destination = %d.id, item = %item.id, text = %item.text, "Dry run, recorded instead of posting: {}", item.text);
            return Answer::without_headers(Outcome::Sent { remote_id: None });
        }
        let answer = match &self.sink {
            Sink::Mastodon(m) => {
                self.authorized(
                    |auth| async move {
                        match auth {
                            RequestAuth::Bearer(token) => {
                                let token = token.expose();
                                m.post_status(&item.text, &d.visibility, &item.id, token, timeout)
                                    .await
                            }
                            RequestAuth::OAuth1(_) => Answer::without_headers(Outcome::Pause {
                                reason: "a Mastodon destination needs an access token".into(),
                            }),
                        }
                    },
                    is_unauthorized,
                )
                .await
            }
            Sink::XTweets(x) => {
                self.authorized(
                    |auth| x.post_tweet(&item.text, auth, timeout),
                    is_unauthorized,
                )
                .await
            }
            Sink::XDms(x) => {
                if item.recipient.is_empty() {
                    // Planning and folding always set a recipient for DMs; an item without one is
                    // never turned into anything else.
                    return Answer::without_headers(Outcome::Dead {
                        reason: "a direct message without a recipient".into(),
                    });
                }
                let user = match self.recipient_id(x, &item.recipient).await {
                    Ok(id) => id,
                    Err(outcome) => return Answer::without_headers(outcome),
                };
                self.authorized(
                    |auth| x.post_dm(&user, &item.text, auth, timeout),
                    is_unauthorized,
                )
                .await
            }
        };
        answer.unwrap_or_else(|failure| {
            Answer::without_headers(Outcome::Pause {
                reason: failure.reason(&d.id),
            })
        })
    }
}

fn is_unauthorized(a: &Answer) -> bool {
    matches!(a.outcome, Outcome::Unauthorized { .. })
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
    Duration::from_millis(u64::try_from(until.saturating_sub(now)).unwrap_or(0).max(1))
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
