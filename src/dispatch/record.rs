//! Recording an attempt: the outcome becomes the item's next state, any hold the answer revealed is
//! persisted, and the metrics and logs say what happened. One store commit per attempt.

use std::time::Duration;

use crate::clock;
use crate::health::Hold;
use crate::outbox::{Block, Finish, HoldCause, Item, StoreError};
use crate::sink::{Answer, Outcome};

use super::{PAUSE, Worker, backoff};

/// Without a reset header, a 429 holds the destination for one 15-minute window, X's shortest.
const DEFAULT_429_HOLD_MS: i64 = 15 * 60 * 1000;

impl Worker {
    /// Commits the outcome of one attempt and any rate-limit hold it revealed.
    pub(super) async fn record(
        &self,
        item: &Item,
        answer: Answer,
        cost_micros: i64,
    ) -> Result<(), StoreError> {
        let d = &self.destination;
        let now = clock::now_ms();
        if let Some(until) = answer.limits.spent_until {
            let block = Block {
                until,
                cause: HoldCause::RateLimited,
                reason: "the API reports the rate-limit window spent".to_string(),
            };
            self.store.block(&d.id, block).await?;
        }
        let label = match &answer.outcome {
            Outcome::Sent { .. } if d.dry_run => "dry_run",
            Outcome::Sent { .. } => "sent",
            Outcome::AlreadyPosted => "already_posted",
            Outcome::Retry { .. } => "retry",
            Outcome::RateLimited { .. } => "rate_limited",
            Outcome::Unauthorized { .. } | Outcome::Pause { .. } => "paused",
            Outcome::Dead { .. } => "dead",
        };
        metrics::counter!("chirpd_posts_total", "destination" => d.id.clone(), "outcome" => label)
            .increment(1);
        if let Some(remaining) = answer.limits.remaining {
            metrics::gauge!("chirpd_rate_limit_remaining", "destination" => d.id.clone())
                .set(remaining as f64);
        }
        let finish = match answer.outcome {
            Outcome::Sent { remote_id } => {
                tracing::info!(destination = %d.id, item = %item.id, remote_id = remote_id.as_deref().unwrap_or("-"), "Posted {} as {}.", item.id, remote_id.as_deref().unwrap_or("-"));
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
            Outcome::Retry { reason } => self.retry_or_give_up(item, reason, now),
            Outcome::RateLimited { until, reason } => {
                let until = until
                    .unwrap_or(now.saturating_add(DEFAULT_429_HOLD_MS))
                    .max(now.saturating_add(1000));
                let block = Block {
                    until,
                    cause: HoldCause::RateLimited,
                    reason: reason.clone(),
                };
                self.store.block(&d.id, block).await?;
                tracing::warn!(destination = %d.id, until, "Answered 429; holding the destination until its reset.");
                Finish::Release {
                    at: until,
                    error: reason,
                }
            }
            Outcome::Unauthorized { reason } | Outcome::Pause { reason } => {
                self.pause(&reason, now).await?
            }
            Outcome::Dead { reason } => {
                tracing::error!(destination = %d.id, item = %item.id, %reason, "The post was refused ({reason}); dead-lettered.");
                Finish::Dead { error: reason }
            }
        };
        self.store.finish(&item.id, finish, now).await
    }

    /// A transient failure: try again after a backoff, or give up once the item is older than
    /// `give_up_after`.
    fn retry_or_give_up(&self, item: &Item, reason: String, now: i64) -> Finish {
        let d = &self.destination;
        let age =
            Duration::from_millis(u64::try_from(now.saturating_sub(item.created_at)).unwrap_or(0));
        if age >= self.settings.give_up_after {
            tracing::error!(destination = %d.id, item = %item.id, %reason, "Giving up on an item after its retry budget: {reason}");
            return Finish::Dead {
                error: format!("gave up after {} attempts: {reason}", item.attempts),
            };
        }
        let delay = backoff(
            item.attempts,
            self.settings.retry_base,
            self.settings.retry_max,
            &mut rand::rng(),
        );
        tracing::warn!(destination = %d.id, item = %item.id, %reason, retry_in_ms = delay.as_millis() as u64, "Attempt failed ({reason}); will retry.");
        Finish::Retry {
            at: now.saturating_add(clock::millis(delay)),
            error: reason,
        }
    }

    /// The account itself was refused: the destination is held for `PAUSE` and `/readyz` says why.
    async fn pause(&self, reason: &str, now: i64) -> Result<Finish, StoreError> {
        let d = &self.destination;
        let until = now.saturating_add(clock::millis(PAUSE));
        let why = format!("paused: {reason}");
        let block = Block {
            until,
            cause: HoldCause::Paused,
            reason: why.clone(),
        };
        self.store.block(&d.id, block).await?;
        tracing::error!(destination = %d.id, %reason, "The account itself was refused ({reason}); destination held for an hour. Fix the credentials or plan, then reload or wait.");
        self.health.hold(
            &d.id,
            Hold {
                reason: why,
                needs_admin: true,
                until: Some(until),
            },
        );
        Ok(Finish::Release {
            at: until,
            error: reason.to_string(),
        })
    }
}
