//! GitLab: the body's `object_kind` names the event and `object_attributes.action` refines it.
//!
//! Issues and work items → `task.*`; notes → `comment.created`, or `image.added`/`document.added` when the
//! note is an upload; merge requests → `change.*`; pushes → `code.pushed`; new tags → `tag.created`;
//! releases → `release.published`; pipelines → `build.*`; new wiki pages → `document.added`.

use serde_json::Value;

use crate::normalize::{
    Attachment, Event, EventKind, attachment_kind, is_image, str_at, summary_of,
};

const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

pub fn normalize(p: &Value) -> Event {
    let kind = str_at(p, "/object_kind").unwrap_or_else(|| "unknown".to_string());
    let action = str_at(p, "/object_attributes/action").or_else(|| str_at(p, "/action"));
    let native = match &action {
        Some(a) => format!("{kind}.{a}"),
        None => kind.clone(),
    };
    let mut e = Event::bare("gitlab", native);
    e.project = str_at(p, "/project/path_with_namespace").or_else(|| str_at(p, "/project/name"));
    e.actor = str_at(p, "/user/username").or_else(|| str_at(p, "/user_username"));
    let action = action.as_deref().unwrap_or("");
    let attrs = p.get("object_attributes").unwrap_or(&Value::Null);
    match kind.as_str() {
        "issue" | "work_item" => {
            item(&mut e, p, attrs);
            e.kind = match action {
                "open" => Some(EventKind::TaskCreated),
                "close" => Some(EventKind::TaskCompleted),
                "reopen" => Some(EventKind::TaskReopened),
                "update" => Some(EventKind::TaskUpdated),
                _ => None,
            };
        }
        "merge_request" => {
            item(&mut e, p, attrs);
            e.kind = match action {
                "open" | "reopen" => Some(EventKind::ChangeOpened),
                "merge" => Some(EventKind::ChangeMerged),
                "close" => Some(EventKind::ChangeClosed),
                _ => None,
            };
        }
        "note" => {
            let target = ["issue", "merge_request", "snippet", "commit"]
                .into_iter()
                .find_map(|k| p.get(k).filter(|v| v.is_object()));
            if let Some(t) = target {
                e.title = str_at(t, "/title")
                    .or_else(|| str_at(t, "/message").and_then(|m| summary_of(&m)));
                e.number = t.get("iid").and_then(Value::as_i64);
            }
            e.url = str_at(attrs, "/url");
            let note = str_at(attrs, "/note").unwrap_or_default();
            e.summary = summary_of(&note);
            e.attachment = upload(&note, str_at(p, "/project/web_url").as_deref());
            e.kind = Some(match &e.attachment {
                Some(a) => attachment_kind(a),
                None => EventKind::CommentCreated,
            });
        }
        "push" => {
            let branch = str_at(p, "/ref").map(|r| r.trim_start_matches("refs/heads/").to_string());
            let branch = branch.unwrap_or_default();
            let count = p
                .get("total_commits_count")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let after = str_at(p, "/after").unwrap_or_default();
            let before = str_at(p, "/before").unwrap_or_default();
            e.title = Some(if after == ZERO_SHA {
                format!("branch {branch} deleted")
            } else if before == ZERO_SHA && count == 0 {
                format!("branch {branch} created")
            } else {
                let s = if count == 1 { "" } else { "s" };
                format!("{count} new commit{s} on {branch}")
            });
            e.url =
                str_at(p, "/project/web_url").map(|w| format!("{w}/-/compare/{before}...{after}"));
            e.summary = str_at(p, "/commits/0/message")
                .and_then(|m| summary_of(m.lines().next().unwrap_or("")));
            e.kind = Some(EventKind::CodePushed);
        }
        "tag_push" => {
            let tag = str_at(p, "/ref").map(|r| r.trim_start_matches("refs/tags/").to_string());
            e.title = tag.clone();
            e.url = match (str_at(p, "/project/web_url"), tag) {
                (Some(w), Some(t)) => Some(format!("{w}/-/tags/{t}")),
                (w, _) => w,
            };
            if str_at(p, "/before").as_deref() == Some(ZERO_SHA) {
                e.kind = Some(EventKind::TagCreated);
            }
        }
        "release" => {
            e.title = str_at(p, "/name").or_else(|| str_at(p, "/tag"));
            e.url = str_at(p, "/url");
            e.summary = str_at(p, "/description").and_then(|d| summary_of(&d));
            if action == "create" {
                e.kind = Some(EventKind::ReleasePublished);
            }
        }
        "pipeline" => {
            let id = attrs.get("id").and_then(Value::as_i64);
            e.title = Some(match (id, str_at(attrs, "/ref")) {
                (Some(id), Some(r)) => format!("pipeline #{id} on {r}"),
                (Some(id), None) => format!("pipeline #{id}"),
                _ => "pipeline".to_string(),
            });
            e.url = match (str_at(p, "/project/web_url"), id) {
                (Some(w), Some(id)) => Some(format!("{w}/-/pipelines/{id}")),
                (w, _) => w,
            };
            e.kind = match str_at(attrs, "/status").as_deref() {
                Some("success") => Some(EventKind::BuildSucceeded),
                Some("failed") => Some(EventKind::BuildFailed),
                _ => None,
            };
        }
        "wiki_page" => {
            e.title = str_at(attrs, "/title");
            e.url = str_at(attrs, "/url");
            e.summary = str_at(attrs, "/message").and_then(|m| summary_of(&m));
            if action == "create" {
                e.attachment = e.title.clone().map(|name| Attachment {
                    name,
                    url: e.url.clone(),
                    is_image: false,
                });
                e.kind = Some(EventKind::DocumentAdded);
            }
        }
        _ => {}
    }
    e
}

/// Title, URL, number, labels and summary of an issue or merge request.
fn item(e: &mut Event, p: &Value, attrs: &Value) {
    e.title = str_at(attrs, "/title");
    e.url = str_at(attrs, "/url");
    e.number = attrs.get("iid").and_then(Value::as_i64);
    e.summary = str_at(attrs, "/description").and_then(|d| summary_of(&d));
    e.labels = p
        .get("labels")
        .and_then(Value::as_array)
        .map(|ls| ls.iter().filter_map(|l| str_at(l, "/title")).collect())
        .unwrap_or_default();
}

/// A note that is an upload (`![name](/uploads/…)` or `[name](/uploads/…)`) describes the uploaded file.
fn upload(note: &str, web_url: Option<&str>) -> Option<Attachment> {
    let at = note.find("](/uploads/")?;
    let open = note[..at].rfind('[')?;
    let name = note[open + 1..at].to_string();
    let rest = &note[at + 2..];
    let path = &rest[..rest.find(')')?];
    let url = web_url.map(|w| format!("{w}{path}"));
    let file = path.rsplit('/').next().unwrap_or(&name);
    Some(Attachment {
        is_image: note[..open].ends_with('!') || is_image(file, None),
        name: if name.is_empty() {
            file.to_string()
        } else {
            name
        },
        url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::tests_support::fixture;

    #[test]
    fn issues_notes_merge_requests_pushes_and_releases() {
        let e = normalize(&fixture("gitlab", "issue-open.json"));
        assert_eq!(
            (e.kind, e.native.as_str()),
            (Some(EventKind::TaskCreated), "issue.open")
        );
        assert_eq!(e.title.as_deref(), Some("found a bug"));
        assert_eq!(e.number, Some(1));
        assert_eq!(e.project.as_deref(), Some("gitlab-org/hello-world"));
        assert_eq!(e.actor.as_deref(), Some("sytses"));

        let e = normalize(&fixture("gitlab", "note-issue.json"));
        assert_eq!(e.kind, Some(EventKind::CommentCreated));
        assert_eq!(e.summary.as_deref(), Some("bump"));
        assert_eq!(
            e.url.as_deref(),
            Some("https://gitlab.com/gitlab-org/hello-world/issues/1#note_50771783")
        );

        let e = normalize(&fixture("gitlab", "merge_request-merge.json"));
        assert_eq!(e.kind, Some(EventKind::ChangeMerged));
        assert_eq!(e.number, Some(4));

        let e = normalize(&fixture("gitlab", "push.json"));
        assert_eq!(e.kind, Some(EventKind::CodePushed));
        assert_eq!(e.title.as_deref(), Some("1 new commit on master"));
        assert_eq!(e.summary.as_deref(), Some("added readme"));

        let e = normalize(&fixture("gitlab", "release-create.json"));
        assert_eq!(e.kind, Some(EventKind::ReleasePublished));
        assert_eq!(e.title.as_deref(), Some("Awesome version 0.0.2"));
    }

    #[test]
    fn uploads_are_images_or_documents() {
        let mut p = fixture("gitlab", "note-issue.json");
        p["object_attributes"]["note"] =
            Value::String("![screenshot](/uploads/abc/shot.png)".into());
        let e = normalize(&p);
        assert_eq!(e.kind, Some(EventKind::ImageAdded));
        let a = e.attachment.unwrap();
        assert_eq!(a.name, "screenshot");
        assert_eq!(
            a.url.as_deref(),
            Some("https://gitlab.com/gitlab-org/hello-world/uploads/abc/shot.png")
        );
        p["object_attributes"]["note"] =
            Value::String("see [spec.pdf](/uploads/def/spec.pdf)".into());
        assert_eq!(normalize(&p).kind, Some(EventKind::DocumentAdded));
    }

    #[test]
    fn wiki_pages_pipelines_and_tags() {
        let wiki = serde_json::json!({"object_kind": "wiki_page", "project": {"path_with_namespace": "a/b"},
            "object_attributes": {"title": "Runbook", "url": "https://gitlab.com/a/b/-/wikis/runbook", "action": "create"}});
        let e = normalize(&wiki);
        assert_eq!(e.kind, Some(EventKind::DocumentAdded));
        assert_eq!(e.attachment.unwrap().name, "Runbook");
        let pipe = serde_json::json!({"object_kind": "pipeline", "project": {"web_url": "https://gitlab.com/a/b"},
            "object_attributes": {"id": 7, "ref": "main", "status": "failed"}});
        let e = normalize(&pipe);
        assert_eq!(e.kind, Some(EventKind::BuildFailed));
        assert_eq!(
            e.url.as_deref(),
            Some("https://gitlab.com/a/b/-/pipelines/7")
        );
        let tag = serde_json::json!({"object_kind": "tag_push", "ref": "refs/tags/v1", "before": ZERO_SHA,
            "project": {"web_url": "https://gitlab.com/a/b"}});
        assert_eq!(normalize(&tag).kind, Some(EventKind::TagCreated));
    }
}
