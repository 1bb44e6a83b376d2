//! Asana: a handshake, then signed events.
//!
//! When a webhook is created, Asana POSTs an `X-Hook-Secret` that the receiver must echo and keep; later
//! events carry `X-Hook-Signature`, the hex HMAC-SHA256 of the body keyed with that secret. The handshake
//! itself is unsigned, so chirpd only accepts one that also carries the source's `?token=` in its URL;
//! otherwise anyone could replace the secret. The stored secret is read by the ingress and passed in.

use http::HeaderMap;

use crate::config::secret::Secret;
use crate::verify::mac::{self, Algorithm};
use crate::verify::{VerifyError, header, token};

pub const HANDSHAKE_HEADER: &str = "x-hook-secret";

#[derive(Debug, Clone)]
pub struct Asana {
    /// The `?token=` the webhook URL must carry.
    pub url_token: Secret,
}

impl Asana {
    /// Checks a handshake: the URL token must match.
    pub fn verify_handshake(&self, query: Option<&str>) -> Result<(), VerifyError> {
        token::verify_query(&self.url_token, query)
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
        assert_eq!(a.verify_handshake(Some("token=url-tok")), Ok(()));
        assert!(a.verify_handshake(None).is_err());
    }
}
