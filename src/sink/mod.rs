//! Sinks: the clients that deliver a post to its destination, one file per kind.
//!
//! A sink makes one request and classifies the answer into an `Outcome`; it keeps no state and never
//! retries by itself (the dispatcher owns retries, backoff and the rate-limit gate). Only the dispatcher
//! calls a sink.

pub mod oauth1;
pub mod x;

use crate::clock::UnixMillis;
use crate::ratelimit::{Window, XLimits};

/// What kind of post a destination receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationKind {
    /// A status post (tweet) from the team account.
    XTweet,
}

impl DestinationKind {
    pub fn name(self) -> &'static str {
        match self {
            DestinationKind::XTweet => "tweet",
        }
    }
}

/// A validated destination from the config.
#[derive(Debug, Clone)]
pub struct Destination {
    pub id: String,
    pub kind: DestinationKind,
    /// Base URL of the X API, without a trailing slash.
    pub api_base: String,
    pub credentials: oauth1::Credentials,
    /// Hold tweets while the account is public.
    pub require_protected: bool,
    /// The admin's own quota windows, on top of what X's headers say.
    pub limits: Vec<Window>,
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
    pub limits: XLimits,
}
