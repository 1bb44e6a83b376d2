//! Trello: the body's `action.type` (createCard, updateCard, commentCard, addAttachmentToCard, …).
//!
//! Cards → `task.*` ("completed" when a card is archived or moved to a list named like done); comments →
//! `comment.created`; attachments → `image.added` or `document.added`. The board is the project.

use serde_json::Value;

use crate::normalize::{
    Attachment, Event, EventKind, attachment_kind, is_image, str_at, summary_of,
};

pub fn normalize(p: &Value) -> Event {
    let ty = str_at(p, "/action/type").unwrap_or_else(|| "unknown".to_string());
    let mut e = Event::bare("trello", ty.clone());
    let data = p.pointer("/action/data").unwrap_or(&Value::Null);
    e.project = str_at(data, "/board/name").or_else(|| str_at(p, "/model/name"));
    e.actor = str_at(p, "/action/memberCreator/fullName")
        .or_else(|| str_at(p, "/action/memberCreator/username"));
    e.title = str_at(data, "/card/name");
    e.number = data.pointer("/card/idShort").and_then(Value::as_i64);
    e.url = str_at(data, "/card/shortLink").map(|s| format!("https://trello.com/c/{s}"));
    match ty.as_str() {
        "createCard" => {
            e.summary = str_at(data, "/list/name").map(|l| format!("in {l}"));
            e.kind = Some(EventKind::TaskCreated);
        }
        "updateCard" => {
            let archived = data.pointer("/card/closed").and_then(Value::as_bool) == Some(true)
                && data.pointer("/old/closed").is_some();
            let to_list = str_at(data, "/listAfter/name");
            let done_list = to_list.as_deref().is_some_and(|l| {
                let l = l.to_ascii_lowercase();
                l.contains("done") || l.contains("complete") || l.contains("finished")
            });
            e.summary = to_list.map(|l| format!("moved to {l}"));
            e.kind = Some(if archived || done_list {
                EventKind::TaskCompleted
            } else if data.pointer("/old/closed").is_some() {
                EventKind::TaskReopened
            } else {
                EventKind::TaskUpdated
            });
        }
        "deleteCard" => e.kind = Some(EventKind::TaskDeleted),
        "commentCard" => {
            e.summary = str_at(data, "/text").and_then(|t| summary_of(&t));
            e.kind = Some(EventKind::CommentCreated);
        }
        "addAttachmentToCard" => {
            let name = str_at(data, "/attachment/name").unwrap_or_default();
            let url = str_at(data, "/attachment/url");
            let a = Attachment {
                is_image: is_image(&name, str_at(data, "/attachment/mimeType").as_deref())
                    || url.as_deref().is_some_and(|u| is_image(u, None)),
                url,
                name,
            };
            e.kind = Some(attachment_kind(&a));
            e.attachment = Some(a);
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
    fn cards_and_comments() {
        let e = normalize(&fixture("trello", "createCard.json"));
        assert_eq!(e.kind, Some(EventKind::TaskCreated));
        assert_eq!(e.title.as_deref(), Some("test item"));
        assert_eq!(e.url.as_deref(), Some("https://trello.com/c/Iy3XGStt"));
        assert_eq!(e.project.as_deref(), Some("ideas"));
        assert_eq!(e.actor.as_deref(), Some("Owen Young"));
        let e = normalize(&fixture("trello", "commentCard.json"));
        assert_eq!(e.kind, Some(EventKind::CommentCreated));
        assert_eq!(e.summary.as_deref(), Some("New comment"));
    }

    #[test]
    fn archiving_or_moving_to_done_completes_and_attachments_are_typed() {
        let mut p = fixture("trello", "createCard.json");
        p["action"]["type"] = "updateCard".into();
        p["action"]["data"]["listAfter"] = serde_json::json!({"name": "Done"});
        assert_eq!(normalize(&p).kind, Some(EventKind::TaskCompleted));
        p["action"]["type"] = "addAttachmentToCard".into();
        p["action"]["data"]["attachment"] =
            serde_json::json!({"name": "mockup.png", "url": "https://trello.com/1/x/mockup.png"});
        let e = normalize(&p);
        assert_eq!(e.kind, Some(EventKind::ImageAdded));
        assert_eq!(e.attachment.unwrap().name, "mockup.png");
    }
}
