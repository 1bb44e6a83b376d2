//! Normalization: one provider's payload becomes one `Event`, so that one template serves every tracker.
//!
//! One provider is one file. Each exposes two pure functions: `meta`, which reads the delivery id and event
//! name from the headers (before the body is parsed, for dedupe and handshakes), and `normalize`, which maps
//! the verified JSON payload into an `Event`. Normalization is total: a payload it does not understand still
//! yields an event with its native name and `kind` set to none, so that it stays routable by native name.
//! This module must not do I/O, read the clock or fail on odd input.

pub mod generic;
pub mod github;

use std::fmt;

use http::HeaderMap;
use serde::Serialize;
use serde_json::Value;

/// The product a source speaks for, with what its normalizer needs from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provider {
    Github,
    /// Standard Webhooks: the event name is the body's `type` field.
    Standard,
    /// Any HMAC-signing sender; the admin names the headers that carry a delivery id and an event name.
    Hmac {
        delivery_header: Option<String>,
        event_header: Option<String>,
    },
}

impl Provider {
    /// The provider's name as written in the config and shown to templates.
    pub fn name(&self) -> &'static str {
        match self {
            Provider::Github => "github",
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
}

pub fn meta(provider: &Provider, headers: &HeaderMap) -> DeliveryMeta {
    match provider {
        Provider::Github => github::meta(headers),
        Provider::Standard => generic::standard_meta(headers),
        Provider::Hmac {
            delivery_header,
            event_header,
        } => generic::hmac_meta(headers, delivery_header.as_deref(), event_header.as_deref()),
    }
}

pub fn handshake(provider: &Provider, meta: &DeliveryMeta) -> Option<Handshake> {
    match provider {
        Provider::Github if meta.event.as_deref() == Some("ping") => Some(Handshake::Ping),
        _ => None,
    }
}

/// Maps a verified payload into an `Event`. `event` is the event name from the headers, if any.
pub fn normalize(provider: &Provider, event: Option<&str>, payload: &Value) -> Event {
    match provider {
        Provider::Github => github::normalize(event, payload),
        Provider::Standard | Provider::Hmac { .. } => {
            generic::normalize(provider.name(), event, payload)
        }
    }
}

/// The normalized kinds of SPEC §4.
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
}

impl Event {
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
        }
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

/// Makes a one-line excerpt of free text: whitespace collapsed, cut at a word boundary with `…`.
pub(crate) fn excerpt(text: &str) -> Option<String> {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.is_empty() {
        return None;
    }
    if flat.chars().count() <= SUMMARY_CHARS {
        return Some(flat);
    }
    let cut: String = flat.chars().take(SUMMARY_CHARS - 1).collect();
    let at_word = match cut.rfind(' ') {
        Some(i) if i > SUMMARY_CHARS / 2 => &cut[..i],
        _ => cut.as_str(),
    };
    Some(format!("{}…", at_word.trim_end()))
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

    #[test]
    fn excerpt_flattens_and_cuts_at_a_word() {
        assert_eq!(excerpt("  a\n\n b  "), Some("a b".to_string()));
        assert_eq!(excerpt(" \n "), None);
        let long = "word ".repeat(60);
        let e = excerpt(&long).unwrap();
        assert!(e.ends_with("word…"), "{e}");
        assert!(e.chars().count() <= SUMMARY_CHARS);
    }
}
