//! GitLab: the classic `X-Gitlab-Token` shared secret, or GitLab's newer signing token, which follows
//! Standard Webhooks (`webhook-signature` over `{webhook-id}.{webhook-timestamp}.{body}`).
//!
//! A source configured with a `signing_secret` (`whsec_…`) requires the signature and its timestamp
//! window; otherwise the token is compared in constant time. The token proves the sender knows the secret
//! but does not protect the body, which is why the signing token is preferred where GitLab offers it.

use http::HeaderMap;

use crate::clock::UnixMillis;
use crate::config::secret::Secret;
use crate::verify::standard::Standard;
use crate::verify::{VerifyError, header, token};

#[derive(Debug, Clone)]
pub enum Gitlab {
    Token(Secret),
    Signed(Standard),
}

impl Gitlab {
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: UnixMillis,
    ) -> Result<(), VerifyError> {
        match self {
            Gitlab::Token(secret) => {
                let given = header(headers, "x-gitlab-token")?;
                if token::matches(secret, given) {
                    Ok(())
                } else {
                    Err(VerifyError::Mismatch)
                }
            }
            Gitlab::Signed(standard) => standard.verify(headers, body, now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_must_match_exactly() {
        let g = Gitlab::Token(Secret::new("gl-token".into()));
        let mut h = HeaderMap::new();
        assert_eq!(
            g.verify(&h, b"{}", 0),
            Err(VerifyError::MissingHeader("x-gitlab-token".into()))
        );
        h.insert("x-gitlab-token", "gl-token".parse().unwrap());
        assert_eq!(g.verify(&h, b"{}", 0), Ok(()));
        h.insert("x-gitlab-token", "gl-toke".parse().unwrap());
        assert_eq!(g.verify(&h, b"{}", 0), Err(VerifyError::Mismatch));
    }

    /// GitLab's signing token is Standard Webhooks: the published vector 1 passes through it.
    #[test]
    fn the_signing_token_is_standard_webhooks() {
        let g =
            Gitlab::Signed(Standard::new("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", 300).unwrap());
        let mut h = HeaderMap::new();
        h.insert(
            "webhook-id",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk".parse().unwrap(),
        );
        h.insert("webhook-timestamp", "1649367553".parse().unwrap());
        h.insert(
            "webhook-signature",
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
                .parse()
                .unwrap(),
        );
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        assert_eq!(g.verify(&h, body, 1649367553 * 1000), Ok(()));
        // A token header is not enough when the source requires signatures.
        h.remove("webhook-signature");
        h.insert("x-gitlab-token", "anything".parse().unwrap());
        assert!(g.verify(&h, body, 1649367553 * 1000).is_err());
    }
}
