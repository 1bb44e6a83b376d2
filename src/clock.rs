//! Wall-clock time as Unix milliseconds, read only at the edges.
//!
//! The pure stages (verify, normalize, route, render) never call this: the edge reads the time once
//! and passes it in, so that tests can use fixed instants.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub type UnixMillis = i64;

/// Reads the system clock.
pub fn now_ms() -> UnixMillis {
    // A clock before 1970 is a misconfigured host; treating it as the epoch keeps the daemon running.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
