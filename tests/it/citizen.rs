//! A good citizen of X: digests within a daily quota, the budget, DMs, Mastodon, OAuth 2.0 rotation.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::fake_mastodon::{self, FakeMastodon};
use crate::support::fake_x::FakeX;
use crate::support::{
    TestApp, WAIT, config_with, issue_opened, oauth1_lines, sql_count, sql_text, x_team,
};

/// How many events a post stands for: a digest says "N updates", any other post is one.
fn events_in(text: &str) -> usize {
    text.split_once(" updates — ")
        .and_then(|(head, _)| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

async fn fifty_events_against_five_a_day_become_at_most_five_posts_counting_every_event() {
    let x = FakeX::start().await;
    let dest = x_team(
        &x.url,
        "limits = [\"5/24h\"]\noverflow = \"digest\"\ndigest_delay = \"1500ms\"\n",
    );
    // The account starts public, so the guard holds everything until all 50 are queued: the test does
    // not depend on how fast the requests arrive.
    x.set_protected(false);
    let app = TestApp::with_destinations(x, &dest, "\"team\"").await;
    let mut sends = Vec::new();
    for i in 0..50 {
        let body = issue_opened(&format!("event {i}"));
        let http = app.http.clone();
        let url = app.url("/hooks/gh");
        sends.push(tokio::spawn(async move {
            let sig = crate::support::github_signature(crate::support::SECRET, &body);
            http.post(url)
                .header("x-github-event", "issues")
                .header("x-github-delivery", format!("burst-{i}"))
                .header("x-hub-signature-256", sig)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for s in sends {
        assert_eq!(s.await.unwrap(), 202);
    }
    app.wait_sql("SELECT count(*) FROM outbox WHERE state = 'pending'", 50)
        .await;
    app.x.set_protected(true);
    // Every event ends up in a post: its own, or a digest's count.
    let start = Instant::now();
    loop {
        let tweets = app.x.tweets();
        let counted: usize = tweets.iter().map(|t| events_in(t)).sum();
        if counted == 50 {
            break;
        }
        assert!(
            start.elapsed() < WAIT,
            "{counted} events counted in {tweets:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let requests = app
        .x
        .seen()
        .iter()
        .filter(|s| s.path == "/2/tweets")
        .count();
    assert!(requests <= 5, "{requests} requests against a quota of 5");
    for t in app.x.tweets() {
        assert!(chirpd::render::fit::weighted_length(&t) <= 280, "{t}");
        if events_in(&t) > 1 {
            assert!(
                t.starts_with("Codertocat/Hello-World: ") && t.contains("tasks opened"),
                "{t}"
            );
        }
    }
    // The fake X counts a post before the daemon records it as sent: poll, do not read once.
    app.wait_sql(
        "SELECT count(*) FROM outbox WHERE state IN ('pending', 'retry', 'sending')",
        0,
    )
    .await;
    app.stop().await;
}

async fn a_digest_of_direct_messages_is_a_direct_message_to_its_recipient_never_a_tweet() {
    let x = FakeX::start().await;
    x.add_user("alice", "1001");
    // The last slot of the window waits digest_delay to gather the backlog: long enough that all eight
    // deliveries are planned by then even on a loaded machine (an item planned after the digest left
    // would wait for the next window).
    let dest = format!(
        "[destinations.dms]\nkind = \"x_dm\"\napi_base = \"{}\"\n{}recipients = [\"@alice\"]\nlimits = [\"2/24h\"]\noverflow = \"digest\"\ndigest_delay = \"2s\"\n",
        x.url,
        oauth1_lines()
    );
    let app = TestApp::with_destinations(x, &dest, "\"dms\"").await;
    for i in 0..8 {
        app.accept_issue(format!("private-{i}"), format!("private {i}"))
            .await;
    }
    // Every event reaches @alice, on its own or counted in a digest sent to her.
    let start = Instant::now();
    loop {
        let dms = app.x.dms();
        let counted: usize = dms.iter().map(|(_, text)| events_in(text)).sum();
        if counted == 8 {
            break;
        }
        assert!(start.elapsed() < WAIT, "{counted} events in {dms:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dms = app.x.dms();
    assert!(dms.len() <= 2, "{} DMs against a quota of 2", dms.len());
    assert!(dms.iter().all(|(to, _)| to == "1001"), "{dms:?}");
    assert!(
        app.x.seen().iter().all(|s| s.path != "/2/tweets"),
        "a private event was posted publicly: {:?}",
        app.x.tweets()
    );
    // Every digest DM that arrived is a digest item for @alice, recorded as sent.
    app.wait_sql(
        "SELECT count(*) FROM outbox WHERE delivery_id IS NULL AND recipient = '@alice' AND state = 'sent'",
        dms.iter().filter(|(_, text)| events_in(text) > 1).count() as i64,
    )
    .await;
    app.stop().await;
}

async fn an_exhausted_budget_holds_posts_and_links_go_first() {
    let x = FakeX::start().await;
    // $0.25 a month: one post with a link ($0.20), then posts without links ($0.015) fit three more.
    let dest = x_team(&x.url, "budget = 0.25\nurl_policy = \"drop_over_budget\"\n");
    let app = TestApp::with_destinations(x, &dest, "\"team\"").await;
    for i in 0..5 {
        app.accept_issue(format!("b{i}"), &format!("paid {i}"))
            .await;
        // One at a time, so that the order of spending is known.
        app.x.wait_for_tweets((i + 1).min(4), WAIT).await;
    }
    let tweets = app.x.tweets();
    assert_eq!(tweets.len(), 4, "{tweets:#?}");
    assert!(tweets[0].ends_with("https://github.com/Codertocat/Hello-World/issues/1"));
    for t in &tweets[1..] {
        assert!(
            !t.contains("https://"),
            "a link was posted over budget: {t}"
        );
    }
    // The fifth waits for next month, and /readyz says why without calling it a failure.
    let start = Instant::now();
    loop {
        let r: Value = app
            .http
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(reason) = r["holds"]["team"]["reason"].as_str() {
            assert!(reason.contains("budget"), "{reason}");
            assert_eq!(r["ready"], true);
            break;
        }
        assert!(start.elapsed() < WAIT, "{r}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let start = Instant::now();
    while app.sql_count("SELECT count(*) FROM outbox WHERE state = 'pending'") != 1 {
        assert!(
            start.elapsed() < WAIT,
            "the fifth post is not held in the queue"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.x.tweets().len(), 4);
    assert_eq!(
        app.sql_count("SELECT sum(amount_micros) FROM spend"),
        245_000
    );
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"chirpd_spend_dollars{destination="team"} 0.245"#),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn direct_messages_go_to_each_recipient_and_a_refusal_fails_only_that_one() {
    let x = FakeX::start().await;
    x.add_user("alice", "1001");
    x.add_user("refuser", "1003");
    x.refuse_dms("1003");
    let dest = format!(
        "[destinations.dms]\nkind = \"x_dm\"\napi_base = \"{}\"\n{}recipients = [\"@alice\", \"1002\", \"@refuser\", \"@nobody\"]\n",
        x.url,
        oauth1_lines()
    );
    let app = TestApp::with_destinations(x, &dest, "\"dms\"").await;
    app.accept_issue("d1", "for the team").await;
    let start = Instant::now();
    while app.sql_count("SELECT count(*) FROM outbox WHERE state IN ('sent', 'dead')") < 4 {
        assert!(start.elapsed() < WAIT, "DMs not settled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut dms = app.x.dms();
    dms.sort();
    let text = crate::support::expected_issue_tweet("for the team");
    assert_eq!(
        dms,
        vec![
            ("1001".to_string(), text.clone()),
            ("1002".to_string(), text)
        ]
    );
    assert_eq!(
        app.sql_count("SELECT count(*) FROM outbox WHERE state = 'dead' AND recipient = '@refuser' AND last_error LIKE '%cannot send messages%'"),
        1
    );
    assert_eq!(
        app.sql_count("SELECT count(*) FROM outbox WHERE state = 'dead' AND recipient = '@nobody' AND last_error = 'X has no user @nobody'"),
        1
    );
    // Usernames are resolved once: a second event looks nobody up again except the unknown one.
    let lookups = app.x.user_lookups();
    app.accept_issue("d2", "again").await;
    let start = Instant::now();
    while app.x.dms().len() < 4 {
        assert!(start.elapsed() < WAIT, "second DMs not sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // All four items of the second event settled, @nobody's last among them.
    app.wait_sql(
        "SELECT count(*) FROM outbox WHERE state IN ('sent', 'dead')",
        8,
    )
    .await;
    assert_eq!(
        app.x.user_lookups(),
        lookups + 1,
        "only @nobody is looked up again"
    );
    app.stop().await;
}

#[tokio::test]
async fn mastodon_gets_private_statuses_with_an_idempotency_key() {
    let x = FakeX::start().await;
    let m = FakeMastodon::start().await;
    let dest = format!(
        "[destinations.toot]\nkind = \"mastodon\"\ninstance = \"{}\"\ntoken = \"{}\"\n",
        m.url,
        fake_mastodon::TOKEN
    );
    let app = TestApp::with_destinations(x, &dest, "\"toot\"").await;
    let long_title = "word ".repeat(150);
    app.accept_issue("m1", &long_title).await;
    let start = Instant::now();
    while m.statuses().is_empty() {
        assert!(start.elapsed() < WAIT, "no status");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = &m.statuses()[0];
    assert_eq!(s.visibility, "private");
    assert!(chirpd::render::fit::mastodon_length(&s.text) <= 500);
    // The outsider's title is cut; the template's own words, the labels and the link stay.
    assert!(
        s.text
            .ends_with("word… [bug] https://github.com/Codertocat/Hello-World/issues/1"),
        "{}",
        s.text
    );
    let item_id = sql_text(&app.store_path, "SELECT id FROM outbox");
    assert_eq!(s.idempotency_key, item_id);
    app.stop().await;
}

// Multi-threaded: the test blocks on the child process while the fake X must keep answering it.
async fn oauth2_tokens_from_chirpd_auth_refresh_and_rotate_across_restarts() {
    let x = FakeX::start().await;
    let dir = tempfile::tempdir().unwrap();
    let dest = format!(
        "[destinations.team]\nkind = \"x\"\napi_base = \"{}\"\nauth = \"oauth2\"\nclient_id = \"test-client\"\n",
        x.url
    );
    let text = config_with(&dir.path().join("chirpd.db"), &dest, "\"team\"");
    let config = dir.path().join("chirpd.toml");
    std::fs::write(&config, &text).unwrap();

    authorize(&x, &config);
    assert_eq!(x.refresh_token().as_deref(), Some("refresh-1"));

    // The daemon posts with the stored access token.
    let app = TestApp::start_text(tempfile_dir_reuse(dir), x, &text).await;
    app.accept_issue("o1", "with oauth2").await;
    app.x.wait_for_tweets(1, WAIT).await;

    // The access token dies: a 401 makes chirpd refresh once, store the rotated tokens, and post.
    app.x.expire_access_tokens();
    app.accept_issue("o2", "after a refresh").await;
    app.x.wait_for_tweets(2, WAIT).await;
    assert_eq!(app.x.refresh_token().as_deref(), Some("refresh-2"));
    let (dir, x) = app.stop().await;

    // After a restart, only the rotated refresh token works; chirpd must have kept it.
    x.expire_access_tokens();
    let app = TestApp::start_text(dir, x, &text).await;
    app.accept_issue("o3", "after a restart").await;
    app.x.wait_for_tweets(3, WAIT).await;
    assert_eq!(app.x.refresh_token().as_deref(), Some("refresh-3"));
    assert!(
        app.x
            .seen()
            .iter()
            .filter(|s| s.path == "/2/tweets")
            .count()
            >= 3
    );
    let stored = sql_text(
        &app.store_path,
        "SELECT refresh_token FROM oauth_tokens WHERE destination = 'team'",
    );
    assert_eq!(stored, "refresh-3");
    app.stop().await;
}

/// Runs `chirpd auth x` for destination `team`: reads the printed URL, lets the fake X issue a code for
/// its PKCE challenge, and pastes the code.
fn authorize(x: &FakeX, config: &std::path::Path) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chirpd"))
        .args(["auth", "--config"])
        .arg(config)
        .args([
            "x",
            "--destination",
            "team",
            "--redirect-uri",
            &format!("http://127.0.0.1:{port}/callback"),
        ])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let url = loop {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "no authorize URL printed"
        );
        if line.starts_with("https://x.com/i/oauth2/authorize?") {
            break line.trim().to_string();
        }
    };
    assert!(
        url.contains("code_challenge_method=S256") && url.contains("offline.access"),
        "{url}"
    );
    let challenge = url
        .split("code_challenge=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_string();
    x.issue_code("the-code", &challenge);
    writeln!(child.stdin.take().unwrap(), "the-code").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

// Multi-threaded: the test blocks on the child process while the fake X must keep answering it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_close_to_expiry_are_refreshed_before_use() {
    let x = FakeX::start().await;
    // Tokens that live one minute: less than the five-minute margin, so every use refreshes first.
    x.set_token_lifetime(60);
    let dir = tempfile::tempdir().unwrap();
    let dest = format!(
        "[destinations.team]\nkind = \"x\"\napi_base = \"{}\"\nauth = \"oauth2\"\nclient_id = \"test-client\"\nrequire_protected = false\n",
        x.url
    );
    let text = config_with(&dir.path().join("chirpd.db"), &dest, "\"team\"");
    let config = dir.path().join("chirpd.toml");
    std::fs::write(&config, &text).unwrap();
    authorize(&x, &config);
    let app = TestApp::start_text(dir, x, &text).await;
    app.accept_issue("e1", "fresh token").await;
    app.x.wait_for_tweets(1, WAIT).await;
    // No request was refused: the refresh came first.
    assert!(app.x.seen().iter().all(|s| s.signature_ok));
    assert_eq!(app.x.refresh_token().as_deref(), Some("refresh-2"));
    app.stop().await;
}

/// The temp dir is moved into the app as is.
fn tempfile_dir_reuse(dir: tempfile::TempDir) -> tempfile::TempDir {
    dir
}

#[tokio::test]
async fn a_refused_refresh_token_pauses_the_destination_and_says_why() {
    let x = FakeX::start().await;
    let dest = format!(
        "[destinations.team]\nkind = \"x\"\napi_base = \"{}\"\nauth = \"oauth2\"\nclient_id = \"test-client\"\n",
        x.url
    );
    let app = TestApp::with_destinations(x, &dest, "\"team\"").await;
    // No tokens at all: held, and /readyz names the command to run.
    let start = Instant::now();
    loop {
        let r: Value = app
            .http
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if r["ready"] == false {
            let reason = r["reasons"][0].as_str().unwrap();
            assert!(
                reason.contains("chirpd auth x --destination team"),
                "{reason}"
            );
            break;
        }
        assert!(start.elapsed() < WAIT, "{r}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Webhooks are still accepted and kept meanwhile: a load balancer checking /readyz/ingress keeps
    // sending them here.
    let ingress = app
        .http
        .get(app.url("/readyz/ingress"))
        .send()
        .await
        .unwrap();
    assert_eq!(ingress.status(), 200);
    assert_eq!(
        sql_count(&app.store_path, "SELECT count(*) FROM oauth_tokens"),
        0
    );
    app.stop().await;
}

async fn quick_updates_settle_into_one_post_with_the_final_state() {
    let x = FakeX::start().await;
    let dest = x_team(&x.url, "settle = \"1s\"\n");
    let app = TestApp::with_destinations(x, &dest, "\"team\"").await;
    let with_labels = |action: &str, labels: &[&str]| {
        let mut v: Value =
            serde_json::from_slice(&crate::support::fixture("issues.opened.json")).unwrap();
        v["action"] = action.into();
        v["issue"]["labels"] = labels
            .iter()
            .map(|l| serde_json::json!({"name": l}))
            .collect();
        serde_json::to_vec(&v).unwrap()
    };
    // Opened bare, then labelled twice within the window.
    assert_eq!(
        app.github("issues", "s1", &with_labels("opened", &[]))
            .await
            .status(),
        202
    );
    assert_eq!(
        app.github("issues", "s2", &with_labels("labeled", &["bug"]))
            .await
            .status(),
        202
    );
    assert_eq!(
        app.github("issues", "s3", &with_labels("labeled", &["bug", "tweet"]))
            .await
            .status(),
        202
    );
    let tweets = app.x.wait_for_tweets(1, WAIT).await;
    assert_eq!(
        tweets,
        vec!["Codertocat/Hello-World: Codertocat opened #1 Spelling error in the README file [bug, tweet] https://github.com/Codertocat/Hello-World/issues/1".to_string()]
    );
    app.wait_sql("SELECT count(*) FROM outbox WHERE state = 'sent'", 1)
        .await;
    assert_eq!(
        app.sql_count("SELECT count(*) FROM outbox WHERE state = 'folded'"),
        2
    );
    assert_eq!(
        app.x
            .seen()
            .iter()
            .filter(|s| s.path == "/2/tweets")
            .count(),
        1
    );
    app.stop().await;
}

crate::on_both_stores!(
    fifty_events_against_five_a_day_become_at_most_five_posts_counting_every_event,
    a_digest_of_direct_messages_is_a_direct_message_to_its_recipient_never_a_tweet,
    an_exhausted_budget_holds_posts_and_links_go_first,
    oauth2_tokens_from_chirpd_auth_refresh_and_rotate_across_restarts,
    quick_updates_settle_into_one_post_with_the_final_state,
);
