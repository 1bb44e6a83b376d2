//! Standard Webhooks v1: `webhook-signature: v1,<base64>` over `{webhook-id}.{webhook-timestamp}.{body}`.
//!
//! The header may carry several space-separated signatures (during a secret rotation); one match is
//! enough. The timestamp must be within the tolerance in both directions, as the reference libraries
//! require, so that a captured request cannot be replayed later. Svix's `svix-*` header names are the
//! same scheme and are accepted too.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use http::HeaderMap;
use secrecy::{ExposeSecret, SecretSlice};

use crate::clock::UnixMillis;
use crate::verify::mac::{self, Algorithm};
use crate::verify::{VerifyError, check_timestamp, header};

#[derive(Clone)]
pub struct Standard {
    key: SecretSlice<u8>,
    tolerance_secs: i64,
}

impl std::fmt::Debug for Standard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Standard")
            .field("key", &"[redacted]")
            .field("tolerance_secs", &self.tolerance_secs)
            .finish()
    }
}

/// The secret is not a `whsec_` base64 key.
#[derive(Debug, thiserror::Error)]
#[error("a Standard Webhooks secret is whsec_ followed by base64")]
pub struct BadSecret;

impl Standard {
    /// Builds the verifier from a `whsec_…` secret (the prefix is optional, as in the reference libraries).
    pub fn new(secret: &str, tolerance_secs: i64) -> Result<Standard, BadSecret> {
        let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
        let key = B64.decode(b64).map_err(|_| BadSecret)?;
        if key.is_empty() {
            return Err(BadSecret);
        }
        Ok(Standard {
            key: SecretSlice::from(key),
            tolerance_secs,
        })
    }

    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: UnixMillis,
    ) -> Result<(), VerifyError> {
        let (id, ts, sigs) = match header(headers, "webhook-id") {
            Ok(id) => (
                id,
                header(headers, "webhook-timestamp")?,
                header(headers, "webhook-signature")?,
            ),
            Err(missing) => match header(headers, "svix-id") {
                Ok(id) => (
                    id,
                    header(headers, "svix-timestamp")?,
                    header(headers, "svix-signature")?,
                ),
                Err(_) => return Err(missing),
            },
        };
        check_timestamp("webhook-timestamp", ts, now, self.tolerance_secs)?;
        let parts: [&[u8]; 5] = [id.as_bytes(), b".", ts.as_bytes(), b".", body];
        let key = self.key.expose_secret();
        let mut saw_v1 = false;
        for candidate in sigs.split(' ') {
            let Some(b64) = candidate.strip_prefix("v1,") else {
                continue;
            };
            saw_v1 = true;
            let Ok(expected) = B64.decode(b64) else {
                continue;
            };
            if mac::verify(Algorithm::Sha256, key, &parts, &expected) {
                return Ok(());
            }
        }
        if saw_v1 {
            Err(VerifyError::Mismatch)
        } else {
            Err(VerifyError::Malformed {
                header: "webhook-signature".to_string(),
                reason: "no v1,<base64> signature",
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOL: i64 = 300;

    fn headers(id: &str, ts: &str, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("webhook-id", id.parse().unwrap());
        h.insert("webhook-timestamp", ts.parse().unwrap());
        h.insert("webhook-signature", sig.parse().unwrap());
        h
    }

    const V1_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const V1_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const V1_TS: i64 = 1649367553;
    const V1_BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const V1_SIG: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    /// Published vector 1 (reference Rust library, `test_sign`).
    #[test]
    fn published_vector_one_passes() {
        let v = Standard::new(V1_SECRET, TOL).unwrap();
        let h = headers(V1_ID, &V1_TS.to_string(), V1_SIG);
        assert_eq!(v.verify(&h, V1_BODY, V1_TS * 1000), Ok(()));
    }

    /// Published vector 2 (reference JavaScript library, "sign function works"); note the space in the body.
    #[test]
    fn published_vector_two_passes() {
        let v = Standard::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", TOL).unwrap();
        let h = headers(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        );
        assert_eq!(
            v.verify(&h, br#"{"test": 2432232314}"#, 1614265330 * 1000),
            Ok(())
        );
        // The secret is accepted without its prefix too.
        let v = Standard::new("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", TOL).unwrap();
        assert_eq!(
            v.verify(&h, br#"{"test": 2432232314}"#, 1614265330 * 1000),
            Ok(())
        );
    }

    #[test]
    fn published_negative_vector_fails() {
        let v = Standard::new(V1_SECRET, TOL).unwrap();
        let h = headers(
            V1_ID,
            &V1_TS.to_string(),
            "v1,R3PTzyfHASBKHH98a7yexTwaJ4yNIcGhFQc1yuN+BPU=",
        );
        assert_eq!(
            v.verify(&h, V1_BODY, V1_TS * 1000),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn multi_signature_header_passes_when_one_matches() {
        let v = Standard::new(V1_SECRET, TOL).unwrap();
        let multi = format!(
            "v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ= v1,Mm7xgUVICxZfQ3bgf0h0Dof65L/IFx+PnZvnDWPCX6Q= {V1_SIG} v1,9DfC1c3eeOrXB6w/5dIDydLNQaEyww5KalE5jLBZucE="
        );
        let h = headers(V1_ID, &V1_TS.to_string(), &multi);
        assert_eq!(v.verify(&h, V1_BODY, V1_TS * 1000), Ok(()));
    }

    #[test]
    fn stale_and_future_timestamps_are_refused_both_ways() {
        let v = Standard::new(V1_SECRET, TOL).unwrap();
        let h = headers(V1_ID, &V1_TS.to_string(), V1_SIG);
        let late = (V1_TS + TOL + 1) * 1000;
        assert!(matches!(
            v.verify(&h, V1_BODY, late),
            Err(VerifyError::Stale { skew_secs: 301, .. })
        ));
        let early = (V1_TS - TOL - 1) * 1000;
        assert!(matches!(
            v.verify(&h, V1_BODY, early),
            Err(VerifyError::Stale {
                skew_secs: -301,
                ..
            })
        ));
        assert_eq!(v.verify(&h, V1_BODY, (V1_TS + TOL) * 1000), Ok(()));
    }

    #[test]
    fn tampered_id_timestamp_or_body_fails() {
        let v = Standard::new(V1_SECRET, TOL).unwrap();
        let h = headers("msg_other", &V1_TS.to_string(), V1_SIG);
        assert_eq!(
            v.verify(&h, V1_BODY, V1_TS * 1000),
            Err(VerifyError::Mismatch)
        );
        let h = headers(V1_ID, &(V1_TS + 1).to_string(), V1_SIG);
        assert_eq!(
            v.verify(&h, V1_BODY, V1_TS * 1000),
            Err(VerifyError::Mismatch)
        );
        let h = headers(V1_ID, &V1_TS.to_string(), V1_SIG);
        assert_eq!(
            v.verify(&h, b"{}", V1_TS * 1000),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn bad_secret_is_a_config_error() {
        assert!(Standard::new("whsec_***", TOL).is_err());
        assert!(Standard::new("whsec_", TOL).is_err());
    }
}
