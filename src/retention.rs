//! Retention: what the store may forget, and when, so that it stays bounded on a small disk.
//!
//! Every `PRUNE_EVERY`, with the config current at that moment: raw bodies of planned deliveries after
//! `retention.bodies`; sent, dead and folded outbox items after `retention.items`; delivery records (their
//! dedupe keys) after `retention.deliveries`, once no item refers to them; send-ledger rows once the
//! longest configured window cannot count them; spend rows once they are before the previous month.
//! Nothing waiting to be planned or sent is ever pruned. Each statement touches at most `BATCH` rows, and
//! the task yields between them, so ingest's commits interleave with pruning instead of waiting behind
//! it. After each pass the store's size is published as `chirpd_store_bytes`, with a warning well before
//! `store.max_size_mb`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::clock::{self, UnixMillis};
use crate::config::Config;
use crate::outbox::{Prunable, SharedStore, StoreError};

/// How often retention runs.
pub const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// The most rows one pruning statement touches: small enough that a commit stays short.
pub const BATCH: usize = 500;

/// The share of `store.max_size_mb` past which every pass warns.
pub const WARN_AT_PERCENT: u64 = 80;

/// The ledger is never pruned below one day, so that X's 24-hour windows are always countable.
const MIN_LEDGER: Duration = Duration::from_secs(86_400);

/// How long ledger rows must be kept: the longest window of any destination, at least a day.
pub fn ledger_horizon(config: &Config) -> Duration {
    config
        .destinations
        .values()
        .flat_map(|d| d.limits.iter().map(|w| w.per))
        .fold(MIN_LEDGER, Duration::max)
}

/// How many records one pass forgot, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub bodies: usize,
    pub items: usize,
    pub deliveries: usize,
    pub ledger: usize,
    pub spend: usize,
}

/// Forgets, in batches, everything `config` no longer needs at `now`.
pub async fn prune_once(
    store: &SharedStore,
    config: &Config,
    now: UnixMillis,
) -> Result<Pruned, StoreError> {
    let r = &config.retention;
    let (this_month, _) = clock::month_bounds(now);
    let (previous_month, _) = clock::month_bounds(this_month.saturating_sub(1));
    Ok(Pruned {
        bodies: drain(
            store,
            Prunable::Bodies,
            now.saturating_sub(clock::millis(r.bodies)),
        )
        .await?,
        items: drain(
            store,
            Prunable::Items,
            now.saturating_sub(clock::millis(r.items)),
        )
        .await?,
        deliveries: drain(
            store,
            Prunable::Deliveries,
            now.saturating_sub(clock::millis(r.deliveries)),
        )
        .await?,
        ledger: drain(
            store,
            Prunable::Ledger,
            now.saturating_sub(clock::millis(ledger_horizon(config))),
        )
        .await?,
        spend: drain(store, Prunable::Spend, previous_month).await?,
    })
}

/// Prunes one kind a batch at a time until a batch comes back short.
async fn drain(
    store: &SharedStore,
    what: Prunable,
    before: UnixMillis,
) -> Result<usize, StoreError> {
    let mut total = 0;
    loop {
        let n = store.prune(what, before, BATCH).await?;
        total += n;
        if n < BATCH {
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}

/// Publishes the store's size, and warns when it nears the cap.
pub async fn report_size(store: &SharedStore, config: &Config) -> Result<(), StoreError> {
    let size = store.size().await?;
    let used = size.bytes.saturating_sub(size.free_bytes);
    metrics::gauge!("chirpd_store_bytes").set(size.bytes as f64);
    metrics::gauge!("chirpd_store_free_bytes").set(size.free_bytes as f64);
    if let Some(cap) = config.store_max_bytes
        && used.saturating_mul(100) >= cap.saturating_mul(WARN_AT_PERCENT)
    {
        tracing::warn!(
            used_mb = used / (1024 * 1024),
            cap_mb = cap / (1024 * 1024),
            "The store is past {WARN_AT_PERCENT}% of store.max_size_mb; at the cap new webhooks are answered 503. Shorten [retention] or raise the cap."
        );
    }
    Ok(())
}

/// Prunes every `PRUNE_EVERY` until `shutdown`, with the config current at each pass.
pub async fn prune_forever(
    store: SharedStore,
    config: watch::Receiver<Arc<Config>>,
    shutdown: CancellationToken,
) {
    loop {
        let current = config.borrow().clone();
        match prune_once(&store, &current, clock::now_ms()).await {
            Ok(p) if p != Pruned::default() => {
                tracing::info!(
                    bodies = p.bodies,
                    items = p.items,
                    deliveries = p.deliveries,
                    ledger = p.ledger,
                    spend = p.spend,
                    "Retention pruned the store."
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "Cannot prune the store; trying again later."),
        }
        if let Err(e) = report_size(&store, &current).await {
            tracing::warn!(error = %e, "Cannot read the store's size.");
        }
        tokio::select! {
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use crate::outbox::{self, NewDelivery, NewItem, PlanRecord};

    const DAY: i64 = 86_400_000;

    fn config_with_limits(dir: &std::path::Path, limits: &str) -> Config {
        let path = dir.join("chirpd.toml");
        let text =
            format!("[destinations.team]\nkind = \"x\"\ndry_run = true\nlimits = [{limits}]\n");
        std::fs::write(&path, text).unwrap();
        config::load(Some(&path), &config::EmptyEnv).unwrap()
    }

    /// One request a day for `days` days, recorded in the ledger the way the dispatcher does: by claims.
    async fn one_request_a_day(store: &SharedStore, days: i64) {
        for day in 0..days {
            posted(store, &format!("d{day}"), day * DAY, false).await;
            assert!(store.claim("team", day * DAY + 1).await.unwrap().is_some());
        }
    }

    #[test]
    fn the_horizon_is_the_longest_window_and_at_least_a_day() {
        let dir = tempfile::tempdir().unwrap();
        let week = config_with_limits(dir.path(), "\"100/15m\", \"500/7d\"");
        assert_eq!(ledger_horizon(&week), Duration::from_secs(7 * 86_400));
        let short = config_with_limits(dir.path(), "\"5/1h\"");
        assert_eq!(ledger_horizon(&short), MIN_LEDGER);
        let month = config_with_limits(dir.path(), "\"500/30d\"");
        assert_eq!(ledger_horizon(&month), Duration::from_secs(30 * 86_400));
    }

    #[tokio::test]
    async fn a_seven_day_window_counts_every_request_of_its_week_across_pruning() {
        let dir = tempfile::tempdir().unwrap();
        let store = outbox::open(&dir.path().join("s.db"), None).unwrap();
        let config = config_with_limits(dir.path(), "\"500/7d\"");
        one_request_a_day(&store, 10).await;
        // Day 9 and a half: the window [2.5, 9.5] holds the requests of days 3 to 9.
        let now = 9 * DAY + DAY / 2;
        let window = 7 * DAY;
        assert_eq!(store.ledger("team", now - window).await.unwrap().0, 7);
        let pruned = prune_once(&store, &config, now).await.unwrap();
        assert_eq!(pruned.ledger, 3, "days 0 to 2 are older than the window");
        assert_eq!(store.ledger("team", now - window).await.unwrap().0, 7);
        // A pruner that kept only two days would have left three of the seven.
        assert_eq!(store.ledger("team", 0).await.unwrap().0, 7);
    }

    /// A delivery received at `at`, planned into one item, and (if `sent`) posted at once.
    async fn posted(store: &SharedStore, key: &str, at: i64, sent: bool) -> String {
        let d = store
            .record_delivery(NewDelivery {
                source: "gh".into(),
                dedupe_key: key.into(),
                body_sha256: Some(format!("sha-{key}")),
                event: None,
                body: bytes::Bytes::from(vec![b'x'; 3000]),
                received_at: at,
                handshake: false,
            })
            .await
            .unwrap();
        let item = NewItem {
            route: 0,
            destination: "team".into(),
            recipient: String::new(),
            kind: "tweet",
            text: key.into(),
            length: 5,
            event_kind: None,
            project: None,
            subject: None,
            due_at: None,
            merge: None,
            review: false,
        };
        store
            .save_plans(vec![PlanRecord {
                delivery_id: d.id.clone(),
                native: "n".into(),
                kind: None,
                items: vec![item],
                error: None,
                now: at,
            }])
            .await
            .unwrap();
        if sent {
            let it = store.claim("team", at).await.unwrap().unwrap();
            let how = crate::outbox::Finish::Sent {
                remote_id: None,
                note: None,
                cost_micros: 15_000,
            };
            store.finish(&it.id, how, at).await.unwrap();
        }
        d.id
    }

    #[tokio::test]
    async fn retention_forgets_what_is_done_and_keeps_what_is_waiting_or_still_recognizes_replays()
    {
        let dir = tempfile::tempdir().unwrap();
        let store = outbox::open(&dir.path().join("s.db"), None).unwrap();
        let config = config_with_limits(dir.path(), "\"100/15m\"");
        let now = 400 * DAY;
        posted(&store, "ancient", now - 200 * DAY, true).await;
        posted(&store, "old", now - 100 * DAY, true).await;
        posted(&store, "month", now - 40 * DAY, true).await;
        let waiting = posted(&store, "waiting", now - 120 * DAY, false).await;
        posted(&store, "fresh", now - DAY, true).await;
        let p = prune_once(&store, &config, now).await.unwrap();
        assert_eq!(
            (p.bodies, p.items, p.deliveries),
            (4, 2, 1),
            "bodies after 30 days, sent items after 90, unreferenced deliveries after 180: {p:?}"
        );
        let sql = |q: &str| -> i64 {
            rusqlite::Connection::open(dir.path().join("s.db"))
                .unwrap()
                .query_row(q, [], |r| r.get(0))
                .unwrap()
        };
        // The item still waiting to be sent is never pruned, nor is its delivery.
        assert_eq!(
            sql("SELECT count(*) FROM outbox WHERE state = 'pending'"),
            1
        );
        assert_eq!(
            sql(&format!(
                "SELECT count(*) FROM deliveries WHERE id = '{waiting}'"
            )),
            1
        );
        // The 100-day-old delivery lost its body and its item, but a replay is still a duplicate.
        let replay = store
            .record_delivery(NewDelivery {
                source: "gh".into(),
                dedupe_key: "old".into(),
                body_sha256: None,
                event: None,
                body: bytes::Bytes::from_static(b"{}"),
                received_at: now,
                handshake: false,
            })
            .await
            .unwrap();
        assert!(replay.duplicate);
        // The 200-day-old one is forgotten entirely; the fresh one keeps its body.
        assert_eq!(
            sql("SELECT count(*) FROM deliveries WHERE dedupe_key = 'ancient'"),
            0
        );
        assert_eq!(
            sql(
                "SELECT length(b.body) FROM delivery_bodies b JOIN deliveries d ON d.id = b.delivery_id WHERE d.dedupe_key = 'fresh'"
            ),
            3000
        );
        // Pruned bodies free whole pages for later writes to reuse.
        assert!(store.size().await.unwrap().free_bytes > 0);
        // Spend before the previous month is gone; a second pass finds nothing more.
        assert_eq!(sql("SELECT count(*) FROM spend"), 1);
        assert_eq!(
            prune_once(&store, &config, now).await.unwrap(),
            Pruned::default()
        );
    }
}
