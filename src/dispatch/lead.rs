//! Leadership: which destinations this instance sends for. One sender per destination keeps the order of
//! posts and the admin's windows exact, however many instances share the store.
//!
//! This task takes or renews a lease on every configured destination (`Store::lead`) every quarter of the
//! lease's length, and publishes the ones it holds in `Health`, which each destination's worker reads
//! before it claims anything. On SQLite the one process leads everything; in a PostgreSQL fleet a lease
//! that its holder stopped renewing (it died, or lost the database) is taken over within one lease
//! length and a renewal period. The claim itself checks the lease in the database, so a leader that
//! believes it still leads after its lease lapsed cannot send: this task only saves it useless claims.
//! It must not claim or send anything itself.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::clock;
use crate::config::Config;
use crate::health::Health;
use crate::outbox::{Change, SharedStore};

/// Keeps this instance's leases until `shutdown`; the caller releases them once the workers stopped.
pub async fn lead_forever(
    store: SharedStore,
    mut config: watch::Receiver<Arc<Config>>,
    health: Health,
    planned: Arc<watch::Sender<u64>>,
    shutdown: CancellationToken,
) {
    let mut changes = store.changes();
    // Until when the leases held now last, as far as this process can tell without the database.
    let mut valid_until: Option<Instant> = None;
    loop {
        let (destinations, ttl) = {
            let c = config.borrow_and_update();
            let d: Vec<String> = c.destinations.keys().cloned().collect();
            (d, c.fleet.lease)
        };
        let asked = Instant::now();
        let leading = match store.lead(&destinations, ttl, clock::now_ms()).await {
            Ok(led) => {
                for l in led.iter().filter(|l| l.recovered > 0) {
                    tracing::warn!(
                        destination = %l.destination,
                        items = l.recovered,
                        "Took over {}: {} items were being sent by its last sender; they will be sent again with the same text (X refuses true duplicates).",
                        l.destination, l.recovered
                    );
                }
                valid_until = Some(asked + ttl);
                health.stage_ok("leases");
                led.into_iter().map(|l| l.destination).collect()
            }
            Err(e) => {
                tracing::error!(error = %e, "Cannot renew the destinations' leases.");
                health.stage_failed("leases", format!("cannot renew the leases: {e}"));
                match valid_until {
                    // The leases still run: keep them until the database says otherwise.
                    Some(until) if Instant::now() < until => health.leading(),
                    _ => BTreeSet::new(),
                }
            }
        };
        if health.set_leading(leading) {
            tracing::info!(leading = ?health.leading(), "This instance now sends for these destinations.");
            // Wakes the workers, so that a new leader starts at once.
            planned.send_modify(|n| *n = n.wrapping_add(1));
        }
        let renew = ttl / 4;
        tokio::select! {
            _ = tokio::time::sleep(renew) => {}
            _ = config.changed() => {}
            heard = next_freed(&mut changes) => {
                if !heard {
                    changes = None;
                }
            }
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Waits for an announcement that leases may be free (another instance released them, or announcements
/// were missed); false when the store stopped announcing. Never returns for a store that announces
/// nothing.
async fn next_freed(changes: &mut Option<broadcast::Receiver<Change>>) -> bool {
    let Some(rx) = changes else {
        return std::future::pending().await;
    };
    loop {
        match rx.recv().await {
            Ok(Change::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => return true,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Closed) => return false,
        }
    }
}
