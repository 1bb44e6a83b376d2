//! Shared-secret tokens: GitLab's `X-Gitlab-Token` header and the `?token=` URL parameter used by senders
//! that cannot sign (Basecamp) and to authenticate Asana's handshake.
//!
//! Tokens are compared in constant time over their SHA-256 digests, so neither the content nor the length
//! of the expected token leaks through timing.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::secret::Secret;
use crate::verify::VerifyError;

/// Whether `given` equals the secret, in constant time.
pub fn matches(secret: &Secret, given: &str) -> bool {
    let a = Sha256::digest(secret.expose().as_bytes());
    let b = Sha256::digest(given.as_bytes());
    a.ct_eq(&b).into()
}

/// Finds `token` in a URL query string (`a=1&token=…`), percent-decoded.
pub fn from_query(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
}

/// Verifies the `?token=` parameter of the webhook URL.
pub fn verify_query(secret: &Secret, query: Option<&str>) -> Result<(), VerifyError> {
    let given = from_query(query)
        .ok_or_else(|| VerifyError::MissingHeader("?token= URL parameter".to_string()))?;
    if matches(secret, &given) {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_exactly() {
        let s = Secret::new("t0ken/with+chars".into());
        assert!(matches(&s, "t0ken/with+chars"));
        assert!(!matches(&s, "t0ken/with+char"));
        assert!(!matches(&s, ""));
    }

    #[test]
    fn query_tokens_are_found_and_decoded() {
        assert_eq!(
            from_query(Some("a=1&token=t0ken%2Fwith%2Bchars")),
            Some("t0ken/with+chars".into())
        );
        assert_eq!(from_query(Some("tokens=x")), None);
        assert_eq!(from_query(None), None);
        let s = Secret::new("abc".into());
        assert_eq!(verify_query(&s, Some("token=abc")), Ok(()));
        assert_eq!(
            verify_query(&s, Some("token=abd")),
            Err(VerifyError::Mismatch)
        );
        assert!(matches!(
            verify_query(&s, Some("x=1")),
            Err(VerifyError::MissingHeader(_))
        ));
    }
}
