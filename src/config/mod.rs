//! Configuration: embedded defaults, then the TOML file, then `CHIRPD_` environment overrides, then
//! validation into typed values.
//!
//! `load` is the only entry point. It returns a `Config` whose every value is usable as is: addresses
//! parsed, durations parsed, secrets resolved, templates compiled, routes checked against sources and
//! destinations. Errors name the file and line of the offending key. Nothing here starts servers or
//! touches the store, and a `Config` is passed explicitly to whoever needs a part of it.

mod destinations;
mod file;
pub mod raw;
mod routes;
pub mod secret;
mod sources;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::file::Locator;
use crate::config::raw::RawConfig;
use crate::normalize::Provider;
use crate::plan::{Pipeline, Target};
use crate::ratelimit::parse_duration;
use crate::sink::{Destination, Overflow, UrlPolicy};
use crate::verify::Verifier;

pub use destinations::DEFAULT_DIGEST;

/// A problem with one field of a table: the field's name and what is wrong.
type FieldError = (&'static str, String);

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from, if any (none: embedded defaults only).
    pub path: Option<PathBuf>,
    pub server: Server,
    /// The SQLite file; a relative path is resolved by `store_path`.
    pub store_path: PathBuf,
    /// A cap on the store's size in bytes, if the admin set one.
    pub store_max_bytes: Option<u64>,
    /// The fleet settings, and the PostgreSQL database that replaces the SQLite file when set.
    pub fleet: Fleet,
    /// The web console; none until a password hash is configured.
    pub admin: Option<Admin>,
    pub dispatch: Dispatch,
    pub retention: Retention,
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
    /// Connections beyond this are answered 503 and closed.
    pub max_connections: usize,
    /// The most body bytes all requests together may hold at once; a request that would pass it is
    /// answered 503 before its body is read.
    pub max_buffered_bytes: usize,
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

/// The web console's settings.
#[derive(Debug, Clone)]
pub struct Admin {
    pub listen: SocketAddr,
    pub user: String,
    /// An argon2 PHC string (`$argon2id$v=19$…`), checked when the config is loaded.
    pub password_hash: secret::Secret,
    pub session_ttl: Duration,
    pub secure_cookie: bool,
}

/// How this instance shares a PostgreSQL store with others.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// The PostgreSQL database; none: the SQLite file at `store_path`, for this instance alone.
    pub url: Option<DatabaseUrl>,
    /// This instance's name, as logs, `/readyz` and `/metrics` show it.
    pub instance: String,
    /// How long a destination's lease lasts unrenewed.
    pub lease: Duration,
    /// The most connections to PostgreSQL.
    pub pool_size: usize,
}

/// `store.url`: the reference as written, and its value. A command that reads no other secret
/// (`chirpd queue`) still needs this one, so when the config is loaded for inspection a reference that
/// cannot be resolved is kept with its error, which only opening the store reports.
#[derive(Debug, Clone)]
pub struct DatabaseUrl {
    pub reference: String,
    pub value: Result<secret::Secret, String>,
}

/// How long the store keeps what it no longer needs to post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Raw bodies of planned deliveries.
    pub bodies: Duration,
    /// Sent, dead and folded outbox items.
    pub items: Duration,
    /// Delivery records, whose dedupe keys recognize a replay, once no item refers to them.
    pub deliveries: Duration,
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

/// An empty environment: for tools and tests that load a config which reads no variable.
pub struct EmptyEnv;

impl Env for EmptyEnv {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
    fn vars(&self) -> Vec<(String, String)> {
        Vec::new()
    }
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
    load_with(path, env, false)
}

/// Loads and validates the config without resolving a single secret: every secret stands in as a fixed
/// value. For commands that inspect the store or render previews and never verify or sign anything, so
/// that they run from an admin's shell, where the service's credentials are not readable.
pub fn load_for_inspection(path: Option<&Path>, env: &dyn Env) -> Result<Config, ConfigErrors> {
    load_with(path, env, true)
}

fn load_with(
    path: Option<&Path>,
    env: &dyn Env,
    inspect_only: bool,
) -> Result<Config, ConfigErrors> {
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
    let loc = Locator::new(file, text);
    let raw = file::parse(&loc, env)?;
    let base = path
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    validate(
        raw,
        &loc,
        &base,
        path.map(Path::to_path_buf),
        env,
        inspect_only,
    )
}

/// Where the service keeps its state when installed from the package (`StateDirectory=chirpd`).
pub const PACKAGED_STATE_DIRECTORY: &str = "/var/lib/chirpd";
/// The packaged config file, which the service is started with.
pub const PACKAGED_CONFIG: &str = "/etc/chirpd/chirpd.toml";

/// Resolves `store.path`: an absolute path as it is; a relative one against `$STATE_DIRECTORY` (set by
/// systemd for the service), else against `/var/lib/chirpd` when the config is the packaged
/// `/etc/chirpd/chirpd.toml` (so that `chirpd queue` run from an admin's shell opens the store the service
/// uses), else against the working directory.
fn store_path(configured: &str, config_file: Option<&Path>, env: &dyn Env) -> PathBuf {
    let p = PathBuf::from(configured);
    if p.is_absolute() {
        return p;
    }
    if let Some(dir) = env.var("STATE_DIRECTORY") {
        // systemd may list several directories, separated by colons; ours is the first.
        let first = dir.split(':').next().unwrap_or(&dir).to_string();
        return PathBuf::from(first).join(p);
    }
    if config_file == Some(Path::new(PACKAGED_CONFIG)) {
        return PathBuf::from(PACKAGED_STATE_DIRECTORY).join(p);
    }
    p
}

/// Checks that a resolved `store.url` is a PostgreSQL URL, naming what is wrong without quoting it (it
/// holds a password).
fn database_url(url: &str) -> Result<(), String> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err("must be a postgres:// or postgresql:// URL".to_string());
    }
    url.parse::<tokio_postgres::Config>()
        .map(|_| ())
        .map_err(|e| format!("is not a PostgreSQL URL chirpd can use: {e}"))
}

/// The host's name, the default instance name of a fleet member.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "chirpd".to_string())
}

fn validate(
    raw: RawConfig,
    loc: &Locator,
    base: &Path,
    path: Option<PathBuf>,
    env: &dyn Env,
    inspect_only: bool,
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
        max_buffered_bytes: usize::try_from(raw.server.max_buffered_mb.saturating_mul(1024 * 1024))
            .unwrap_or(usize::MAX)
            .max(1024 * 1024),
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
    let store_path = store_path(&raw.store.path, path.as_deref(), env);
    let retention = Retention {
        bodies: duration("retention.bodies", &raw.retention.bodies, &mut err),
        items: duration("retention.items", &raw.retention.items, &mut err),
        deliveries: duration("retention.deliveries", &raw.retention.deliveries, &mut err),
    };
    if retention.deliveries < retention.items {
        err(
            "retention.deliveries",
            "must be at least retention.items: a delivery is kept while its items are".to_string(),
        );
    }
    for (key, d) in [
        ("retention.bodies", retention.bodies),
        ("retention.items", retention.items),
        ("retention.deliveries", retention.deliveries),
    ] {
        if d < Duration::from_secs(86_400) {
            err(key, "must be at least 1d".to_string());
        }
    }

    let lookup = |name: &str| env.var(name);
    let secrets = secret::Resolver {
        env: &lookup,
        inspect_only,
    };
    let fleet = Fleet {
        url: raw.store.url.as_deref().and_then(|reference| {
            let value = secret::resolve(reference, &lookup)
                .map_err(|e| e.to_string())
                .and_then(|url| database_url(url.expose()).map(|()| url));
            match value {
                Err(e) if !inspect_only => {
                    err("store.url", e);
                    None
                }
                value => Some(DatabaseUrl {
                    reference: secret::describe(reference),
                    value,
                }),
            }
        }),
        instance: if raw.store.instance.is_empty() {
            host_name()
        } else {
            raw.store.instance.clone()
        },
        lease: duration("store.lease", &raw.store.lease, &mut err),
        pool_size: raw.store.pool_size.clamp(2, 512),
    };
    let admin = raw.admin.password_hash.as_deref().and_then(|reference| {
        let listen = match raw.admin.listen.parse() {
            Ok(a) => a,
            Err(_) => {
                err(
                    "admin.listen",
                    format!(
                        "{:?} is not an address such as 127.0.0.1:8790",
                        raw.admin.listen
                    ),
                );
                return None;
            }
        };
        let hash = match secrets.resolve(reference) {
            Ok(h) => h,
            Err(e) => {
                err("admin.password_hash", e.to_string());
                return None;
            }
        };
        if !inspect_only && argon2::PasswordHash::new(hash.expose()).is_err() {
            err(
                "admin.password_hash",
                "is not an argon2 hash ($argon2id$…): make one with `chirpd admin hash-password`"
                    .to_string(),
            );
            return None;
        }
        Some(Admin {
            listen,
            user: raw.admin.user.clone(),
            password_hash: hash,
            session_ttl: duration("admin.session_ttl", &raw.admin.session_ttl, &mut err),
            secure_cookie: raw.admin.secure_cookie,
        })
    });
    if fleet.lease < Duration::from_secs(1) {
        err(
            "store.lease",
            "must be at least 1s: a lease is renewed several times within it".to_string(),
        );
    }
    let mut sources = BTreeMap::new();
    for (id, s) in &raw.sources {
        match sources::source(id, s, &secrets) {
            Ok(src) => {
                sources.insert(id.clone(), src);
            }
            Err((field, message)) => err(&format!("sources.{id}.{field}"), message),
        }
    }
    let mut destinations = BTreeMap::new();
    for (id, d) in &raw.destinations {
        match destinations::destination(id, d, &secrets) {
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
                    review: raw
                        .destinations
                        .get(id)
                        .is_some_and(|raw_dest| raw_dest.review),
                };
                (id.clone(), target)
            })
            .collect(),
        link_hosts: sources
            .iter()
            .map(|(id, src): (&String, &Source)| {
                let mut hosts: Vec<String> = src
                    .provider
                    .link_hosts()
                    .iter()
                    .map(|h| h.to_string())
                    .collect();
                if let Some(raw_source) = raw.sources.get(id) {
                    hosts.extend(raw_source.link_hosts.iter().cloned());
                }
                (id.clone(), hosts)
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
            let origin = loc.origin(&format!("destinations.{id}.digest_template"));
            if let Err(e) = pipeline.templates.add(template, text, origin) {
                errors.push(ConfigError {
                    location: e.location,
                    message: e.message,
                });
            }
        }
    }
    for (i, r) in raw.routes.iter().enumerate() {
        match routes::route(i, r, &raw, loc, base, &mut pipeline.templates) {
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
        store_max_bytes: (raw.store.max_size_mb > 0)
            .then(|| raw.store.max_size_mb.saturating_mul(1024 * 1024)),
        fleet,
        admin,
        dispatch,
        retention,
        sources,
        destinations,
        pipeline,
    })
}

#[cfg(test)]
mod tests;
