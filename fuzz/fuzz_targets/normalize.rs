//! Any bytes that parse as JSON go through every provider's normalizer and handshake check: none may panic.
#![no_main]

use chirpd::normalize::{self, DeliveryMeta, Provider};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(payload) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let providers = [
        Provider::Github, Provider::Gitlab, Provider::Gitea, Provider::Forgejo, Provider::Gogs,
        Provider::Bitbucket, Provider::Jira, Provider::Linear, Provider::Trello, Provider::Asana,
        Provider::Basecamp, Provider::Slack, Provider::Standard,
        Provider::Hmac { delivery_header: None, event_header: None },
    ];
    for p in &providers {
        for event in [None, Some("issues"), Some("push"), Some("repo:push"), Some("Issue Hook")] {
            let e = normalize::normalize(p, event, &payload);
            assert!(!e.native.is_empty());
            let _ = e.subject();
        }
        let _ = normalize::handshake(p, &DeliveryMeta::default(), &payload);
    }
});
