//! A fleet: two real chirpd processes on one PostgreSQL database, each receiving part of the webhooks, one
//! destination with a tight window. The leader is killed with SIGKILL mid-stream and PostgreSQL is
//! restarted mid-stream; every acknowledged delivery is posted exactly once and the window is never
//! exceeded, whoever sends.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::crash::{Daemon, log_of};
use crate::support::fake_x::{FakeX, Script};
use crate::support::{expected_issue_tweet, on_postgres, pg, sql_count, sql_text, use_database};

/// The destination's window: at most this many requests…
const WINDOW_COUNT: usize = 5;
/// …in any span this long.
const WINDOW_MS: i64 = 2_000;
/// How many deliveries the test sends.
const DELIVERIES: usize = 30;
/// How long the whole stream may take to be posted.
const POSTED_WITHIN: Duration = Duration::from_secs(90);

/// Sends delivery `i`, to `first` if it answers and else to `second`, until one acknowledges it with 202
/// (as a sender retries, and a load balancer moves to the instance that answers). Returns whether it
/// was acknowledged.
async fn deliver(i: usize, first: Option<&Daemon>, second: Option<&Daemon>) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        for d in [first, second].into_iter().flatten() {
            if d.try_post_issue(&format!("fleet-{i}"), &title(i)).await == Some(202) {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn title(i: usize) -> String {
    format!("Fleet event {i}")
}

/// Whether any `count + 1` of the sorted times fall within `span` ms, less `slack`.
fn window_exceeded(times: &[i64], count: usize, span: i64, slack: i64) -> Option<(i64, i64)> {
    times
        .windows(count + 1)
        .find(|w| w[count] - w[0] < span - slack)
        .map(|w| (w[0], w[count]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_lose_nothing_post_nothing_twice_and_keep_the_window_through_a_kill_and_a_database_restart()
 {
    on_postgres(async {
        // A cluster of the test's own, since it is restarted.
        let cluster = pg::Cluster::start();
        let url = cluster.create_database();
        let x = FakeX::start().await;
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        for dir in [&dir_a, &dir_b] {
            use_database(&dir.path().join("chirpd.db"), &url);
        }
        let store = dir_a.path().join("chirpd.db");
        let limits = format!("limits = [\"{WINDOW_COUNT}/{}s\"]\n", WINDOW_MS / 1000);
        let a = Daemon::start_with(dir_a.path(), &x, &limits, "a", &[]).await;
        let b = Daemon::start_with(dir_b.path(), &x, &limits, "b", &[]).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        let (leader, follower, leader_dir, follower_name) = loop {
            if a.leading().await == ["team"] {
                break (a, b, dir_a.path(), "b");
            }
            if b.leading().await == ["team"] {
                break (b, a, dir_b.path(), "a");
            }
            assert!(Instant::now() < deadline, "no instance leads team");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(follower.leading().await.is_empty(), "two leaders");

        let mut acknowledged = BTreeSet::new();
        let mut leader = Some(leader);
        let mut failover = None;
        let mut restarted_db = None;
        for i in 0..DELIVERIES {
            // Spread over both instances while both run.
            let ok = if i % 2 == 0 {
                deliver(i, leader.as_ref(), Some(&follower)).await
            } else {
                deliver(i, Some(&follower), leader.as_ref()).await
            };
            if ok {
                acknowledged.insert(i);
            }
            if i == DELIVERIES / 3 {
                // The leader is posting the first third: kill it while X has created its next post but
                // not yet answered, so that the item is left `sending` for the next leader.
                let requests = || x.seen().iter().filter(|s| s.path == "/2/tweets").count();
                let before = requests();
                x.script(Script::CreateThenHang);
                let deadline = Instant::now() + Duration::from_secs(10);
                while requests() == before {
                    assert!(Instant::now() < deadline, "the leader sent nothing");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                leader.take().expect("leader").sigkill();
                let killed = Instant::now();
                let deadline = killed + Duration::from_secs(30);
                while follower.leading().await != ["team"] {
                    assert!(Instant::now() < deadline, "no takeover; log: {}", log_of(dir_b.path()));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                failover = Some(killed.elapsed());
            }
            if i == 2 * DELIVERIES / 3 {
                let down = Instant::now();
                cluster.stop_server();
                cluster.start_server();
                restarted_db = Some(down.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
        // The killed instance comes back and joins as a follower.
        let rejoined = Daemon::start_with(leader_dir, &x, &limits, "a2", &[]).await;
        assert_eq!(acknowledged.len(), DELIVERIES, "every delivery is acknowledged at last");

        let want: BTreeSet<String> = acknowledged.iter().map(|i| expected_issue_tweet(&title(*i))).collect();
        let start = Instant::now();
        loop {
            let have: BTreeSet<String> = x.tweets().into_iter().collect();
            if have == want {
                break;
            }
            assert!(
                start.elapsed() < POSTED_WITHIN,
                "posted {} of {}; missing {:?}",
                have.len(),
                want.len(),
                want.difference(&have).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Exactly once: X holds each text once (it refuses a second copy), and the store agrees. The post
        // the killed leader made was requested again by the next one and refused as a duplicate.
        assert_eq!(x.tweets().len(), DELIVERIES);
        assert!(
            log_of(dir_b.path()).contains("refused the text as a duplicate")
                || log_of(dir_a.path()).contains("refused the text as a duplicate"),
            "the interrupted post was not sent again"
        );
        let sent = sql_count(&store, "SELECT count(*) FROM outbox WHERE state = 'sent'");
        assert_eq!(sent, DELIVERIES as i64);
        assert_eq!(
            sql_count(&store, "SELECT count(*) FROM outbox WHERE state <> 'sent'"),
            0
        );
        assert_eq!(sql_count(&store, "SELECT count(*) FROM deliveries"), DELIVERIES as i64);

        // The window, as the store counted requests (both leaders' claims are in one ledger)…
        let ledger: Vec<i64> = sql_text(&store, "SELECT string_agg(at::text, ',' ORDER BY at) FROM send_ledger")
            .split(',')
            .map(|t| t.parse().unwrap())
            .collect();
        assert!(ledger.len() >= DELIVERIES);
        assert_eq!(window_exceeded(&ledger, WINDOW_COUNT, WINDOW_MS, 0), None, "ledger {ledger:?}");
        // …and as X saw them arrive, allowing 400 ms for the difference between two requests' ways from
        // claim to arrival on a loaded machine: two senders, or a leader ignoring the ledger, would put
        // ten requests into one window, far past that.
        let mut arrivals: Vec<i64> = x
            .seen()
            .iter()
            .filter(|s| s.path == "/2/tweets")
            .map(|s| s.at_unix_ms)
            .collect();
        arrivals.sort_unstable();
        assert_eq!(window_exceeded(&arrivals, WINDOW_COUNT, WINDOW_MS, 400), None, "arrivals {arrivals:?}");

        // The survivor lived through the restart: the server closed its connections, and it found them
        // again by itself.
        let survivor_log = log_of(if follower_name == "b" { dir_b.path() } else { dir_a.path() });
        assert!(
            survivor_log.contains("Lost the connection that hears other instances")
                && survivor_log.contains("Hearing other instances again"),
            "{survivor_log}"
        );
        // The rejoined instance follows; the survivor still leads.
        assert_eq!(follower.leading().await, ["team"]);
        assert!(rejoined.leading().await.is_empty());
        let failover = failover.expect("measured");
        eprintln!(
            "fleet: failover to {follower_name} took {} ms (lease 2 s); PostgreSQL was down {} ms; {} requests for {} posts",
            failover.as_millis(),
            restarted_db.expect("restarted").as_millis(),
            arrivals.len(),
            DELIVERIES
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_database_answers_503_and_everything_recovers_by_itself() {
    on_postgres(async {
        let cluster = pg::Cluster::start();
        let url = cluster.create_database();
        let x = FakeX::start().await;
        let dir = tempfile::tempdir().unwrap();
        use_database(&dir.path().join("chirpd.db"), &url);
        let daemon = Daemon::start_with(dir.path(), &x, "", "solo", &[]).await;
        assert!(deliver(0, Some(&daemon), None).await);
        x.wait_for_tweets(1, Duration::from_secs(10)).await;

        cluster.stop_server();
        // The sender is told to retry: nothing was stored, nothing is lost.
        assert_eq!(daemon.try_post_issue("fleet-1", &title(1)).await, Some(503));
        let ready = reqwest::get(format!("{}/readyz", daemon.url))
            .await
            .unwrap();
        assert_eq!(ready.status(), 503);
        let why: serde_json::Value = ready.json().await.unwrap();
        assert!(
            why["reasons"][0].as_str().unwrap().starts_with("store:"),
            "{why}"
        );

        cluster.start_server();
        // The sender's retry is accepted once the database is back, with no restart of chirpd.
        assert!(deliver(1, Some(&daemon), None).await);
        let posted = x.wait_for_tweets(2, Duration::from_secs(20)).await;
        assert_eq!(posted[1], expected_issue_tweet(&title(1)));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = reqwest::get(format!("{}/readyz", daemon.url))
                .await
                .unwrap();
            if r.status() == 200 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "never ready again: {}",
                r.text().await.unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let ingress = reqwest::get(format!("{}/readyz/ingress", daemon.url))
            .await
            .unwrap();
        assert_eq!(ingress.status(), 200);
        // The admin's commands work against the database as against a file.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_chirpd"))
            .args(["queue", "list", "--json", "--config"])
            .arg(dir.path().join("chirpd.toml"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listed = String::from_utf8_lossy(&out.stdout);
        assert_eq!(listed.matches("\"sent\"").count(), 2, "{listed}");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_started_before_its_database_waits_for_it() {
    on_postgres(async {
        let cluster = pg::Cluster::start();
        let url = cluster.create_database();
        cluster.stop_server();
        let x = FakeX::start().await;
        let dir = tempfile::tempdir().unwrap();
        use_database(&dir.path().join("chirpd.db"), &url);
        // Both come back after a reboot, the database last: chirpd waits for it instead of exiting
        // (which, repeated, would make systemd give up on the unit).
        let starting = tokio::spawn({
            let (path, x) = (dir.path().to_path_buf(), x.clone());
            // A spawned task is outside the test's scope: it says its backend itself.
            on_postgres(async move { Daemon::start_with(&path, &x, "", "early", &[]).await })
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while !log_of(dir.path()).contains("Cannot reach PostgreSQL yet") {
            assert!(Instant::now() < deadline, "log: {}", log_of(dir.path()));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        cluster.start_server();
        let daemon = starting.await.unwrap();
        assert!(deliver(0, Some(&daemon), None).await);
        x.wait_for_tweets(1, Duration::from_secs(10)).await;
    })
    .await
}
