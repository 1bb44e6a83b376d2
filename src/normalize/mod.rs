//! Normalization: one provider's payload becomes one `Event`, so that one template serves every tracker.
//!
//! One provider is one file. Each exposes two pure functions: `meta`, which reads the delivery id and event
//! name from the headers (before the body is parsed, for dedupe and handshakes), and `normalize`, which maps
//! the verified JSON payload into an `Event`. Normalization is total: a payload it does not understand still
//! yields an event with its native name and `kind` set to none, so that it stays routable by native name.
//! This module must not do I/O, read the clock or fail on odd input.
//!
//! This file holds what every provider shares (the `Event`, its kinds and roles, header and payload
//! helpers) and their tests; it passes 500 lines through those tests.

pub mod asana;
pub mod basecamp;
pub mod bitbucket;
pub mod generic;
pub mod gitea;
pub mod github;
pub mod gitlab;
pub mod jira;
pub mod linear;
pub mod slack;
pub mod trello;

use std::fmt;

use http::HeaderMap;
use serde::Serialize;
use serde_json::Value;

/// The product a source speaks for, with what its normalizer needs from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provider {
    Github,
    Gitlab,
    Gitea,
    Forgejo,
    Gogs,
    /// Bitbucket Cloud.
    Bitbucket,
    /// Jira Cloud admin webhooks.
    Jira,
    Linear,
    Trello,
    Asana,
    Basecamp,
    /// Slack-style senders (Slack's Events API request signing).
    Slack,
    /// Standard Webhooks: the event name is the body's `type` field.
    Standard,
    /// Any HMAC-signing sender; the admin names the headers that carry a delivery id and an event name.
    Hmac {
        delivery_header: Option<String>,
        event_header: Option<String>,
    },
}

impl Provider {
    /// The hosts whose links the product itself puts in `event.url`: those stay links in a post. A
    /// self-hosted product (GitLab, Gitea, Forgejo, Gogs, Jira Data Center) or a generic sender has none
    /// known here; the admin lists its host with the source's `link_hosts`.
    pub fn link_hosts(&self) -> &'static [&'static str] {
        match self {
            Provider::Github => &["github.com"],
            Provider::Gitlab => &["gitlab.com"],
            Provider::Bitbucket => &["bitbucket.org"],
            Provider::Jira => &["atlassian.net"],
            Provider::Linear => &["linear.app"],
            Provider::Trello => &["trello.com"],
            Provider::Asana => &["asana.com"],
            Provider::Basecamp => &["basecamp.com"],
            Provider::Slack => &["slack.com"],
            Provider::Gitea
            | Provider::Forgejo
            | Provider::Gogs
            | Provider::Standard
            | Provider::Hmac { .. } => &[],
        }
    }

    /// The provider's name as written in the config and shown to templates.
    pub fn name(&self) -> &'static str {
        match self {
            Provider::Github => "github",
            Provider::Gitlab => "gitlab",
            Provider::Gitea => "gitea",
            Provider::Forgejo => "forgejo",
            Provider::Gogs => "gogs",
            Provider::Bitbucket => "bitbucket",
            Provider::Jira => "jira",
            Provider::Linear => "linear",
            Provider::Trello => "trello",
            Provider::Asana => "asana",
            Provider::Basecamp => "basecamp",
            Provider::Slack => "slack",
            Provider::Standard => "standard",
            Provider::Hmac { .. } => "hmac",
        }
    }
}

/// What the headers say about a delivery, read before the body is parsed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeliveryMeta {
    /// The sender's id for this delivery, stable across its retries.
    pub delivery_id: Option<String>,
    /// Whether the signature covers `delivery_id`. When it does not (GitHub), a replayed body with a forged
    /// id must still be caught, so the store also dedupes on the body's hash.
    pub id_is_signed: bool,
    /// The event name the headers give, if the provider puts it there.
    pub event: Option<String>,
}

/// A provider handshake that is answered without storing or posting anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handshake {
    /// GitHub's `ping` on webhook creation.
    Ping,
    /// Slack's `url_verification`: the answer must echo the challenge.
    SlackChallenge(String),
}

pub fn meta(provider: &Provider, headers: &HeaderMap) -> DeliveryMeta {
    let unsigned = |delivery: &[&str], event: &[&str]| DeliveryMeta {
        delivery_id: delivery.iter().find_map(|h| header_text(headers, h)),
        id_is_signed: false,
        event: event.iter().find_map(|h| header_text(headers, h)),
    };
    match provider {
        Provider::Github => github::meta(headers),
        Provider::Gitlab => unsigned(
            &["idempotency-key", "x-gitlab-event-uuid"],
            &["x-gitlab-event"],
        ),
        Provider::Gitea | Provider::Forgejo | Provider::Gogs => unsigned(
            &[
                "x-forgejo-delivery",
                "x-gitea-delivery",
                "x-gogs-delivery",
                "x-github-delivery",
            ],
            &[
                "x-forgejo-event",
                "x-gitea-event",
                "x-gogs-event",
                "x-github-event",
            ],
        ),
        Provider::Bitbucket => unsigned(&["x-request-uuid"], &["x-event-key"]),
        Provider::Jira => unsigned(&["x-atlassian-webhook-identifier"], &[]),
        Provider::Linear => unsigned(&["linear-delivery"], &["linear-event"]),
        // No delivery id: the body's hash dedupes their retries, which resend the same body.
        Provider::Trello | Provider::Asana | Provider::Basecamp | Provider::Slack => {
            unsigned(&[], &[])
        }
        Provider::Standard => generic::standard_meta(headers),
        Provider::Hmac {
            delivery_header,
            event_header,
        } => generic::hmac_meta(headers, delivery_header.as_deref(), event_header.as_deref()),
    }
}

/// Recognizes a handshake in a verified delivery.
pub fn handshake(provider: &Provider, meta: &DeliveryMeta, payload: &Value) -> Option<Handshake> {
    match provider {
        Provider::Github | Provider::Gitea | Provider::Forgejo | Provider::Gogs
            if meta.event.as_deref() == Some("ping") =>
        {
            Some(Handshake::Ping)
        }
        Provider::Slack if str_at(payload, "/type").as_deref() == Some("url_verification") => Some(
            Handshake::SlackChallenge(str_at(payload, "/challenge").unwrap_or_default()),
        ),
        _ => None,
    }
}

/// Maps a verified payload into an `Event`. `event` is the event name from the headers, if any.
pub fn normalize(provider: &Provider, event: Option<&str>, payload: &Value) -> Event {
    let event = event.filter(|e| !e.trim().is_empty());
    match provider {
        Provider::Github => github::normalize(event, payload),
        Provider::Gitlab => gitlab::normalize(payload),
        Provider::Gitea | Provider::Forgejo | Provider::Gogs => {
            gitea::normalize(provider.name(), event, payload)
        }
        Provider::Bitbucket => bitbucket::normalize(event, payload),
        Provider::Jira => jira::normalize(payload),
        Provider::Linear => linear::normalize(payload),
        Provider::Trello => trello::normalize(payload),
        Provider::Asana => asana::normalize(payload),
        Provider::Basecamp => basecamp::normalize(payload),
        Provider::Slack => slack::normalize(payload),
        Provider::Standard | Provider::Hmac { .. } => {
            generic::normalize(provider.name(), event, payload)
        }
    }
}

/// The normalized kinds of docs/contract.md §4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    TaskCreated,
    TaskUpdated,
    TaskCompleted,
    TaskReopened,
    TaskDeleted,
    CommentCreated,
    DocumentAdded,
    ImageAdded,
    ChangeOpened,
    ChangeMerged,
    ChangeClosed,
    CodePushed,
    ReleasePublished,
    TagCreated,
    BuildFailed,
    BuildSucceeded,
}

impl EventKind {
    pub const ALL: [EventKind; 16] = [
        EventKind::TaskCreated,
        EventKind::TaskUpdated,
        EventKind::TaskCompleted,
        EventKind::TaskReopened,
        EventKind::TaskDeleted,
        EventKind::CommentCreated,
        EventKind::DocumentAdded,
        EventKind::ImageAdded,
        EventKind::ChangeOpened,
        EventKind::ChangeMerged,
        EventKind::ChangeClosed,
        EventKind::CodePushed,
        EventKind::ReleasePublished,
        EventKind::TagCreated,
        EventKind::BuildFailed,
        EventKind::BuildSucceeded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::TaskCreated => "task.created",
            EventKind::TaskUpdated => "task.updated",
            EventKind::TaskCompleted => "task.completed",
            EventKind::TaskReopened => "task.reopened",
            EventKind::TaskDeleted => "task.deleted",
            EventKind::CommentCreated => "comment.created",
            EventKind::DocumentAdded => "document.added",
            EventKind::ImageAdded => "image.added",
            EventKind::ChangeOpened => "change.opened",
            EventKind::ChangeMerged => "change.merged",
            EventKind::ChangeClosed => "change.closed",
            EventKind::CodePushed => "code.pushed",
            EventKind::ReleasePublished => "release.published",
            EventKind::TagCreated => "tag.created",
            EventKind::BuildFailed => "build.failed",
            EventKind::BuildSucceeded => "build.succeeded",
        }
    }

    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// How the actor relates to the project, where the provider says. Outsiders may write an issue or a
/// comment on a public project, so routes can keep their words off the team account (`event.outsider`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorRole {
    Owner,
    Member,
    Collaborator,
    /// Has contributed before, without being a member or collaborator.
    Contributor,
    /// No relation to the project: anyone with an account.
    Outsider,
}

impl ActorRole {
    /// GitHub's `author_association`.
    pub fn from_github(association: &str) -> Option<ActorRole> {
        Some(match association {
            "OWNER" => ActorRole::Owner,
            "MEMBER" => ActorRole::Member,
            "COLLABORATOR" => ActorRole::Collaborator,
            "CONTRIBUTOR" => ActorRole::Contributor,
            "FIRST_TIME_CONTRIBUTOR" | "FIRST_TIMER" | "NONE" | "MANNEQUIN" => ActorRole::Outsider,
            _ => return None,
        })
    }

    /// Neither a member nor a collaborator of the project.
    pub fn is_outsider(self) -> bool {
        matches!(self, ActorRole::Contributor | ActorRole::Outsider)
    }
}

/// A file attached to the event: a document or an image someone added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attachment {
    pub name: String,
    pub url: Option<String>,
    pub is_image: bool,
}

/// The normalized event every template sees as `event`. Every field is always present (none when the
/// product does not say), so templates can test fields while typos still fail under strict undefined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub kind: Option<EventKind>,
    pub provider: &'static str,
    /// The provider's own name for the event, e.g. `issues.opened`.
    pub native: String,
    pub project: Option<String>,
    pub actor: Option<String>,
    pub title: Option<String>,
    pub url: Option<String>,
    pub number: Option<i64>,
    pub labels: Vec<String>,
    /// A short excerpt of the body, on one line.
    pub summary: Option<String>,
    pub attachment: Option<Attachment>,
    /// How the actor relates to the project; none when the provider does not say.
    pub actor_role: Option<ActorRole>,
    /// The provider says the actor is neither a member nor a collaborator (`actor_role` contributor or
    /// outsider). False when it does not say.
    pub outsider: bool,
}

impl Event {
    /// What the event is about, for settling quick successive updates: `provider:project:number` (or the
    /// URL without its fragment) for tasks and changes; none for other kinds.
    pub fn subject(&self) -> Option<String> {
        let kind = self.kind?.as_str();
        if !(kind.starts_with("task.") || kind.starts_with("change.")) {
            return None;
        }
        let which = match (self.number, &self.url) {
            (Some(n), _) => n.to_string(),
            (None, Some(u)) => u.split('#').next().unwrap_or(u).to_string(),
            (None, None) => self.title.clone()?,
        };
        Some(format!(
            "{}:{}:{which}",
            self.provider,
            self.project.as_deref().unwrap_or("")
        ))
    }

    /// An event with only its provider and native name known.
    pub fn bare(provider: &'static str, native: String) -> Event {
        Event {
            kind: None,
            provider,
            native,
            project: None,
            actor: None,
            title: None,
            url: None,
            number: None,
            labels: Vec::new(),
            summary: None,
            attachment: None,
            actor_role: None,
            outsider: false,
        }
    }

    /// Records the actor's role, and whether that makes them an outsider.
    pub fn set_role(&mut self, role: Option<ActorRole>) {
        self.actor_role = role;
        self.outsider = role.is_some_and(ActorRole::is_outsider);
    }
}

/// A header's trimmed, non-empty text.
pub(crate) fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Whether a file name or MIME type names an image.
pub(crate) fn is_image(name: &str, mime: Option<&str>) -> bool {
    if mime.is_some_and(|m| m.starts_with("image/")) {
        return true;
    }
    let lower = name.to_ascii_lowercase();
    [
        ".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg", ".bmp", ".heic", ".tiff",
    ]
    .iter()
    .any(|ext| lower.ends_with(ext))
}

/// An attachment event's kind: an image or a document.
pub(crate) fn attachment_kind(a: &Attachment) -> EventKind {
    if a.is_image {
        EventKind::ImageAdded
    } else {
        EventKind::DocumentAdded
    }
}

/// Reads a string at a JSON pointer, ignoring empty strings.
pub(crate) fn str_at(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The longest excerpt of a body kept in `event.summary`, in characters.
pub const SUMMARY_CHARS: usize = 140;

/// `event.summary` of a body: its excerpt, or none when it is blank.
pub(crate) fn summary_of(text: &str) -> Option<String> {
    Some(excerpt(text, SUMMARY_CHARS)).filter(|e| !e.is_empty())
}

/// Makes a one-line excerpt of free text: whitespace collapsed, cut at a word boundary with `…` so that
/// it stays within `max_chars` characters. Empty when the text has nothing but whitespace. Used for
/// `event.summary` and for the items a digest lists.
pub fn excerpt(text: &str, max_chars: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max_chars {
        return flat;
    }
    let cut: String = flat.chars().take(max_chars.saturating_sub(1)).collect();
    let at_word = match cut.rfind(' ') {
        Some(i) if i > max_chars / 3 => &cut[..i],
        _ => cut.as_str(),
    };
    format!("{}…", at_word.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EventKind::parse("task.create"), None);
    }

    fn arbitrary_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            // Names the normalizers look for, so that arbitrary values land where they read.
            prop_oneof![
                Just("opened".to_string()),
                Just("task".to_string()),
                Just("refs/tags/v1".to_string()),
                Just("0000000000000000000000000000000000000000".to_string()),
                Just("](/uploads/x.png)".to_string()),
                ".{0,40}",
            ]
            .prop_map(Value::String),
        ];
        let keys = prop_oneof![
            Just("action".to_string()),
            Just("issue".to_string()),
            Just("object_kind".to_string()),
            Just("object_attributes".to_string()),
            Just("events".to_string()),
            Just("resource".to_string()),
            Just("change".to_string()),
            Just("data".to_string()),
            Just("push".to_string()),
            Just("changes".to_string()),
            Just("webhookEvent".to_string()),
            Just("changelog".to_string()),
            Just("items".to_string()),
            Just("recording".to_string()),
            Just("kind".to_string()),
            Just("type".to_string()),
            Just("title".to_string()),
            Just("note".to_string()),
            Just("release".to_string()),
            Just("assets".to_string()),
            Just("commits".to_string()),
            "[a-z_]{1,8}",
        ];
        leaf.prop_recursive(5, 64, 8, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(keys.clone(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn every_provider() -> Vec<Provider> {
        vec![
            Provider::Github,
            Provider::Gitlab,
            Provider::Gitea,
            Provider::Forgejo,
            Provider::Gogs,
            Provider::Bitbucket,
            Provider::Jira,
            Provider::Linear,
            Provider::Trello,
            Provider::Asana,
            Provider::Basecamp,
            Provider::Slack,
            Provider::Standard,
            Provider::Hmac {
                delivery_header: None,
                event_header: None,
            },
        ]
    }

    proptest::proptest! {
        /// No payload makes a normalizer panic, whatever its shape, and the native name is never empty.
        #[test]
        fn normalizers_are_total(payload in arbitrary_json(), event in proptest::option::of("[a-z_:.]{0,20}")) {
            for provider in every_provider() {
                let e = normalize(&provider, event.as_deref(), &payload);
                proptest::prop_assert!(!e.native.is_empty());
                proptest::prop_assert_eq!(e.provider, provider.name());
                let _ = handshake(&provider, &DeliveryMeta::default(), &payload);
            }
        }
    }

    #[test]
    fn excerpt_flattens_and_cuts_at_a_word() {
        assert_eq!(excerpt("  a\n\n b  ", SUMMARY_CHARS), "a b");
        assert_eq!(excerpt(" \n ", SUMMARY_CHARS), "");
        let long = "word ".repeat(60);
        let e = excerpt(&long, SUMMARY_CHARS);
        assert!(e.ends_with("word…"), "{e}");
        assert!(e.chars().count() <= SUMMARY_CHARS);
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    /// A payload from `samples/`, where the shared fixtures are bundled.
    pub fn fixture(provider: &str, name: &str) -> serde_json::Value {
        let path = format!("{}/samples/{provider}/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap()
    }
}
