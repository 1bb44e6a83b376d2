//! OAuth 1.0a user-context signing (HMAC-SHA1) for requests to X, through the `oauth1-request` crate.
//!
//! X signs only the OAuth parameters and the query string, never a JSON body, so a tweet's text is not part
//! of the signature. The nonce and timestamp are passed in, which makes the published worked examples
//! reproducible in tests.

use std::num::NonZeroU64;

use crate::config::secret::Secret;

/// The four credentials of an OAuth 1.0a user context.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub consumer_key: Secret,
    pub consumer_secret: Secret,
    pub access_token: Secret,
    pub access_token_secret: Secret,
}

/// Builds the `Authorization` header for `method uri` with the given query or form parameters.
/// `uri` must not contain a query string; pass its parameters in `params` instead.
pub fn authorization(
    creds: &Credentials,
    method: &str,
    uri: &str,
    params: &[(&str, &str)],
    nonce: &str,
    timestamp_secs: u64,
) -> String {
    let token = oauth1_request::Token::from_parts(
        creds.consumer_key.expose(),
        creds.consumer_secret.expose(),
        creds.access_token.expose(),
        creds.access_token_secret.expose(),
    );
    let mut builder = oauth1_request::Builder::with_token(token, oauth1_request::HmacSha1::new());
    builder
        .nonce(nonce)
        .timestamp(NonZeroU64::new(timestamp_secs.max(1)))
        .version(true);
    let request = oauth1_request::ParameterList::new(params.to_vec());
    builder.authorize(method, uri, &request)
}

/// A fresh random nonce: 32 alphanumeric characters.
pub fn nonce() -> String {
    use rand::Rng;
    use rand::distr::Alphanumeric;
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc_credentials() -> Credentials {
        Credentials {
            consumer_key: Secret::new("xvz1evFS4wEEPTGEFPHBog".into()),
            consumer_secret: Secret::new("kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw".into()),
            access_token: Secret::new("370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb".into()),
            access_token_secret: Secret::new("LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE".into()),
        }
    }

    fn signature_of(header: &str) -> &str {
        let start = header.find("oauth_signature=\"").unwrap() + "oauth_signature=\"".len();
        let rest = &header[start..];
        &rest[..rest.find('"').unwrap()]
    }

    const PARAMS: [(&str, &str); 2] = [
        ("include_entities", "true"),
        (
            "status",
            "Hello Ladies + Gentlemen, a signed OAuth request!",
        ),
    ];
    const NONCE: &str = "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg";

    /// The classic Twitter worked example, which every OAuth library tests against.
    #[test]
    fn classic_worked_example() {
        let h = authorization(
            &doc_credentials(),
            "POST",
            "https://api.twitter.com/1.1/statuses/update.json",
            &PARAMS,
            NONCE,
            1318622958,
        );
        assert_eq!(signature_of(&h), "hCtSmYh%2BiHYCEqBWrE7C7hYmtUk%3D");
        assert!(h.starts_with("OAuth "));
        assert!(h.contains("oauth_version=\"1.0\""));
        assert!(h.contains("oauth_token=\"370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb\""));
    }

    /// The current docs.x.com worked example: the same request against api.x.com.
    #[test]
    fn x_docs_worked_example() {
        let h = authorization(
            &doc_credentials(),
            "POST",
            "https://api.x.com/1.1/statuses/update.json",
            &PARAMS,
            NONCE,
            1318622958,
        );
        assert_eq!(signature_of(&h), "Ls93hJiZbQ3akF3HF3x1Bz8%2FzU4%3D");
    }

    #[test]
    fn nonces_differ() {
        assert_ne!(nonce(), nonce());
        assert_eq!(nonce().len(), 32);
    }
}
