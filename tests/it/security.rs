//! Attacks from outside, against the real daemon: what an outsider can make chirpd say.

use crate::support::{TestApp, WAIT};

/// Every live entity X would see in `text`, by twitter-text's own extractor.
fn entities(text: &str) -> Vec<String> {
    let e = chirpd::render::fit::extractor();
    let mut found = e.extract_urls(text);
    found.extend(
        e.extract_mentioned_screennames(text)
            .into_iter()
            .map(|m| format!("@{m}")),
    );
    found.extend(
        e.extract_hashtags(text)
            .into_iter()
            .map(|h| format!("#{h}")),
    );
    found.extend(
        e.extract_cashtags(text)
            .into_iter()
            .map(|c| format!("${c}")),
    );
    found
}

#[tokio::test]
async fn an_outsiders_issue_title_cannot_mention_tag_or_link_from_the_team_account() {
    let app = TestApp::start().await;
    let mentions: String = (0..30).map(|i| format!("@user{i} ")).collect();
    let titles = [
        "Great deal: buy $TSLA now at https://evil.example/x and tell @nasa".to_string(),
        format!("{mentions}look at this"),
        "＠elonmusk #crypto giveaway at evil.com/claim".to_string(),
    ];
    for (i, title) in titles.iter().enumerate() {
        app.accept_issue(format!("attack-{i}"), title).await;
    }
    let tweets = app.x.wait_for_tweets(titles.len(), WAIT).await;
    for t in &tweets {
        assert!(chirpd::render::fit::weighted_length(t) <= 280, "{t}");
        // The only entity left is the event's own link on GitHub, which the template put there.
        assert_eq!(
            entities(t),
            vec!["https://github.com/Codertocat/Hello-World/issues/1".to_string()],
            "{t}"
        );
    }
    // The words are still there for a reader.
    assert!(
        tweets
            .iter()
            .any(|t| t.contains("TSLA") && t.contains("nasa"))
    );
    app.stop().await;
}

#[tokio::test]
async fn an_outsiders_issue_is_not_posted_where_the_route_says_so() {
    let x = crate::support::fake_x::FakeX::start().await;
    let dir = tempfile::tempdir().unwrap();
    let text = crate::support::config_with(
        &dir.path().join("chirpd.db"),
        &crate::support::x_team(&x.url, "require_protected = false\n"),
        "\"team\"",
    )
    .replace(
        "to = [\"team\"]",
        "when = \"not event.outsider\"\nto = [\"team\"]",
    );
    let app = TestApp::start_text(dir, x, &text).await;
    let mut outsider: serde_json::Value =
        serde_json::from_slice(&crate::support::issue_opened("buy my course")).unwrap();
    outsider["issue"]["author_association"] = "NONE".into();
    let status = app
        .github(
            "issues",
            "outsider",
            &serde_json::to_vec(&outsider).unwrap(),
        )
        .await
        .status();
    assert_eq!(
        status, 202,
        "accepted and stored, like every signed delivery"
    );
    app.accept_issue("member", "a real task").await;
    let tweets = app.x.wait_for_tweets(1, WAIT).await;
    assert_eq!(
        tweets,
        vec![crate::support::expected_issue_tweet("a real task")]
    );
    // Both were planned: the outsider's to nothing.
    app.wait_sql("SELECT count(*) FROM deliveries WHERE state = 'planned'", 2)
        .await;
    assert_eq!(app.sql_count("SELECT count(*) FROM outbox"), 1);
    app.stop().await;
}
