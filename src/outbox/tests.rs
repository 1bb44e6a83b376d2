//! The store's contract, as every backend must keep it: each test drives a `SharedStore` through the
//! trait only, and `contract!` runs it on SQLite and on PostgreSQL (a real throwaway cluster).

use super::*;

/// A store's backing database; `open` gives a new handle to it each time, as a new process would get.
enum Db {
    Sqlite(tempfile::TempDir),
    Postgres(String),
}

impl Db {
    fn sqlite() -> Db {
        Db::Sqlite(tempfile::tempdir().unwrap())
    }

    fn postgres() -> Db {
        Db::Postgres(postgres::test_cluster::shared().create_database())
    }

    async fn open(&self) -> SharedStore {
        match self {
            Db::Sqlite(dir) => open(&dir.path().join("s.db"), None).unwrap(),
            Db::Postgres(url) => std::sync::Arc::new(
                postgres::PgStore::connect(&Secret::new(url.clone()), "test", 8, false)
                    .await
                    .unwrap(),
            ),
        }
    }

    /// A new handle that leads `team`, as the daemon's leader task would make it.
    async fn open_leading(&self) -> SharedStore {
        let store = self.open().await;
        lead_team(&store).await;
        store
    }
}

/// The lease length the contract tests use: short, so that a handle dropped without releasing (a
/// crash) is taken over quickly.
const TEST_LEASE: Duration = Duration::from_secs(1);

/// Leads `team`, waiting for a lease a dropped handle left to lapse; returns how many items were put
/// back in the queue.
async fn lead_team(store: &SharedStore) -> usize {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let led = store
            .lead(&["team".to_string()], TEST_LEASE, 20)
            .await
            .unwrap();
        if let Some(l) = led.first() {
            return l.recovered;
        }
        assert!(std::time::Instant::now() < deadline, "never led team");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs a contract test on each backend.
macro_rules! contract {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::Db::sqlite()).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::Db::postgres()).await
            }
        }
    };
}

/// Stores one delivery's plan.
async fn save_plan(
    store: &SharedStore,
    delivery_id: String,
    native: &str,
    kind: Option<&'static str>,
    items: Vec<NewItem>,
    now: UnixMillis,
) -> Result<(), StoreError> {
    store
        .save_plans(vec![PlanRecord {
            delivery_id,
            native: native.into(),
            kind,
            items,
            error: None,
            now,
        }])
        .await
}

fn delivery(key: &str, body: &'static [u8]) -> NewDelivery {
    NewDelivery {
        source: "gh".into(),
        dedupe_key: key.into(),
        body_sha256: Some(format!("h-{}", String::from_utf8_lossy(body))),
        event: Some("issues".into()),
        body: bytes::Bytes::from_static(body),
        received_at: 1,
        handshake: false,
    }
}

fn item(dest: &str) -> NewItem {
    NewItem {
        route: 0,
        destination: dest.into(),
        recipient: String::new(),
        kind: "tweet",
        text: "hello".into(),
        length: 5,
        event_kind: Some("task.created"),
        project: Some("acme".into()),
        subject: None,
        due_at: None,
        merge: None,
    }
}

contract!(duplicates_by_id_or_body_find_the_first_copy);
async fn duplicates_by_id_or_body_find_the_first_copy(db: Db) {
    let store = db.open_leading().await;
    let first = store.record_delivery(delivery("a", b"{1}")).await.unwrap();
    assert!(!first.duplicate);
    let again = store.record_delivery(delivery("a", b"{2}")).await.unwrap();
    assert_eq!(
        again,
        Recorded {
            id: first.id.clone(),
            duplicate: true
        }
    );
    let replayed_body = store.record_delivery(delivery("b", b"{1}")).await.unwrap();
    assert_eq!(replayed_body.id, first.id);
    assert!(replayed_body.duplicate);
    assert_eq!(store.delivery_count().await.unwrap(), 1);
}

contract!(concurrent_records_share_commits_and_all_land);
async fn concurrent_records_share_commits_and_all_land(db: Db) {
    let store = db.open_leading().await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut d = delivery(&format!("k{i}"), b"{}");
            d.body_sha256 = None;
            store.record_delivery(d).await.unwrap()
        }));
    }
    for t in tasks {
        assert!(!t.await.unwrap().duplicate);
    }
    assert_eq!(store.delivery_count().await.unwrap(), 200);
}

contract!(items_move_through_their_states_and_survive_reopening);
async fn items_move_through_their_states_and_survive_reopening(db: Db) {
    let store = db.open_leading().await;
    let d = store.record_delivery(delivery("a", b"{}")).await.unwrap();
    assert_eq!(store.unplanned(10).await.unwrap().len(), 1);
    save_plan(
        &store,
        d.id.clone(),
        "issues.opened",
        Some("task.created"),
        vec![item("team")],
        10,
    )
    .await
    .unwrap();
    assert!(store.unplanned(10).await.unwrap().is_empty());
    // Not due before its time; claimed once due.
    assert!(store.claim("team", 9).await.unwrap().is_none());
    let claimed = store.claim("team", 10).await.unwrap().unwrap();
    assert_eq!((claimed.state, claimed.attempts), (ItemState::Sending, 1));
    assert!(store.claim("team", 10).await.unwrap().is_none());
    drop(store);

    // A crash while sending: a new handle finds it `sending`, and leading the destination queues it again.
    let store = db.open().await;
    assert_eq!(lead_team(&store).await, 1);
    let again = store.claim("team", 20).await.unwrap().unwrap();
    assert_eq!(
        (again.id.as_str(), again.attempts),
        (claimed.id.as_str(), 2)
    );
    store
        .finish(
            &again.id,
            Finish::Sent {
                remote_id: Some("99".into()),
                note: None,
                cost_micros: 15_000,
            },
            21,
        )
        .await
        .unwrap();
    let sent = store.item(&again.id).await.unwrap().unwrap();
    assert_eq!(
        (sent.state, sent.remote_id.as_deref(), sent.sent_at),
        (ItemState::Sent, Some("99"), Some(21))
    );
    // Finishing twice is refused: only a `sending` item can finish.
    assert!(matches!(
        store
            .finish(&again.id, Finish::Dead { error: "x".into() }, 22)
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.ledger("team", 0).await.unwrap(), (2, Some(10)));
    assert_eq!(store.spent_since("team", 0).await.unwrap(), 15_000);
    assert_eq!(store.spent_since("team", 22).await.unwrap(), 0);
}

fn digest_of(ids: &[String], now: UnixMillis) -> NewDigest {
    NewDigest {
        destination: "team".into(),
        recipient: String::new(),
        kind: "tweet",
        items: ids.to_vec(),
        text: format!("{} updates", ids.len()),
        length: 9,
        now,
    }
}

contract!(folding_replaces_items_with_one_digest_atomically);
async fn folding_replaces_items_with_one_digest_atomically(db: Db) {
    let store = db.open_leading().await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let d = store
            .record_delivery(delivery(&format!("k{i}"), b"{}"))
            .await;
        let d = match d {
            Ok(d) if !d.duplicate => d,
            _ => {
                let mut nd = delivery(&format!("k{i}"), b"{}");
                nd.body_sha256 = None;
                store.record_delivery(nd).await.unwrap()
            }
        };
        save_plan(&store, d.id, "n", None, vec![item("team")], 1)
            .await
            .unwrap();
    }
    for it in store.due("team", 1, 10).await.unwrap() {
        ids.push(it.id);
    }
    assert_eq!(ids.len(), 3);
    let digest = store.fold(digest_of(&ids, 2)).await.unwrap();
    let due = store.due("team", 2, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(
        (due[0].id.as_str(), due[0].is_digest()),
        (digest.as_str(), true)
    );
    let folded = store.item(&ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (folded.state, folded.folded_into.as_deref()),
        (ItemState::Folded, Some(digest.as_str()))
    );
    // Folding an item that is no longer queued fails and changes nothing.
    // (See also `a_digest_folds_only_its_own_recipients_items`.)
    assert!(store.fold(digest_of(&ids[..1], 3)).await.is_err());
    assert_eq!(store.due("team", 3, 10).await.unwrap().len(), 1);
}

contract!(tokens_and_user_ids_are_kept);
async fn tokens_and_user_ids_are_kept(db: Db) {
    let store = db.open_leading().await;
    assert!(store.tokens("team").await.unwrap().is_none());
    let tokens = Tokens {
        access: Secret::new("a1".into()),
        refresh: Some(Secret::new("r1".into())),
        expires_at: 100,
    };
    store.set_tokens("team", tokens, 1).await.unwrap();
    let t = store.tokens("team").await.unwrap().unwrap();
    assert_eq!(
        (t.access.expose(), t.refresh.unwrap().expose(), t.expires_at),
        ("a1", "r1", 100)
    );
    store.set_user_id("@Alice", "42", 1).await.unwrap();
    assert_eq!(
        store.user_id("@alice").await.unwrap().as_deref(),
        Some("42")
    );
}

contract!(planning_twice_creates_no_second_item);
async fn planning_twice_creates_no_second_item(db: Db) {
    let store = db.open_leading().await;
    let d = store.record_delivery(delivery("a", b"{}")).await.unwrap();
    for _ in 0..2 {
        save_plan(&store, d.id.clone(), "n", None, vec![item("team")], 1)
            .await
            .unwrap();
    }
    assert_eq!(store.items(None, 10).await.unwrap().len(), 1);
}

contract!(released_items_do_not_count_an_attempt_and_blocks_keep_the_latest);
async fn released_items_do_not_count_an_attempt_and_blocks_keep_the_latest(db: Db) {
    let store = db.open_leading().await;
    let d = store.record_delivery(delivery("a", b"{}")).await.unwrap();
    save_plan(&store, d.id, "n", None, vec![item("team")], 1)
        .await
        .unwrap();
    let it = store.claim("team", 1).await.unwrap().unwrap();
    store
        .finish(
            &it.id,
            Finish::Release {
                at: 500,
                error: "429".into(),
            },
            2,
        )
        .await
        .unwrap();
    let it = store.item(&it.id).await.unwrap().unwrap();
    assert_eq!(
        (it.state, it.attempts, it.next_attempt_at),
        (ItemState::Pending, 0, 500)
    );
    assert_eq!(store.next_due("team").await.unwrap(), Some(500));
    let block = |until, cause, reason: &str| Block {
        until,
        cause,
        reason: reason.into(),
    };
    store
        .block("team", block(900, HoldCause::RateLimited, "429"))
        .await
        .unwrap();
    store
        .block("team", block(800, HoldCause::Paused, "older"))
        .await
        .unwrap();
    assert_eq!(
        store.blocked("team").await.unwrap(),
        Some(block(900, HoldCause::RateLimited, "429"))
    );
    store
        .block("team", block(1000, HoldCause::Paused, "401"))
        .await
        .unwrap();
    assert_eq!(
        store.blocked("team").await.unwrap().map(|b| b.cause),
        Some(HoldCause::Paused)
    );
}

contract!(a_digest_folds_only_its_own_recipients_items);
async fn a_digest_folds_only_its_own_recipients_items(db: Db) {
    let store = db.open_leading().await;
    let d = store.record_delivery(delivery("a", b"{}")).await.unwrap();
    let dm = |recipient: &str| NewItem {
        recipient: recipient.into(),
        kind: "dm",
        ..item("dms")
    };
    save_plan(&store, d.id, "n", None, vec![dm("@alice"), dm("@bob")], 1)
        .await
        .unwrap();
    let due = store.due("dms", 1, 10).await.unwrap();
    let ids: Vec<String> = due.iter().map(|i| i.id.clone()).collect();
    let mut to_alice = NewDigest {
        destination: "dms".into(),
        recipient: "@alice".into(),
        kind: "dm",
        ..digest_of(&ids, 2)
    };
    assert!(
        store.fold(to_alice.clone()).await.is_err(),
        "@bob's item cannot ride in @alice's digest"
    );
    to_alice.items = due
        .iter()
        .filter(|i| i.recipient == "@alice")
        .map(|i| i.id.clone())
        .collect();
    let digest = store.fold(to_alice).await.unwrap();
    let digest = store.item(&digest).await.unwrap().unwrap();
    assert_eq!(
        (
            digest.recipient.as_str(),
            digest.kind.as_str(),
            digest.is_digest()
        ),
        ("@alice", "dm", true)
    );
}
