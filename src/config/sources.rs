//! Sources: a `[sources.ID]` table validated into the provider it speaks and the `Verifier` that checks
//! its signatures. Secrets are resolved here; nothing here reads a request.

use crate::config::raw::RawSource;
use crate::config::secret::{self, Secret};
use crate::config::{FieldError, Source};
use crate::normalize::Provider;
use crate::ratelimit::parse_duration;
use crate::verify::asana::Asana;
use crate::verify::gitlab::Gitlab;
use crate::verify::hmac::{Encoding, GenericHmac};
use crate::verify::linear::Linear;
use crate::verify::mac::Algorithm;
use crate::verify::slack::Slack;
use crate::verify::standard::Standard;
use crate::verify::{Verifier, github::Github};

pub(super) fn source(
    id: &str,
    s: &RawSource,
    secrets: &secret::Resolver<'_>,
) -> Result<Source, FieldError> {
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err((
            "provider",
            format!("source id {id:?} must be letters, digits, - and _ (it is a URL path segment)"),
        ));
    }
    let secret = |s: &RawSource| -> Result<Secret, FieldError> {
        let reference = s
            .secret
            .as_deref()
            .ok_or(("secret", "this provider needs a secret".to_string()))?;
        let value = secrets
            .resolve(reference)
            .map_err(|e| ("secret", e.to_string()))?;
        match secret::weak_source_secret(&value) {
            Some(why) => Err(("secret", format!("{} {why}", secret::describe(reference)))),
            None => Ok(value),
        }
    };
    let tolerance = |default_secs: u64| -> Result<i64, FieldError> {
        match &s.tolerance {
            Some(t) => parse_duration(t)
                .map(|d| d.as_millis() as i64)
                .map_err(|e| ("tolerance", e)),
            None => Ok(default_secs as i64 * 1000),
        }
    };
    let header_hmac = |secret: Secret, header: &str, prefix: &str| GenericHmac {
        secret,
        header: header.to_string(),
        algorithm: Algorithm::Sha256,
        encoding: Encoding::Hex,
        prefix: prefix.to_string(),
        suffix: String::new(),
    };
    let (provider, verifier) = match s.provider.as_str() {
        "github" => (
            Provider::Github,
            Verifier::Github(Github { secret: secret(s)? }),
        ),
        "gitlab" => {
            let verifier = match (&s.signing_secret, &s.secret) {
                (Some(signing), _) => {
                    let key = secrets
                        .resolve(signing)
                        .map_err(|e| ("signing_secret", e.to_string()))?;
                    let standard = Standard::new(key.expose(), tolerance(300)? / 1000)
                        .map_err(|e| ("signing_secret", e.to_string()))?;
                    Gitlab::Signed(standard)
                }
                (None, Some(_)) => Gitlab::Token(secret(s)?),
                (None, None) => {
                    return Err((
                        "secret",
                        "gitlab needs secret (the webhook's secret token) or signing_secret (whsec_…)".to_string(),
                    ));
                }
            };
            (Provider::Gitlab, Verifier::Gitlab(verifier))
        }
        "gitea" | "forgejo" | "gogs" => {
            let key = secret(s)?;
            let headers: &[&str] = match s.provider.as_str() {
                "forgejo" => &["x-forgejo-signature", "x-gitea-signature"],
                "gitea" => &[
                    "x-gitea-signature",
                    "x-forgejo-signature",
                    "x-gogs-signature",
                ],
                _ => &["x-gogs-signature"],
            };
            let schemes = headers
                .iter()
                .map(|h| header_hmac(key.clone(), h, ""))
                .collect();
            let provider = match s.provider.as_str() {
                "forgejo" => Provider::Forgejo,
                "gitea" => Provider::Gitea,
                _ => Provider::Gogs,
            };
            (provider, Verifier::AnyOf(schemes))
        }
        "bitbucket" => (
            Provider::Bitbucket,
            Verifier::Hmac(header_hmac(secret(s)?, "x-hub-signature", "sha256=")),
        ),
        "jira" => (
            Provider::Jira,
            Verifier::Hmac(header_hmac(secret(s)?, "x-hub-signature", "sha256=")),
        ),
        "linear" => (
            Provider::Linear,
            Verifier::Linear(Linear {
                secret: secret(s)?,
                tolerance_ms: tolerance(60)?,
            }),
        ),
        "trello" => {
            let url = s
                .callback_url
                .clone()
                .ok_or(("callback_url", "trello signs the body with the callback URL: set callback_url to the webhook URL exactly as registered".to_string()))?;
            let hmac = GenericHmac {
                secret: secret(s)?,
                header: "x-trello-webhook".to_string(),
                algorithm: Algorithm::Sha1,
                encoding: Encoding::Base64,
                prefix: String::new(),
                suffix: url,
            };
            (Provider::Trello, Verifier::Hmac(hmac))
        }
        "asana" => (
            Provider::Asana,
            Verifier::Asana(Asana {
                url_token: secret(s)?,
            }),
        ),
        "basecamp" => (Provider::Basecamp, Verifier::UrlToken(secret(s)?)),
        "slack" => (
            Provider::Slack,
            Verifier::Slack(Slack {
                secret: secret(s)?,
                tolerance_secs: tolerance(300)? / 1000,
            }),
        ),
        "standard" => {
            let key = secret(s)?;
            let v = Standard::new(key.expose(), tolerance(300)? / 1000)
                .map_err(|e| ("secret", e.to_string()))?;
            (Provider::Standard, Verifier::Standard(v))
        }
        "hmac" => {
            let header = s.header.clone().ok_or((
                "header",
                "the hmac provider needs the name of the signature header".to_string(),
            ))?;
            let algorithm = match &s.algorithm {
                Some(a) => Algorithm::parse(a)
                    .ok_or(("algorithm", format!("{a:?} is not sha1, sha256 or sha512")))?,
                None => Algorithm::Sha256,
            };
            let encoding = match s.encoding.as_deref() {
                None | Some("hex") => Encoding::Hex,
                Some("base64") => Encoding::Base64,
                Some(other) => return Err(("encoding", format!("{other:?} is not hex or base64"))),
            };
            let verifier = GenericHmac {
                secret: secret(s)?,
                header: header.to_ascii_lowercase(),
                algorithm,
                encoding,
                prefix: s.prefix.clone().unwrap_or_default(),
                suffix: String::new(),
            };
            let provider = Provider::Hmac {
                delivery_header: s.delivery_header.as_ref().map(|h| h.to_ascii_lowercase()),
                event_header: s.event_header.as_ref().map(|h| h.to_ascii_lowercase()),
            };
            (provider, Verifier::Hmac(verifier))
        }
        other => {
            return Err((
                "provider",
                format!(
                    "unknown provider {other:?}: use github, gitlab, gitea, forgejo, gogs, bitbucket, jira, linear, trello, asana, basecamp, slack, standard or hmac"
                ),
            ));
        }
    };
    Ok(Source {
        id: id.to_string(),
        provider,
        verifier,
    })
}
