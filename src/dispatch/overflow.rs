//! Overflow: what a destination does when more is queued than its windows allow before they free up.
//! `queue` waits; `drop` dead-letters the oldest beyond the room left; `digest` folds the backlog into
//! one post through the digest template. Digests are made per recipient: a digest of direct messages is
//! a direct message to the same person, so nothing private ever becomes a public post.

use std::collections::BTreeMap;

use crate::clock::{self, UnixMillis};
use crate::outbox::{Item, NewDigest, StoreError};
use crate::render::digest::{self, Folded};
use crate::render::fit;
use crate::sink::Overflow;

use super::{Turn, Worker, wait_until};

/// The most queued items one overflow decision looks at.
const LOOK_AHEAD: usize = 1000;

impl Worker {
    /// Applies `overflow` when more is queued than the windows allow. Returns the turn's result when
    /// this turn was spent on it (folding, dropping, or waiting to gather a digest).
    pub(super) async fn overflow(
        &self,
        now: UnixMillis,
        capacity: Option<u32>,
    ) -> Result<Option<Turn>, StoreError> {
        let d = &self.destination;
        let Some(room) = capacity.map(|c| c as usize) else {
            return Ok(None);
        };
        if d.overflow == Overflow::Queue {
            return Ok(None);
        }
        let queued = self.store.due(&d.id, now, LOOK_AHEAD).await?;
        if queued.iter().any(Item::is_digest) {
            // A digest is waiting: it goes first, and nothing else is folded until it is out.
            return Ok(None);
        }
        match &d.overflow {
            Overflow::Drop if queued.len() > room => {
                let excess: Vec<String> = queued[..queued.len() - room]
                    .iter()
                    .map(|i| i.id.clone())
                    .collect();
                let reason = "dropped: more was queued than the limits allow";
                let n = self.store.drop_items(excess, reason, now).await?;
                metrics::counter!("chirpd_dropped_total", "destination" => d.id.clone())
                    .increment(n as u64);
                tracing::warn!(destination = %d.id, dropped = n, "More was queued than the limits allow; the oldest items were dropped.");
                Ok(Some(Turn::Again))
            }
            Overflow::Digest { template, delay } => {
                let fold_now = if room >= 2 {
                    // Keep the last slot of the window for a digest of whatever comes next.
                    queued.len() > room - 1
                } else if let Some(oldest) = queued.first() {
                    let ready_at = oldest.created_at.saturating_add(clock::millis(*delay));
                    if now < ready_at {
                        return Ok(Some(Turn::Wait(wait_until(now, ready_at))));
                    }
                    queued.len() >= 2
                } else {
                    false
                };
                if !fold_now {
                    return Ok(None);
                }
                let folded = self.fold_by_recipient(template, queued, now).await?;
                Ok((folded > 0).then_some(Turn::Again))
            }
            _ => Ok(None),
        }
    }

    /// Folds the queued items of each recipient (one group for posts) into a digest of their own.
    /// Returns how many items were folded.
    async fn fold_by_recipient(
        &self,
        template: &str,
        queued: Vec<Item>,
        now: UnixMillis,
    ) -> Result<usize, StoreError> {
        let d = &self.destination;
        let mut groups: BTreeMap<String, Vec<Item>> = BTreeMap::new();
        for item in queued {
            groups.entry(item.recipient.clone()).or_default().push(item);
        }
        let mut total = 0;
        for (recipient, items) in groups {
            if items.len() < 2 {
                continue;
            }
            let folded: Vec<Folded> = items
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
            let digest_id = self
                .store
                .fold(NewDigest {
                    destination: d.id.clone(),
                    recipient,
                    kind: d.kind.name(),
                    items: items.iter().map(|i| i.id.clone()).collect(),
                    text: fitted.text,
                    length: fitted.length,
                    now,
                })
                .await?;
            metrics::counter!("chirpd_folded_total", "destination" => d.id.clone())
                .increment(folded.len() as u64);
            tracing::info!(destination = %d.id, digest = %digest_id, events = folded.len(), "Backlog folded into a digest.");
            total += folded.len();
        }
        Ok(total)
    }
}
