//! Retention: what the store may forget, and when.
//!
//! The send ledger (one row per request, which the admin's windows count) is kept for as long as the
//! longest configured window needs it, read from the current config on every pass so that a reload
//! that lengthens a window keeps its rows from then on. Pruning is one short delete per pass.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::clock::{self, UnixMillis};
use crate::config::Config;
use crate::outbox::{SharedStore, StoreError};

/// How often the ledger is pruned.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);

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

/// Deletes the ledger rows no window of `config` can count any more at `now`.
pub async fn prune_once(
    store: &SharedStore,
    config: &Config,
    now: UnixMillis,
) -> Result<usize, StoreError> {
    let keep_ms = i64::try_from(ledger_horizon(config).as_millis()).unwrap_or(i64::MAX);
    store.prune_ledger(now.saturating_sub(keep_ms)).await
}

/// Prunes every `PRUNE_EVERY` until `shutdown`, with the config current at each pass.
pub async fn prune_forever(
    store: SharedStore,
    config: watch::Receiver<Arc<Config>>,
    shutdown: CancellationToken,
) {
    loop {
        let current = config.borrow().clone();
        if let Err(e) = prune_once(&store, &current, clock::now_ms()).await {
            tracing::warn!(error = %e, "Cannot prune the send ledger.");
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
    use crate::config::{self, Env};
    use crate::outbox::{self, NewDelivery, NewItem, PlanRecord};

    struct NoEnv;
    impl Env for NoEnv {
        fn var(&self, _: &str) -> Option<String> {
            None
        }
        fn vars(&self) -> Vec<(String, String)> {
            Vec::new()
        }
    }

    const DAY: i64 = 86_400_000;

    fn config_with_limits(dir: &std::path::Path, limits: &str) -> Config {
        let path = dir.join("chirpd.toml");
        let text =
            format!("[destinations.team]\nkind = \"x\"\ndry_run = true\nlimits = [{limits}]\n");
        std::fs::write(&path, text).unwrap();
        config::load(Some(&path), &NoEnv).unwrap()
    }

    /// One request a day for `days` days, recorded in the ledger the way the dispatcher does: by claims.
    async fn one_request_a_day(store: &SharedStore, days: i64) {
        for day in 0..days {
            let d = store
                .record_delivery(NewDelivery {
                    source: "gh".into(),
                    dedupe_key: format!("d{day}"),
                    body_sha256: None,
                    event: None,
                    body: bytes::Bytes::from_static(b"{}"),
                    received_at: day * DAY,
                    handshake: false,
                })
                .await
                .unwrap();
            let item = NewItem {
                route: 0,
                destination: "team".into(),
                recipient: String::new(),
                kind: "tweet",
                text: format!("day {day}"),
                length: 5,
                event_kind: None,
                project: None,
                subject: None,
                due_at: None,
                merge: None,
            };
            let plan = PlanRecord {
                delivery_id: d.id,
                native: "n".into(),
                kind: None,
                items: vec![item],
                error: None,
                now: day * DAY,
            };
            store.save_plans(vec![plan]).await.unwrap();
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
        assert_eq!(pruned, 3, "days 0 to 2 are older than the window");
        assert_eq!(store.ledger("team", now - window).await.unwrap().0, 7);
        // A pruner that kept only two days would have left three of the seven.
        assert_eq!(store.ledger("team", 0).await.unwrap().0, 7);
    }
}
