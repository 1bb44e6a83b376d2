//! Sinks: the clients that deliver a post to its destination, one file per kind.
//!
//! A sink makes one request and classifies the answer into an `Outcome`; it keeps no state and never
//! retries by itself (the dispatcher owns retries, backoff and the rate-limit gate). Only the dispatcher
//! calls a sink.

pub mod mastodon;
pub mod oauth1;
pub mod oauth2;
pub mod x;

use crate::clock::UnixMillis;
use crate::config::secret::Secret;
use crate::ratelimit::{ApiLimits, Window};
use crate::render::fit::Limit;

/// What kind of post a destination receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationKind {
    /// A status post (tweet) from the team account.
    XTweet,
    /// Direct messages to team members.
    XDm,
    /// A status on a Mastodon instance.
    Mastodon,
}

impl DestinationKind {
    /// The outbox item kind this destination's posts carry.
    pub fn name(self) -> &'static str {
        match self {
            DestinationKind::XTweet => "tweet",
            DestinationKind::XDm => "dm",
            DestinationKind::Mastodon => "mastodon",
        }
    }

    /// The length rule of this destination's posts.
    pub fn limit(self) -> Limit {
        match self {
            DestinationKind::XTweet => Limit::Tweet,
            DestinationKind::XDm => Limit::Dm,
            DestinationKind::Mastodon => Limit::Mastodon,
        }
    }
}

/// How one request is authorized.
#[derive(Debug, Clone)]
pub enum RequestAuth<'a> {
    /// X, OAuth 1.0a: the request is signed with these.
    OAuth1(&'a oauth1::Credentials),
    /// An access token: X's OAuth 2.0 user token, or Mastodon's.
    Bearer(Secret),
}

/// How a destination authenticates its requests.
#[derive(Debug, Clone)]
pub enum Auth {
    /// X, OAuth 1.0a user context: four static credentials.
    OAuth1(oauth1::Credentials),
    /// X, OAuth 2.0 user tokens from `chirpd auth x`, kept and rotated in the store.
    OAuth2(oauth2::App),
    /// Mastodon: an access token.
    Bearer(Secret),
    /// A dry-run destination never makes a request.
    None,
}

/// When more is queued than the limits allow before the next window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overflow {
    /// Wait for the window.
    Queue,
    /// Fold the backlog into digest posts through the named template; a destination's last slot in a
    /// window waits `delay` after its oldest item so that it can carry everything that came meanwhile.
    Digest {
        template: String,
        delay: std::time::Duration,
    },
    /// Drop the oldest items beyond the capacity, and count them.
    Drop,
}

/// Links in a post cost far more on X than plain text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlPolicy {
    Keep,
    /// Remove links only from a post that would otherwise exceed the budget.
    DropOverBudget,
    /// Never post links.
    Never,
}

/// A monthly budget and per-post prices, in micro-dollars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub monthly_micros: i64,
    pub post_micros: i64,
    pub post_with_url_micros: i64,
}

/// A validated destination from the config.
#[derive(Debug, Clone)]
pub struct Destination {
    pub id: String,
    pub kind: DestinationKind,
    /// Base URL of the API (X, or the Mastodon instance), without a trailing slash.
    pub api_base: String,
    pub auth: Auth,
    /// DM recipients: `@username` or numeric user ids.
    pub recipients: Vec<String>,
    /// Mastodon visibility: private, direct, unlisted or public.
    pub visibility: String,
    /// Hold tweets while the account is public.
    pub require_protected: bool,
    /// The admin's own quota windows, on top of what the API's headers say.
    pub limits: Vec<Window>,
    pub overflow: Overflow,
    pub budget: Option<Budget>,
    pub url_policy: UrlPolicy,
    /// Settle window: quick successive updates of one task become one post with its final state.
    pub settle: Option<std::time::Duration>,
    /// Log and record posts instead of sending them.
    pub dry_run: bool,
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// X created the post.
    Sent { remote_id: Option<String> },
    /// X refused the text as a duplicate: an earlier attempt already posted it.
    AlreadyPosted,
    /// A transient failure (5xx, timeout, reset): try again after a backoff.
    Retry { reason: String },
    /// 429: nothing is sent to this destination before `until`.
    RateLimited {
        until: Option<UnixMillis>,
        reason: String,
    },
    /// 401: the credentials were refused. With OAuth 2.0 the dispatcher refreshes the token once and
    /// tries again; otherwise, or if that fails too, it is a `Pause`.
    Unauthorized { reason: String },
    /// The destination itself cannot post (bad credentials, no credits, access level): hold everything
    /// for this destination and tell the admin, without failing the items.
    Pause { reason: String },
    /// This item can never be posted as it is (a 4xx about the request): dead-letter it.
    Dead { reason: String },
}

/// An outcome with what the answer's headers said about the rate-limit windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub outcome: Outcome,
    pub limits: ApiLimits,
}

impl Answer {
    /// An outcome reached without an answer from the API (a dry run, a failure before any request).
    pub fn without_headers(outcome: Outcome) -> Answer {
        Answer {
            outcome,
            limits: ApiLimits::default(),
        }
    }
}
