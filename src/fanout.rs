//! Fanout: turns stored deliveries into outbox items.
//!
//! The ingress stores a verified delivery and answers at once; this task then runs the pure `plan`
//! (normalize → route → render → fit) on it, on a blocking thread since it is CPU work, and stores the
//! resulting outbox items and the delivery's new state in one transaction, a whole batch of deliveries
//! per commit. A crash in between leaves the delivery `received`, and it is planned again on restart; the
//! outbox's unique key (delivery, route, destination, recipient) makes that idempotent.
//!
//! A delivery that cannot be planned — its planning panicked, or the store refuses its plan — is set
//! aside as `dead` with the reason (`chirpd queue replay` plans it again), so it never holds up the
//! deliveries behind it. A store that is unavailable (a full disk) is waited for with a growing delay and
//! reported to `/readyz`; nothing is set aside for that.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::clock;
use crate::config::{Config, Source};
use crate::failpoint;
use crate::health::Health;
use crate::normalize::EventKind;
use crate::outbox::{Merge, NewItem, PlanRecord, SharedStore, StoreError, StoredDelivery};
use crate::plan::{self, Plan};

/// How many deliveries one store read fetches.
const BATCH: usize = 16;
/// The longest wait between two tries while the store is unavailable.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What the fanout shares with the rest of the daemon. Cloned for each (re)start by its supervisor.
#[derive(Clone)]
pub struct Fanout {
    pub store: SharedStore,
    pub config: watch::Receiver<Arc<Config>>,
    /// Notified by the ingress after each stored delivery.
    pub wake: Arc<Notify>,
    /// Bumped after new outbox items are stored, to wake the dispatchers. Shared, so that the channel
    /// stays open while a restarted fanout takes over.
    pub planned: Arc<watch::Sender<u64>>,
    pub health: Health,
}

impl Fanout {
    /// Plans deliveries until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut failures: u32 = 0;
        loop {
            // Between batches, so a long backlog does not hold up shutdown; the rest is planned on start.
            if shutdown.is_cancelled() {
                return;
            }
            let result = match self.store.unplanned(BATCH).await {
                Ok(batch) if batch.is_empty() => {
                    // Woken by the ingress; the poll catches deliveries replayed by `chirpd queue replay`.
                    tokio::select! {
                        _ = self.wake.notified() => continue,
                        _ = tokio::time::sleep(crate::dispatch::IDLE_POLL) => continue,
                        _ = shutdown.cancelled() => return,
                    }
                }
                Ok(batch) => {
                    let cfg = self.config.borrow().clone();
                    plan_batch(&self.store, &cfg, batch).await
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => {
                    if failures > 0 {
                        tracing::info!("The fanout stores plans again.");
                    }
                    // Also clears the mark a restart after a panic left.
                    self.health.stage_ok("fanout");
                    failures = 0;
                    self.planned.send_modify(|n| *n = n.wrapping_add(1));
                }
                Err(e) => {
                    // A full disk or a broken store: wait, longer each time, instead of spinning.
                    failures = failures.saturating_add(1);
                    let wait = Duration::from_secs(1)
                        .saturating_mul(2u32.saturating_pow(failures.min(8) - 1))
                        .min(MAX_BACKOFF);
                    metrics::counter!("chirpd_stage_errors_total", "stage" => "fanout")
                        .increment(1);
                    tracing::error!(error = %e, retry_in_s = wait.as_secs(), "Cannot plan the stored deliveries; they stay queued for planning.");
                    self.health
                        .stage_failed("fanout", format!("cannot plan stored deliveries: {e}"));
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.cancelled() => return,
                    }
                }
            }
        }
    }
}

/// Plans a batch and stores it in one commit. A plan that settles (it may merge with a pending post about
/// the same subject) is stored on its own, after what came before it, so that the next one sees it.
async fn plan_batch(
    store: &SharedStore,
    cfg: &Arc<Config>,
    batch: Vec<StoredDelivery>,
) -> Result<(), StoreError> {
    let mut pending: Vec<PlanRecord> = Vec::new();
    for delivery in batch {
        let id = delivery.id.clone();
        let record = match plan_one(store, cfg, delivery).await? {
            Ok(record) => record,
            Err(reason) => {
                set_aside(store, &id, &reason).await?;
                continue;
            }
        };
        let settles = record.items.iter().any(|i| i.subject.is_some());
        pending.push(record);
        if settles {
            save(store, std::mem::take(&mut pending)).await?;
        }
    }
    save(store, pending).await
}

/// Stores plans in one commit. If the store refuses the batch itself, each plan is stored alone, and a
/// plan refused alone sets its delivery aside.
async fn save(store: &SharedStore, plans: Vec<PlanRecord>) -> Result<(), StoreError> {
    if plans.is_empty() {
        return Ok(());
    }
    match store.save_plans(plans.clone()).await {
        Err(StoreError::Rejected(_)) => {
            for plan in plans {
                let id = plan.delivery_id.clone();
                match store.save_plans(vec![plan]).await {
                    Err(StoreError::Rejected(e)) => {
                        set_aside(store, &id, &format!("the store refused its plan: {e}")).await?
                    }
                    other => other?,
                }
            }
            Ok(())
        }
        other => other,
    }
}

/// Marks a delivery that cannot be planned `dead`, with the reason, and says so.
async fn set_aside(store: &SharedStore, id: &str, reason: &str) -> Result<(), StoreError> {
    metrics::counter!("chirpd_deliveries_dead_total").increment(1);
    tracing::error!(delivery = %id, %reason, "A delivery cannot be planned ({reason}); it is set aside as dead (chirpd queue replay plans it again).");
    store.fail_delivery(id, reason).await
}

/// Runs `plan::plan_as` on a blocking thread. A panic in planning (a bug) is caught and returned as the
/// reason to set the delivery aside.
async fn plan_off_thread(
    cfg: &Arc<Config>,
    d: &Arc<StoredDelivery>,
    source: &Source,
    payload: &Arc<serde_json::Value>,
    shown: Option<EventKind>,
) -> Result<Plan, String> {
    let (cfg, d, provider, payload) = (
        cfg.clone(),
        d.clone(),
        source.provider.clone(),
        payload.clone(),
    );
    tokio::task::spawn_blocking(move || {
        if failpoint::armed(failpoint::PLAN_PANIC)
            && d.body
                .windows(failpoint::POISON.len())
                .any(|w| w == failpoint::POISON.as_bytes())
        {
            panic!("failpoint {} reached", failpoint::PLAN_PANIC);
        }
        plan::plan_as(
            &cfg.pipeline,
            &d.source,
            &provider,
            d.event.as_deref(),
            &payload,
            shown,
        )
    })
    .await
    .map_err(|e| {
        let what = e
            .try_into_panic()
            .ok()
            .and_then(|p| {
                p.downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
            })
            .unwrap_or_else(|| "cancelled".to_string());
        format!("planning failed: {what}")
    })
}

/// For a settling destination: if an earlier post about the same subject is still waiting, the new one
/// replaces it, rendered with the earlier post's verb ("opened") and the latest state (labels, title).
struct Settling<'a> {
    cfg: &'a Arc<Config>,
    delivery: &'a Arc<StoredDelivery>,
    source: &'a Source,
    payload: &'a Arc<serde_json::Value>,
    kind: Option<EventKind>,
}

impl Settling<'_> {
    async fn merge(
        &self,
        store: &SharedStore,
        post: &plan::Planned,
        subject: &str,
    ) -> Result<Result<Option<Merge>, String>, StoreError> {
        if self.kind != Some(EventKind::TaskUpdated) {
            return Ok(Ok(None));
        }
        let Some(earlier) = store
            .settling(&post.destination, &post.recipient, subject)
            .await?
        else {
            return Ok(Ok(None));
        };
        let shown = match earlier.event_kind.as_deref().and_then(EventKind::parse) {
            Some(k @ (EventKind::TaskCreated | EventKind::TaskReopened)) => k,
            Some(EventKind::TaskUpdated) => EventKind::TaskUpdated,
            _ => return Ok(Ok(None)),
        };
        let merged = match plan_off_thread(
            self.cfg,
            self.delivery,
            self.source,
            self.payload,
            Some(shown),
        )
        .await
        {
            Ok(m) => m,
            Err(reason) => return Ok(Err(reason)),
        };
        let found = merged.posts.into_iter().find(|m| {
            m.route == post.route
                && m.destination == post.destination
                && m.recipient == post.recipient
        });
        Ok(Ok(found.map(|m| Merge {
            supersedes: earlier.id,
            text: m.text,
            length: m.length,
            due_at: earlier.next_attempt_at,
            event_kind: shown.as_str(),
        })))
    }
}

/// Plans one delivery: planning off the async threads, plus the store reads that settling needs. Writes
/// nothing. The inner `Err` is a reason to set the delivery aside.
async fn plan_one(
    store: &SharedStore,
    cfg: &Arc<Config>,
    d: StoredDelivery,
) -> Result<Result<PlanRecord, String>, StoreError> {
    let now = clock::now_ms();
    let Some(source) = cfg.sources.get(&d.source) else {
        let error = format!("source {:?} is no longer configured", d.source);
        return Ok(Ok(unplannable(d.id, error, now)));
    };
    if d.body.is_empty() {
        let error =
            "its body was pruned (retention.bodies); it cannot be planned again".to_string();
        return Ok(Ok(unplannable(d.id, error, now)));
    }
    let payload: Arc<serde_json::Value> = match serde_json::from_slice(&d.body) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            // The ingress only stores JSON, so this is a store written by something else.
            let error = format!("stored body is not JSON: {e}");
            return Ok(Ok(unplannable(d.id, error, now)));
        }
    };
    let d = Arc::new(d);
    let plan = match plan_off_thread(cfg, &d, source, &payload, None).await {
        Ok(plan) => plan,
        Err(reason) => return Ok(Err(reason)),
    };
    for (route, e) in &plan.errors {
        tracing::error!(delivery = %d.id, route, location = %e.location, error = %e.message,
            "A route's template failed; its posts for this delivery are skipped.");
    }
    let errors = (!plan.errors.is_empty()).then(|| {
        plan.errors
            .iter()
            .map(|(_, e)| e.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    });
    let subject = plan.event.subject();
    let settling = Settling {
        cfg,
        delivery: &d,
        source,
        payload: &payload,
        kind: plan.event.kind,
    };
    let mut items = Vec::with_capacity(plan.posts.len());
    for p in &plan.posts {
        // An item a person reviews stands alone: it never merges with another.
        let settle = cfg
            .pipeline
            .targets
            .get(&p.destination)
            .and_then(|t| t.settle)
            .filter(|_| !p.review);
        let mut item = NewItem {
            route: p.route,
            kind: p.kind,
            destination: p.destination.clone(),
            recipient: p.recipient.clone(),
            text: p.text.clone(),
            length: p.length,
            event_kind: plan.event.kind.map(|k| k.as_str()),
            project: plan.event.project.clone(),
            subject: settle.and(subject.clone()),
            due_at: settle.map(|s| now.saturating_add(clock::millis(s))),
            merge: None,
            review: p.review,
        };
        if let (Some(_), Some(subj)) = (settle, &subject) {
            match settling.merge(store, p, subj).await? {
                Ok(merge) => item.merge = merge,
                Err(reason) => return Ok(Err(reason)),
            }
        }
        items.push(item);
    }
    tracing::debug!(delivery = %d.id, native = %plan.event.native, posts = items.len(), "Delivery planned.");
    let outcome = if errors.is_some() {
        "template_error"
    } else if items.is_empty() {
        "no_route"
    } else {
        "posted"
    };
    metrics::counter!("chirpd_deliveries_planned_total", "source" => d.source.clone(), "outcome" => outcome).increment(1);
    Ok(Ok(PlanRecord {
        delivery_id: d.id.clone(),
        native: plan.event.native.clone(),
        kind: plan.event.kind.map(|k| k.as_str()),
        items,
        error: errors,
        now,
    }))
}

/// The record of a delivery that cannot be planned: kept, marked failed, with the reason.
fn unplannable(delivery_id: String, error: String, now: i64) -> PlanRecord {
    tracing::warn!(delivery = %delivery_id, %error, "Delivery not planned.");
    PlanRecord {
        delivery_id,
        native: "unknown".into(),
        kind: None,
        items: Vec::new(),
        error: Some(error),
        now,
    }
}
