//! The systemd notification protocol: READY=1 once the daemon serves, STOPPING=1 when it begins to stop.
//!
//! Outside systemd (`$NOTIFY_SOCKET` unset) every call is a no-op, so the daemon runs the same by hand.

use sd_notify::NotifyState;

/// Tells systemd the daemon is ready: the store is open, the config and templates are loaded, and the
/// listener accepts connections.
pub fn ready() {
    send(&[NotifyState::Ready], "READY");
}

/// Tells systemd the daemon is stopping, so that it waits for the drain instead of declaring a failure.
pub fn stopping() {
    send(&[NotifyState::Stopping], "STOPPING");
}

fn send(states: &[NotifyState<'_>], what: &str) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "Cannot notify systemd of {what}.");
    }
}
