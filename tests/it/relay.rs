//! End to end: signed webhooks in, tweets out at the fake X, exactly once.

use std::time::Duration;

use serde_json::Value;

use crate::support::fake_x::Script;
use crate::support::{TestApp, WAIT, expected_issue_tweet, fixture, issue_opened};

async fn a_signed_fixture_becomes_the_expected_tweet() {
    let app = TestApp::start().await;
    let res = app
        .github("issues", "d-1", &fixture("issues.opened.json"))
        .await;
    assert_eq!(res.status(), 202);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["duplicate"], false);
    assert!(body["id"].as_str().is_some_and(|id| !id.is_empty()));

    let tweets = app.x.wait_for_tweets(1, WAIT).await;
    assert_eq!(
        tweets,
        vec![expected_issue_tweet("Spelling error in the README file")]
    );
    assert!(
        app.x.seen().iter().all(|s| s.signature_ok),
        "every request carried a valid OAuth 1.0a signature"
    );
    app.stop().await;
}

#[tokio::test]
async fn every_github_fixture_posts_its_own_text() {
    let app = TestApp::start().await;
    let cases = [
        (
            "issue_comment",
            "issue_comment.created.json",
            "Codertocat/Hello-World: Codertocat commented on #1 Spelling error in the README file: “You are totally right! I'll get this fixed right away.” https://github.com/Codertocat/Hello-World/issues/1#issuecomment-492700400",
        ),
        (
            "pull_request",
            "pull_request.opened.json",
            "Codertocat/Hello-World: Codertocat opened PR #2 Update the README with new information. https://github.com/Codertocat/Hello-World/pull/2",
        ),
        (
            "push",
            "push.json",
            "Codertocat/Hello-World: tag simple-tag deleted by Codertocat https://github.com/Codertocat/Hello-World/compare/6113728f27ae...000000000000",
        ),
        (
            "release",
            "release.published.json",
            "Codertocat/Hello-World 0.0.1 released https://github.com/Codertocat/Hello-World/releases/tag/0.0.1",
        ),
    ];
    for (i, (event, file, _)) in cases.iter().enumerate() {
        let res = app.github(event, &format!("d-{i}"), &fixture(file)).await;
        assert_eq!(res.status(), 202, "{file}");
    }
    let mut tweets = app.x.wait_for_tweets(cases.len(), WAIT).await;
    let mut expected: Vec<String> = cases.iter().map(|c| c.2.to_string()).collect();
    tweets.sort();
    expected.sort();
    assert_eq!(tweets, expected);
    app.stop().await;
}

#[tokio::test]
async fn a_forged_signature_gets_401_and_nothing_is_stored_or_posted() {
    let app = TestApp::start().await;
    let body = issue_opened("forged");
    let res = app
        .http
        .post(app.url("/hooks/gh"))
        .header("x-github-event", "issues")
        .header("x-github-delivery", "forged-1")
        .header(
            "x-hub-signature-256",
            crate::support::github_signature("not the secret", &body),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"], "signature does not match");

    // Missing header: 401 naming it.
    let res = app
        .http
        .post(app.url("/hooks/gh"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "missing x-hub-signature-256 header"
    );

    // A genuine delivery afterwards is the only thing stored and posted.
    app.accept_issue("real-1", "real").await;
    app.x.wait_for_tweets(1, WAIT).await;
    assert_eq!(app.x.tweets(), vec![expected_issue_tweet("real")]);
    assert_eq!(app.sql_count("SELECT count(*) FROM deliveries"), 1);
    app.stop().await;
}

async fn a_repeated_delivery_posts_once() {
    let app = TestApp::start().await;
    let body = issue_opened("once");
    let first = app.github("issues", "same-id", &body).await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let again = app.github("issues", "same-id", &body).await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["id"], first["id"]);
    // GitHub's delivery id is not signed: the same body under a new id is a replay, caught by its hash.
    let replay = app.github("issues", "other-id", &body).await;
    assert_eq!(replay.status(), 200);
    assert_eq!(replay.json::<Value>().await.unwrap()["duplicate"], true);

    // A later distinct delivery is posted; by then the duplicates would have been too.
    app.accept_issue("next", "next").await;
    let tweets = app.x.wait_for_tweets(2, WAIT).await;
    assert_eq!(
        tweets,
        vec![expected_issue_tweet("once"), expected_issue_tweet("next")]
    );
    assert_eq!(app.sql_count("SELECT count(*) FROM outbox"), 2);
    app.stop().await;
}

async fn duplicate_content_403_counts_as_sent() {
    let app = TestApp::start().await;
    app.x.preload(&expected_issue_tweet("already there"));
    app.accept_issue("d", "already there").await;
    app.x.wait_for_requests("/2/tweets", 1, WAIT).await;
    wait_for_state(&app, "sent", 1).await;
    assert_eq!(app.x.tweets().len(), 1, "the fake still holds one copy");
    assert_eq!(
        app.sql_count("SELECT count(*) FROM outbox WHERE last_error LIKE '%duplicate%'"),
        1
    );
    app.stop().await;
}

async fn server_errors_and_timeouts_are_retried_until_sent() {
    let app = TestApp::start().await;
    app.x.script(Script::Answer {
        status: 503,
        headers: vec![],
        body: r#"{"title":"Service Unavailable","detail":"Service Unavailable","type":"about:blank","status":503}"#.into(),
    });
    app.x.script(Script::Answer {
        status: 500,
        headers: vec![],
        body: "oops".into(),
    });
    app.accept_issue("d", "eventually").await;
    let tweets = app.x.wait_for_tweets(1, WAIT).await;
    assert_eq!(tweets, vec![expected_issue_tweet("eventually")]);
    assert_eq!(
        app.x
            .seen()
            .iter()
            .filter(|s| s.path == "/2/tweets")
            .count(),
        3
    );
    wait_for_state(&app, "sent", 1).await;
    assert_eq!(app.sql_count("SELECT attempts FROM outbox"), 3);
    app.stop().await;
}

#[tokio::test]
async fn request_errors_are_dead_lettered_with_the_reason() {
    let app = TestApp::start().await;
    app.x.script(Script::Answer {
        status: 400,
        headers: vec![],
        body: r#"{"title":"Invalid Request","detail":"One or more parameters to your request was invalid.","type":"https://api.x.com/2/problems/invalid-request"}"#.into(),
    });
    app.accept_issue("bad", "refused").await;
    wait_for_state(&app, "dead", 1).await;
    assert_eq!(
        app.sql_count("SELECT count(*) FROM outbox WHERE state = 'dead' AND last_error = 'X answered 400: One or more parameters to your request was invalid.'"),
        1
    );
    // The destination keeps working for the next item.
    app.accept_issue("good", "fine").await;
    assert_eq!(
        app.x.wait_for_tweets(1, WAIT).await,
        vec![expected_issue_tweet("fine")]
    );
    app.stop().await;
}

async fn after_a_429_nothing_is_sent_before_the_reset() {
    let app = TestApp::start().await;
    let reset_secs = chirpd::clock::now_ms() / 1000 + 2;
    app.x.script(Script::Answer {
        status: 429,
        headers: vec![
            ("x-rate-limit-limit".into(), "100".into()),
            ("x-rate-limit-remaining".into(), "0".into()),
            ("x-rate-limit-reset".into(), reset_secs.to_string()),
        ],
        body: r#"{"title":"Too Many Requests","detail":"Too Many Requests","type":"about:blank","status":429}"#.into(),
    });
    app.accept_issue("a", "first").await;
    app.accept_issue("b", "second").await;
    let tweets = app.x.wait_for_tweets(2, WAIT).await;
    assert_eq!(tweets.len(), 2);
    let posts = app.x.wait_for_requests("/2/tweets", 3, WAIT).await;
    let reset_ms = reset_secs * 1000;
    for later in &posts[1..] {
        assert!(
            later.at_unix_ms >= reset_ms,
            "a request at {} came before the reset {reset_ms}",
            later.at_unix_ms
        );
    }
    // The 429 did not count as a failed attempt.
    assert_eq!(app.sql_count("SELECT max(attempts) FROM outbox"), 1);
    app.stop().await;
}

async fn own_limits_hold_posts_across_a_restart() {
    let app = TestApp::start_with(r#"limits = ["1/1h"]"#).await;
    app.accept_issue("a", "one").await;
    app.x.wait_for_tweets(1, WAIT).await;
    app.accept_issue("b", "two").await;
    app.wait_sql("SELECT count(*) FROM outbox WHERE state = 'pending'", 1)
        .await;
    let (dir, x) = app.stop().await;
    let app = TestApp::start_in(dir, x, r#"limits = ["1/1h"]"#).await;
    // The daemon is up and has looked at its queue; the window is still spent, so nothing goes out.
    let ready: Value = app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["ready"], true);
    wait_for_hold(&app, "team").await;
    assert_eq!(app.x.tweets().len(), 1);
    assert_eq!(
        app.sql_count("SELECT count(*) FROM outbox WHERE state = 'pending'"),
        1
    );
    app.stop().await;
}

#[tokio::test]
async fn a_public_account_gets_no_tweet_until_it_is_protected() {
    let app = TestApp::start().await;
    app.x.set_protected(false);
    app.accept_issue("a", "private news").await;
    // The guard asked X and holds the tweet; /readyz says why.
    app.x.wait_for_requests("/2/users/me", 1, WAIT).await;
    let ready = poll_ready(&app, false).await;
    assert!(
        ready["reasons"][0]
            .as_str()
            .unwrap()
            .contains("account is public"),
        "{ready}"
    );
    assert!(app.x.tweets().is_empty());
    app.x.set_protected(true);
    assert_eq!(
        app.x.wait_for_tweets(1, WAIT).await,
        vec![expected_issue_tweet("private news")]
    );
    poll_ready(&app, true).await;
    app.stop().await;
}

#[tokio::test]
async fn dry_run_records_without_calling_x() {
    let app = TestApp::start_with("dry_run = true").await;
    app.accept_issue("a", "rehearsal").await;
    wait_for_state(&app, "sent", 1).await;
    assert!(
        app.x.seen().is_empty(),
        "dry run made a request: {:?}",
        app.x.seen()
    );
    app.stop().await;
}

#[tokio::test]
async fn a_template_error_posts_nothing_for_that_route_and_is_recorded() {
    let x = crate::support::fake_x::FakeX::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("chirpd.db");
    let mut text = crate::support::config_toml(&store, &x.url, "");
    text.push_str(
        r#"
[[routes]]
source = "gh"
events = ["task.created"]
to = ["team"]
template = "{{ payload.issue.no_such_field.deeper }}"
"#,
    );
    let path = dir.path().join("chirpd.toml");
    std::fs::write(&path, text).unwrap();
    let cfg = chirpd::config::load(Some(&path), &chirpd::config::ProcessEnv).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let control = chirpd::app::Control::default();
    let handle = tokio::spawn(chirpd::app::run(cfg, listener, control.clone()));
    let body = issue_opened("broken");
    let res = reqwest::Client::new()
        .post(format!("http://{addr}/hooks/gh"))
        .header("x-github-event", "issues")
        .header("x-github-delivery", "t")
        .header(
            "x-hub-signature-256",
            crate::support::github_signature(crate::support::SECRET, &body),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    // The good route still posts; the broken one's error is kept on the delivery with file:line.
    assert_eq!(
        x.wait_for_tweets(1, WAIT).await,
        vec![expected_issue_tweet("broken")]
    );
    let err: String = rusqlite::Connection::open(&store)
        .unwrap()
        .query_row("SELECT error FROM deliveries", [], |r| r.get(0))
        .unwrap();
    assert!(
        err.contains("chirpd.toml:") && err.contains("undefined"),
        "{err}"
    );
    control.shutdown.cancel();
    handle.await.unwrap().unwrap();
}

async fn wait_for_state(app: &TestApp, state: &str, n: i64) {
    app.wait_sql(
        &format!("SELECT count(*) FROM outbox WHERE state = '{state}'"),
        n,
    )
    .await;
}

async fn wait_for_hold(app: &TestApp, destination: &str) {
    let start = std::time::Instant::now();
    loop {
        let ready: Value = app
            .http
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if ready["holds"].get(destination).is_some() {
            return;
        }
        assert!(start.elapsed() < WAIT, "no hold on {destination}: {ready}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn poll_ready(app: &TestApp, want: bool) -> Value {
    let start = std::time::Instant::now();
    loop {
        let res = app.http.get(app.url("/readyz")).send().await.unwrap();
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap();
        if body["ready"] == want {
            assert_eq!(status, if want { 200 } else { 503 });
            return body;
        }
        assert!(start.elapsed() < WAIT, "readyz never became {want}: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The outbound fault matrix: each fault, then the same expectations — nothing lost, nothing posted twice.
#[tokio::test]
async fn outbound_faults_lose_nothing_and_post_nothing_twice() {
    let faults: Vec<(&str, Vec<Script>)> = vec![
        (
            "502",
            vec![Script::Answer {
                status: 502,
                headers: vec![],
                body: "<html>Bad Gateway</html>".into(),
            }],
        ),
        ("timeout before X created the post", vec![Script::Hang]),
        (
            "timeout after X created the post",
            vec![Script::CreateThenHang],
        ),
        ("connection dropped before creating", vec![Script::Drop]),
        (
            "connection dropped after creating",
            vec![Script::CreateThenDrop],
        ),
        (
            "slow answer",
            vec![Script::Delay(Duration::from_millis(1500))],
        ),
        (
            "two failures in a row",
            vec![
                Script::Drop,
                Script::Answer {
                    status: 503,
                    headers: vec![],
                    body: "{}".into(),
                },
            ],
        ),
    ];
    for (name, scripts) in faults {
        let app = TestApp::start().await;
        for s in scripts {
            app.x.script(s);
        }
        assert_eq!(
            app.github("issues", "f", &issue_opened(name))
                .await
                .status(),
            202,
            "{name}"
        );
        wait_for_state(&app, "sent", 1).await;
        assert_eq!(app.x.tweets(), vec![expected_issue_tweet(name)], "{name}");
        assert_eq!(
            app.sql_count("SELECT count(*) FROM outbox WHERE state <> 'sent'"),
            0,
            "{name}"
        );
        app.stop().await;
    }
}

crate::on_both_stores!(
    a_signed_fixture_becomes_the_expected_tweet,
    a_repeated_delivery_posts_once,
    duplicate_content_403_counts_as_sent,
    server_errors_and_timeouts_are_retried_until_sent,
    after_a_429_nothing_is_sent_before_the_reset,
    own_limits_hold_posts_across_a_restart,
);
