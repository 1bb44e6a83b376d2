//! Asana: a handshake, then signed events.
//!
//! When a webhook is created, Asana POSTs an `X-Hook-Secret` that the receiver must echo and keep; later
//! events carry `X-Hook-Signature`, the hex HMAC-SHA256 of the body keyed with that secret. The handshake
//! itself is unsigned, so chirpd accepts one only when it carries the source's `?token=` in its URL, the
//! source has no secret yet or the admin opened a handshake window (`chirpd handshake open`), and the
//! offered secret is at least `MIN_HOOK_SECRET` bytes; a request that carries a signature is an event,
//! never a handshake. Otherwise anyone who learned the URL could replace the secret, and Asana's real
//! events would then fail until Asana disabled the hook. The stored secret is read by the ingress.

use http::HeaderMap;

use crate::config::secret::Secret;
use crate::verify::mac::{self, Algorithm};
use crate::verify::{VerifyError, header, token};

pub const HANDSHAKE_HEADER: &str = "x-hook-secret";
/// The header of a signed event.
pub const SIGNATURE_HEADER: &str = "x-hook-signature";
/// Asana's secrets are 32 random bytes, sent as 64 hex digits; anything under 32 bytes is not Asana's.
pub const MIN_HOOK_SECRET: usize = 32;

/// What the ingress knows about a source when a handshake arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeState {
    /// A secret was learned at an earlier handshake.
    pub has_secret: bool,
    /// The admin opened a window for a new handshake, and it has not ended.
    pub window_open: bool,
}

/// Why a handshake is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeRefused {
    #[error("{0}")]
    Token(VerifyError),
    #[error(
        "the source already has a secret; run chirpd handshake open --source ID to let a new webhook replace it"
    )]
    AlreadyHasSecret,
    #[error("X-Hook-Secret is {0} bytes; Asana sends at least {MIN_HOOK_SECRET}")]
    TooShort(usize),
    #[error("X-Hook-Secret is not visible ASCII")]
    NotText,
}

#[derive(Debug, Clone)]
pub struct Asana {
    /// The `?token=` the webhook URL must carry.
    pub url_token: Secret,
}

impl Asana {
    /// Judges a handshake offering `offered` as the source's new secret.
    pub fn verify_handshake(
        &self,
        query: Option<&str>,
        offered: &[u8],
        state: HandshakeState,
    ) -> Result<(), HandshakeRefused> {
        token::verify_query(&self.url_token, query).map_err(HandshakeRefused::Token)?;
        if state.has_secret && !state.window_open {
            return Err(HandshakeRefused::AlreadyHasSecret);
        }
        if !offered.iter().all(|b| b.is_ascii_graphic()) {
            return Err(HandshakeRefused::NotText);
        }
        if offered.len() < MIN_HOOK_SECRET {
            return Err(HandshakeRefused::TooShort(offered.len()));
        }
        Ok(())
    }

    /// Checks an event: the URL token, then the signature under the secret from the handshake.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        body: &[u8],
        hook_secret: Option<&Secret>,
    ) -> Result<(), VerifyError> {
        token::verify_query(&self.url_token, query)?;
        let Some(secret) = hook_secret else {
            return Err(VerifyError::MissingHeader(
                "X-Hook-Secret handshake (none was received for this source; recreate the Asana webhook)".into(),
            ));
        };
        let given = header(headers, "x-hook-signature")?;
        let expected = hex::decode(given.trim()).map_err(|_| VerifyError::Malformed {
            header: "X-Hook-Signature".into(),
            reason: "not hex",
        })?;
        if mac::verify(
            Algorithm::Sha256,
            secret.expose().as_bytes(),
            &[body],
            &expected,
        ) {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_need_the_url_token_and_the_handshake_secret() {
        let a = Asana {
            url_token: Secret::new("url-tok".into()),
        };
        let hook = Secret::new("It's a Secret to Everybody".into());
        let mut h = HeaderMap::new();
        // Self-computed vector 3 of docs/protocols.md §1: Asana signs with bare hex HMAC-SHA256.
        h.insert(
            "x-hook-signature",
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
                .parse()
                .unwrap(),
        );
        assert_eq!(
            a.verify(&h, Some("token=url-tok"), b"Hello, World!", Some(&hook)),
            Ok(())
        );
        assert_eq!(
            a.verify(&h, Some("token=nope"), b"Hello, World!", Some(&hook)),
            Err(VerifyError::Mismatch)
        );
        assert!(matches!(
            a.verify(&h, Some("token=url-tok"), b"Hello, World!", None),
            Err(VerifyError::MissingHeader(_))
        ));
        assert_eq!(
            a.verify(&h, Some("token=url-tok"), b"Hello", Some(&hook)),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn a_handshake_takes_a_source_only_when_it_has_no_secret_or_the_admin_opened_a_window() {
        let a = Asana {
            url_token: Secret::new("url-tok".into()),
        };
        let good = [b'a'; 64];
        let fresh = HandshakeState {
            has_secret: false,
            window_open: false,
        };
        let taken = HandshakeState {
            has_secret: true,
            window_open: false,
        };
        let reopened = HandshakeState {
            has_secret: true,
            window_open: true,
        };
        let q = Some("token=url-tok");
        assert_eq!(a.verify_handshake(q, &good, fresh), Ok(()));
        assert_eq!(a.verify_handshake(q, &good, reopened), Ok(()));
        assert_eq!(
            a.verify_handshake(q, &good, taken),
            Err(HandshakeRefused::AlreadyHasSecret)
        );
        assert!(matches!(
            a.verify_handshake(None, &good, fresh),
            Err(HandshakeRefused::Token(_))
        ));
        assert_eq!(
            a.verify_handshake(q, b"", fresh),
            Err(HandshakeRefused::TooShort(0))
        );
        assert_eq!(
            a.verify_handshake(q, &[b'a'; 31], fresh),
            Err(HandshakeRefused::TooShort(31))
        );
        assert_eq!(
            a.verify_handshake(q, "é".repeat(32).as_bytes(), fresh),
            Err(HandshakeRefused::NotText)
        );
    }
}
