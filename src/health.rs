//! Readiness facts shared between the dispatcher (which learns them) and `/readyz` (which reports them).
//!
//! This is in-memory state only: each fact is re-learned after a restart by the next attempt or check.
//! It also keeps each worker's heartbeat, which the systemd watchdog reads.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why a destination is not posting right now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Hold {
    pub reason: String,
    /// Whether the admin must act (bad credentials, no credits, a public account): such holds make
    /// `/readyz` answer 503. Waiting for a rate-limit window does not.
    pub needs_admin: bool,
    /// When posting resumes on its own, in Unix ms, if it does.
    pub until: Option<i64>,
}

/// The destinations' holds, keyed by destination id, and when each worker last made progress.
#[derive(Debug, Clone, Default)]
pub struct Health {
    holds: Arc<Mutex<BTreeMap<String, Hold>>>,
    /// Each dispatcher worker's last turn, for the watchdog.
    beats: Arc<Mutex<BTreeMap<String, Instant>>>,
    /// Pipeline stages (the fanout) that are failing, with why; `/readyz` is unready while any is.
    stages: Arc<Mutex<BTreeMap<&'static str, String>>>,
    /// The destinations this instance sends for (on SQLite, all of them; in a fleet, those whose lease
    /// it holds).
    leading: Arc<Mutex<BTreeSet<String>>>,
}

impl Health {
    pub fn hold(&self, destination: &str, hold: Hold) {
        metrics::gauge!("chirpd_destination_held", "destination" => destination.to_string())
            .set(1.0);
        if let Ok(mut holds) = self.holds.lock() {
            holds.insert(destination.to_string(), hold);
        }
    }

    pub fn clear(&self, destination: &str) {
        metrics::gauge!("chirpd_destination_held", "destination" => destination.to_string())
            .set(0.0);
        if let Ok(mut holds) = self.holds.lock() {
            holds.remove(destination);
        }
    }

    /// Forgets every hold, when a reload replaces the destinations.
    pub fn clear_all(&self) {
        if let Ok(mut holds) = self.holds.lock() {
            holds.clear();
        }
    }

    /// Records that `destination`'s worker completed a turn.
    pub fn beat(&self, destination: &str) {
        if let Ok(mut beats) = self.beats.lock() {
            beats.insert(destination.to_string(), Instant::now());
        }
    }

    /// Forgets a worker that stopped on purpose (shutdown or reload).
    pub fn retire(&self, destination: &str) {
        if let Ok(mut beats) = self.beats.lock() {
            beats.remove(destination);
        }
    }

    /// Workers whose last turn is older than `limit`.
    pub fn stale_workers(&self, limit: Duration) -> Vec<String> {
        self.beats
            .lock()
            .map(|beats| {
                beats
                    .iter()
                    .filter(|(_, at)| at.elapsed() > limit)
                    .map(|(d, _)| d.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Records that a stage is failing (it keeps retrying, or is being restarted).
    pub fn stage_failed(&self, stage: &'static str, reason: String) {
        if let Ok(mut stages) = self.stages.lock() {
            stages.insert(stage, reason);
        }
    }

    /// Records that a stage works again.
    pub fn stage_ok(&self, stage: &'static str) {
        if let Ok(mut stages) = self.stages.lock() {
            stages.remove(stage);
        }
    }

    /// The failing stages and why.
    pub fn failing_stages(&self) -> BTreeMap<&'static str, String> {
        self.stages.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn holds(&self) -> BTreeMap<String, Hold> {
        self.holds.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// Records which destinations this instance leads now; returns whether that changed.
    pub fn set_leading(&self, now: BTreeSet<String>) -> bool {
        let Ok(mut leading) = self.leading.lock() else {
            return false;
        };
        if *leading == now {
            return false;
        }
        for d in leading.difference(&now) {
            metrics::gauge!("chirpd_leader", "destination" => d.clone()).set(0.0);
        }
        for d in &now {
            metrics::gauge!("chirpd_leader", "destination" => d.clone()).set(1.0);
        }
        *leading = now;
        true
    }

    pub fn leads(&self, destination: &str) -> bool {
        self.leading
            .lock()
            .map(|l| l.contains(destination))
            .unwrap_or(false)
    }

    pub fn leading(&self) -> BTreeSet<String> {
        self.leading.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_that_stop_beating_are_stale_and_retired_ones_are_not() {
        let h = Health::default();
        h.beat("team");
        assert!(h.stale_workers(Duration::from_secs(60)).is_empty());
        assert_eq!(h.stale_workers(Duration::ZERO), vec!["team".to_string()]);
        h.retire("team");
        assert!(h.stale_workers(Duration::ZERO).is_empty());
    }

    #[test]
    fn holds_are_kept_until_cleared() {
        let h = Health::default();
        h.hold(
            "team",
            Hold {
                reason: "r".into(),
                needs_admin: true,
                until: None,
            },
        );
        assert_eq!(h.holds().len(), 1);
        h.clear("team");
        assert!(h.holds().is_empty());
    }
}
