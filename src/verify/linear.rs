//! Linear: `Linear-Signature` is the hex HMAC-SHA256 of the raw body, and the body's `webhookTimestamp`
//! (Unix milliseconds) must be within a minute of now, as Linear's SDK requires.
//!
//! The timestamp lives inside the signed body, so it is read only after the MAC matched: nothing parses
//! an unverified body.

use http::HeaderMap;

use crate::clock::UnixMillis;
use crate::config::secret::Secret;
use crate::verify::mac::{self, Algorithm};
use crate::verify::{VerifyError, check_skew, header};

#[derive(Debug, Clone)]
pub struct Linear {
    pub secret: Secret,
    pub tolerance_ms: i64,
}

#[derive(serde::Deserialize)]
struct Stamp {
    #[serde(rename = "webhookTimestamp")]
    webhook_timestamp: Option<i64>,
}

impl Linear {
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: UnixMillis,
    ) -> Result<(), VerifyError> {
        let given = header(headers, "linear-signature")?;
        let expected = hex::decode(given.trim()).map_err(|_| VerifyError::Malformed {
            header: "Linear-Signature".into(),
            reason: "not hex",
        })?;
        if !mac::verify(
            Algorithm::Sha256,
            self.secret.expose().as_bytes(),
            &[body],
            &expected,
        ) {
            return Err(VerifyError::Mismatch);
        }
        let stamp: Option<i64> = serde_json::from_slice::<Stamp>(body)
            .ok()
            .and_then(|s| s.webhook_timestamp);
        let Some(ts) = stamp else {
            return Err(VerifyError::MissingHeader(
                "webhookTimestamp body field".into(),
            ));
        };
        check_skew(now, ts, self.tolerance_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(secret: &str, body: &[u8]) -> HeaderMap {
        let sig = hex::encode(mac::sign(Algorithm::Sha256, secret.as_bytes(), &[body]));
        let mut h = HeaderMap::new();
        h.insert("linear-signature", sig.parse().unwrap());
        h
    }

    #[test]
    fn fresh_signed_bodies_pass_and_replays_fail() {
        let v = Linear {
            secret: Secret::new("lin_wh_secret".into()),
            tolerance_ms: 60_000,
        };
        let body = br#"{"action":"create","type":"Issue","webhookTimestamp":1681207187330}"#;
        let h = signed("lin_wh_secret", body);
        assert_eq!(v.verify(&h, body, 1681207187330 + 59_000), Ok(()));
        assert!(matches!(
            v.verify(&h, body, 1681207187330 + 61_000),
            Err(VerifyError::Stale { .. })
        ));
        assert!(matches!(
            v.verify(&h, body, 1681207187330 - 61_000),
            Err(VerifyError::Stale { .. })
        ));
        assert_eq!(
            v.verify(&signed("other", body), body, 1681207187330),
            Err(VerifyError::Mismatch)
        );
    }

    /// Self-computed vector 3 of docs/protocols.md §1: Linear's digest is the bare hex HMAC-SHA256.
    #[test]
    fn the_consolidated_hex_vector_matches() {
        let expected =
            hex::decode("757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
                .unwrap();
        assert!(mac::verify(
            Algorithm::Sha256,
            b"It's a Secret to Everybody",
            &[b"Hello, World!"],
            &expected
        ));
    }

    #[test]
    fn a_signed_body_without_a_timestamp_is_refused() {
        let v = Linear {
            secret: Secret::new("s".into()),
            tolerance_ms: 60_000,
        };
        let body = br#"{"action":"create"}"#;
        assert!(matches!(
            v.verify(&signed("s", body), body, 0),
            Err(VerifyError::MissingHeader(_))
        ));
    }
}
