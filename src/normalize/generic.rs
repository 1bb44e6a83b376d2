//! Senders without a product-specific normalizer: Standard Webhooks and the generic `hmac` provider.
//!
//! The native name comes from the headers the admin named, else from the body's `type` (Standard Webhooks'
//! recommendation) or `event`. When a sender already uses chirpd's kind names (`task.created`), the kind is
//! taken as is. Common top-level fields (`project`, `actor`, `title`, `url`, `summary`) are picked up so
//! that home-grown senders can feed the same templates.

use http::HeaderMap;
use serde_json::Value;

use crate::normalize::{DeliveryMeta, Event, EventKind, header_text, str_at, summary_of};

pub fn standard_meta(headers: &HeaderMap) -> DeliveryMeta {
    DeliveryMeta {
        delivery_id: header_text(headers, "webhook-id").or_else(|| header_text(headers, "svix-id")),
        // Standard Webhooks signs `{id}.{timestamp}.{body}`, so the id cannot be forged.
        id_is_signed: true,
        event: None,
    }
}

pub fn hmac_meta(
    headers: &HeaderMap,
    delivery_header: Option<&str>,
    event_header: Option<&str>,
) -> DeliveryMeta {
    DeliveryMeta {
        delivery_id: delivery_header.and_then(|h| header_text(headers, h)),
        id_is_signed: false,
        event: event_header.and_then(|h| header_text(headers, h)),
    }
}

pub fn normalize(provider: &'static str, event: Option<&str>, p: &Value) -> Event {
    let native = event
        .map(str::to_string)
        .or_else(|| str_at(p, "/type"))
        .or_else(|| str_at(p, "/event"))
        .unwrap_or_else(|| "unknown".to_string());
    let mut e = Event::bare(provider, native);
    e.kind = EventKind::parse(&e.native);
    e.project = str_at(p, "/project").or_else(|| str_at(p, "/data/project"));
    e.actor = str_at(p, "/actor").or_else(|| str_at(p, "/data/actor"));
    e.title = str_at(p, "/title").or_else(|| str_at(p, "/data/title"));
    e.url = str_at(p, "/url").or_else(|| str_at(p, "/data/url"));
    e.summary = str_at(p, "/summary")
        .or_else(|| str_at(p, "/data/summary"))
        .and_then(|s| summary_of(&s));
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_and_common_fields_are_taken() {
        let p = serde_json::json!({"type": "task.created", "data": {"title": "Ship it", "url": "https://e.x/1"}});
        let e = normalize("standard", None, &p);
        assert_eq!(e.kind, Some(EventKind::TaskCreated));
        assert_eq!(e.title.as_deref(), Some("Ship it"));
        assert_eq!(e.url.as_deref(), Some("https://e.x/1"));
    }

    #[test]
    fn header_event_wins_and_unknown_names_stay_native() {
        let e = normalize("hmac", Some("deploy"), &serde_json::json!({"type": "x"}));
        assert_eq!(e.native, "deploy");
        assert_eq!(e.kind, None);
    }
}
