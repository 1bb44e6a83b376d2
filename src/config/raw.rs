//! The raw configuration: a serde mirror of `chirpd.toml`, before any validation.
//!
//! Every key the file may hold is declared here with its default, and unknown keys are errors, so that a
//! typo in a key is reported instead of silently ignored. Nothing here resolves secrets or compiles
//! templates; `config::validate` does that.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub dispatch: RawDispatch,
    #[serde(default)]
    pub retention: RawRetention,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub sources: BTreeMap<String, RawSource>,
    #[serde(default)]
    pub destinations: BTreeMap<String, RawDestination>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    pub listen: String,
    pub max_body_bytes: u64,
    pub header_timeout: String,
    pub body_timeout: String,
    pub max_connections: usize,
    /// The most request-body bytes all connections together may hold in memory, in MiB.
    pub max_buffered_mb: u64,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: "127.0.0.1:8787".to_string(),
            max_body_bytes: 1024 * 1024,
            header_timeout: "10s".to_string(),
            body_timeout: "30s".to_string(),
            max_connections: 256,
            max_buffered_mb: 64,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStore {
    pub path: String,
    /// A cap on the database's size in MiB (0: none); past it new webhooks are answered 503, as on a full
    /// disk. On PostgreSQL it only sets when a warning is logged: the database's own quota is the cap.
    pub max_size_mb: u64,
    /// A PostgreSQL URL (a secret reference: it usually holds a password); set, it replaces `path`.
    pub url: Option<String>,
    /// This instance's name in a fleet (logs, `/readyz`, `/metrics`); empty: the host name.
    pub instance: String,
    /// How long a destination's lease lasts without renewal: the longest another instance waits to take
    /// over the sending for a destination whose leader died.
    pub lease: String,
    /// Connections to PostgreSQL this instance keeps at most.
    pub pool_size: usize,
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            path: "chirpd.db".to_string(),
            max_size_mb: 1024,
            url: None,
            instance: String::new(),
            lease: "10s".to_string(),
            pool_size: 16,
        }
    }
}

/// The web console, off until `password_hash` is set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAdmin {
    /// Its own listener: loopback by default, reached through SSH or the TLS proxy.
    pub listen: String,
    /// The name decisions are recorded under.
    pub user: String,
    /// The argon2 hash of the password (`chirpd admin hash-password`), as a secret reference.
    pub password_hash: Option<String>,
    /// How long a sign-in lasts.
    pub session_ttl: String,
    /// Mark the session cookie `Secure`: set it when the console is reached through HTTPS.
    pub secure_cookie: bool,
}

impl Default for RawAdmin {
    fn default() -> Self {
        RawAdmin {
            listen: "127.0.0.1:8790".to_string(),
            user: "admin".to_string(),
            password_hash: None,
            session_ttl: "12h".to_string(),
            secure_cookie: false,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRetention {
    pub bodies: String,
    pub items: String,
    pub deliveries: String,
}

impl Default for RawRetention {
    fn default() -> Self {
        RawRetention {
            bodies: "30d".to_string(),
            items: "90d".to_string(),
            deliveries: "180d".to_string(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDispatch {
    pub retry_base: String,
    pub retry_max: String,
    pub give_up_after: String,
    pub request_timeout: String,
    pub protected_check_every: String,
}

impl Default for RawDispatch {
    fn default() -> Self {
        RawDispatch {
            retry_base: "5s".to_string(),
            retry_max: "15m".to_string(),
            give_up_after: "24h".to_string(),
            request_timeout: "30s".to_string(),
            protected_check_every: "6h".to_string(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    pub provider: String,
    pub secret: Option<String>,
    /// GitLab's signing token (`whsec_…`), which signs bodies in the Standard Webhooks format.
    pub signing_secret: Option<String>,
    /// Trello signs the body followed by the callback URL it was registered with.
    pub callback_url: Option<String>,
    /// Replay window for schemes that sign a timestamp (Standard Webhooks, GitLab signing, Linear, Slack).
    pub tolerance: Option<String>,
    /// Generic `hmac` provider: the header carrying the signature.
    pub header: Option<String>,
    /// Generic `hmac` provider: sha1, sha256 or sha512.
    pub algorithm: Option<String>,
    /// Generic `hmac` provider: hex or base64.
    pub encoding: Option<String>,
    /// Generic `hmac` provider: text before the digest, e.g. `sha256=`.
    pub prefix: Option<String>,
    /// Generic `hmac` provider: the header carrying a delivery id, for dedupe.
    pub delivery_header: Option<String>,
    /// Generic `hmac` provider: the header naming the event, for routing by native name.
    pub event_header: Option<String>,
    /// Hosts (and their subdomains) whose `event.url` stays a link in posts, beyond the product's own:
    /// a self-hosted GitLab or Gitea, say.
    #[serde(default)]
    pub link_hosts: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDestination {
    /// x (tweets), x_dm (direct messages) or mastodon.
    pub kind: String,
    #[serde(default = "default_api_base")]
    pub api_base: String,
    /// X: oauth1 (four static credentials) or oauth2 (user tokens from `chirpd auth x`).
    pub auth: Option<String>,
    pub consumer_key: Option<String>,
    pub consumer_secret: Option<String>,
    pub access_token: Option<String>,
    pub access_token_secret: Option<String>,
    /// OAuth 2.0 client id and, for confidential clients, secret.
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// x_dm: recipients as `@username` or numeric user ids.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// mastodon: the instance's base URL and an access token with write:statuses.
    pub instance: Option<String>,
    pub token: Option<String>,
    /// mastodon: private (followers only, the default), direct, unlisted or public.
    pub visibility: Option<String>,
    #[serde(default = "default_true")]
    pub require_protected: bool,
    #[serde(default)]
    pub limits: Vec<String>,
    #[serde(default = "default_overflow")]
    pub overflow: String,
    /// overflow = "digest": the digest's template, and how long the last slot of a window waits.
    pub digest_template: Option<String>,
    pub digest_delay: Option<String>,
    /// A monthly budget in US dollars, and the prices per post with and without a link.
    pub budget: Option<f64>,
    pub price_post: Option<f64>,
    pub price_post_with_url: Option<f64>,
    /// keep | drop_over_budget | never
    pub url_policy: Option<String>,
    /// Wait this long before posting a task or change, merging its updates into one post.
    pub settle: Option<String>,
    #[serde(default)]
    pub dry_run: bool,
    /// Keep every item for this destination in review until a person approves or rejects it.
    #[serde(default)]
    pub review: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// One source id, or a list of them.
    pub source: OneOrMany,
    pub events: Vec<String>,
    pub when: Option<String>,
    pub to: Vec<String>,
    pub template: Option<String>,
    pub template_file: Option<String>,
    /// Keep this route's items in review until a person approves or rejects them.
    #[serde(default)]
    pub review: bool,
}

fn default_api_base() -> String {
    "https://api.x.com".to_string()
}

fn default_true() -> bool {
    true
}

fn default_overflow() -> String {
    "queue".to_string()
}

/// A key that takes one string or a list of strings.
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}
