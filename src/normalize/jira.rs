//! Jira Cloud: the body's `webhookEvent` names the event (`jira:issue_created`, `comment_created`, …).
//!
//! Issues → `task.*`, with "completed" meaning the status moved into the done category; an attachment
//! added to an issue → `image.added` or `document.added`; comments → `comment.created`. The title carries
//! the issue key (`TES-41 Fix login`), and the URL is the issue's browse link.

use serde_json::Value;

use crate::normalize::{
    Attachment, Event, EventKind, attachment_kind, is_image, str_at, summary_of,
};

pub fn normalize(p: &Value) -> Event {
    let native = str_at(p, "/webhookEvent").unwrap_or_else(|| "unknown".to_string());
    let mut e = Event::bare("jira", native.clone());
    let issue = p.get("issue").unwrap_or(&Value::Null);
    let key = str_at(issue, "/key");
    let summary = str_at(issue, "/fields/summary");
    e.title = match (&key, &summary) {
        (Some(k), Some(s)) => Some(format!("{k} {s}")),
        (k, s) => s.clone().or(k.clone()),
    };
    e.url = match (str_at(issue, "/self"), &key) {
        (Some(api), Some(k)) => api
            .find("/rest/api/")
            .map(|i| format!("{}/browse/{k}", &api[..i])),
        _ => None,
    };
    e.project =
        str_at(issue, "/fields/project/name").or_else(|| str_at(issue, "/fields/project/key"));
    e.actor = str_at(p, "/user/displayName");
    e.labels = issue
        .pointer("/fields/labels")
        .and_then(Value::as_array)
        .map(|ls| {
            ls.iter()
                .filter_map(|l| l.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    e.summary = str_at(issue, "/fields/description").and_then(|d| summary_of(&d));
    match native.as_str() {
        "jira:issue_created" => e.kind = Some(EventKind::TaskCreated),
        "jira:issue_deleted" => e.kind = Some(EventKind::TaskDeleted),
        "jira:issue_updated" => {
            let items = p
                .pointer("/changelog/items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let field = |name: &str| {
                items
                    .iter()
                    .find(|i| str_at(i, "/field").is_some_and(|f| f.eq_ignore_ascii_case(name)))
            };
            let done_now =
                str_at(issue, "/fields/status/statusCategory/key").as_deref() == Some("done");
            if let Some(att) = field("Attachment").filter(|i| str_at(i, "/toString").is_some()) {
                let name = str_at(att, "/toString").unwrap_or_default();
                let a = Attachment {
                    is_image: is_image(&name, None),
                    url: e.url.clone(),
                    name,
                };
                e.kind = Some(attachment_kind(&a));
                e.attachment = Some(a);
            } else if field("status").is_some() || field("resolution").is_some() {
                e.kind = Some(if done_now {
                    EventKind::TaskCompleted
                } else if was_done(&items) {
                    EventKind::TaskReopened
                } else {
                    EventKind::TaskUpdated
                });
            } else {
                e.kind = Some(EventKind::TaskUpdated);
            }
        }
        "comment_created" => {
            e.actor = str_at(p, "/comment/author/displayName").or(e.actor);
            e.summary = str_at(p, "/comment/body").and_then(|b| summary_of(&b));
            e.kind = Some(EventKind::CommentCreated);
        }
        "attachment_created" => {
            let name = str_at(p, "/attachment/filename").unwrap_or_default();
            let a = Attachment {
                is_image: is_image(&name, str_at(p, "/attachment/mimeType").as_deref()),
                url: str_at(p, "/attachment/content"),
                name,
            };
            e.actor = str_at(p, "/attachment/author/displayName").or(e.actor);
            e.kind = Some(attachment_kind(&a));
            e.attachment = Some(a);
        }
        _ => {}
    }
    e
}

/// Whether the changelog moved the status out of a done-like state.
fn was_done(items: &[Value]) -> bool {
    items.iter().any(|i| {
        str_at(i, "/field").as_deref() == Some("status")
            && str_at(i, "/fromString").is_some_and(|s| {
                let s = s.to_ascii_lowercase();
                s == "done" || s == "closed" || s == "resolved"
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::tests_support::fixture;

    #[test]
    fn created_resolved_and_commented_issues() {
        let e = normalize(&fixture("jira", "jira-issue_created.json"));
        assert_eq!(e.kind, Some(EventKind::TaskCreated));
        assert_eq!(e.title.as_deref(), Some("TES-41 Unit test summary"));
        assert_eq!(
            e.url.as_deref(),
            Some("https://some-instance-test.atlassian.net/browse/TES-41")
        );
        assert_eq!(e.project.as_deref(), Some("test1"));
        assert_eq!(e.actor.as_deref(), Some("Test User"));
        assert!(e.labels.contains(&"test-label".to_string()));
        let e = normalize(&fixture("jira", "jira-issue_updated-resolved.json"));
        assert_eq!(e.kind, Some(EventKind::TaskCompleted));
        let e = normalize(&fixture("jira", "comment_created.json"));
        assert_eq!(e.kind, Some(EventKind::CommentCreated));
        assert_eq!(e.summary.as_deref(), Some("Added a comment"));
    }

    #[test]
    fn attachments_are_images_or_documents() {
        let mut p = fixture("jira", "jira-issue_created.json");
        p["webhookEvent"] = "jira:issue_updated".into();
        p["changelog"] =
            serde_json::json!({"items": [{"field": "Attachment", "toString": "diagram.png"}]});
        let e = normalize(&p);
        assert_eq!(e.kind, Some(EventKind::ImageAdded));
        assert_eq!(e.attachment.unwrap().name, "diagram.png");
        p["changelog"] =
            serde_json::json!({"items": [{"field": "Attachment", "toString": "minutes.docx"}]});
        assert_eq!(normalize(&p).kind, Some(EventKind::DocumentAdded));
    }
}
