//! The real binary, killed with SIGKILL at the moments that matter, then restarted: nothing accepted is
//! lost and nothing is posted twice.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::fake_x::{FakeX, Script};
use crate::support::{
    SECRET, WAIT, config_toml, expected_issue_tweet, github_signature, issue_opened, sql_count,
};

pub struct Daemon {
    child: Child,
    pub url: String,
}

impl Daemon {
    /// Starts the binary on a free port and waits until /healthz answers.
    pub async fn start(dir: &Path, x: &FakeX) -> Daemon {
        Daemon::start_env(dir, x, &[]).await
    }

    /// Starts with extra environment variables (a failpoint).
    pub async fn start_env(dir: &Path, x: &FakeX, env: &[(&str, &str)]) -> Daemon {
        Daemon::start_with(dir, x, "", "test", env).await
    }

    /// Starts with extra keys in the `team` destination and, on PostgreSQL, the instance name given.
    pub async fn start_with(
        dir: &Path,
        x: &FakeX,
        extra_destination: &str,
        instance: &str,
        env: &[(&str, &str)],
    ) -> Daemon {
        let port = crate::support::free_port();
        let config = dir.join("chirpd.toml");
        let text = config_toml(&dir.join("chirpd.db"), &x.url, extra_destination)
            .replace(
                "listen = \"127.0.0.1:0\"",
                &format!("listen = \"127.0.0.1:{port}\""),
            )
            .replace("instance = \"test\"", &format!("instance = \"{instance}\""));
        std::fs::write(&config, text).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("chirpd.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_chirpd"))
            .args(["run", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let start = Instant::now();
        loop {
            if let Ok(r) = http.get(format!("{url}/healthz")).send().await
                && r.status() == 200
            {
                break;
            }
            assert!(
                start.elapsed() < WAIT,
                "the daemon did not come up; log: {}",
                log_of(dir)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Daemon { child, url }
    }

    async fn post_issue(&self, delivery: &str, title: &str) -> u16 {
        self.try_post_issue(delivery, title).await.unwrap()
    }

    /// Posts a delivery; `None` when the connection broke before an answer.
    pub async fn try_post_issue(&self, delivery: &str, title: &str) -> Option<u16> {
        let body = issue_opened(title);
        let res = reqwest::Client::new()
            .post(format!("{}/hooks/gh", self.url))
            .header("x-github-event", "issues")
            .header("x-github-delivery", delivery)
            .header("x-hub-signature-256", github_signature(SECRET, &body))
            .body(body)
            .send()
            .await;
        res.ok().map(|r| r.status().as_u16())
    }

    /// Waits for the process to end by itself (a failpoint aborted it), letting the fake X run meanwhile.
    async fn wait_exit(mut self) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < WAIT, "the failpoint was not reached");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The destinations this instance sends for, as `/readyz` reports them; none while it cannot answer.
    pub async fn leading(&self) -> Vec<String> {
        let Ok(r) = reqwest::Client::new()
            .get(format!("{}/readyz", self.url))
            .send()
            .await
        else {
            return Vec::new();
        };
        let v: serde_json::Value = r.json().await.unwrap_or_default();
        v["leading"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|d| d.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn sigkill(mut self) {
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        assert!(!status.success(), "SIGKILL must not look like a clean exit");
    }

    /// Sends a signal with the shell's built-in kill, so the test needs no procps package.
    fn signal(&self, name: &str) {
        let pid = self.child.id();
        let kill = Command::new("sh")
            .args(["-c", &format!("kill -{name} {pid}")])
            .status()
            .unwrap();
        assert!(kill.success());
    }

    fn sigterm(mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < WAIT, "chirpd did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn log_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("chirpd.log")).unwrap_or_default()
}

fn store(dir: &Path) -> PathBuf {
    dir.join("chirpd.db")
}

/// The store's own consistency check: SQLite's integrity check, or on PostgreSQL that every outbox item
/// belongs to a stored delivery or is a digest and no item is in an unknown state.
fn integrity(dir: &Path) -> String {
    match crate::support::backend() {
        crate::support::Backend::Sqlite => rusqlite::Connection::open(store(dir))
            .unwrap()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap(),
        crate::support::Backend::Postgres => {
            let bad = sql_count(
                &store(dir),
                "SELECT count(*) FROM outbox o WHERE (o.delivery_id IS NOT NULL AND NOT EXISTS
                     (SELECT 1 FROM deliveries d WHERE d.id = o.delivery_id))
                     OR o.state NOT IN ('pending', 'sending', 'retry', 'sent', 'dead', 'folded')",
            );
            if bad == 0 {
                "ok".into()
            } else {
                format!("{bad} bad items")
            }
        }
    }
}

async fn wait_sent(dir: &Path, n: i64) {
    let start = Instant::now();
    while sql_count(
        &store(dir),
        "SELECT count(*) FROM outbox WHERE state = 'sent'",
    ) != n
    {
        assert!(
            start.elapsed() < WAIT,
            "items not sent; log: {}",
            log_of(dir)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn killed_right_after_the_202_it_still_posts_exactly_once() {
    let x = FakeX::start().await;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &x).await;
    assert_eq!(d.post_issue("k1", "survives a kill").await, 202);
    d.sigkill();
    let d = Daemon::start(dir.path(), &x).await;
    assert_eq!(
        x.wait_for_tweets(1, WAIT).await,
        vec![expected_issue_tweet("survives a kill")]
    );
    wait_sent(dir.path(), 1).await;
    // The sender's retry after the crash is a duplicate, not a second post.
    assert_eq!(d.post_issue("k1", "survives a kill").await, 200);
    drop(d);
    assert_eq!(x.tweets().len(), 1);
    assert_eq!(integrity(dir.path()), "ok");
}

async fn killed_after_x_created_the_post_but_before_sent_was_recorded_it_posts_once() {
    let x = FakeX::start().await;
    // X creates the post and the answer never arrives: the daemon dies while the item is `sending`.
    x.script(Script::CreateThenHang);
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &x).await;
    assert_eq!(d.post_issue("k2", "posted before the crash").await, 202);
    x.wait_for_tweets(1, WAIT).await;
    assert_eq!(
        sql_count(
            &store(dir.path()),
            "SELECT count(*) FROM outbox WHERE state = 'sending'"
        ),
        1
    );
    d.sigkill();

    let _d = Daemon::start(dir.path(), &x).await;
    wait_sent(dir.path(), 1).await;
    // The restart sent the same text again; X's duplicate-content 403 proved it had landed.
    let texts: Vec<Option<String>> = x
        .seen()
        .into_iter()
        .filter(|s| s.path == "/2/tweets")
        .map(|s| s.text)
        .collect();
    let expected = Some(expected_issue_tweet("posted before the crash"));
    assert_eq!(
        texts,
        vec![expected.clone(), expected],
        "both attempts carry the same text"
    );
    assert_eq!(
        x.tweets(),
        vec![expected_issue_tweet("posted before the crash")]
    );
    assert_eq!(
        sql_count(
            &store(dir.path()),
            "SELECT count(*) FROM outbox WHERE last_error LIKE '%duplicate%'"
        ),
        1
    );
    assert_eq!(integrity(dir.path()), "ok");
}

async fn sigterm_stops_cleanly_and_keeps_the_queue() {
    let x = FakeX::start().await;
    x.set_protected(false);
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &x).await;
    // The account is public, so the tweet is held in the queue when the daemon is asked to stop.
    assert_eq!(d.post_issue("t1", "held over a restart").await, 202);
    x.wait_for_requests("/2/users/me", 1, WAIT).await;
    // SIGHUP must not kill it (its default action would).
    d.signal("HUP");
    let health = reqwest::get(format!("{}/healthz", d.url)).await.unwrap();
    assert_eq!(health.status(), 200);
    let status = d.sigterm();
    assert!(
        status.success(),
        "exit status {status:?}; log: {}",
        log_of(dir.path())
    );
    assert!(x.tweets().is_empty());
    assert_eq!(
        sql_count(
            &store(dir.path()),
            "SELECT count(*) FROM outbox WHERE state = 'pending'"
        ),
        1
    );

    x.set_protected(true);
    let _d = Daemon::start(dir.path(), &x).await;
    assert_eq!(
        x.wait_for_tweets(1, WAIT).await,
        vec![expected_issue_tweet("held over a restart")]
    );
}

#[tokio::test]
async fn failpoint_after_commit_before_the_answer() {
    let x = FakeX::start().await;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start_env(dir.path(), &x, &[("CHIRPD_FAILPOINT", "after-commit")]).await;
    // The delivery is committed, then the process dies before answering: the sender sees no 2xx.
    assert_eq!(d.try_post_issue("f1", "committed, unanswered").await, None);
    assert!(!d.wait_exit().await.success());
    assert_eq!(
        sql_count(&store(dir.path()), "SELECT count(*) FROM deliveries"),
        1
    );
    let d = Daemon::start(dir.path(), &x).await;
    assert_eq!(
        x.wait_for_tweets(1, WAIT).await,
        vec![expected_issue_tweet("committed, unanswered")]
    );
    // The sender retries the delivery it saw fail: acknowledged as a duplicate, not posted again.
    assert_eq!(d.post_issue("f1", "committed, unanswered").await, 200);
    wait_sent(dir.path(), 1).await;
    assert_eq!(x.tweets().len(), 1);
    assert_eq!(integrity(dir.path()), "ok");
}

async fn failpoint_after_marking_sending_before_the_request() {
    let x = FakeX::start().await;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start_env(dir.path(), &x, &[("CHIRPD_FAILPOINT", "after-sending")]).await;
    assert_eq!(d.post_issue("f2", "claimed, never sent").await, 202);
    assert!(!d.wait_exit().await.success());
    assert_eq!(
        sql_count(
            &store(dir.path()),
            "SELECT count(*) FROM outbox WHERE state = 'sending'"
        ),
        1
    );
    assert!(
        x.seen().iter().all(|s| s.path != "/2/tweets"),
        "no request was made"
    );
    let _d = Daemon::start(dir.path(), &x).await;
    assert_eq!(
        x.wait_for_tweets(1, WAIT).await,
        vec![expected_issue_tweet("claimed, never sent")]
    );
    wait_sent(dir.path(), 1).await;
    assert_eq!(x.seen().iter().filter(|s| s.path == "/2/tweets").count(), 1);
    assert_eq!(integrity(dir.path()), "ok");
}

#[tokio::test]
async fn failpoint_after_the_answer_before_recording_it() {
    let x = FakeX::start().await;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start_env(dir.path(), &x, &[("CHIRPD_FAILPOINT", "after-answer")]).await;
    assert_eq!(d.post_issue("f3", "posted, not recorded").await, 202);
    assert!(!d.wait_exit().await.success());
    assert_eq!(x.tweets().len(), 1, "X created the post before the crash");
    let _d = Daemon::start(dir.path(), &x).await;
    wait_sent(dir.path(), 1).await;
    // Sent again with the same text; X's duplicate-content answer closes it without a second post.
    assert_eq!(
        x.tweets(),
        vec![expected_issue_tweet("posted, not recorded")]
    );
    assert_eq!(x.seen().iter().filter(|s| s.path == "/2/tweets").count(), 2);
    assert_eq!(integrity(dir.path()), "ok");
}

#[tokio::test]
async fn a_delivery_whose_planning_panics_is_set_aside_and_the_rest_still_post() {
    let x = FakeX::start().await;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start_env(dir.path(), &x, &[("CHIRPD_FAILPOINT", "plan-panic")]).await;
    assert_eq!(d.post_issue("poison", "chirpd-failpoint-poison").await, 202);
    assert_eq!(d.post_issue("fine", "a fine title").await, 202);
    let tweets = x.wait_for_tweets(1, WAIT).await;
    assert_eq!(tweets, vec![expected_issue_tweet("a fine title")]);
    let store = dir.path().join("chirpd.db");
    let start = Instant::now();
    while sql_count(
        &store,
        "SELECT count(*) FROM deliveries WHERE state = 'dead' AND error LIKE 'planning failed: failpoint plan-panic%'",
    ) != 1
    {
        assert!(
            start.elapsed() < WAIT,
            "the poison delivery was not set aside; log: {}",
            log_of(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = reqwest::get(format!("{}/metrics", d.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("chirpd_deliveries_dead_total 1"),
        "{metrics}"
    );
    // Set aside once, not retried: the log says so exactly once.
    let log = log_of(dir.path());
    assert_eq!(log.matches("cannot be planned").count(), 1, "{log}");
    assert!(d.sigterm().success());
}

crate::on_both_stores!(
    killed_right_after_the_202_it_still_posts_exactly_once,
    killed_after_x_created_the_post_but_before_sent_was_recorded_it_posts_once,
    sigterm_stops_cleanly_and_keeps_the_queue,
    failpoint_after_marking_sending_before_the_request,
);
