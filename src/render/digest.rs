//! Digests: the context a `digest_template` sees when a destination's backlog is folded into one post.
//!
//! `count` (every folded event), `summary` ("5 tasks opened, 3 closed, 4 comments"), `by_kind` (kind →
//! count), `projects` and `project` (when they all share one), `items` and `newest` (the last three,
//! newest first, each with `kind`, `project` and `text`). Pure: no I/O.

use std::collections::BTreeMap;

use minijinja::Value;
use serde::Serialize;

/// One folded item, as the digest sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Folded {
    pub kind: Option<String>,
    pub project: Option<String>,
    /// The item's own text, cut to a short excerpt.
    pub text: String,
}

/// The phrase for `n` events of a kind, counted in a digest.
fn phrase(kind: Option<&str>, n: usize) -> String {
    let (one, many) = match kind {
        Some("task.created") => ("task opened", "tasks opened"),
        Some("task.updated") => ("task updated", "tasks updated"),
        Some("task.completed") => ("task closed", "tasks closed"),
        Some("task.reopened") => ("task reopened", "tasks reopened"),
        Some("task.deleted") => ("task deleted", "tasks deleted"),
        Some("comment.created") => ("comment", "comments"),
        Some("document.added") => ("document added", "documents added"),
        Some("image.added") => ("image added", "images added"),
        Some("change.opened") => ("change opened", "changes opened"),
        Some("change.merged") => ("change merged", "changes merged"),
        Some("change.closed") => ("change closed", "changes closed"),
        Some("code.pushed") => ("push", "pushes"),
        Some("release.published") => ("release", "releases"),
        Some("tag.created") => ("tag", "tags"),
        Some("build.failed") => ("failed build", "failed builds"),
        Some("build.succeeded") => ("passing build", "passing builds"),
        _ => ("other update", "other updates"),
    };
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Builds the digest context from the folded items, oldest first.
pub fn context(items: &[Folded]) -> Value {
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for i in items {
        *by_kind
            .entry(i.kind.clone().unwrap_or_else(|| "other".to_string()))
            .or_default() += 1;
    }
    let mut ordered: Vec<(&String, &usize)> = by_kind.iter().collect();
    ordered.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let summary = ordered
        .iter()
        .map(|(k, n)| phrase(Some(k.as_str()).filter(|k| *k != "other"), **n))
        .collect::<Vec<_>>()
        .join(", ");
    let mut projects: Vec<String> = items.iter().filter_map(|i| i.project.clone()).collect();
    projects.sort();
    projects.dedup();
    let project = if projects.len() == 1 {
        projects.first().cloned()
    } else {
        None
    };
    // Item texts were defused when their posts were planned, and kinds and the summary are chirpd's own
    // words: they are written as they are. Project names come from payloads and are defused again.
    let item = |f: &Folded| {
        minijinja::context! {
            kind => f.kind.clone().map(Value::from_safe_string),
            project => f.project.clone(),
            text => Value::from_safe_string(f.text.clone()),
        }
    };
    let newest: Vec<Value> = items.iter().rev().take(3).map(item).collect();
    minijinja::context! {
        count => items.len(),
        summary => Value::from_safe_string(summary),
        by_kind => Value::from(minijinja::value::Serde(&by_kind)),
        projects => projects,
        project => project,
        items => items.iter().map(item).collect::<Vec<_>>(),
        newest => newest,
    }
}

/// How many characters of each item's text a digest shows.
pub const EXCERPT_CHARS: usize = 60;

/// A short excerpt of an item's text for the digest, at a word.
pub fn excerpt(text: &str) -> String {
    crate::normalize::excerpt(text, EXCERPT_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{Origin, Templates};

    fn folded(kind: &str, project: &str) -> Folded {
        Folded {
            kind: Some(kind.to_string()),
            project: Some(project.to_string()),
            text: format!("{project} {kind}"),
        }
    }

    #[test]
    fn counts_by_kind_in_order_and_renders_the_default_template() {
        let mut items = Vec::new();
        items.extend((0..5).map(|_| folded("task.created", "acme/widgets")));
        items.extend((0..3).map(|_| folded("task.completed", "acme/widgets")));
        items.extend((0..4).map(|_| folded("comment.created", "acme/widgets")));
        let mut t = Templates::default();
        let origin = Origin {
            file: "x".into(),
            first_line: 1,
        };
        t.add("d", crate::config::DEFAULT_DIGEST.to_string(), origin)
            .unwrap();
        let text = crate::render::neutral::unmark(&t.render("d", &context(&items)).unwrap());
        assert!(
            text.starts_with(
                "acme/widgets: 12 updates — 5 tasks opened, 4 comments, 3 tasks closed"
            ),
            "{text}"
        );
    }

    #[test]
    fn mixed_projects_have_no_single_project() {
        let items = vec![folded("code.pushed", "a"), folded("code.pushed", "b")];
        let ctx = context(&items);
        assert!(ctx.get_attr("project").unwrap().is_none());
        assert_eq!(ctx.get_attr("count").unwrap(), Value::from(2));
    }

    #[test]
    fn excerpts_cut_at_a_word() {
        assert_eq!(excerpt("short"), "short");
        let e = excerpt(&"word ".repeat(30));
        assert!(e.ends_with("word…") && e.chars().count() <= 61, "{e}");
    }
}
