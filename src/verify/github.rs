//! GitHub: `X-Hub-Signature-256: sha256=<hex>` over the raw body.
//!
//! The legacy SHA-1 `X-Hub-Signature` is not accepted: GitHub always sends the SHA-256 header alongside
//! it, and accepting the weaker one would let a downgrade through.

use http::HeaderMap;

use crate::config::secret::Secret;
use crate::verify::mac::{self, Algorithm};
use crate::verify::{VerifyError, header};

pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

#[derive(Debug, Clone)]
pub struct Github {
    pub secret: Secret,
}

impl Github {
    pub fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), VerifyError> {
        let value = header(headers, SIGNATURE_HEADER)?;
        let digest = value
            .strip_prefix("sha256=")
            .ok_or_else(|| malformed("expected sha256=<hex>"))?;
        let expected = hex::decode(digest).map_err(|_| malformed("digest is not hex"))?;
        if mac::verify(
            Algorithm::Sha256,
            self.secret.expose().as_bytes(),
            &[body],
            &expected,
        ) {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }
}

fn malformed(reason: &'static str) -> VerifyError {
    VerifyError::Malformed {
        header: "X-Hub-Signature-256".to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn github() -> Github {
        Github {
            secret: Secret::new("It's a Secret to Everybody".to_string()),
        }
    }

    fn with_sig(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(SIGNATURE_HEADER, value.parse().unwrap());
        h
    }

    /// The published vector of GitHub's "Validating webhook deliveries" page.
    #[test]
    fn published_vector_passes() {
        let h = with_sig("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
        assert_eq!(github().verify(&h, b"Hello, World!"), Ok(()));
    }

    #[test]
    fn altered_body_or_signature_fails() {
        let h = with_sig("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
        assert_eq!(
            github().verify(&h, b"Hello, World?"),
            Err(VerifyError::Mismatch)
        );
        let h = with_sig("sha256=857107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
        assert_eq!(
            github().verify(&h, b"Hello, World!"),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn missing_or_malformed_header_is_named() {
        let err = github().verify(&HeaderMap::new(), b"x").unwrap_err();
        assert_eq!(err.to_string(), "missing x-hub-signature-256 header");
        // The legacy SHA-1 form is refused: it must not be a downgrade path.
        let err = github()
            .verify(
                &with_sig("sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59"),
                b"Hello, World!",
            )
            .unwrap_err();
        assert!(matches!(err, VerifyError::Malformed { .. }));
        let err = github().verify(&with_sig("sha256=zz"), b"x").unwrap_err();
        assert!(matches!(err, VerifyError::Malformed { .. }));
    }
}
