//! The dispatcher: one worker per destination drives that destination's outbox items to its sink.
//!
//! Each turn of a worker: ask the rate-limit gate; for tweets with `require_protected`, make sure the
//! account is protected; claim the next due item (which commits `sending` and a ledger row before any
//! request); make one request; commit the outcome. Retries back off exponentially with jitter; 429s and
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
use crate::health::{Health, Hold};
use crate::outbox::{Finish, Item, Store, StoreError};
use crate::ratelimit::{self, Gate};
use crate::sink::x::XClient;
use crate::sink::{Answer, Destination, Outcome};

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
    pub client: XClient,
    pub settings: Dispatch,
    pub health: Health,
    /// Bumped by the fanout whenever new items are stored.
    pub planned: watch::Receiver<u64>,
}

/// The protected-account guard's last finding.
struct Guard {
    protected: bool,
    checked_at: Option<tokio::time::Instant>,
}

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

    /// One turn: sends at most one item. Returns how long to wait before the next turn, or none to go on.
    async fn turn(&mut self, guard: &mut Guard) -> Result<Option<Duration>, StoreError> {
        let d = &self.destination;
        let now = clock::now_ms();
        if let Gate::Closed { until, reason } = self.gate(now).await? {
            self.health.hold(
                &d.id,
                Hold {
                    reason: reason.clone(),
                    needs_admin: reason.starts_with("paused"),
                    until: Some(until),
                },
            );
            return Ok(Some(wait_until(now, until)));
        }
        if d.require_protected && !d.dry_run && !self.account_is_protected(guard).await {
            return Ok(Some(
                PUBLIC_RECHECK.min(self.settings.protected_check_every),
            ));
        }
        self.health.clear(&d.id);
        // Mark the planned counter seen before claiming, so items planned after this claim wake us.
        self.planned.borrow_and_update();
        let Some(item) = self.store.claim(&d.id, now).await? else {
            let next = self.store.next_due(&d.id).await?;
            return Ok(Some(match next {
                Some(at) => wait_until(now, at),
                None => IDLE_POLL,
            }));
        };
        let answer = if d.dry_run {
            tracing::info!(destination = %d.id, item = %item.id, text = %item.text, "Dry run: recorded instead of posting.");
            Answer {
                outcome: Outcome::Sent { remote_id: None },
                limits: ratelimit::XLimits {
                    spent_until: None,
                    remaining: None,
                },
            }
        } else {
            self.client
                .post_tweet(&item.text, self.settings.request_timeout)
                .await
        };
        self.record(&item, answer).await?;
        Ok(None)
    }

    async fn gate(&self, now: UnixMillis) -> Result<Gate, StoreError> {
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
        Ok(ratelimit::check(now, blocked, &d.limits, &sent_in))
    }

    /// The protected-account guard: holds tweets while the account is public. Checks X at start and then
    /// every `protected_check_every` while protected, or every `PUBLIC_RECHECK` while public.
    async fn account_is_protected(&self, guard: &mut Guard) -> bool {
        let d = &self.destination;
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
        match self
            .client
            .is_protected(self.settings.request_timeout)
            .await
        {
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

    /// Commits the outcome of one attempt and any rate-limit block it revealed.
    async fn record(&self, item: &Item, answer: Answer) -> Result<(), StoreError> {
        let d = &self.destination;
        let now = clock::now_ms();
        if let Some(until) = answer.limits.spent_until {
            self.store
                .block(&d.id, until, "X reports the rate-limit window spent")
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
                }
            }
            Outcome::AlreadyPosted => {
                tracing::warn!(destination = %d.id, item = %item.id, attempts = item.attempts,
                    "X refused the text as a duplicate: an earlier attempt posted it; marked sent.");
                Finish::Sent {
                    remote_id: None,
                    note: Some("X reported duplicate content: already posted".to_string()),
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
                tracing::warn!(destination = %d.id, until, "X answered 429; holding the destination until its reset.");
                Finish::Release {
                    at: until,
                    error: reason,
                }
            }
            Outcome::Pause { reason } => {
                let until = now + PAUSE.as_millis() as i64;
                let why = format!("paused: {reason}");
                self.store.block(&d.id, until, &why).await?;
                tracing::error!(destination = %d.id, %reason, "X refused the account itself; destination held for an hour. Fix the credentials or plan, then restart or wait.");
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
                tracing::error!(destination = %d.id, item = %item.id, %reason, "X refused the post; dead-lettered.");
                Finish::Dead { error: reason }
            }
        };
        self.store.finish(&item.id, finish, now).await
    }
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
