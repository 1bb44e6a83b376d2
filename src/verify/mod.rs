//! Signature verification on the exact raw bytes of a request, before anything parses them.
//!
//! Each scheme is one file. Every function here is pure: it takes the headers, the body and the current
//! time, and answers `Ok` or a `VerifyError` whose message is safe to send back to the sender (it never
//! contains a secret or an expected signature). MACs are compared only through `Mac::verify_slice`, which
//! is constant-time; tokens only through `subtle`.
//! This module must not parse JSON, touch the store or read the clock.

pub mod github;
pub mod hmac;
pub mod mac;
pub mod standard;

use http::HeaderMap;

use crate::clock::UnixMillis;

/// How one source proves that a request came from its sender.
#[derive(Debug, Clone)]
pub enum Verifier {
    Github(github::Github),
    Standard(standard::Standard),
    Hmac(hmac::GenericHmac),
}

/// Why a request was refused. The display text is the one-line reason of the 401 answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing {0} header")]
    MissingHeader(String),
    #[error("malformed {header} header: {reason}")]
    Malformed {
        header: String,
        reason: &'static str,
    },
    #[error("signature does not match")]
    Mismatch,
    #[error("timestamp is {skew_secs} s away from now, outside the {tolerance_secs} s tolerance")]
    Stale { skew_secs: i64, tolerance_secs: i64 },
}

impl Verifier {
    /// Checks `body` as received against the source's scheme.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: UnixMillis,
    ) -> Result<(), VerifyError> {
        match self {
            Verifier::Github(v) => v.verify(headers, body),
            Verifier::Standard(v) => v.verify(headers, body, now),
            Verifier::Hmac(v) => v.verify(headers, body),
        }
    }
}

/// Returns a header's value as text, or the error naming it.
pub(crate) fn header<'h>(headers: &'h HeaderMap, name: &str) -> Result<&'h str, VerifyError> {
    let value = headers
        .get(name)
        .ok_or_else(|| VerifyError::MissingHeader(name.to_string()))?;
    value.to_str().map_err(|_| VerifyError::Malformed {
        header: name.to_string(),
        reason: "not visible ASCII",
    })
}
