//! A year of a busy team's traffic through the real store, with retention as configured by default:
//! 500 signed 3 KB deliveries a day, each planned into one post that is sent, and retention run once a
//! simulated day. Prints the store's size at the end of each month. Run: `cargo bench --bench retention`
//! (add `-- 250` for another number of deliveries a day). Time is simulated: the store is given each
//! record's instant, as the daemon gives it the clock's.

use std::sync::Arc;

use chirpd::config;
use chirpd::outbox::{self, Finish, NewDelivery, NewItem, PlanRecord, SharedStore};
use chirpd::retention;

const DAY: i64 = 86_400_000;

async fn one_day(store: &SharedStore, day: i64, per_day: usize) {
    let at = day * DAY;
    let mut recorded = Vec::with_capacity(per_day);
    for i in 0..per_day {
        let store = store.clone();
        recorded.push(tokio::spawn(async move {
            store
                .record_delivery(NewDelivery {
                    source: "gh".into(),
                    dedupe_key: format!("{day}-{i}"),
                    body_sha256: None,
                    event: Some("issues".into()),
                    body: bytes::Bytes::from(vec![b'x'; 3072]),
                    received_at: at + i as i64,
                    handshake: false,
                })
                .await
                .map(|r| r.id)
        }));
    }
    let mut plans = Vec::with_capacity(per_day);
    for r in recorded {
        let id = r.await.expect("task").expect("recorded");
        plans.push(PlanRecord {
            delivery_id: id,
            native: "issues.opened".into(),
            kind: Some("task.created"),
            items: vec![NewItem {
                route: 0,
                destination: "team".into(),
                recipient: String::new(),
                kind: "tweet",
                text: "acme/widgets: Codertocat opened #1 Spelling error in the README file https://github.com/acme/widgets/issues/1".into(),
                length: 120,
                event_kind: Some("task.created"),
                project: Some("acme/widgets".into()),
                subject: None,
                due_at: None,
                merge: None,
                review: false,
            }],
            error: None,
            now: at,
        });
    }
    for chunk in plans.chunks(64) {
        store.save_plans(chunk.to_vec()).await.expect("planned");
    }
    let mut sent = Vec::with_capacity(per_day);
    for _ in 0..per_day {
        let store = store.clone();
        sent.push(tokio::spawn(async move {
            let item = store.claim("team", at + DAY / 2).await?.expect("due");
            let how = Finish::Sent {
                remote_id: Some("1".into()),
                note: None,
                cost_micros: 15_000,
            };
            store.finish(&item.id, how, at + DAY / 2).await
        }));
    }
    for s in sent {
        s.await.expect("task").expect("sent");
    }
}

#[tokio::main]
async fn main() {
    let per_day: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(500);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("chirpd.toml");
    std::fs::write(&path, "[destinations.team]\nkind = \"x\"\ndry_run = true\n").expect("config");
    let config = Arc::new(config::load(Some(&path), &config::EmptyEnv).expect("config"));
    let store = outbox::open(&dir.path().join("chirpd.db"), None).expect("store");
    println!(
        "{per_day} deliveries a day of 3 KB; retention: bodies {:?}, items {:?}, deliveries {:?}",
        config.retention.bodies, config.retention.items, config.retention.deliveries
    );
    println!("| day | deliveries so far | store file | free inside | in use |");
    println!("|---|---|---|---|---|");
    let started = std::time::Instant::now();
    for day in 1..=365 {
        one_day(&store, day, per_day).await;
        retention::prune_once(&store, &config, day * DAY + DAY - 1)
            .await
            .expect("pruned");
        if day % 30 == 0 || day == 365 {
            let size = store.size().await.expect("size");
            let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
            println!(
                "| {day} | {} | {:.1} MB | {:.1} MB | {:.1} MB |",
                day as usize * per_day,
                mb(size.bytes),
                mb(size.free_bytes),
                mb(size.bytes - size.free_bytes)
            );
        }
    }
    println!(
        "a simulated year in {:.0} s; without retention the bodies alone would take {:.0} MB",
        started.elapsed().as_secs_f64(),
        (365 * per_day * 3072) as f64 / (1024.0 * 1024.0)
    );
}
