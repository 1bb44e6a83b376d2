//! GitHub: the `X-GitHub-Event` header names the event, the body's `action` refines it.
//!
//! Native names are `event.action` (`issues.opened`) or the bare event (`push`). Mapped to kinds:
//! issues → `task.*`, issue and review comments → `comment.created`, pull requests → `change.*`,
//! push → `code.pushed`, release published → `release.published`, tag creation → `tag.created`, finished
//! workflow runs → `build.*`. Everything else keeps only its native name.

use http::HeaderMap;
use serde_json::Value;

use crate::normalize::{
    ActorRole, Attachment, DeliveryMeta, Event, EventKind, header_text, is_image, str_at,
    summary_of,
};

pub fn meta(headers: &HeaderMap) -> DeliveryMeta {
    let get = |name: &str| header_text(headers, name);
    DeliveryMeta {
        delivery_id: get("x-github-delivery"),
        // The delivery GUID is not covered by GitHub's HMAC.
        id_is_signed: false,
        event: get("x-github-event"),
    }
}

pub fn normalize(event: Option<&str>, p: &Value) -> Event {
    let event = event.unwrap_or("unknown");
    let action = str_at(p, "/action");
    let native = match &action {
        Some(a) => format!("{event}.{a}"),
        None => event.to_string(),
    };
    let mut e = Event::bare("github", native);
    e.project = str_at(p, "/repository/full_name").or_else(|| str_at(p, "/organization/login"));
    e.actor = str_at(p, "/sender/login");
    e.set_role(actor_role(event, p));
    let action = action.as_deref().unwrap_or("");
    match event {
        "issues" => {
            fill_item(&mut e, p.get("issue"));
            e.kind = match action {
                "opened" => Some(EventKind::TaskCreated),
                "closed" => Some(EventKind::TaskCompleted),
                "reopened" => Some(EventKind::TaskReopened),
                "deleted" => Some(EventKind::TaskDeleted),
                "edited" | "labeled" | "unlabeled" | "assigned" | "unassigned" | "milestoned"
                | "demilestoned" => Some(EventKind::TaskUpdated),
                _ => None,
            };
        }
        "issue_comment" | "pull_request_review_comment" | "commit_comment" => {
            let item = p.get("issue").or_else(|| p.get("pull_request"));
            fill_item(&mut e, item);
            e.url = str_at(p, "/comment/html_url").or(e.url);
            e.summary = str_at(p, "/comment/body").and_then(|b| summary_of(&b));
            if action == "created" {
                e.kind = Some(EventKind::CommentCreated);
            }
        }
        "pull_request" => {
            fill_item(&mut e, p.get("pull_request"));
            let merged = p.pointer("/pull_request/merged").and_then(Value::as_bool) == Some(true);
            e.kind = match action {
                "opened" | "reopened" => Some(EventKind::ChangeOpened),
                "closed" if merged => Some(EventKind::ChangeMerged),
                "closed" => Some(EventKind::ChangeClosed),
                _ => None,
            };
        }
        "push" => push(&mut e, p),
        "release" => {
            e.title = str_at(p, "/release/name").or_else(|| str_at(p, "/release/tag_name"));
            e.url = str_at(p, "/release/html_url");
            e.summary = str_at(p, "/release/body").and_then(|b| summary_of(&b));
            // A release's first asset is offered to templates as its attachment.
            e.attachment = p.pointer("/release/assets/0").and_then(|a| {
                let name = str_at(a, "/name")?;
                Some(Attachment {
                    is_image: is_image(&name, str_at(a, "/content_type").as_deref()),
                    url: str_at(a, "/browser_download_url"),
                    name,
                })
            });
            if action == "published" {
                e.kind = Some(EventKind::ReleasePublished);
            }
        }
        "create" => {
            e.title = str_at(p, "/ref");
            let repo_url = str_at(p, "/repository/html_url");
            e.url = match (&repo_url, &e.title) {
                (Some(r), Some(t)) => Some(format!("{r}/tree/{t}")),
                _ => repo_url,
            };
            if str_at(p, "/ref_type").as_deref() == Some("tag") {
                e.kind = Some(EventKind::TagCreated);
            }
        }
        "workflow_run" => {
            e.title = str_at(p, "/workflow_run/name");
            e.url = str_at(p, "/workflow_run/html_url");
            e.summary = str_at(p, "/workflow_run/head_branch").map(|b| format!("on {b}"));
            if action == "completed" {
                e.kind = match str_at(p, "/workflow_run/conclusion").as_deref() {
                    Some("success") => Some(EventKind::BuildSucceeded),
                    Some("failure") | Some("timed_out") => Some(EventKind::BuildFailed),
                    _ => None,
                };
            }
        }
        _ => {}
    }
    e
}

/// How the sender relates to the repository. GitHub gives the association of an item's author, not of
/// the sender: when the sender acts on an item someone else wrote (closes, labels, merges it), GitHub
/// required write or triage access, so they are at least a collaborator; pushes, releases and tags need
/// write access too. A comment's author is its sender.
fn actor_role(event: &str, p: &Value) -> Option<ActorRole> {
    let sender = str_at(p, "/sender/login");
    let authored = |item: &str| -> Option<ActorRole> {
        let author = str_at(p, &format!("/{item}/user/login"));
        if author.is_some() && author != sender {
            return Some(ActorRole::Collaborator);
        }
        ActorRole::from_github(&str_at(p, &format!("/{item}/author_association"))?)
    };
    match event {
        "issues" => authored("issue"),
        "pull_request" => authored("pull_request"),
        "issue_comment" | "pull_request_review_comment" | "commit_comment" => {
            ActorRole::from_github(&str_at(p, "/comment/author_association")?)
        }
        "push" | "create" | "delete" | "release" => Some(ActorRole::Collaborator),
        _ => None,
    }
}

/// Fills title, url, number, labels and summary from an issue or pull request object.
fn fill_item(e: &mut Event, item: Option<&Value>) {
    let Some(item) = item else { return };
    e.title = str_at(item, "/title");
    e.url = str_at(item, "/html_url");
    e.number = item.get("number").and_then(Value::as_i64);
    e.labels = item
        .get("labels")
        .and_then(Value::as_array)
        .map(|ls| ls.iter().filter_map(|l| str_at(l, "/name")).collect())
        .unwrap_or_default();
    e.summary = str_at(item, "/body").and_then(|b| summary_of(&b));
}

/// A push: new commits on a branch, or a branch or tag created or deleted.
fn push(e: &mut Event, p: &Value) {
    let r#ref = str_at(p, "/ref").unwrap_or_default();
    let (what, name) = if let Some(t) = r#ref.strip_prefix("refs/tags/") {
        ("tag", t)
    } else if let Some(b) = r#ref.strip_prefix("refs/heads/") {
        ("branch", b)
    } else {
        ("ref", r#ref.as_str())
    };
    let commits = p
        .get("commits")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let flag = |k: &str| p.get(k).and_then(Value::as_bool) == Some(true);
    e.title = Some(if flag("deleted") {
        format!("{what} {name} deleted")
    } else if flag("created") && commits == 0 {
        format!("{what} {name} created")
    } else {
        let s = if commits == 1 { "" } else { "s" };
        let forced = if flag("forced") { " (forced)" } else { "" };
        format!("{commits} new commit{s} on {name}{forced}")
    });
    e.url = str_at(p, "/compare").or_else(|| str_at(p, "/repository/html_url"));
    e.summary =
        str_at(p, "/head_commit/message").and_then(|m| summary_of(m.lines().next().unwrap_or("")));
    e.kind = Some(EventKind::CodePushed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_senders_relation_to_the_repository_is_known() {
        let mut p = fixture("issues.opened.json");
        let e = normalize(Some("issues"), &p);
        // The fixture's author opened the issue on their own repository.
        assert_eq!((e.actor_role, e.outsider), (Some(ActorRole::Owner), false));
        p["issue"]["author_association"] = "NONE".into();
        let e = normalize(Some("issues"), &p);
        assert_eq!(
            (e.actor_role, e.outsider),
            (Some(ActorRole::Outsider), true)
        );
        p["issue"]["author_association"] = "FIRST_TIME_CONTRIBUTOR".into();
        assert!(normalize(Some("issues"), &p).outsider);
        // A maintainer closing an outsider's issue is not an outsider.
        p["action"] = "closed".into();
        p["sender"]["login"] = "maintainer".into();
        let e = normalize(Some("issues"), &p);
        assert_eq!(
            (e.actor_role, e.outsider),
            (Some(ActorRole::Collaborator), false)
        );
    }

    fn fixture(name: &str) -> Value {
        crate::normalize::tests_support::fixture("github", name)
    }

    #[test]
    fn issue_opened_is_a_created_task() {
        let e = normalize(Some("issues"), &fixture("issues.opened.json"));
        assert_eq!(e.kind, Some(EventKind::TaskCreated));
        assert_eq!(e.native, "issues.opened");
        assert_eq!(e.project.as_deref(), Some("Codertocat/Hello-World"));
        assert_eq!(e.actor.as_deref(), Some("Codertocat"));
        assert_eq!(
            e.title.as_deref(),
            Some("Spelling error in the README file")
        );
        assert_eq!(
            e.url.as_deref(),
            Some("https://github.com/Codertocat/Hello-World/issues/1")
        );
        assert_eq!(e.number, Some(1));
    }

    #[test]
    fn labeled_issue_is_an_update_with_labels() {
        let e = normalize(Some("issues"), &fixture("issues.labeled.json"));
        assert_eq!(e.kind, Some(EventKind::TaskUpdated));
        assert!(!e.labels.is_empty());
    }

    #[test]
    fn comment_points_at_the_comment() {
        let e = normalize(
            Some("issue_comment"),
            &fixture("issue_comment.created.json"),
        );
        assert_eq!(e.kind, Some(EventKind::CommentCreated));
        assert!(e.url.as_deref().unwrap().contains("#issuecomment-"));
        assert_eq!(
            e.summary.as_deref(),
            Some("You are totally right! I'll get this fixed right away.")
        );
    }

    #[test]
    fn pull_requests_open_merge_and_close() {
        let e = normalize(Some("pull_request"), &fixture("pull_request.opened.json"));
        assert_eq!(e.kind, Some(EventKind::ChangeOpened));
        let closed = fixture("pull_request.closed.json");
        assert_eq!(
            normalize(Some("pull_request"), &closed).kind,
            Some(EventKind::ChangeClosed)
        );
        let mut merged = closed.clone();
        merged["pull_request"]["merged"] = Value::Bool(true);
        assert_eq!(
            normalize(Some("pull_request"), &merged).kind,
            Some(EventKind::ChangeMerged)
        );
    }

    #[test]
    fn push_release_and_tag() {
        let e = normalize(Some("push"), &fixture("push.json"));
        assert_eq!(e.kind, Some(EventKind::CodePushed));
        assert_eq!(e.title.as_deref(), Some("tag simple-tag deleted"));
        let e = normalize(Some("release"), &fixture("release.published.json"));
        assert_eq!(e.kind, Some(EventKind::ReleasePublished));
        assert_eq!(e.title.as_deref(), Some("0.0.1"));
        let create = serde_json::json!({"ref": "v1.2.0", "ref_type": "tag",
            "repository": {"full_name": "a/b", "html_url": "https://github.com/a/b"}});
        let e = normalize(Some("create"), &create);
        assert_eq!(e.kind, Some(EventKind::TagCreated));
        assert_eq!(e.url.as_deref(), Some("https://github.com/a/b/tree/v1.2.0"));
    }

    #[test]
    fn unknown_events_keep_their_native_name() {
        let e = normalize(Some("star"), &serde_json::json!({"action": "created"}));
        assert_eq!(e.kind, None);
        assert_eq!(e.native, "star.created");
        let e = normalize(None, &serde_json::json!(42));
        assert_eq!(e.native, "unknown");
    }
}
