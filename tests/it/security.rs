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

/// A config with the test's usual source, destination and routes, and these `[server]` lines.
fn with_server(dir: &tempfile::TempDir, x: &crate::support::fake_x::FakeX, lines: &str) -> String {
    crate::support::config_toml(&dir.path().join("chirpd.db"), &x.url, "")
        .replace("[server]\n", &format!("[server]\n{lines}\n"))
}

const SIGNED: &str = "X-Hub-Signature-256: sha256=0000000000000000000000000000000000000000000000000000000000000000\r\n";

#[tokio::test]
async fn an_unsigned_body_is_refused_before_it_is_read() {
    let app = TestApp::start().await;
    let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    // Headers only: a 60 KB body is announced but never sent. Without a signature header, the answer
    // must not wait for it.
    tokio::io::AsyncWriteExt::write_all(
        &mut s,
        b"POST /hooks/gh HTTP/1.1\r\nHost: t\r\nContent-Length: 60000\r\nX-GitHub-Event: issues\r\n\r\n",
    )
    .await
    .unwrap();
    let answer = crate::ingress::read_answer(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(
        answer.contains("missing x-hub-signature-256 header"),
        "{answer}"
    );
    app.stop().await;
}

#[tokio::test]
async fn bodies_in_memory_share_one_budget_and_the_excess_is_told_to_retry() {
    let x = crate::support::fake_x::FakeX::start().await;
    let dir = tempfile::tempdir().unwrap();
    // A 1 MiB budget: one request announcing 900 KB holds most of it while its body trickles in.
    let text = with_server(&dir, &x, "max_buffered_mb = 1\n")
        .replace("max_body_bytes = 65536", "max_body_bytes = 1048576")
        .replace("body_timeout = \"300ms\"", "body_timeout = \"30s\"");
    let app = TestApp::start_text(dir, x, &text).await;
    let mut holder = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut holder,
        format!("POST /hooks/gh HTTP/1.1\r\nHost: t\r\nContent-Length: 900000\r\n{SIGNED}\r\n{{")
            .as_bytes(),
    )
    .await
    .unwrap();
    // The next one cannot reserve room: 503 at once, before its body.
    let start = std::time::Instant::now();
    let mut refused = None;
    while refused.is_none() {
        let res = app
            .http
            .post(app.url("/hooks/gh"))
            .header("x-github-event", "issues")
            .header("x-github-delivery", "second")
            .header(
                "x-hub-signature-256",
                crate::support::github_signature(crate::support::SECRET, &[b'x'; 200_000]),
            )
            .body(vec![b'x'; 200_000])
            .send()
            .await
            .unwrap();
        if res.status() == 503 {
            refused = Some(res.json::<serde_json::Value>().await.unwrap());
        } else {
            // The holder's request may not have reached the handler yet.
            assert!(start.elapsed() < WAIT, "never refused: {}", res.status());
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    assert_eq!(
        refused.unwrap()["error"],
        "too many requests in flight; retry later"
    );
    drop(holder);
    // With the holder gone, a real delivery goes through again.
    let start = std::time::Instant::now();
    loop {
        let status = app
            .github("issues", "after", &crate::support::issue_opened("after"))
            .await
            .status();
        if status == 202 {
            break;
        }
        assert!(start.elapsed() < WAIT, "still {status}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn connections_over_the_cap_are_answered_503_not_left_waiting() {
    let x = crate::support::fake_x::FakeX::start().await;
    let dir = tempfile::tempdir().unwrap();
    let text = with_server(&dir, &x, "max_connections = 2\n")
        .replace("header_timeout = \"300ms\"", "header_timeout = \"30s\"");
    let app = TestApp::start_text(dir, x, &text).await;
    // Two slow clients hold both connections.
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut s, b"GET /healthz HTTP/1.1\r\n")
            .await
            .unwrap();
        slow.push(s);
    }
    let start = std::time::Instant::now();
    loop {
        let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut s, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let answer = crate::ingress::read_answer(&mut s).await;
        if answer.starts_with("HTTP/1.1 503") {
            assert!(answer.contains("too many connections"), "{answer}");
            break;
        }
        // Until both slow clients are accepted, the probe may still get in.
        assert!(start.elapsed() < WAIT, "{answer}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    drop(slow);
    app.stop().await;
}
