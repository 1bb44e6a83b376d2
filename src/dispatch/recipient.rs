//! DM recipients: numeric user ids are used as they are; `@username` is resolved once through X's user
//! lookup and cached in the store, so that a busy destination does not spend its read quota on names.

use crate::clock;
use crate::sink::Outcome;
use crate::sink::x::{ReadError, XClient};

use super::Worker;

impl Worker {
    /// The user id to send a DM to, or the outcome that ends this attempt.
    pub(super) async fn recipient_id(
        &self,
        x: &XClient,
        recipient: &str,
    ) -> Result<String, Outcome> {
        let name = recipient.trim_start_matches('@');
        if !recipient.starts_with('@') && name.chars().all(|c| c.is_ascii_digit()) {
            return Ok(name.to_string());
        }
        if let Ok(Some(id)) = self.store.user_id(name).await {
            return Ok(id);
        }
        let timeout = self.settings.request_timeout;
        let found = self
            .authorized(
                |auth| x.user_id(name, auth, timeout),
                |r| matches!(r, Err(ReadError::Unauthorized(_))),
            )
            .await
            .map_err(|failure| Outcome::Pause {
                reason: failure.reason(&self.destination.id),
            })?;
        match found {
            Ok(Some(id)) => {
                if let Err(e) = self.store.set_user_id(name, &id, clock::now_ms()).await {
                    // The DM can still go; the name is looked up again next time.
                    tracing::warn!(error = %e, "Cannot cache a resolved DM recipient.");
                }
                Ok(id)
            }
            Ok(None) => Err(Outcome::Dead {
                reason: format!("X has no user @{name}"),
            }),
            Err(ReadError::Unauthorized(reason)) => Err(Outcome::Pause { reason }),
            Err(e) => Err(Outcome::Retry {
                reason: e.to_string(),
            }),
        }
    }
}
