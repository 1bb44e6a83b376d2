//! Signature verification on the exact raw bytes of a request, before anything parses them.
//!
//! Each scheme is one file. Every function here is pure: it takes the headers, the body and the current
//! time, and answers `Ok` or a `VerifyError` whose message is safe to send back to the sender (it never
//! contains a secret or an expected signature). MACs are compared only through `Mac::verify_slice`, which
//! is constant-time; tokens only through `subtle`.
//! This module must not parse JSON, touch the store or read the clock.

pub mod asana;
pub mod github;
pub mod gitlab;
pub mod hmac;
pub mod linear;
pub mod mac;
pub mod slack;
pub mod standard;
pub mod token;

use http::HeaderMap;

use crate::clock::UnixMillis;
use crate::config::secret::Secret;

/// How one source proves that a request came from its sender.
#[derive(Debug, Clone)]
pub enum Verifier {
    Github(github::Github),
    Gitlab(gitlab::Gitlab),
    Standard(standard::Standard),
    /// A digest of the body in one header: the generic `hmac` provider, Gitea, Forgejo, Gogs,
    /// Bitbucket, Jira and Trello.
    Hmac(hmac::GenericHmac),
    /// Gitea and Forgejo send their signature under several names; the first present one is checked.
    AnyOf(Vec<hmac::GenericHmac>),
    Linear(linear::Linear),
    Slack(slack::Slack),
    Asana(asana::Asana),
    /// Senders that cannot sign (Basecamp): a secret `?token=` in the webhook URL.
    UrlToken(Secret),
}

/// What a verifier looks at: the request as received.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub headers: &'a HeaderMap,
    /// The URL's query string, for `?token=` schemes.
    pub query: Option<&'a str>,
    pub body: &'a [u8],
    /// A secret the source learned at a handshake (Asana's `X-Hook-Secret`), read from the store.
    pub learned_secret: Option<&'a Secret>,
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
    /// Checks what can be checked before the body is read: a signature header that is missing or
    /// malformed, a stale signed timestamp in a header, a wrong shared token. Refusing those before
    /// reading keeps an unsigned 1 MiB body from costing more than its headers. `Ok` means only "read
    /// the body and verify it".
    pub fn precheck(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        now: UnixMillis,
    ) -> Result<(), VerifyError> {
        match self {
            // Schemes whose proof is a token: checked in full, the body plays no part.
            Verifier::UrlToken(secret) => token::verify_query(secret, query),
            Verifier::Gitlab(g @ gitlab::Gitlab::Token(_)) => g.verify(headers, b"", now),
            Verifier::Asana(a) => token::verify_query(&a.url_token, query),
            // MAC schemes: verified against an empty body, every answer but a mismatch of the MAC is final
            // (it came from the headers alone).
            _ => {
                let probe = Incoming {
                    headers,
                    query,
                    body: b"",
                    learned_secret: None,
                };
                match self.verify(&probe, now) {
                    Err(VerifyError::Mismatch) | Ok(()) => Ok(()),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Checks a request, with its body exactly as received, against the source's scheme.
    pub fn verify(&self, req: &Incoming<'_>, now: UnixMillis) -> Result<(), VerifyError> {
        let (headers, body) = (req.headers, req.body);
        match self {
            Verifier::Github(v) => v.verify(headers, body),
            Verifier::Gitlab(v) => v.verify(headers, body, now),
            Verifier::Standard(v) => v.verify(headers, body, now),
            Verifier::Hmac(v) => v.verify(headers, body),
            Verifier::AnyOf(schemes) => {
                let present = schemes
                    .iter()
                    .find(|s| headers.get(&s.header).is_some_and(|v| !v.is_empty()));
                match present {
                    Some(s) => s.verify(headers, body),
                    None => Err(VerifyError::MissingHeader(
                        schemes
                            .iter()
                            .map(|s| s.header.as_str())
                            .collect::<Vec<_>>()
                            .join(" or "),
                    )),
                }
            }
            Verifier::Linear(v) => v.verify(headers, body, now),
            Verifier::Slack(v) => v.verify(headers, body, now),
            Verifier::Asana(v) => v.verify(headers, req.query, body, req.learned_secret),
            Verifier::UrlToken(secret) => token::verify_query(secret, req.query),
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

/// Checks a signed Unix-seconds timestamp header against now, both ways, within `tolerance_secs`.
pub(crate) fn check_timestamp(
    header_name: &str,
    value: &str,
    now: UnixMillis,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    let ts_secs: i64 = value.trim().parse().map_err(|_| VerifyError::Malformed {
        header: header_name.to_string(),
        reason: "not an integer number of seconds",
    })?;
    check_skew(
        now,
        ts_secs.saturating_mul(1000),
        tolerance_secs.saturating_mul(1000),
    )
}

/// Checks a signed timestamp (Unix ms) against now, both ways, within `tolerance_ms`. The arithmetic
/// saturates, so a timestamp near the ends of `i64` is refused as stale, never wrapped into the window.
pub(crate) fn check_skew(
    now: UnixMillis,
    stamp: UnixMillis,
    tolerance_ms: i64,
) -> Result<(), VerifyError> {
    let skew = now.saturating_sub(stamp);
    if skew.unsigned_abs() > tolerance_ms.unsigned_abs() {
        return Err(VerifyError::Stale {
            skew_secs: skew / 1000,
            tolerance_secs: tolerance_ms / 1000,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_at_the_ends_of_i64_are_stale_not_wrapped() {
        let now = 1_795_629_600_000;
        for stamp in [i64::MIN, i64::MIN + 1, i64::MAX, -now] {
            assert!(
                matches!(
                    check_skew(now, stamp, 300_000),
                    Err(VerifyError::Stale { .. })
                ),
                "{stamp}"
            );
        }
        for secs in ["-9223372036854775808", "9223372036854775807"] {
            assert!(check_timestamp("t", secs, now, 300).is_err(), "{secs}");
        }
        assert!(check_skew(now, now - 299_000, 300_000).is_ok());
        assert!(check_skew(now, now + 299_000, 300_000).is_ok());
    }

    #[test]
    fn a_missing_or_malformed_signature_is_refused_before_the_body() {
        let gh = Verifier::Github(github::Github {
            secret: Secret::new("It's a Secret to Everybody".into()),
        });
        let mut h = HeaderMap::new();
        assert!(matches!(
            gh.precheck(&h, None, 0),
            Err(VerifyError::MissingHeader(_))
        ));
        h.insert("x-hub-signature-256", "sha256=zz".parse().unwrap());
        assert!(matches!(
            gh.precheck(&h, None, 0),
            Err(VerifyError::Malformed { .. })
        ));
        // A well-formed signature needs the body to be judged.
        h.insert(
            "x-hub-signature-256",
            format!("sha256={}", "0".repeat(64)).parse().unwrap(),
        );
        assert_eq!(gh.precheck(&h, None, 0), Ok(()));
        let url = Verifier::UrlToken(Secret::new("a-long-enough-url-token".into()));
        assert_eq!(
            url.precheck(&h, Some("token=nope"), 0),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            url.precheck(&h, Some("token=a-long-enough-url-token"), 0),
            Ok(())
        );
    }

    fn every_scheme() -> Vec<Verifier> {
        let secret = || Secret::new("a-long-enough-shared-secret".into());
        vec![
            Verifier::Github(github::Github { secret: secret() }),
            Verifier::Gitlab(gitlab::Gitlab::Token(secret())),
            Verifier::Standard(
                standard::Standard::new("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", 300).unwrap(),
            ),
            Verifier::Linear(linear::Linear {
                secret: secret(),
                tolerance_ms: 60_000,
            }),
            Verifier::Slack(slack::Slack {
                secret: secret(),
                tolerance_secs: 300,
            }),
            Verifier::Asana(asana::Asana {
                url_token: secret(),
            }),
            Verifier::UrlToken(secret()),
        ]
    }

    proptest::proptest! {
        /// Whatever headers and query an outsider sends, the check before the body answers without
        /// panicking, and a request with no headers at all never passes a header-signed scheme.
        #[test]
        fn prechecks_survive_any_headers(
            names in proptest::collection::vec("(x-hub-signature-256|x-gitlab-token|webhook-signature|webhook-id|webhook-timestamp|linear-signature|x-slack-signature|x-slack-request-timestamp|x-hook-signature)", 0..6),
            values in proptest::collection::vec("[ -~]{0,80}", 6),
            query in proptest::option::of("[ -~]{0,60}"),
            now in proptest::num::i64::ANY,
        ) {
            let mut h = HeaderMap::new();
            for (n, v) in names.iter().zip(&values) {
                if let Ok(v) = v.parse() {
                    h.insert(http::HeaderName::from_bytes(n.as_bytes()).unwrap(), v);
                }
            }
            for v in every_scheme() {
                let _ = v.precheck(&h, query.as_deref(), now);
                let _ = v.precheck(&HeaderMap::new(), None, now);
            }
            let gh = &every_scheme()[0];
            proptest::prop_assert!(gh.precheck(&HeaderMap::new(), None, now).is_err());
        }
    }
}
