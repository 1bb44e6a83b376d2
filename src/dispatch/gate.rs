//! The gate in front of each request: the admin's windows counted in the ledger, persisted holds (429s,
//! spent windows, paused accounts) and the monthly budget. Decisions are `ratelimit::check`'s (pure); this
//! file only gathers what it needs from the store, and prices each item against the budget.

use crate::clock::{self, UnixMillis};
use crate::outbox::{Block, Finish, HoldCause, Item, StoreError};
use crate::ratelimit::{self, Gate};
use crate::render::fit;
use crate::sink::{Budget, UrlPolicy};

use super::Worker;

/// An item priced against the budget.
pub(super) enum Priced {
    /// Within the budget (or no budget): send it; `cost_micros` goes to the spend ledger once sent.
    Ready { item: Box<Item>, cost_micros: i64 },
    /// It would exceed the budget: released, and the destination held until `until`.
    Held { until: UnixMillis },
}

/// This month's spend against a destination's budget.
struct MonthSpend {
    budget: Budget,
    spent: i64,
    next_month: UnixMillis,
}

impl MonthSpend {
    fn allows(&self, cost_micros: i64) -> bool {
        self.spent.saturating_add(cost_micros) <= self.budget.monthly_micros
    }

    fn price(&self, text: &str) -> i64 {
        if fit::has_url(text) {
            self.budget.post_with_url_micros
        } else {
            self.budget.post_micros
        }
    }
}

impl Worker {
    /// The gate, and how many more requests the admin's windows allow (none: no windows).
    pub(super) async fn gate(&self, now: UnixMillis) -> Result<(Gate, Option<u32>), StoreError> {
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
            && let Some(spend) = self.month_spend(now).await?
            && !spend.allows(spend.budget.post_micros)
        {
            gate = Gate::Closed {
                until: spend.next_month,
                cause: HoldCause::Budget,
                reason: format!(
                    "monthly budget of ${:.2} spent (${:.2}); posts are held until the next month",
                    spend.budget.monthly_micros as f64 / 1e6,
                    spend.spent as f64 / 1e6
                ),
            };
        }
        Ok((gate, capacity))
    }

    /// This month's spend, when the destination has a budget.
    async fn month_spend(&self, now: UnixMillis) -> Result<Option<MonthSpend>, StoreError> {
        let d = &self.destination;
        let Some(budget) = d.budget else {
            return Ok(None);
        };
        let (month_start, next_month) = clock::month_bounds(now);
        let spent = self.store.spent_since(&d.id, month_start).await?;
        metrics::gauge!("chirpd_spend_dollars", "destination" => d.id.clone())
            .set(spent as f64 / 1e6);
        Ok(Some(MonthSpend {
            budget,
            spent,
            next_month,
        }))
    }

    /// Prices a claimed item against the budget; removes its links when `url_policy` allows and that
    /// brings it within the budget.
    pub(super) async fn price(
        &self,
        mut item: Item,
        now: UnixMillis,
    ) -> Result<Priced, StoreError> {
        let d = &self.destination;
        let Some(spend) = self.month_spend(now).await? else {
            return Ok(Priced::Ready {
                item: Box::new(item),
                cost_micros: 0,
            });
        };
        let mut cost = spend.price(&item.text);
        if !spend.allows(cost)
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
                cost = spend.price(&item.text);
            }
        }
        if spend.allows(cost) {
            return Ok(Priced::Ready {
                item: Box::new(item),
                cost_micros: cost,
            });
        }
        let reason = "the next post would exceed the monthly budget".to_string();
        let until = spend.next_month;
        self.store
            .finish(
                &item.id,
                Finish::Release {
                    at: until,
                    error: reason.clone(),
                },
                now,
            )
            .await?;
        self.store
            .block(
                &d.id,
                Block {
                    until,
                    cause: HoldCause::Budget,
                    reason,
                },
            )
            .await?;
        tracing::warn!(destination = %d.id, "Monthly budget reached; posts are held until the next month.");
        Ok(Priced::Held { until })
    }
}
