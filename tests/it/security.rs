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
