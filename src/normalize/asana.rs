//! Asana: one delivery carries `events[]`, each a resource (task, story, attachment) and an action.
//!
//! Asana's events are sparse (ids, no names), so the delivery becomes one event describing its most
//! significant change: a task added → `task.created`, completed → `task.completed`, deleted →
//! `task.deleted`, otherwise changed → `task.updated`; a story (comment) added → `comment.created`; an
//! attachment added → `document.added`. The URL points at the task in Asana.

use serde_json::Value;

use crate::normalize::{Attachment, Event, EventKind, str_at};

pub fn normalize(p: &Value) -> Event {
    let events = p
        .get("events")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let classified: Vec<(EventKind, &Value)> = events
        .iter()
        .filter_map(|ev| classify(ev).map(|k| (k, ev)))
        .collect();
    // The most significant change wins: completion over a field edit, and so on.
    let rank = |k: &EventKind| match k {
        EventKind::TaskDeleted => 0,
        EventKind::TaskCompleted => 1,
        EventKind::TaskCreated => 2,
        EventKind::DocumentAdded | EventKind::ImageAdded => 3,
        EventKind::CommentCreated => 4,
        _ => 5,
    };
    let best = classified.iter().min_by_key(|(k, _)| rank(k));
    let Some((kind, ev)) = best else {
        let native = events
            .first()
            .map(native_of)
            .unwrap_or_else(|| "unknown".to_string());
        return Event::bare("asana", native);
    };
    let mut e = Event::bare("asana", native_of(ev));
    e.kind = Some(*kind);
    let task_gid = match str_at(ev, "/resource/resource_type").as_deref() {
        Some("task") => str_at(ev, "/resource/gid"),
        _ => str_at(ev, "/parent/gid"),
    };
    e.url = task_gid.map(|g| format!("https://app.asana.com/0/0/{g}"));
    e.title = str_at(ev, "/resource/name").or_else(|| str_at(ev, "/parent/name"));
    e.actor = str_at(ev, "/user/name");
    // Only members of the workspace can act in it.
    e.set_role(Some(crate::normalize::ActorRole::Member));
    if matches!(kind, EventKind::DocumentAdded) {
        e.attachment = Some(Attachment {
            name: str_at(ev, "/resource/name").unwrap_or_else(|| "attachment".to_string()),
            url: e.url.clone(),
            is_image: false,
        });
    }
    e
}

fn native_of(ev: &Value) -> String {
    let ty = str_at(ev, "/resource/resource_type").unwrap_or_else(|| "unknown".to_string());
    let action = str_at(ev, "/action").unwrap_or_default();
    match str_at(ev, "/change/field") {
        Some(f) => format!("{ty}.{action}.{f}"),
        None => format!("{ty}.{action}"),
    }
}

fn classify(ev: &Value) -> Option<EventKind> {
    let ty = str_at(ev, "/resource/resource_type")?;
    let action = str_at(ev, "/action")?;
    let field = str_at(ev, "/change/field");
    match (ty.as_str(), action.as_str(), field.as_deref()) {
        ("task", "added", _) => Some(EventKind::TaskCreated),
        ("task", "deleted" | "removed", None) => Some(EventKind::TaskDeleted),
        ("task", "changed", Some("completed")) => Some(EventKind::TaskCompleted),
        ("task", "changed", _) => Some(EventKind::TaskUpdated),
        ("task", "undeleted", _) => Some(EventKind::TaskReopened),
        ("story", "added", _) => Some(EventKind::CommentCreated),
        ("attachment", "added", _) => Some(EventKind::DocumentAdded),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::tests_support::fixture;

    #[test]
    fn completing_a_task_is_one_completed_event() {
        let e = normalize(&fixture("asana", "events-task-changed-completed.json"));
        assert_eq!(e.kind, Some(EventKind::TaskCompleted));
        assert_eq!(e.native, "task.changed.completed");
        assert_eq!(
            e.url.as_deref(),
            Some("https://app.asana.com/0/0/1199170056173519")
        );
    }

    #[test]
    fn empty_or_odd_deliveries_stay_native() {
        assert_eq!(
            normalize(&serde_json::json!({"events": []})).native,
            "unknown"
        );
        assert_eq!(normalize(&serde_json::json!({"events": [{"resource": {"resource_type": "project"}, "action": "changed"}]})).kind, None);
    }
}
