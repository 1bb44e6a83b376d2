//! Configuration: embedded defaults, then the TOML file, then `CHIRPD_` environment overrides, then
//! validation into typed values.
//!
//! `load` is the only entry point. It returns a `Config` whose every value is usable as is: addresses
//! parsed, durations parsed, secrets resolved, templates compiled, routes checked against sources and
//! destinations. Errors name the file and line of the offending key. Nothing here starts servers or
//! touches the store, and a `Config` is passed explicitly to whoever needs a part of it.

pub mod raw;
pub mod secret;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::raw::{RawConfig, RawDestination, RawRoute, RawSource};
use crate::config::secret::Secret;
use crate::normalize::Provider;
use crate::plan::{Pipeline, Target};
use crate::ratelimit::{Window, parse_duration};
use crate::render::{Origin, Templates};
use crate::route::{EventPattern, Route};
use crate::sink::oauth1::Credentials;
use crate::sink::{Auth, Budget, Destination, DestinationKind, Overflow, UrlPolicy, oauth2};
use crate::verify::asana::Asana;
use crate::verify::gitlab::Gitlab;
use crate::verify::hmac::{Encoding, GenericHmac};
use crate::verify::linear::Linear;
use crate::verify::mac::Algorithm;
use crate::verify::slack::Slack;
use crate::verify::standard::Standard;
use crate::verify::{Verifier, github::Github};

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from, if any (none: embedded defaults only).
    pub path: Option<PathBuf>,
    pub server: Server,
    /// The SQLite file. Relative paths are resolved against `$STATE_DIRECTORY` when systemd sets it.
    pub store_path: PathBuf,
    /// A cap on the store's size in bytes, if the admin set one.
    pub store_max_bytes: Option<u64>,
    pub dispatch: Dispatch,
    pub sources: BTreeMap<String, Source>,
    pub destinations: BTreeMap<String, Destination>,
    pub pipeline: Pipeline,
}

#[derive(Debug, Clone)]
pub struct Server {
    pub listen: SocketAddr,
    /// Bodies over this are refused with 413 before being read further.
    pub max_body_bytes: usize,
    /// A client must send its request headers within this time.
    pub header_timeout: Duration,
    /// A client must send its whole body within this time.
    pub body_timeout: Duration,
    /// Connections beyond this wait in the kernel's backlog.
    pub max_connections: usize,
}

#[derive(Debug, Clone)]
pub struct Dispatch {
    /// First retry delay after a transient failure; doubles each attempt, with full jitter.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// An item still failing after this long since it was queued is dead-lettered.
    pub give_up_after: Duration,
    pub request_timeout: Duration,
    /// How often a `require_protected` destination's account is checked.
    pub protected_check_every: Duration,
}

#[derive(Debug, Clone)]
pub struct Source {
    pub id: String,
    pub provider: Provider,
    pub verifier: Verifier,
}

/// One problem in the config, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct ConfigError {
    pub location: String,
    pub message: String,
}

/// Every problem found; validation goes on after the first so the admin sees them all at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors(pub Vec<ConfigError>);

/// The environment as the config sees it, passed in so that tests need not touch the process's.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
    fn vars(&self) -> Vec<(String, String)>;
}

/// The real process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
    fn vars(&self) -> Vec<(String, String)> {
        std::env::vars().collect()
    }
}

/// Loads and validates the config at `path` (or the embedded defaults when `path` is none).
pub fn load(path: Option<&Path>, env: &dyn Env) -> Result<Config, ConfigErrors> {
    let (text, file) = match path {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(t) => (t, p.display().to_string()),
            Err(e) => {
                return Err(ConfigErrors(vec![ConfigError {
                    location: p.display().to_string(),
                    message: format!("cannot read: {e}"),
                }]));
            }
        },
        None => (String::new(), "(defaults)".to_string()),
    };
    let raw = parse(&text, &file, env)?;
    let base = path
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    validate(
        raw,
        &Locator { file, text },
        &base,
        path.map(Path::to_path_buf),
        env,
    )
}

fn parse(text: &str, file: &str, env: &dyn Env) -> Result<RawConfig, ConfigErrors> {
    let mut builder = config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml));
    // CHIRPD_SERVER__LISTEN=… sets server.listen. Only names with `__` are config keys; CHIRPD_CONFIG and
    // the like are not.
    for (name, value) in env.vars() {
        let Some(key) = name.strip_prefix("CHIRPD_") else {
            continue;
        };
        if !key.contains("__") {
            continue;
        }
        let key = key.to_ascii_lowercase().replace("__", ".");
        builder = builder
            .set_override(key, value)
            .map_err(|e| one(&name, e.to_string()))?;
    }
    let cfg = builder
        .build()
        .map_err(|e| one(file, describe_config_error(&e)))?;
    cfg.try_deserialize::<RawConfig>().map_err(|e| {
        let message = describe_config_error(&e);
        // For an unknown field, point at the field itself rather than its table.
        let key =
            key_in_message(&message).map(|k| match between(&message, "unknown field `", "`") {
                Some(field) => format!("{k}.{field}"),
                None => k,
            });
        let line = key.and_then(|k| Locator::line_of(text, &k));
        one(&at(file, line), message)
    })
}

fn describe_config_error(e: &config::ConfigError) -> String {
    e.to_string().replace('\n', " ")
}

/// Pulls the `for key \`a.b\`` part out of a `config` crate message, if there is one.
fn key_in_message(message: &str) -> Option<String> {
    between(message, "for key `", "`")
}

fn between(text: &str, open: &str, close: &str) -> Option<String> {
    let start = text.find(open)? + open.len();
    let rest = &text[start..];
    Some(rest[..rest.find(close)?].to_string())
}

fn one(location: &str, message: String) -> ConfigErrors {
    ConfigErrors(vec![ConfigError {
        location: location.to_string(),
        message,
    }])
}

fn at(file: &str, line: Option<usize>) -> String {
    match line {
        Some(l) => format!("{file}:{l}"),
        None => file.to_string(),
    }
}

/// Finds the line of a key path in the config text, for error messages.
struct Locator {
    file: String,
    text: String,
}

impl Locator {
    /// `file:line` of the key path, e.g. `routes[2].template` or `sources.acme.secret`.
    fn at(&self, key: &str) -> String {
        at(&self.file, Locator::line_of(&self.text, key))
    }

    fn line_of(text: &str, key: &str) -> Option<usize> {
        // Split `routes[2].template` into the table part and the key part.
        let (table, index, field) = if let Some(rest) = key.strip_prefix("routes[") {
            let (n, field) = rest.split_once(']')?;
            (
                "routes".to_string(),
                n.parse::<usize>().ok(),
                field.trim_start_matches('.').to_string(),
            )
        } else {
            let mut parts: Vec<&str> = key.split('.').collect();
            let field = if parts.len() > 1 {
                parts.pop().unwrap_or_default()
            } else {
                ""
            };
            (parts.join("."), None, field.to_string())
        };
        let lines: Vec<&str> = text.lines().collect();
        let header = |l: &str| {
            let t = l.trim();
            match index {
                Some(_) => t == format!("[[{table}]]"),
                None => {
                    let unquoted = t.replace('"', "");
                    unquoted == format!("[{table}]")
                }
            }
        };
        let mut seen = 0;
        let mut start = None;
        for (i, l) in lines.iter().enumerate() {
            if header(l) {
                if index.is_none_or(|n| n == seen) {
                    start = Some(i);
                    break;
                }
                seen += 1;
            }
        }
        let start = start?;
        if field.is_empty() {
            return Some(start + 1);
        }
        for (i, l) in lines.iter().enumerate().skip(start + 1) {
            let t = l.trim_start();
            if t.starts_with('[') {
                break;
            }
            if let Some(rest) = t.strip_prefix(field.as_str())
                && rest.trim_start().starts_with('=')
            {
                return Some(i + 1);
            }
        }
        Some(start + 1)
    }
}

fn validate(
    raw: RawConfig,
    loc: &Locator,
    base: &Path,
    path: Option<PathBuf>,
    env: &dyn Env,
) -> Result<Config, ConfigErrors> {
    let mut errors = Vec::new();
    let mut err = |key: &str, message: String| {
        errors.push(ConfigError {
            location: loc.at(key),
            message,
        })
    };
    let duration = |key: &str, text: &str, err: &mut dyn FnMut(&str, String)| {
        parse_duration(text).unwrap_or_else(|e| {
            err(key, e);
            Duration::ZERO
        })
    };

    let listen = raw.server.listen.parse().unwrap_or_else(|_| {
        err(
            "server.listen",
            format!(
                "{:?} is not an address such as 127.0.0.1:8787",
                raw.server.listen
            ),
        );
        SocketAddr::from(([127, 0, 0, 1], 8787))
    });
    let server = Server {
        listen,
        max_body_bytes: usize::try_from(raw.server.max_body_bytes).unwrap_or(usize::MAX),
        header_timeout: duration(
            "server.header_timeout",
            &raw.server.header_timeout,
            &mut err,
        ),
        body_timeout: duration("server.body_timeout", &raw.server.body_timeout, &mut err),
        max_connections: raw.server.max_connections.max(1),
    };
    let dispatch = Dispatch {
        retry_base: duration("dispatch.retry_base", &raw.dispatch.retry_base, &mut err),
        retry_max: duration("dispatch.retry_max", &raw.dispatch.retry_max, &mut err),
        give_up_after: duration(
            "dispatch.give_up_after",
            &raw.dispatch.give_up_after,
            &mut err,
        ),
        request_timeout: duration(
            "dispatch.request_timeout",
            &raw.dispatch.request_timeout,
            &mut err,
        ),
        protected_check_every: duration(
            "dispatch.protected_check_every",
            &raw.dispatch.protected_check_every,
            &mut err,
        ),
    };
    let store_path = {
        let p = PathBuf::from(&raw.store.path);
        match env.var("STATE_DIRECTORY") {
            Some(dir) if p.is_relative() => PathBuf::from(dir).join(p),
            _ => p,
        }
    };

    let lookup = |name: &str| env.var(name);
    let mut sources = BTreeMap::new();
    for (id, s) in &raw.sources {
        match source(id, s, &lookup) {
            Ok(src) => {
                sources.insert(id.clone(), src);
            }
            Err((field, message)) => err(&format!("sources.{id}.{field}"), message),
        }
    }
    let mut destinations = BTreeMap::new();
    for (id, d) in &raw.destinations {
        match destination(id, d, &lookup) {
            Ok(dest) => {
                destinations.insert(id.clone(), dest);
            }
            Err((field, message)) => err(&format!("destinations.{id}.{field}"), message),
        }
    }
    let mut pipeline = Pipeline {
        targets: destinations
            .iter()
            .map(|(id, d)| {
                let target = Target {
                    kind: d.kind.name(),
                    limit: d.kind.limit(),
                    recipients: d.recipients.clone(),
                    strip_urls: d.url_policy == UrlPolicy::Never,
                    settle: d.settle,
                };
                (id.clone(), target)
            })
            .collect(),
        ..Pipeline::default()
    };
    for (id, d) in &raw.destinations {
        if let Some(Overflow::Digest { template, .. }) = destinations.get(id).map(|d| &d.overflow) {
            let text = d
                .digest_template
                .clone()
                .unwrap_or_else(|| DEFAULT_DIGEST.to_string());
            let location = loc.at(&format!("destinations.{id}.digest_template"));
            let origin = Origin {
                file: loc.file.clone(),
                first_line: location
                    .rsplit(':')
                    .next()
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(1),
            };
            if let Err(e) = pipeline.templates.add(template, text, origin) {
                errors.push(ConfigError {
                    location: e.location,
                    message: e.message,
                });
            }
        }
    }
    for (i, r) in raw.routes.iter().enumerate() {
        match route(i, r, &raw, loc, base, &mut pipeline.templates) {
            Ok(route) => pipeline.routes.push(route),
            Err(found) => errors.extend(found),
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    Ok(Config {
        path,
        server,
        store_path,
        store_max_bytes: raw
            .store
            .max_size_mb
            .map(|mb| mb.saturating_mul(1024 * 1024)),
        dispatch,
        sources,
        destinations,
        pipeline,
    })
}

type FieldError = (&'static str, String);

fn source(
    id: &str,
    s: &RawSource,
    lookup: &dyn Fn(&str) -> Option<String>,
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
        secret::resolve(reference, lookup).map_err(|e| ("secret", e.to_string()))
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
                    let key = secret::resolve(signing, lookup)
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

/// The digest template used when a destination sets none: counts by kind, then the newest titles.
pub const DEFAULT_DIGEST: &str = "{{ project or 'Updates' }}: {{ count }} updates — {{ summary }}\
{% for item in newest %} · {{ item.text }}{% endfor %}";

fn destination(
    id: &str,
    d: &RawDestination,
    lookup: &dyn Fn(&str) -> Option<String>,
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
                .map(|r| secret::resolve(r, lookup).map_err(|e| (field, e.to_string())))
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
    if !(api_base.starts_with("https://") || api_base.starts_with("http://")) {
        return Err(("api_base", format!("{api_base:?} is not an http(s) URL")));
    }
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
                Auth::OAuth2(oauth2::Client {
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

fn route(
    i: usize,
    r: &RawRoute,
    raw: &RawConfig,
    loc: &Locator,
    base: &Path,
    templates: &mut Templates,
) -> Result<Route, Vec<ConfigError>> {
    let key = |field: &str| format!("routes[{i}].{field}");
    let mut errors = Vec::new();
    let mut err = |field: &str, message: String| {
        errors.push(ConfigError {
            location: loc.at(&key(field)),
            message,
        })
    };
    let sources = r.source.to_vec();
    if sources.is_empty() {
        err("source", "a route needs at least one source".to_string());
    }
    for source in &sources {
        if !raw.sources.contains_key(source) {
            err(
                "source",
                format!("no source {source:?} is defined under [sources]"),
            );
        }
    }
    let mut events = Vec::new();
    if r.events.is_empty() {
        err(
            "events",
            "a route needs at least one event pattern (\"*\" for all)".to_string(),
        );
    }
    for e in &r.events {
        match EventPattern::parse(e) {
            Ok(p) => events.push(p),
            Err(m) => err("events", m),
        }
    }
    if r.to.is_empty() {
        err("to", "a route needs at least one destination".to_string());
    }
    for d in &r.to {
        if !raw.destinations.contains_key(d) {
            err(
                "to",
                format!("no destination {d:?} is defined under [destinations]"),
            );
        }
    }
    let origin = |field: &str| {
        let location = loc.at(&key(field));
        let line = location
            .rsplit(':')
            .next()
            .and_then(|l| l.parse().ok())
            .unwrap_or(1);
        Origin {
            file: loc.file.clone(),
            first_line: line,
        }
    };
    let template_name = format!("routes[{i}]");
    match (&r.template, &r.template_file) {
        (Some(t), None) => {
            let mut o = origin("template");
            // A multi-line string that opens with `"""` and a newline starts on the next line.
            if t.contains('\n') {
                o.first_line += 1;
            }
            if let Err(e) = templates.add(&template_name, t.clone(), o) {
                errors.push(ConfigError {
                    location: e.location,
                    message: e.message,
                });
            }
        }
        (None, Some(file)) => {
            let p = base.join(file);
            match std::fs::read_to_string(&p) {
                Ok(t) => {
                    let o = Origin {
                        file: p.display().to_string(),
                        first_line: 1,
                    };
                    if let Err(e) = templates.add(&template_name, t, o) {
                        errors.push(ConfigError {
                            location: e.location,
                            message: e.message,
                        });
                    }
                }
                Err(e) => err("template_file", format!("cannot read {}: {e}", p.display())),
            }
        }
        (Some(_), Some(_)) => err(
            "template",
            "give template or template_file, not both".to_string(),
        ),
        (None, None) => err(
            "template",
            "a route needs a template or a template_file".to_string(),
        ),
    }
    let when = r.when.as_ref().map(|expr| {
        let name = format!("routes[{i}].when");
        if let Err(e) = templates.add_condition(&name, expr, origin("when")) {
            errors.push(ConfigError {
                location: e.location,
                message: e.message,
            });
        }
        name
    });
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Route {
        index: i,
        sources,
        events,
        when,
        to: r.to.clone(),
        template: template_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TestEnv(Vec<(String, String)>);

    impl Env for TestEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
        fn vars(&self) -> Vec<(String, String)> {
            self.0.clone()
        }
    }

    fn env(pairs: &[(&str, &str)]) -> TestEnv {
        TestEnv(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn load_text(text: &str, e: &TestEnv) -> Result<Config, ConfigErrors> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chirpd.toml");
        std::fs::write(&path, text).unwrap();
        load(Some(&path), e)
    }

    const GOOD: &str = r#"
[server]
listen = "127.0.0.1:9000"

[sources.acme-github]
provider = "github"
secret = "env:GH_SECRET"

[destinations.team]
kind = "x"
dry_run = true
limits = ["100/15m", "17/24h"]

[[routes]]
source = "acme-github"
events = ["task.created", "github:release.published"]
when = "'tweet' in event.labels"
to = ["team"]
template = "{{ event.project }}: {{ event.title }}"
"#;

    #[test]
    fn a_good_config_validates_into_typed_values() {
        let c = load_text(GOOD, &env(&[("GH_SECRET", "s3cret")])).unwrap();
        assert_eq!(c.server.listen.port(), 9000);
        assert_eq!(c.server.max_body_bytes, 1024 * 1024);
        assert_eq!(c.sources["acme-github"].provider, Provider::Github);
        assert_eq!(c.destinations["team"].limits.len(), 2);
        assert_eq!(c.pipeline.routes.len(), 1);
        assert_eq!(c.pipeline.routes[0].events.len(), 2);
        // The secret never shows in Debug output.
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn environment_overrides_use_double_underscores() {
        let e = env(&[
            ("GH_SECRET", "s"),
            ("CHIRPD_SERVER__LISTEN", "0.0.0.0:8788"),
            ("CHIRPD_CONFIG", "/ignored/because/not/a/key"),
            ("CHIRPD_SERVER__MAX_BODY_BYTES", "2048"),
        ]);
        let c = load_text(GOOD, &e).unwrap();
        assert_eq!(c.server.listen.to_string(), "0.0.0.0:8788");
        assert_eq!(c.server.max_body_bytes, 2048);
    }

    #[test]
    fn the_defaults_alone_are_a_valid_config() {
        let c = load(None, &env(&[("STATE_DIRECTORY", "/var/lib/chirpd")])).unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8787");
        assert_eq!(c.store_path, PathBuf::from("/var/lib/chirpd/chirpd.db"));
        assert!(c.pipeline.routes.is_empty());
    }

    #[test]
    fn errors_carry_file_and_line() {
        let bad = GOOD
            .replace("env:GH_SECRET", "env:MISSING")
            .replace("\"task.created\"", "\"task.create\"")
            .replace("{{ event.title }}", "{{ event.title ");
        let errs = load_text(&bad, &env(&[])).unwrap_err().0;
        let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert!(
            text.iter()
                .any(|e| e.ends_with("chirpd.toml:7: environment variable MISSING is not set")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|e| e.contains("chirpd.toml:16: unknown event kind")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|e| e.contains("chirpd.toml:19: syntax error")),
            "{text:?}"
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let errs = load_text(
            &GOOD.replace("listen =", "listn ="),
            &env(&[("GH_SECRET", "s")]),
        )
        .unwrap_err();
        assert!(
            errs.to_string()
                .contains("chirpd.toml:3: unknown field `listn`"),
            "{errs}"
        );
        let errs = load_text(
            &GOOD.replace("17/24h", "17/24"),
            &env(&[("GH_SECRET", "s")]),
        )
        .unwrap_err();
        assert!(errs.to_string().contains("chirpd.toml:12"), "{errs}");
        let errs = load_text(
            &GOOD.replace("to = [\"team\"]", "to = [\"nobody\"]"),
            &env(&[("GH_SECRET", "s")]),
        )
        .unwrap_err();
        assert!(
            errs.to_string()
                .contains("chirpd.toml:18: no destination \"nobody\""),
            "{errs}"
        );
    }
}
