//! HMAC computation and constant-time comparison over the digests the providers use.

use hmac::{Hmac, KeyInit, Mac};

/// The hash functions providers sign with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn parse(name: &str) -> Option<Algorithm> {
        match name.to_ascii_lowercase().as_str() {
            "sha1" => Some(Algorithm::Sha1),
            "sha256" => Some(Algorithm::Sha256),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }
}

/// Verifies in constant time that `expected` is the HMAC of the concatenated `parts` under `key`.
pub fn verify(alg: Algorithm, key: &[u8], parts: &[&[u8]], expected: &[u8]) -> bool {
    fn run<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]], expected: &[u8]) -> bool {
        // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
        let Ok(mut mac) = <M as KeyInit>::new_from_slice(key) else {
            return false;
        };
        for part in parts {
            mac.update(part);
        }
        mac.verify_slice(expected).is_ok()
    }
    match alg {
        Algorithm::Sha1 => run::<Hmac<sha1::Sha1>>(key, parts, expected),
        Algorithm::Sha256 => run::<Hmac<sha2::Sha256>>(key, parts, expected),
        Algorithm::Sha512 => run::<Hmac<sha2::Sha512>>(key, parts, expected),
    }
}

/// Computes the HMAC of the concatenated `parts`; used by `chirpd` tools and tests that sign requests.
pub fn sign(alg: Algorithm, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    fn run<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        let Ok(mut mac) = <M as KeyInit>::new_from_slice(key) else {
            return Vec::new();
        };
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().to_vec()
    }
    match alg {
        Algorithm::Sha1 => run::<Hmac<sha1::Sha1>>(key, parts),
        Algorithm::Sha256 => run::<Hmac<sha2::Sha256>>(key, parts),
        Algorithm::Sha512 => run::<Hmac<sha2::Sha512>>(key, parts),
    }
}
