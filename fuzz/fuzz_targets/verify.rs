//! Arbitrary bodies and signature headers against every verifier: answers are Ok or an error, never a
//! panic, and a random signature is never accepted.
#![no_main]

use chirpd::config::secret::Secret;
use chirpd::verify::standard::Standard;
use chirpd::verify::{Incoming, Verifier, github::Github, hmac::{Encoding, GenericHmac}, mac::Algorithm};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&[u8], &str, &str)| {
    let (body, sig, ts) = input;
    let mut headers = http::HeaderMap::new();
    let Ok(value) = http::HeaderValue::from_str(sig) else { return };
    for name in ["x-hub-signature-256", "x-sig", "webhook-signature", "x-gitea-signature"] {
        headers.insert(name, value.clone());
    }
    if let Ok(ts) = http::HeaderValue::from_str(ts) {
        headers.insert("webhook-timestamp", ts);
    }
    headers.insert("webhook-id", http::HeaderValue::from_static("msg_1"));
    let verifiers = [
        Verifier::Github(Github { secret: Secret::new("s".into()) }),
        Verifier::Hmac(GenericHmac {
            secret: Secret::new("s".into()),
            header: "x-sig".into(),
            algorithm: Algorithm::Sha256,
            encoding: Encoding::Base64,
            prefix: String::new(),
            suffix: String::new(),
        }),
        Verifier::Standard(Standard::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 300).unwrap()),
    ];
    let req = Incoming { headers: &headers, query: None, body, learned_secret: None };
    for v in &verifiers {
        assert!(v.verify(&req, 0).is_err(), "a random signature was accepted");
    }
});
