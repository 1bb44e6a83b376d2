//! Failpoints: named places where a test can make the process die, to prove that a crash at exactly that
//! moment loses nothing and posts nothing twice.
//!
//! `CHIRPD_FAILPOINT=<name>` aborts the process (as SIGKILL would: no destructors, no flush) when it
//! reaches the failpoint. Only debug builds look at the variable; in release builds `hit` compiles to
//! nothing.

/// After a delivery's commit, before the sender is answered.
pub const AFTER_COMMIT: &str = "after-commit";
/// After an item is marked `sending`, before its request.
pub const AFTER_SENDING: &str = "after-sending";
/// After the API answered, before the outcome is recorded.
pub const AFTER_ANSWER: &str = "after-answer";

/// Aborts the process if `CHIRPD_FAILPOINT` names this failpoint (debug builds only).
pub fn hit(name: &str) {
    if armed(name) {
        eprintln!("chirpd: failpoint {name} reached; aborting");
        std::process::abort();
    }
}

/// Planning a delivery whose body contains `POISON` panics, as a bug in a normalizer or template would.
/// Unlike the others, this failpoint does not abort: it proves that one poison delivery is set aside
/// while the daemon goes on.
pub const PLAN_PANIC: &str = "plan-panic";
/// The text that marks a poison delivery for `PLAN_PANIC`.
pub const POISON: &str = "chirpd-failpoint-poison";

/// Whether `CHIRPD_FAILPOINT` names this failpoint (debug builds only).
pub fn armed(name: &str) -> bool {
    cfg!(debug_assertions) && std::env::var("CHIRPD_FAILPOINT").is_ok_and(|v| v == name)
}
