//! Basecamp 3/4: the body's `kind` (`todo_created`, `comment_created`, `upload_created`, …).
//!
//! To-dos → `task.*`; comments → `comment.created`; documents → `document.added`; uploads →
//! `image.added` or `document.added` by file type. The Basecamp project (bucket) is the project, and
//! HTML in content is reduced to text.

use serde_json::Value;

use crate::normalize::{
    Attachment, Event, EventKind, attachment_kind, is_image, str_at, summary_of,
};

pub fn normalize(p: &Value) -> Event {
    let native = str_at(p, "/kind").unwrap_or_else(|| "unknown".to_string());
    let mut e = Event::bare("basecamp", native.clone());
    let rec = p.get("recording").unwrap_or(&Value::Null);
    e.project = str_at(rec, "/bucket/name");
    e.actor = str_at(p, "/creator/name").or_else(|| str_at(rec, "/creator/name"));
    // Only members of the workspace can act in it.
    e.set_role(Some(crate::normalize::ActorRole::Member));
    e.title = str_at(rec, "/title");
    e.url = str_at(rec, "/app_url");
    e.summary = str_at(rec, "/content").and_then(|c| summary_of(&strip_tags(&c)));
    e.kind = match native.as_str() {
        "todo_created" => Some(EventKind::TaskCreated),
        "todo_completed" => Some(EventKind::TaskCompleted),
        "todo_uncompleted" => Some(EventKind::TaskReopened),
        "todo_changed"
        | "todo_content_changed"
        | "todo_assignment_changed"
        | "todo_due_date_changed" => Some(EventKind::TaskUpdated),
        "todo_trashed" => Some(EventKind::TaskDeleted),
        "comment_created" => {
            e.title = str_at(rec, "/parent/title").or(e.title);
            Some(EventKind::CommentCreated)
        }
        "document_created" => {
            e.attachment = e.title.clone().map(|name| Attachment {
                name,
                url: e.url.clone(),
                is_image: false,
            });
            Some(EventKind::DocumentAdded)
        }
        "upload_created" => {
            let name = str_at(rec, "/filename")
                .or_else(|| str_at(rec, "/title"))
                .unwrap_or_default();
            let a = Attachment {
                is_image: is_image(&name, str_at(rec, "/content_type").as_deref()),
                url: e.url.clone(),
                name,
            };
            let kind = attachment_kind(&a);
            e.attachment = Some(a);
            Some(kind)
        }
        _ => None,
    };
    e
}

/// Reduces Basecamp's HTML content to its text.
fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&nbsp;", " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::tests_support::fixture;

    #[test]
    fn todos_and_comments() {
        let e = normalize(&fixture("basecamp", "todo_created.json"));
        assert_eq!(e.kind, Some(EventKind::TaskCreated));
        assert_eq!(e.title.as_deref(), Some("New task"));
        assert_eq!(e.project.as_deref(), Some("Zulip HQ"));
        assert_eq!(e.actor.as_deref(), Some("Tomasz"));
        let e = normalize(&fixture("basecamp", "comment_created.json"));
        assert_eq!(e.kind, Some(EventKind::CommentCreated));
        assert_eq!(e.title.as_deref(), Some("New task"));
        assert_eq!(e.summary.as_deref(), Some("Comment"));
    }

    #[test]
    fn uploads_and_documents() {
        let mut p = fixture("basecamp", "todo_created.json");
        p["kind"] = "upload_created".into();
        p["recording"]["filename"] = "plan.jpg".into();
        assert_eq!(normalize(&p).kind, Some(EventKind::ImageAdded));
        p["recording"]["filename"] = "plan.pdf".into();
        p["recording"]["content_type"] = "application/pdf".into();
        assert_eq!(normalize(&p).kind, Some(EventKind::DocumentAdded));
        p["kind"] = "document_created".into();
        assert_eq!(normalize(&p).kind, Some(EventKind::DocumentAdded));
    }
}
