//! The protected-account guard: tweets are held while the team account is public (`require_protected`),
//! so that updates reach approved followers alone. X is asked at start, then every
//! `protected_check_every` while the account is protected, or every `PUBLIC_RECHECK` while it is public.

use crate::health::Hold;
use crate::sink::x::{ReadError, XClient};

use super::{PUBLIC_RECHECK, Worker};

/// The guard's last finding.
#[derive(Debug, Default)]
pub(super) struct Guard {
    protected: bool,
    checked_at: Option<tokio::time::Instant>,
}

impl Worker {
    /// How often a public account is checked again, and how long tweets wait meanwhile.
    pub(super) fn recheck_while_public(&self) -> std::time::Duration {
        PUBLIC_RECHECK.min(self.settings.protected_check_every)
    }

    /// Whether tweets may go out now; asks X when the last finding is due for a check.
    pub(super) async fn account_is_protected(&self, x: &XClient, guard: &mut Guard) -> bool {
        let d = &self.destination;
        let every = if guard.protected {
            self.settings.protected_check_every
        } else {
            self.recheck_while_public()
        };
        if guard.checked_at.is_some_and(|t| t.elapsed() < every) {
            return guard.protected;
        }
        guard.checked_at = Some(tokio::time::Instant::now());
        let timeout = self.settings.request_timeout;
        let found = self
            .authorized(
                |auth| x.is_protected(auth, timeout),
                |r| matches!(r, Err(ReadError::Unauthorized(_))),
            )
            .await
            .unwrap_or_else(|failure| Err(ReadError::Other(failure.reason(&d.id))));
        let reason = match found {
            Ok(true) => {
                if !guard.protected {
                    tracing::info!(destination = %d.id, "The account is protected; tweets may go out.");
                }
                guard.protected = true;
                return true;
            }
            Ok(false) => "account is public: tweets are held until it is protected (require_protected = true)".to_string(),
            Err(e) => format!("cannot tell whether the account is protected, tweets held: {e}"),
        };
        guard.protected = false;
        tracing::warn!(destination = %d.id, "{reason}");
        self.health.hold(
            &d.id,
            Hold {
                reason,
                needs_admin: true,
                until: None,
            },
        );
        false
    }
}
