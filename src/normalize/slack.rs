//! Slack-style senders (the Events API): the event is `event.type` inside an `event_callback`.
//!
//! Slack events are chat, not tracker activity, so none maps to a kind: they are routable by native name
//! (`slack:message`, `slack:app_mention`), with the message text as title and summary.

use serde_json::Value;

use crate::normalize::{Event, str_at, summary_of};

pub fn normalize(p: &Value) -> Event {
    let native = str_at(p, "/event/type")
        .or_else(|| str_at(p, "/type"))
        .unwrap_or_else(|| "unknown".to_string());
    let mut e = Event::bare("slack", native);
    e.actor = str_at(p, "/event/user");
    e.project = str_at(p, "/event/channel").or_else(|| str_at(p, "/team_id"));
    let text = str_at(p, "/event/text").and_then(|t| summary_of(&t));
    e.title = text.clone();
    e.summary = text;
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_routable_by_native_name() {
        let p = serde_json::json!({"type": "event_callback", "team_id": "T1",
            "event": {"type": "app_mention", "user": "U1", "text": "<@U0> ship it", "channel": "C1"}});
        let e = normalize(&p);
        assert_eq!(e.native, "app_mention");
        assert_eq!(e.kind, None);
        assert_eq!(e.title.as_deref(), Some("<@U0> ship it"));
    }
}
