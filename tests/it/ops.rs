//! Operations: reload with a valid and an invalid config, metrics that move, the queue CLI against a live
//! store, and graceful shutdown with a send in flight.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::fake_x::Script;
use crate::support::{TestApp, WAIT, expected_issue_tweet};

async fn ready(app: &TestApp) -> Value {
    app.http
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn wait_until<F: Fn(&Value) -> bool>(app: &TestApp, what: &str, ok: F) -> Value {
    let start = Instant::now();
    loop {
        let r = ready(app).await;
        if ok(&r) {
            return r;
        }
        assert!(start.elapsed() < WAIT, "{what}: {r}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_valid_reload_applies_the_new_routes_and_an_invalid_one_changes_nothing() {
    let app = TestApp::start().await;
    assert_eq!(ready(&app).await["routes"], 5);
    let original = std::fs::read_to_string(&app.config_path).unwrap();

    // An invalid file: the daemon keeps running the previous config.
    std::fs::write(
        &app.config_path,
        original.replace("events = [\"code.pushed\"]", "events = [\"code.push\"]"),
    )
    .unwrap();
    app.control.reload.notify_one();
    app.accept_issue("a", "before").await;
    assert_eq!(
        app.x.wait_for_tweets(1, WAIT).await,
        vec![expected_issue_tweet("before")]
    );
    let r = ready(&app).await;
    assert_eq!(
        (r["ready"].clone(), r["routes"].clone()),
        (Value::Bool(true), 5.into())
    );

    // A valid file with one more route, posting a second text for new tasks.
    let extra = "\n[[routes]]\nsource = \"gh\"\nevents = [\"task.created\"]\nto = [\"team\"]\ntemplate = \"New task: {{ event.title }}\"\n";
    std::fs::write(&app.config_path, format!("{original}{extra}")).unwrap();
    app.control.reload.notify_one();
    wait_until(&app, "the reload was not applied", |r| r["routes"] == 6).await;
    app.accept_issue("b", "after").await;
    let mut tweets = app.x.wait_for_tweets(3, WAIT).await;
    tweets.sort();
    assert_eq!(
        tweets,
        vec![
            expected_issue_tweet("after"),
            expected_issue_tweet("before"),
            "New task: after".to_string()
        ]
    );
    app.stop().await;
}

/// The value of a counter or gauge line in Prometheus text, 0 when absent.
fn metric(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_are_exposed_and_move() {
    let app = TestApp::start().await;
    let scrape = || async {
        app.http
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let before = scrape().await;
    let accepted = r#"chirpd_webhooks_total{source="gh",outcome="accepted"}"#;
    let refused = r#"chirpd_webhooks_total{source="gh",outcome="unauthorized"}"#;
    let sent = r#"chirpd_posts_total{destination="team",outcome="sent"}"#;
    app.accept_issue("m1", "measured").await;
    let forged = app
        .http
        .post(app.url("/hooks/gh"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    app.x.wait_for_tweets(1, WAIT).await;
    // The recorder is process-wide and other tests run beside this one, so compare with the first scrape.
    let start = Instant::now();
    loop {
        let after = scrape().await;
        if metric(&after, sent) > metric(&before, sent) {
            assert!(
                metric(&after, accepted) >= metric(&before, accepted) + 1.0,
                "{after}"
            );
            assert!(
                metric(&after, refused) >= metric(&before, refused) + 1.0,
                "{after}"
            );
            assert!(
                after.contains("chirpd_webhook_duration_seconds_bucket"),
                "{after}"
            );
            assert!(
                after.contains("chirpd_store_commit_seconds_bucket"),
                "{after}"
            );
            assert!(
                after.contains(r#"chirpd_queue_items{state="sent"}"#),
                "{after}"
            );
            assert!(
                after.contains(r#"chirpd_rate_limit_remaining{destination="team"}"#),
                "{after}"
            );
            break;
        }
        assert!(
            start.elapsed() < WAIT,
            "chirpd_posts_total did not move: {after}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Retention publishes the store's size after each pass, the first at start.
    let start = Instant::now();
    loop {
        let now = scrape().await;
        if now.contains("chirpd_store_bytes ") {
            break;
        }
        assert!(start.elapsed() < WAIT, "no chirpd_store_bytes: {now}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.stop().await;
}

fn queue(app: &TestApp, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chirpd"))
        .arg("queue")
        .arg("--config")
        .arg(&app.config_path)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn items(app: &TestApp) -> Vec<Value> {
    let (ok, text) = queue(app, &["list", "--json"]);
    assert!(ok, "{text}");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Polls `queue list` until an item is in `state`, and returns it.
async fn wait_item(app: &TestApp, state: &str) -> Value {
    let start = Instant::now();
    loop {
        if let Some(i) = items(app).into_iter().find(|i| i["state"] == state) {
            return i;
        }
        assert!(start.elapsed() < WAIT, "no {state} item");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_item_state(app: &TestApp, id: &str, state: &str) {
    let start = Instant::now();
    loop {
        let (ok, text) = queue(app, &["show", id]);
        assert!(ok, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        if v["state"] == state {
            return;
        }
        assert!(
            start.elapsed() < WAIT,
            "item {id} never became {state}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn the_queue_cli_repairs_a_live_store() {
    // Three requests an hour: the refused attempt, its retry and one more post; a fourth must wait.
    let app = TestApp::start_with(r#"limits = ["3/1h"]"#).await;
    // A dead item: X refused it once.
    app.x.script(Script::Answer {
        status: 400,
        headers: vec![],
        body: r#"{"title":"Invalid Request","detail":"temporarily broken","type":"about:blank"}"#
            .into(),
    });
    app.accept_issue("q1", "first try").await;
    let dead = wait_item(&app, "dead").await;
    assert_eq!(dead["last_error"], "X answered 400: temporarily broken");
    let (ok, table) = queue(&app, &["list"]);
    assert!(
        ok && table.starts_with("ID") && table.contains("dead"),
        "{table}"
    );

    // Retry: sent on the running daemon's next look at its queue.
    let id = dead["id"].as_str().unwrap().to_string();
    let (ok, text) = queue(&app, &["retry", &id]);
    assert!(ok, "{text}");
    assert_eq!(
        app.x.wait_for_tweets(1, WAIT).await,
        vec![expected_issue_tweet("first try")]
    );
    wait_item_state(&app, &id, "sent").await;
    // A sent item is never retried.
    let (ok, text) = queue(&app, &["retry", &id]);
    assert!(!ok && text.contains("never retried"), "{text}");

    // The second request of the window posts; the third waits for the window and is dropped.
    app.accept_issue("q2", "second").await;
    app.x.wait_for_tweets(2, WAIT).await;
    app.accept_issue("q3", "never").await;
    let held = wait_item(&app, "pending").await;
    let held_id = held["id"].as_str().unwrap().to_string();
    let (ok, text) = queue(&app, &["drop", &held_id]);
    assert!(ok, "{text}");
    wait_item_state(&app, &held_id, "dead").await;

    // Replay plans the delivery again: its dead item is replaced by a new pending one.
    let delivery = held["delivery"].as_str().unwrap().to_string();
    let (ok, text) = queue(&app, &["replay", &delivery]);
    assert!(ok && text.contains("1 dead item(s) replaced"), "{text}");
    let start = Instant::now();
    loop {
        let all = items(&app);
        let of_delivery: Vec<&Value> = all
            .iter()
            .filter(|i| i["delivery"] == delivery.as_str())
            .collect();
        if of_delivery.len() == 1
            && of_delivery[0]["state"] == "pending"
            && of_delivery[0]["id"] != held_id.as_str()
        {
            break;
        }
        assert!(start.elapsed() < WAIT, "replay did not re-plan: {all:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.x.tweets().len(),
        2,
        "the window is still spent: nothing more was posted"
    );
    app.stop().await;
}

async fn shutdown_waits_for_the_send_in_flight_and_nothing_is_posted_twice() {
    let app = TestApp::start().await;
    app.x.script(Script::Delay(Duration::from_millis(800)));
    app.accept_issue("s1", "in flight").await;
    app.x.wait_for_requests("/2/tweets", 1, WAIT).await;
    // Stop while X has not answered yet: the send completes before the daemon returns.
    let (dir, x) = app.stop().await;
    assert_eq!(x.tweets(), vec![expected_issue_tweet("in flight")]);
    let store = dir.path().join("chirpd.db");
    assert_eq!(
        crate::support::sql_count(&store, "SELECT count(*) FROM outbox WHERE state = 'sent'"),
        1
    );
    // A restart finds nothing to send again.
    let app = TestApp::start_in(dir, x, "").await;
    app.accept_issue("s2", "next").await;
    assert_eq!(
        app.x.wait_for_tweets(2, WAIT).await,
        vec![
            expected_issue_tweet("in flight"),
            expected_issue_tweet("next")
        ]
    );
    assert_eq!(
        app.x
            .seen()
            .iter()
            .filter(|s| s.path == "/2/tweets")
            .count(),
        2
    );
    app.stop().await;
}

async fn a_person_approves_an_edited_item_and_rejects_another_from_the_command_line() {
    let app = TestApp::start_with("review = true\n").await;
    app.accept_issue("r1", "to approve").await;
    let first = wait_item(&app, "review").await;
    app.accept_issue("r2", "to reject").await;
    let start = Instant::now();
    let second = loop {
        let waiting: Vec<Value> = items(&app)
            .into_iter()
            .filter(|i| i["state"] == "review" && i["id"] != first["id"])
            .collect();
        if let Some(i) = waiting.into_iter().next() {
            break i;
        }
        assert!(
            start.elapsed() < WAIT,
            "the second item never waited for review"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Waiting is not sending.
    assert!(app.x.tweets().is_empty());
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("chirpd_review_waiting 2"), "{metrics}");

    let id = first["id"].as_str().unwrap();
    let (ok, text) = queue(
        &app,
        &["approve", id, "--text", "A person wrote this instead"],
    );
    assert!(ok && text.contains("approved"), "{text}");
    assert_eq!(
        app.x.wait_for_tweets(1, WAIT).await,
        vec!["A person wrote this instead".to_string()]
    );
    wait_item_state(&app, id, "sent").await;
    let (ok, shown) = queue(&app, &["show", id]);
    assert!(ok, "{shown}");
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["decision"], "edited");
    assert!(
        shown["decided_by"].as_str().unwrap().starts_with("cli:"),
        "{shown}"
    );

    let other = second["id"].as_str().unwrap();
    let (ok, text) = queue(&app, &["reject", other]);
    assert!(ok && text.contains("never be sent"), "{text}");
    wait_item_state(&app, other, "rejected").await;
    // A decision is final, and a rejected item is never sent.
    let (ok, text) = queue(&app, &["approve", other]);
    assert!(!ok && text.contains("under review"), "{text}");
    app.accept_issue("r3", "after").await;
    wait_item(&app, "review").await;
    assert_eq!(app.x.tweets().len(), 1);
    app.stop().await;
}

crate::on_both_stores!(
    a_person_approves_an_edited_item_and_rejects_another_from_the_command_line,
    a_valid_reload_applies_the_new_routes_and_an_invalid_one_changes_nothing,
    the_queue_cli_repairs_a_live_store,
    shutdown_waits_for_the_send_in_flight_and_nothing_is_posted_twice,
);
