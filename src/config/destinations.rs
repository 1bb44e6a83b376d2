//! Destinations: a `[destinations.ID]` table validated into a `Destination`: its kind, endpoint,
//! credentials, windows, overflow, budget and settle window. Secrets are resolved here; nothing here
//! talks to an API.

use std::time::Duration;

use crate::config::FieldError;
use crate::config::raw::RawDestination;
use crate::config::secret::{self, Secret};
use crate::ratelimit::{Window, parse_duration};
use crate::sink::oauth1::Credentials;
use crate::sink::{Auth, Budget, Destination, DestinationKind, Overflow, UrlPolicy, oauth2};

/// The digest template used when a destination sets none: counts by kind, then the newest titles.
pub const DEFAULT_DIGEST: &str = "{{ project or 'Updates' }}: {{ count }} updates — {{ summary }}\
{% for item in newest %} · {{ item.text }}{% endfor %}";

pub(super) fn destination(
    id: &str,
    d: &RawDestination,
    secrets: &secret::Resolver<'_>,
) -> Result<Destination, FieldError> {
    let kind = match d.kind.as_str() {
        "x" => DestinationKind::XTweet,
        "x_dm" => DestinationKind::XDm,
        "mastodon" => DestinationKind::Mastodon,
        other => {
            return Err((
                "kind",
                format!("unknown destination kind {other:?}: use x, x_dm or mastodon"),
            ));
        }
    };
    let limits = d
        .limits
        .iter()
        .map(|l| Window::parse(l))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ("limits", e))?;
    let overflow = match d.overflow.as_str() {
        "queue" => Overflow::Queue,
        "drop" => Overflow::Drop,
        "digest" => Overflow::Digest {
            template: format!("destinations.{id}.digest_template"),
            delay: match &d.digest_delay {
                Some(t) => parse_duration(t).map_err(|e| ("digest_delay", e))?,
                None => Duration::from_secs(600),
            },
        },
        other => {
            return Err((
                "overflow",
                format!("{other:?} is not queue, digest or drop"),
            ));
        }
    };
    if overflow != Overflow::Queue && limits.is_empty() {
        return Err((
            "overflow",
            format!(
                "overflow = {:?} needs limits to know when the queue overflows",
                d.overflow
            ),
        ));
    }
    let url_policy = match d.url_policy.as_deref() {
        None | Some("keep") => UrlPolicy::Keep,
        Some("drop_over_budget") => UrlPolicy::DropOverBudget,
        Some("never") => UrlPolicy::Never,
        Some(other) => {
            return Err((
                "url_policy",
                format!("{other:?} is not keep, drop_over_budget or never"),
            ));
        }
    };
    let micros = |field: &'static str, v: f64| -> Result<i64, FieldError> {
        if v.is_finite() && v >= 0.0 {
            Ok((v * 1_000_000.0).round() as i64)
        } else {
            Err((field, format!("{v} is not an amount of dollars")))
        }
    };
    let budget = match d.budget {
        Some(b) => Some(Budget {
            monthly_micros: micros("budget", b)?,
            // X's pay-per-use prices (2026-04): $0.015 a post, $0.20 a post with a link.
            post_micros: micros("price_post", d.price_post.unwrap_or(0.015))?,
            post_with_url_micros: micros(
                "price_post_with_url",
                d.price_post_with_url.unwrap_or(0.20),
            )?,
        }),
        None => None,
    };
    if url_policy == UrlPolicy::DropOverBudget && budget.is_none() {
        return Err(("url_policy", "drop_over_budget needs a budget".to_string()));
    }
    let secret_of =
        |field: &'static str, value: &Option<String>| -> Result<Option<Secret>, FieldError> {
            value
                .as_ref()
                .map(|r| secrets.resolve(r).map_err(|e| (field, e.to_string())))
                .transpose()
        };
    let api_base = match kind {
        DestinationKind::Mastodon => d.instance.clone().ok_or((
            "instance",
            "a mastodon destination needs instance = \"https://…\"".to_string(),
        ))?,
        _ => d.api_base.clone(),
    }
    .trim_end_matches('/')
    .to_string();
    let field = if kind == DestinationKind::Mastodon {
        "instance"
    } else {
        "api_base"
    };
    check_endpoint(&api_base).map_err(|why| (field, format!("{api_base:?} {why}")))?;
    let auth = if d.dry_run {
        Auth::None
    } else if kind == DestinationKind::Mastodon {
        let token = secret_of("token", &d.token)?;
        Auth::Bearer(token.ok_or((
            "token",
            "a mastodon destination needs an access token".to_string(),
        ))?)
    } else {
        match d.auth.as_deref().unwrap_or("oauth1") {
            "oauth1" => {
                let need = |field: &'static str,
                            value: &Option<String>|
                 -> Result<Secret, FieldError> {
                    secret_of(field, value)?.ok_or((
                        field,
                        "OAuth 1.0a needs consumer_key, consumer_secret, access_token and access_token_secret (or dry_run = true)".to_string(),
                    ))
                };
                Auth::OAuth1(Credentials {
                    consumer_key: need("consumer_key", &d.consumer_key)?,
                    consumer_secret: need("consumer_secret", &d.consumer_secret)?,
                    access_token: need("access_token", &d.access_token)?,
                    access_token_secret: need("access_token_secret", &d.access_token_secret)?,
                })
            }
            "oauth2" => {
                let client_id = d.client_id.clone().ok_or((
                    "client_id",
                    "OAuth 2.0 needs the app's client_id".to_string(),
                ))?;
                let mut scopes = vec!["tweet.read", "tweet.write", "users.read", "offline.access"];
                if kind == DestinationKind::XDm {
                    scopes.extend(["dm.read", "dm.write"]);
                }
                Auth::OAuth2(oauth2::App {
                    client_id,
                    client_secret: secret_of("client_secret", &d.client_secret)?,
                    authorize_url: "https://x.com/i/oauth2/authorize".to_string(),
                    token_url: format!("{api_base}/2/oauth2/token"),
                    scopes: scopes.into_iter().map(str::to_string).collect(),
                })
            }
            other => return Err(("auth", format!("{other:?} is not oauth1 or oauth2"))),
        }
    };
    if kind == DestinationKind::XDm && d.recipients.is_empty() {
        return Err((
            "recipients",
            "an x_dm destination needs recipients (\"@username\" or user ids)".to_string(),
        ));
    }
    for r in &d.recipients {
        let name = r.strip_prefix('@').unwrap_or(r);
        let ok = !name.is_empty()
            && name.len() <= 20
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err((
                "recipients",
                format!("{r:?} is not an @username or a user id"),
            ));
        }
    }
    let visibility = d
        .visibility
        .clone()
        .unwrap_or_else(|| "private".to_string());
    if !["private", "direct", "unlisted", "public"].contains(&visibility.as_str()) {
        return Err((
            "visibility",
            format!("{visibility:?} is not private, direct, unlisted or public"),
        ));
    }
    Ok(Destination {
        id: id.to_string(),
        kind,
        api_base,
        auth,
        recipients: d.recipients.clone(),
        visibility,
        require_protected: d.require_protected && kind == DestinationKind::XTweet,
        limits,
        overflow,
        budget,
        url_policy,
        settle: match &d.settle {
            Some(t) => Some(parse_duration(t).map_err(|e| ("settle", e))?),
            None => None,
        },
        dry_run: d.dry_run,
    })
}

/// An API endpoint must be `https://`, except on the loopback interface (a local proxy or a test
/// double): tokens and refresh tokens travel in its requests.
fn check_endpoint(base: &str) -> Result<(), &'static str> {
    let url = url::Url::parse(base).map_err(|_| "is not a URL")?;
    match url.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match url.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                None => false,
            };
            if loopback {
                Ok(())
            } else {
                Err(
                    "is plain http to a remote host: use https:// (credentials travel in its requests)",
                )
            }
        }
        _ => Err("is not an http(s) URL"),
    }
}

#[cfg(test)]
mod tests {
    use super::check_endpoint;

    #[test]
    fn remote_endpoints_need_https_and_loopback_may_use_http() {
        assert!(check_endpoint("https://api.x.com").is_ok());
        assert!(check_endpoint("http://127.0.0.1:8080").is_ok());
        assert!(check_endpoint("http://127.9.9.9").is_ok());
        assert!(check_endpoint("http://[::1]:9").is_ok());
        assert!(check_endpoint("http://localhost:3000").is_ok());
        assert!(check_endpoint("http://api.x.com").is_err());
        assert!(check_endpoint("http://10.0.0.1").is_err());
        assert!(check_endpoint("http://127.0.0.1.evil.example").is_err());
        assert!(check_endpoint("ftp://api.x.com").is_err());
        assert!(check_endpoint("api.x.com").is_err());
    }
}
