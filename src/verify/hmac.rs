//! Header HMACs: a digest of the raw body (optionally followed by fixed bytes) in one header.
//!
//! The generic `hmac` provider lets the admin name the header, the hash (sha1, sha256, sha512), the
//! encoding (hex or base64) and an optional prefix such as `sha256=`. The same shape serves Gitea,
//! Forgejo and Gogs (bare hex SHA-256 in their own header), Bitbucket Cloud and Jira Cloud
//! (`X-Hub-Signature: sha256=<hex>`) and Trello (base64 HMAC-SHA1 over the body followed by the
//! webhook's callback URL). An empty header value, which Gitea sends when no secret is set, never
//! matches.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use http::HeaderMap;

use crate::config::secret::Secret;
use crate::verify::mac::{self, Algorithm};
use crate::verify::{VerifyError, header};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Hex,
    Base64,
}

#[derive(Debug, Clone)]
pub struct GenericHmac {
    pub secret: Secret,
    /// Lower-case header name, as `http` stores them.
    pub header: String,
    pub algorithm: Algorithm,
    pub encoding: Encoding,
    pub prefix: String,
    /// Bytes signed after the body (Trello's callback URL); empty for everyone else.
    pub suffix: String,
}

impl GenericHmac {
    pub fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), VerifyError> {
        let value = header(headers, &self.header)?;
        let digest = value
            .strip_prefix(self.prefix.as_str())
            .ok_or(VerifyError::Malformed {
                header: self.header.clone(),
                reason: "missing the configured prefix",
            })?;
        let expected = match self.encoding {
            Encoding::Hex => hex::decode(digest.trim()).ok(),
            Encoding::Base64 => B64.decode(digest.trim()).ok(),
        }
        .ok_or(VerifyError::Malformed {
            header: self.header.clone(),
            reason: "digest is not in the configured encoding",
        })?;
        if mac::verify(
            self.algorithm,
            self.secret.expose().as_bytes(),
            &[body, self.suffix.as_bytes()],
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

    fn scheme(algorithm: Algorithm, encoding: Encoding, prefix: &str) -> GenericHmac {
        GenericHmac {
            secret: Secret::new("It's a Secret to Everybody".to_string()),
            header: "x-signature".to_string(),
            algorithm,
            encoding,
            prefix: prefix.to_string(),
            suffix: String::new(),
        }
    }

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-signature", value.parse().unwrap());
        h
    }

    /// Consolidated vector 3 of docs/protocols.md §1: bare hex SHA-256 (the GitHub digest without its prefix).
    #[test]
    fn bare_hex_sha256_vector() {
        let v = scheme(Algorithm::Sha256, Encoding::Hex, "");
        let h = with("757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
        assert_eq!(v.verify(&h, b"Hello, World!"), Ok(()));
    }

    /// Self-computed vector 4 of docs/protocols.md §1 (Shopify style, base64); a regression vector, not published.
    #[test]
    fn self_computed_base64_vector() {
        let v = scheme(Algorithm::Sha256, Encoding::Base64, "");
        let h = with("dXEH6g6yUJ/CESIczphLijdXC211hsIsRvQ3nIsEPhc=");
        assert_eq!(v.verify(&h, b"Hello, World!"), Ok(()));
    }

    /// Self-computed vector 2 of docs/protocols.md §1 (legacy GitHub SHA-1 with prefix); a regression vector.
    #[test]
    fn self_computed_sha1_prefixed_vector() {
        let v = scheme(Algorithm::Sha1, Encoding::Hex, "sha1=");
        let h = with("sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59");
        assert_eq!(v.verify(&h, b"Hello, World!"), Ok(()));
        assert_eq!(v.verify(&h, b"Hello, World"), Err(VerifyError::Mismatch));
    }

    /// Self-computed vector 9 of docs/protocols.md §1 (Trello): base64 HMAC-SHA1 over body + callback URL.
    #[test]
    fn self_computed_trello_vector() {
        let v = GenericHmac {
            secret: Secret::new("secret".into()),
            header: "x-trello-webhook".into(),
            algorithm: Algorithm::Sha1,
            encoding: Encoding::Base64,
            prefix: String::new(),
            suffix: "https://example.com/webhooks".into(),
        };
        let mut h = HeaderMap::new();
        h.insert(
            "x-trello-webhook",
            "FwPAcuGe9EP/+SbXFWjnEVTa0zw=".parse().unwrap(),
        );
        assert_eq!(v.verify(&h, br#"{"hello":"world"}"#), Ok(()));
        let other_url = GenericHmac {
            suffix: "https://example.com/other".into(),
            ..v
        };
        assert_eq!(
            other_url.verify(&h, br#"{"hello":"world"}"#),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn an_empty_signature_never_matches() {
        let v = scheme(Algorithm::Sha256, Encoding::Hex, "");
        assert!(v.verify(&with(""), b"").is_err());
    }

    #[test]
    fn sha512_round_trip_and_wrong_prefix() {
        let v = scheme(Algorithm::Sha512, Encoding::Hex, "sha512=");
        let sig = hex::encode(mac::sign(
            Algorithm::Sha512,
            b"It's a Secret to Everybody",
            &[b"body"],
        ));
        assert_eq!(v.verify(&with(&format!("sha512={sig}")), b"body"), Ok(()));
        assert!(matches!(
            v.verify(&with(&sig), b"body"),
            Err(VerifyError::Malformed { .. })
        ));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Signing then verifying passes for any secret and body, in every digest and encoding; any
        /// change to the body fails; no header value panics.
        #[test]
        fn sign_then_verify_round_trips(
            secret in "[ -~]{1,40}",
            body in proptest::collection::vec(any::<u8>(), 0..512),
            flip in any::<usize>(),
            junk in "[ -~]{0,100}",
        ) {
            for (algorithm, encoding) in [
                (Algorithm::Sha1, Encoding::Base64),
                (Algorithm::Sha256, Encoding::Hex),
                (Algorithm::Sha512, Encoding::Hex),
            ] {
                let v = GenericHmac {
                    secret: Secret::new(secret.clone()),
                    header: "x-sig".into(),
                    algorithm,
                    encoding,
                    prefix: "v=".into(),
                    suffix: String::new(),
                };
                let digest = mac::sign(algorithm, secret.as_bytes(), &[&body]);
                let value = match encoding {
                    Encoding::Hex => hex::encode(&digest),
                    Encoding::Base64 => B64.encode(&digest),
                };
                let mut h = HeaderMap::new();
                h.insert("x-sig", format!("v={value}").parse().unwrap());
                prop_assert_eq!(v.verify(&h, &body), Ok(()));
                if !body.is_empty() {
                    let mut tampered = body.clone();
                    let i = flip % tampered.len();
                    tampered[i] ^= 0x01;
                    prop_assert_eq!(v.verify(&h, &tampered), Err(VerifyError::Mismatch));
                }
                let genuine = format!("v={value}");
                if let Ok(j) = junk.parse() {
                    h.insert("x-sig", j);
                    let accepted = v.verify(&h, &body).is_ok();
                    prop_assert!(!accepted || junk == genuine);
                }
            }
        }
    }
}
