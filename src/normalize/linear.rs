//! Linear: the body's `type` (Issue, Comment, Attachment) and `action` (create, update, remove).
//!
//! Issues → `task.*` ("completed" when an update moved the state to a completed or canceled one);
//! comments → `comment.created`; attachments → `image.added` or `document.added`.

use serde_json::Value;

use crate::normalize::{
    Attachment, Event, EventKind, attachment_kind, is_image, str_at, summary_of,
};

pub fn normalize(p: &Value) -> Event {
    let ty = str_at(p, "/type").unwrap_or_else(|| "unknown".to_string());
    let action = str_at(p, "/action").unwrap_or_default();
    let mut e = Event::bare("linear", format!("{ty}.{action}"));
    let data = p.get("data").unwrap_or(&Value::Null);
    e.url = str_at(p, "/url").or_else(|| str_at(data, "/url"));
    e.actor = str_at(p, "/actor/name")
        .or_else(|| str_at(data, "/user/name"))
        .or_else(|| str_at(data, "/creator/name"));
    // Only members of the workspace can act in it.
    e.set_role(Some(crate::normalize::ActorRole::Member));
    e.project = str_at(data, "/team/name")
        .or_else(|| str_at(data, "/issue/team/name"))
        .or_else(|| str_at(data, "/project/name"));
    match ty.as_str() {
        "Issue" => {
            e.title = str_at(data, "/title");
            e.number = data.get("number").and_then(Value::as_i64);
            e.summary = str_at(data, "/description").and_then(|d| summary_of(&d));
            e.labels = data
                .get("labels")
                .and_then(Value::as_array)
                .map(|ls| ls.iter().filter_map(|l| str_at(l, "/name")).collect())
                .unwrap_or_default();
            let state_changed = p.pointer("/updatedFrom/stateId").is_some();
            let state = str_at(data, "/state/type").unwrap_or_default();
            e.kind = match action.as_str() {
                "create" => Some(EventKind::TaskCreated),
                "remove" => Some(EventKind::TaskDeleted),
                "update" if state_changed && (state == "completed" || state == "canceled") => {
                    Some(EventKind::TaskCompleted)
                }
                "update" => Some(EventKind::TaskUpdated),
                _ => None,
            };
        }
        "Comment" => {
            e.title = str_at(data, "/issue/title");
            e.summary = str_at(data, "/body").and_then(|b| summary_of(&b));
            if action == "create" {
                e.kind = Some(EventKind::CommentCreated);
            }
        }
        "Attachment" => {
            let name = str_at(data, "/title").unwrap_or_default();
            let url = str_at(data, "/url");
            let a = Attachment {
                is_image: is_image(url.as_deref().unwrap_or(&name), None) || is_image(&name, None),
                url: url.clone(),
                name,
            };
            e.title = str_at(data, "/issue/title").or(Some(a.name.clone()));
            if action == "create" {
                e.kind = Some(attachment_kind(&a));
                e.attachment = Some(a);
            }
        }
        _ => {}
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::tests_support::fixture;

    #[test]
    fn issues_and_comments() {
        let e = normalize(&fixture("linear", "Issue-create.json"));
        assert_eq!(
            (e.kind, e.native.as_str()),
            (Some(EventKind::TaskCreated), "Issue.create")
        );
        assert_eq!(e.title.as_deref(), Some("Very small font in tooltip"));
        assert_eq!(e.number, Some(43));
        assert_eq!(e.project.as_deref(), Some("Webhooks"));
        let e = normalize(&fixture("linear", "Comment-create.json"));
        assert_eq!(e.kind, Some(EventKind::CommentCreated));
        assert_eq!(e.actor.as_deref(), Some("Satyam Bansal"));
        assert_eq!(
            e.title.as_deref(),
            Some("Thorough Impact Analysis and Cost Realization")
        );
    }

    #[test]
    fn completing_an_issue() {
        let mut p = fixture("linear", "Issue-create.json");
        p["action"] = "update".into();
        p["data"]["state"]["type"] = "completed".into();
        p["updatedFrom"] = serde_json::json!({"stateId": "x"});
        assert_eq!(normalize(&p).kind, Some(EventKind::TaskCompleted));
        p["updatedFrom"] = serde_json::json!({"title": "old"});
        assert_eq!(normalize(&p).kind, Some(EventKind::TaskUpdated));
    }
}
