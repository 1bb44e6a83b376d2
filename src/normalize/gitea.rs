//! Gitea, Forgejo and Gogs: their payloads follow GitHub's shapes, so GitHub's mapping applies, with their
//! own provider name and their push links (`compare_url`).

use serde_json::Value;

use crate::normalize::{Event, github, str_at};

pub fn normalize(provider: &'static str, event: Option<&str>, p: &Value) -> Event {
    let mut e = github::normalize(event, p);
    e.provider = provider;
    // Gitea names the actor `login` like GitHub, Gogs names it `username`.
    e.actor = e.actor.or_else(|| str_at(p, "/sender/username"));
    if event == Some("push") {
        e.url = str_at(p, "/compare_url").or(e.url);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::EventKind;
    use crate::normalize::tests_support::fixture;

    #[test]
    fn gitea_payloads_map_like_github_under_their_own_name() {
        let e = normalize(
            "gitea",
            Some("issues"),
            &fixture("gitea", "issues-opened.json"),
        );
        assert_eq!(
            (e.kind, e.provider, e.native.as_str()),
            (Some(EventKind::TaskCreated), "gitea", "issues.opened")
        );
        assert_eq!(e.title.as_deref(), Some("example"));
        let e = normalize(
            "forgejo",
            Some("pull_request"),
            &fixture("gitea", "pull_request-opened.json"),
        );
        assert_eq!(
            (e.kind, e.provider),
            (Some(EventKind::ChangeOpened), "forgejo")
        );
        let e = normalize("gitea", Some("push"), &fixture("gitea", "push.json"));
        assert_eq!(e.kind, Some(EventKind::CodePushed));
        assert!(e.url.unwrap().contains("/compare/"));
        let e = normalize(
            "gitea",
            Some("release"),
            &fixture("gitea", "release-published.json"),
        );
        assert_eq!(e.kind, Some(EventKind::ReleasePublished));
    }
}
