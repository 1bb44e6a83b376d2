//! Readiness facts shared between the dispatcher (which learns them) and `/readyz` (which reports them).
//!
//! This is in-memory state only: each fact is re-learned after a restart by the next attempt or check.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

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

/// The destinations' holds, keyed by destination id.
#[derive(Debug, Clone, Default)]
pub struct Health {
    holds: Arc<Mutex<BTreeMap<String, Hold>>>,
}

impl Health {
    pub fn hold(&self, destination: &str, hold: Hold) {
        if let Ok(mut holds) = self.holds.lock() {
            holds.insert(destination.to_string(), hold);
        }
    }

    pub fn clear(&self, destination: &str) {
        if let Ok(mut holds) = self.holds.lock() {
            holds.remove(destination);
        }
    }

    pub fn holds(&self) -> BTreeMap<String, Hold> {
        self.holds.lock().map(|h| h.clone()).unwrap_or_default()
    }
}
