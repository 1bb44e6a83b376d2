//! The crash test: stream signed webhooks while SIGKILLing and restarting the real binary at random
//! moments (between requests and in the middle of them), then check that every delivery answered 2xx was
//! posted exactly once and that the store passes `PRAGMA integrity_check`.
//!
//! CI runs 2,000 deliveries and 50 kills. The full run is
//! `CHIRPD_CHAOS_DELIVERIES=20000 CHIRPD_CHAOS_KILLS=1000 cargo test --release --test it chaos -- --nocapture`;
//! `CHIRPD_CHAOS_SEED` replays a run.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::crash::Daemon;
use crate::support::fake_x::FakeX;
use crate::support::{expected_issue_tweet, sql_count};

/// Posts one signed delivery; `None` when the connection broke before an answer.
async fn post(base: &str, delivery: &str, title: &str) -> Option<u16> {
    let body = crate::support::issue_opened(title);
    let res = reqwest::Client::new()
        .post(format!("{base}/hooks/gh"))
        .header("x-github-event", "issues")
        .header("x-github-delivery", delivery)
        .header(
            "x-hub-signature-256",
            crate::support::github_signature(crate::support::SECRET, &body),
        )
        .body(body)
        .send()
        .await;
    res.ok().map(|r| r.status().as_u16())
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_kills_lose_nothing_and_post_nothing_twice() {
    let deliveries = env_or("CHIRPD_CHAOS_DELIVERIES", 2000) as usize;
    let kills = env_or("CHIRPD_CHAOS_KILLS", 50) as usize;
    let seed = env_or("CHIRPD_CHAOS_SEED", 0x5eed);
    eprintln!("chaos: {deliveries} deliveries, {kills} kills, seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let x = FakeX::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("chirpd.db");

    // The kill points: `kills` distinct deliveries, chosen at random.
    let mut kill_at: Vec<usize> =
        rand::seq::index::sample(&mut rng, deliveries, kills.min(deliveries)).into_vec();
    kill_at.sort_unstable();
    let kill_at: HashSet<usize> = kill_at.into_iter().collect();
    let mut daemon = Some(Daemon::start(dir.path(), &x).await);
    let mut acked: Vec<String> = Vec::new();
    let mut unanswered = 0;
    let mut kills_done = 0;
    let mut mid_request_kills = 0;
    for i in 0..deliveries {
        let title = format!("chaos {i}");
        let d = daemon.take().unwrap();
        if kill_at.contains(&i) {
            // Kill while this delivery is in flight, at a random instant of its request.
            let url = d.url.clone();
            let (delivery, t) = (format!("c{i}"), title.clone());
            let request = tokio::spawn(async move { post(&url, &delivery, &t).await });
            tokio::time::sleep(Duration::from_micros(rng.random_range(0..3000))).await;
            d.sigkill();
            kills_done += 1;
            let status = request.await.unwrap();
            match status {
                Some(s) if (200..300).contains(&s) => acked.push(title),
                Some(s) => panic!("delivery {i} answered {s}"),
                None => {
                    mid_request_kills += 1;
                    unanswered += 1;
                }
            }
            daemon = Some(Daemon::start(dir.path(), &x).await);
        } else {
            match d.try_post_issue(&format!("c{i}"), &title).await {
                Some(202) => acked.push(title),
                other => panic!("delivery {i} answered {other:?} with no kill pending"),
            }
            daemon = Some(d);
        }
    }
    // Meta-assertions: the run really killed the daemon, sometimes with a request in flight.
    assert_eq!(kills_done, kills, "not every planned kill happened");
    eprintln!(
        "chaos: {} acknowledged, {unanswered} unanswered, {mid_request_kills} kills during a request",
        acked.len()
    );

    // Let the last daemon drain the queue.
    let start = Instant::now();
    loop {
        // One statement, so both counts come from one snapshot of the store.
        let open = sql_count(
            &store,
            "SELECT (SELECT count(*) FROM outbox WHERE state IN ('pending', 'sending', 'retry'))
                  + (SELECT count(*) FROM deliveries WHERE state = 'received')",
        );
        if open == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{open} items still open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(daemon);

    let tweets: HashSet<String> = x.tweets().into_iter().collect();
    assert_eq!(
        tweets.len(),
        x.tweets().len(),
        "the fake X holds no duplicate"
    );
    let lost: Vec<&String> = acked
        .iter()
        .filter(|t| !tweets.contains(&expected_issue_tweet(t)))
        .collect();
    if !lost.is_empty() {
        let conn = rusqlite::Connection::open(&store).unwrap();
        for title in &lost {
            let delivery = format!("c{}", title.trim_start_matches("chaos "));
            let row: Option<(String, Option<String>)> = conn
                .query_row(
                    "SELECT state, error FROM deliveries WHERE dedupe_key = ?1",
                    [&delivery],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .ok();
            let items: Vec<(String, Option<String>)> = conn
                .prepare("SELECT o.state, o.last_error FROM outbox o JOIN deliveries d ON d.id = o.delivery_id WHERE d.dedupe_key = ?1")
                .unwrap()
                .query_map([&delivery], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            eprintln!("lost {title}: delivery {row:?}, items {items:?}");
        }
        eprintln!(
            "deliveries: {}",
            sql_count(&store, "SELECT count(*) FROM deliveries")
        );
    }
    assert!(lost.is_empty(), "acknowledged but never posted: {lost:?}");
    // Every stored delivery became exactly one item, sent once: no duplicates in the outbox either.
    assert_eq!(
        sql_count(
            &store,
            "SELECT count(*) FROM (SELECT delivery_id FROM outbox GROUP BY delivery_id HAVING count(*) > 1)"
        ),
        0
    );
    assert_eq!(
        sql_count(&store, "SELECT count(*) FROM outbox WHERE state <> 'sent'"),
        0,
        "every item ended sent"
    );
    assert!(sql_count(&store, "SELECT count(*) FROM deliveries") as usize >= acked.len());
    let check: String = rusqlite::Connection::open(&store)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}
