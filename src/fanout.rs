//! Fanout: turns stored deliveries into outbox items.
//!
//! The ingress stores a verified delivery and answers at once; this task then runs the pure `plan`
//! (normalize → route → render → fit) on it and stores the resulting outbox items and the delivery's new
//! state in one transaction, a whole batch of deliveries per commit. A crash in between leaves the delivery `received`, and it is planned again on
//! restart; the outbox's unique key (delivery, route, destination) makes that idempotent.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::clock;
use crate::config::Config;
use crate::normalize::EventKind;
use crate::outbox::{Merge, NewItem, PlanRecord, Store, StoreError, StoredDelivery};
use crate::plan;

/// How many deliveries one store read fetches.
const BATCH: usize = 16;

/// Runs until `shutdown`; `wake` is notified by the ingress after each stored delivery, and `planned` is
/// bumped after new outbox items are stored, to wake the dispatchers.
pub async fn run(
    store: Store,
    config: watch::Receiver<Arc<Config>>,
    wake: Arc<Notify>,
    planned: watch::Sender<u64>,
    shutdown: CancellationToken,
) {
    loop {
        // Between batches, so a long backlog does not hold up shutdown; the rest is planned on start.
        if shutdown.is_cancelled() {
            return;
        }
        let batch = match store.unplanned(BATCH).await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "Cannot read deliveries to plan; retrying in 1 s.");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = shutdown.cancelled() => return,
                }
            }
        };
        if batch.is_empty() {
            // Woken by the ingress; the poll catches deliveries replayed by `chirpd queue replay`.
            tokio::select! {
                _ = wake.notified() => continue,
                _ = tokio::time::sleep(crate::dispatch::IDLE_POLL) => continue,
                _ = shutdown.cancelled() => return,
            }
        }
        let cfg = config.borrow().clone();
        if let Err(e) = plan_batch(&store, &cfg, batch).await {
            // A full disk or a broken store: wait instead of spinning on the same batch.
            tracing::error!(error = %e, "Cannot store the deliveries' plans; they stay queued for planning; retrying in 1 s.");
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.cancelled() => return,
            }
        }
        planned.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// Plans a batch and stores it in one commit. A plan that settles (it may merge with a pending post about
/// the same subject) is stored on its own, after what came before it, so that the next one sees it.
async fn plan_batch(
    store: &Store,
    cfg: &Arc<Config>,
    batch: Vec<StoredDelivery>,
) -> Result<(), StoreError> {
    let mut pending: Vec<PlanRecord> = Vec::new();
    for delivery in batch {
        let record = plan_one(store, cfg, delivery).await?;
        let settles = record.items.iter().any(|i| i.subject.is_some());
        pending.push(record);
        if settles {
            store.save_plans(std::mem::take(&mut pending)).await?;
        }
    }
    if !pending.is_empty() {
        store.save_plans(pending).await?;
    }
    Ok(())
}

/// For a settling destination: if an earlier post about the same subject is still waiting, the new one
/// replaces it, rendered with the earlier post's verb ("opened") and the latest state (labels, title).
#[allow(clippy::too_many_arguments)]
async fn merge_with_pending(
    store: &Store,
    cfg: &Config,
    d: &StoredDelivery,
    provider: &crate::normalize::Provider,
    payload: &serde_json::Value,
    post: &plan::Planned,
    kind: Option<EventKind>,
    subject: &str,
) -> Result<Option<Merge>, crate::outbox::StoreError> {
    if kind != Some(EventKind::TaskUpdated) {
        return Ok(None);
    }
    let Some(earlier) = store
        .settling(&post.destination, &post.recipient, subject)
        .await?
    else {
        return Ok(None);
    };
    let shown = match earlier.event_kind.as_deref().and_then(EventKind::parse) {
        Some(k @ (EventKind::TaskCreated | EventKind::TaskReopened)) => k,
        Some(EventKind::TaskUpdated) => EventKind::TaskUpdated,
        _ => return Ok(None),
    };
    let merged = plan::plan_as(
        &cfg.pipeline,
        &d.source,
        provider,
        d.event.as_deref(),
        payload,
        Some(shown),
    );
    let Some(m) = merged.posts.into_iter().find(|m| {
        m.route == post.route && m.destination == post.destination && m.recipient == post.recipient
    }) else {
        return Ok(None);
    };
    Ok(Some(Merge {
        supersedes: earlier.id,
        text: m.text,
        length: m.length,
        due_at: earlier.next_attempt_at,
        event_kind: shown.as_str(),
    }))
}

/// Plans one delivery: pure planning, plus the store reads that settling needs. Writes nothing.
async fn plan_one(
    store: &Store,
    cfg: &Arc<Config>,
    d: StoredDelivery,
) -> Result<PlanRecord, StoreError> {
    let now = clock::now_ms();
    let Some(source) = cfg.sources.get(&d.source) else {
        let error = format!("source {:?} is no longer configured", d.source);
        tracing::warn!(delivery = %d.id, %error, "Delivery not planned.");
        return Ok(unplannable(d.id, error, now));
    };
    let payload: serde_json::Value = match serde_json::from_slice(&d.body) {
        Ok(p) => p,
        Err(e) => {
            // The ingress only stores JSON, so this is a store written by something else.
            let error = format!("stored body is not JSON: {e}");
            return Ok(unplannable(d.id, error, now));
        }
    };
    // Planning is pure CPU work (templates, the weighted count); it runs off the async threads.
    let (plan, payload) = {
        let (cfg, source_id, provider, event) = (
            cfg.clone(),
            d.source.clone(),
            source.provider.clone(),
            d.event.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let plan = plan::plan(
                &cfg.pipeline,
                &source_id,
                &provider,
                event.as_deref(),
                &payload,
            );
            (plan, payload)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("planning failed: {e}")))?
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
    let mut items = Vec::with_capacity(plan.posts.len());
    for p in &plan.posts {
        let settle = cfg
            .pipeline
            .targets
            .get(&p.destination)
            .and_then(|t| t.settle);
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
            due_at: settle.map(|s| now + s.as_millis() as i64),
            merge: None,
        };
        if let (Some(_), Some(subj)) = (settle, &subject) {
            item.merge = merge_with_pending(
                store,
                cfg,
                &d,
                &source.provider,
                &payload,
                p,
                plan.event.kind,
                subj,
            )
            .await?;
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
    Ok(PlanRecord {
        delivery_id: d.id,
        native: plan.event.native.clone(),
        kind: plan.event.kind.map(|k| k.as_str()),
        items,
        error: errors,
        now,
    })
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
