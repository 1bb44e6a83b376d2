//! Bitbucket Cloud: the `X-Event-Key` header names the event (`repo:push`, `pullrequest:fulfilled`, …).
//!
//! Pushes → `code.pushed` (a new tag → `tag.created`); pull requests created, fulfilled (merged) and
//! rejected (declined) → `change.*`; issues → `task.*`; comments → `comment.created`; commit statuses →
//! `build.*`.

use serde_json::Value;

use crate::normalize::{Event, EventKind, str_at, summary_of};

pub fn normalize(event: Option<&str>, p: &Value) -> Event {
    let key = event.unwrap_or("unknown");
    let mut e = Event::bare("bitbucket", key.to_string());
    e.project = str_at(p, "/repository/full_name");
    e.actor = str_at(p, "/actor/nickname")
        .or_else(|| str_at(p, "/actor/username"))
        .or_else(|| str_at(p, "/actor/display_name"));
    match key {
        "repo:push" => push(&mut e, p),
        "pullrequest:created"
        | "pullrequest:fulfilled"
        | "pullrequest:rejected"
        | "pullrequest:updated" => {
            pull_request(&mut e, p);
            e.kind = match key {
                "pullrequest:created" => Some(EventKind::ChangeOpened),
                "pullrequest:fulfilled" => Some(EventKind::ChangeMerged),
                "pullrequest:rejected" => Some(EventKind::ChangeClosed),
                _ => None,
            };
        }
        "pullrequest:comment_created" | "issue:comment_created" => {
            if key.starts_with("pullrequest") {
                pull_request(&mut e, p);
            } else {
                issue(&mut e, p);
            }
            e.url = str_at(p, "/comment/links/html/href").or(e.url);
            e.summary = str_at(p, "/comment/content/raw").and_then(|c| summary_of(&c));
            e.kind = Some(EventKind::CommentCreated);
        }
        "issue:created" | "issue:updated" => {
            issue(&mut e, p);
            let state = str_at(p, "/issue/state").unwrap_or_default();
            let state_changed = p.pointer("/changes/state").is_some();
            e.kind = match (key, state.as_str()) {
                ("issue:created", _) => Some(EventKind::TaskCreated),
                (_, "resolved" | "closed" | "invalid" | "duplicate" | "wontfix")
                    if state_changed =>
                {
                    Some(EventKind::TaskCompleted)
                }
                (_, "open" | "new") if state_changed => Some(EventKind::TaskReopened),
                _ => Some(EventKind::TaskUpdated),
            };
        }
        "repo:commit_status_updated" | "repo:commit_status_created" => {
            e.title = str_at(p, "/commit_status/name");
            e.url = str_at(p, "/commit_status/url");
            e.summary = str_at(p, "/commit_status/refname").map(|r| format!("on {r}"));
            e.kind = match str_at(p, "/commit_status/state").as_deref() {
                Some("SUCCESSFUL") => Some(EventKind::BuildSucceeded),
                Some("FAILED") => Some(EventKind::BuildFailed),
                _ => None,
            };
        }
        _ => {}
    }
    e
}

fn pull_request(e: &mut Event, p: &Value) {
    e.title = str_at(p, "/pullrequest/title");
    e.url = str_at(p, "/pullrequest/links/html/href");
    e.number = p.pointer("/pullrequest/id").and_then(Value::as_i64);
    e.summary = str_at(p, "/pullrequest/description").and_then(|d| summary_of(&d));
}

fn issue(e: &mut Event, p: &Value) {
    e.title = str_at(p, "/issue/title");
    e.url = str_at(p, "/issue/links/html/href");
    e.number = p.pointer("/issue/id").and_then(Value::as_i64);
    e.summary = str_at(p, "/issue/content/raw").and_then(|c| summary_of(&c));
}

fn push(e: &mut Event, p: &Value) {
    let change = p.pointer("/push/changes/0").unwrap_or(&Value::Null);
    let new_ref = change.get("new").filter(|v| v.is_object());
    let old_ref = change.get("old").filter(|v| v.is_object());
    let target = new_ref.or(old_ref);
    let what = target
        .and_then(|t| str_at(t, "/type"))
        .unwrap_or_else(|| "branch".to_string());
    let name = target.and_then(|t| str_at(t, "/name")).unwrap_or_default();
    let commits = change
        .get("commits")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let more = if change.get("truncated").and_then(Value::as_bool) == Some(true) {
        "+"
    } else {
        ""
    };
    e.url = str_at(change, "/links/html/href").or_else(|| str_at(p, "/repository/links/html/href"));
    e.summary = str_at(change, "/commits/0/message")
        .and_then(|m| summary_of(m.lines().next().unwrap_or("")));
    if new_ref.is_none() {
        e.title = Some(format!("{what} {name} deleted"));
        e.kind = Some(EventKind::CodePushed);
    } else if what == "tag" {
        e.title = Some(name);
        e.kind = Some(EventKind::TagCreated);
    } else if change.get("created").and_then(Value::as_bool) == Some(true) && commits == 0 {
        e.title = Some(format!("branch {name} created"));
        e.kind = Some(EventKind::CodePushed);
    } else {
        let s = if commits == 1 && more.is_empty() {
            ""
        } else {
            "s"
        };
        e.title = Some(format!("{commits}{more} new commit{s} on {name}"));
        e.kind = Some(EventKind::CodePushed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::tests_support::fixture;

    #[test]
    fn pull_requests_and_pushes() {
        let e = normalize(
            Some("pullrequest:created"),
            &fixture("bitbucket", "pullrequest-created.json"),
        );
        assert_eq!(e.kind, Some(EventKind::ChangeOpened));
        assert_eq!(e.title.as_deref(), Some("Awesome new feature"));
        assert_eq!(
            e.url.as_deref(),
            Some("https://bitbucket.org/brydzewski/foo/pull-requests/1")
        );
        assert_eq!(e.project.as_deref(), Some("brydzewski/foo"));
        let e = normalize(
            Some("pullrequest:fulfilled"),
            &fixture("bitbucket", "pullrequest-fulfilled.json"),
        );
        assert_eq!(e.kind, Some(EventKind::ChangeMerged));
        let e = normalize(Some("repo:push"), &fixture("bitbucket", "repo-push.json"));
        assert_eq!(e.kind, Some(EventKind::CodePushed));
        assert_eq!(e.title.as_deref(), Some("1 new commit on master"));
        assert_eq!(e.summary.as_deref(), Some("Update README"));
    }

    #[test]
    fn a_pushed_tag_is_a_created_tag() {
        let p = serde_json::json!({"push": {"changes": [{"new": {"type": "tag", "name": "v2.0"}, "old": null,
            "created": true, "commits": []}]}, "repository": {"full_name": "a/b"}});
        let e = normalize(Some("repo:push"), &p);
        assert_eq!(
            (e.kind, e.title.as_deref()),
            (Some(EventKind::TagCreated), Some("v2.0"))
        );
    }
}
