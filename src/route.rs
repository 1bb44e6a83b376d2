//! Routing: which of the admin's routes an event matches.
//!
//! A route names one or more sources, a list of event patterns (normalized kinds such as `task.created`,
//! provider-qualified native names such as `github:issues.opened` or `github:issues.*`, or `*`), an
//! optional `when` condition, destinations and a template. Matching is pure; the `when` condition is a
//! compiled expression evaluated by `render::Templates`.

use crate::normalize::{Event, EventKind};

/// One entry of a route's `events` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventPattern {
    /// `*`: every event of the source.
    Any,
    /// A normalized kind.
    Kind(EventKind),
    /// `provider:native`, where native may end in `.*` to match a family (`github:issues.*`).
    Native { provider: String, native: String },
}

impl EventPattern {
    pub fn parse(text: &str) -> Result<EventPattern, String> {
        let text = text.trim();
        if text == "*" {
            return Ok(EventPattern::Any);
        }
        if let Some((provider, native)) = text.split_once(':') {
            if provider.is_empty() || native.is_empty() {
                return Err(format!("event pattern {text:?} needs provider:name"));
            }
            return Ok(EventPattern::Native {
                provider: provider.to_string(),
                native: native.to_string(),
            });
        }
        EventKind::parse(text).map(EventPattern::Kind).ok_or_else(|| {
            let kinds: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
            format!(
                "unknown event kind {text:?}: use one of {}, provider:native (e.g. github:issues.opened) or *",
                kinds.join(" ")
            )
        })
    }

    pub fn matches(&self, event: &Event) -> bool {
        match self {
            EventPattern::Any => true,
            EventPattern::Kind(k) => event.kind == Some(*k),
            EventPattern::Native { provider, native } => {
                if provider != event.provider {
                    return false;
                }
                match native.strip_suffix('*') {
                    Some(prefix) => event.native.starts_with(prefix),
                    None => *native == event.native,
                }
            }
        }
    }
}

/// A validated route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Position in the config's `[[routes]]`, used in errors, in previews and in outbox item keys.
    pub index: usize,
    /// The sources whose events the route takes.
    pub sources: Vec<String>,
    pub events: Vec<EventPattern>,
    /// Name of the compiled `when` condition, if the route has one.
    pub when: Option<String>,
    pub to: Vec<String>,
    /// Name of the compiled template.
    pub template: String,
    /// Its items wait in review for a person's decision.
    pub review: bool,
}

impl Route {
    /// Whether the route's source and event patterns match; the `when` condition is checked separately.
    pub fn matches(&self, source: &str, event: &Event) -> bool {
        self.sources.iter().any(|s| s == source) && self.events.iter().any(|p| p.matches(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: Option<EventKind>, native: &str) -> Event {
        let mut e = Event::bare("github", native.to_string());
        e.kind = kind;
        e
    }

    #[test]
    fn patterns_match_kinds_native_names_and_everything() {
        let opened = event(Some(EventKind::TaskCreated), "issues.opened");
        assert!(
            EventPattern::parse("task.created")
                .unwrap()
                .matches(&opened)
        );
        assert!(
            !EventPattern::parse("task.completed")
                .unwrap()
                .matches(&opened)
        );
        assert!(
            EventPattern::parse("github:issues.opened")
                .unwrap()
                .matches(&opened)
        );
        assert!(
            EventPattern::parse("github:issues.*")
                .unwrap()
                .matches(&opened)
        );
        assert!(
            !EventPattern::parse("gitlab:issues.opened")
                .unwrap()
                .matches(&opened)
        );
        assert!(
            EventPattern::parse("*")
                .unwrap()
                .matches(&event(None, "star.created"))
        );
    }

    #[test]
    fn unknown_kinds_are_reported_with_the_alternatives() {
        let err = EventPattern::parse("task.create").unwrap_err();
        assert!(err.contains("task.created"), "{err}");
        assert!(EventPattern::parse(":x").is_err());
    }

    #[test]
    fn routes_match_on_source_too() {
        let r = Route {
            index: 0,
            sources: vec!["a".into(), "c".into()],
            events: vec![EventPattern::Any],
            when: None,
            to: vec!["team".into()],
            template: "t".into(),
            review: false,
        };
        assert!(r.matches("a", &event(None, "x")));
        assert!(r.matches("c", &event(None, "x")));
        assert!(!r.matches("b", &event(None, "x")));
    }
}
