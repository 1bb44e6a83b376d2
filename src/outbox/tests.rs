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
        review: false,
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

/// What only a store shared by several processes must keep: two handles on one PostgreSQL database
/// stand for two instances.
mod fleet {
    use super::*;

    async fn handle(url: &str, instance: &str, listen: bool) -> SharedStore {
        std::sync::Arc::new(
            postgres::PgStore::connect(&Secret::new(url.to_string()), instance, 8, listen)
                .await
                .unwrap(),
        )
    }

    fn team() -> Vec<String> {
        vec!["team".to_string()]
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_instance_leads_a_destination_and_a_lapsed_lease_passes_on_with_its_sending_items()
    {
        let url = postgres::test_cluster::shared().create_database();
        let (a, b) = (
            handle(&url, "a", false).await,
            handle(&url, "b", false).await,
        );
        let d = a.record_delivery(delivery("k", b"{}")).await.unwrap();
        save_plan(&a, d.id, "n", None, vec![item("team"), item("team")], 1)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let lease = Duration::from_millis(600);
        assert_eq!(a.lead(&team(), lease, 5).await.unwrap().len(), 1);
        assert!(
            b.lead(&team(), lease, 5).await.unwrap().is_empty(),
            "two leaders"
        );
        // Only the leader claims, whatever the follower asks.
        assert!(b.claim("team", 5).await.unwrap().is_none());
        let sending = a.claim("team", 5).await.unwrap().unwrap();
        // The leader stops renewing (it died while sending); the lease lapses on the database's clock
        // and the follower takes over, queueing the item again.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let led = loop {
            let led = b.lead(&team(), lease, 6).await.unwrap();
            if !led.is_empty() {
                break led;
            }
            assert!(std::time::Instant::now() < deadline, "never taken over");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(led[0].recovered, 1);
        // The old leader cannot claim any more: its lease is gone, whatever it believes.
        assert!(a.claim("team", 7).await.unwrap().is_none());
        let again = b.claim("team", 7).await.unwrap().unwrap();
        assert_eq!(
            (again.id.as_str(), again.attempts),
            (sending.id.as_str(), 2)
        );
        // A released lease passes on at once, and what was left sending comes back.
        b.release(&team()).await.unwrap();
        let led = a.lead(&team(), lease, 8).await.unwrap();
        assert_eq!(led.len(), 1);
        assert_eq!(led[0].recovered, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn instances_plan_disjoint_deliveries_and_a_plan_stored_twice_counts_once() {
        let url = postgres::test_cluster::shared().create_database();
        let (a, b) = (
            handle(&url, "a", false).await,
            handle(&url, "b", false).await,
        );
        for i in 0..10 {
            let mut d = delivery(&format!("k{i}"), b"{}");
            d.body_sha256 = None;
            a.record_delivery(d).await.unwrap();
        }
        let (got_a, got_b) = tokio::join!(a.unplanned(6), b.unplanned(6));
        let (got_a, got_b) = (got_a.unwrap(), got_b.unwrap());
        assert_eq!(got_a.len() + got_b.len(), 10);
        assert!(
            got_a.iter().all(|x| got_b.iter().all(|y| x.id != y.id)),
            "a delivery claimed by both"
        );
        // A claim lasts: b gets none of a's deliveries while a plans them (only its own again).
        let first = got_a[0].id.clone();
        let again = b.unplanned(10).await.unwrap();
        assert_eq!(again.len(), got_b.len());
        assert!(again.iter().all(|x| got_a.iter().all(|y| x.id != y.id)));
        // Both store a plan for the same delivery (b's claim lapsed, say): the second finds it planned
        // and stores nothing.
        save_plan(&a, first.clone(), "n", None, vec![item("team")], 1)
            .await
            .unwrap();
        let mut other = item("team");
        other.route = 1;
        save_plan(&b, first, "n", None, vec![other], 1)
            .await
            .unwrap();
        assert_eq!(a.counts().await.unwrap(), vec![("pending".to_string(), 1)]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_same_delivery_sent_to_two_instances_at_once_is_stored_once() {
        let url = postgres::test_cluster::shared().create_database();
        let (a, b) = (
            handle(&url, "a", false).await,
            handle(&url, "b", false).await,
        );
        for i in 0..20 {
            let mut d = delivery(&format!("same-{i}"), b"{}");
            d.body_sha256 = None;
            let (x, y) = tokio::join!(a.record_delivery(d.clone()), b.record_delivery(d));
            let (x, y) = (x.unwrap(), y.unwrap());
            assert_eq!(x.id, y.id);
            assert!(x.duplicate != y.duplicate, "exactly one copy is new");
        }
        assert_eq!(a.delivery_count().await.unwrap(), 20);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_instance_hears_the_work_another_stores() {
        let url = postgres::test_cluster::shared().create_database();
        let listener = handle(&url, "a", true).await;
        let mut changes = listener.changes().unwrap();
        let writer = handle(&url, "b", false).await;
        // The listening connection says it is (re)connected first.
        let first = tokio::time::timeout(Duration::from_secs(10), changes.recv()).await;
        assert_eq!(first.unwrap().unwrap(), Change::Resync);
        // A delivery is planned by the instance that received it: recording it announces nothing.
        let d = writer.record_delivery(delivery("k", b"{}")).await.unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(300), changes.recv())
                .await
                .is_err()
        );
        // New items are announced, for their destination's leader.
        save_plan(&writer, d.id.clone(), "n", None, vec![item("team")], 1)
            .await
            .unwrap();
        let heard = tokio::time::timeout(Duration::from_secs(10), changes.recv()).await;
        assert_eq!(heard.unwrap().unwrap(), Change::Items("team".into()));
        // A delivery the admin replays is announced to every planner.
        writer.replay_delivery(&d.id).await.unwrap();
        let heard = tokio::time::timeout(Duration::from_secs(10), changes.recv()).await;
        assert_eq!(heard.unwrap().unwrap(), Change::Deliveries);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sqlite_store_moves_to_postgres_with_its_queue_ledger_and_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let old = open(&path, None).unwrap();
            lead_team(&old).await;
            let d = old
                .record_delivery(delivery("k", b"{\"a\":1}"))
                .await
                .unwrap();
            save_plan(
                &old,
                d.id,
                "n",
                None,
                vec![item("team"), {
                    let mut i = item("team");
                    i.route = 1;
                    i
                }],
                1,
            )
            .await
            .unwrap();
            // One item was being sent when the old daemon stopped.
            old.claim("team", 5).await.unwrap().unwrap();
            old.set_tokens(
                "team",
                Tokens {
                    access: Secret::new("acc".into()),
                    refresh: Some(Secret::new("ref".into())),
                    expires_at: 99,
                },
                5,
            )
            .await
            .unwrap();
        }
        let url = postgres::test_cluster::shared().create_database();
        let secret = Secret::new(url.clone());
        let copied = postgres::import_sqlite(&path, &secret, "m").await.unwrap();
        assert_eq!((copied.deliveries, copied.items, copied.ledger), (1, 2, 1));
        // A second run refuses to copy into a database that already holds deliveries.
        assert!(postgres::import_sqlite(&path, &secret, "m").await.is_err());
        let store = handle(&url, "new", false).await;
        assert_eq!(store.ledger("team", 0).await.unwrap(), (1, Some(5)));
        assert_eq!(
            store
                .tokens("team")
                .await
                .unwrap()
                .unwrap()
                .refresh
                .unwrap()
                .expose(),
            "ref"
        );
        // The duplicate is recognized, and the first leader queues the interrupted item again.
        assert!(
            store
                .record_delivery(delivery("k", b"x"))
                .await
                .unwrap()
                .duplicate
        );
        assert_eq!(lead_team(&store).await, 1);
        assert_eq!(
            store.counts().await.unwrap(),
            vec![("pending".to_string(), 2)]
        );
    }
}

contract!(items_under_review_wait_for_a_person_and_the_decision_is_recorded);
async fn items_under_review_wait_for_a_person_and_the_decision_is_recorded(db: Db) {
    let store = db.open_leading().await;
    let d = store.record_delivery(delivery("r", b"{}")).await.unwrap();
    let mut kept = item("team");
    kept.review = true;
    let mut refused = item("team");
    refused.review = true;
    refused.route = 1;
    save_plan(&store, d.id, "n", None, vec![kept, refused], 1)
        .await
        .unwrap();
    // Nothing under review is ever claimed, or offered for a digest.
    assert!(store.claim("team", 100).await.unwrap().is_none());
    assert!(store.due("team", 100, 10).await.unwrap().is_empty());
    let waiting = store.items(Some(ItemState::Review), 10).await.unwrap();
    assert_eq!(waiting.len(), 2);
    let (a, b) = (waiting[0].id.clone(), waiting[1].id.clone());

    let approved = store
        .approve(&a, "alice", Some(("edited".into(), 6)), 50)
        .await
        .unwrap();
    assert_eq!(
        (approved.state, approved.text.as_str(), approved.length),
        (ItemState::Pending, "edited", 6)
    );
    assert_eq!(
        (
            approved.decision.as_deref(),
            approved.decided_by.as_deref(),
            approved.decided_at
        ),
        (Some("edited"), Some("alice"), Some(50))
    );
    store.reject(&b, "bob", 51).await.unwrap();
    // A decision is taken once.
    assert!(matches!(
        store.reject(&a, "bob", 52).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.approve(&b, "alice", None, 52).await,
        Err(StoreError::NotFound(_))
    ));
    let claimed = store.claim("team", 60).await.unwrap().unwrap();
    assert_eq!(
        (claimed.id.as_str(), claimed.text.as_str()),
        (a.as_str(), "edited")
    );
    assert!(
        store.claim("team", 60).await.unwrap().is_none(),
        "a rejected item was claimed"
    );
    let rejected = store.item(&b).await.unwrap().unwrap();
    assert_eq!(
        (
            rejected.state,
            rejected.decided_by.as_deref(),
            rejected.last_error.as_deref()
        ),
        (ItemState::Rejected, Some("bob"), Some("rejected by bob"))
    );
    // Rejected items are finished items: retention forgets them in time.
    assert_eq!(store.prune(Prunable::Items, 1_000, 10).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_restarted_under_its_name_takes_back_the_deliveries_it_was_planning() {
    let url = postgres::test_cluster::shared().create_database();
    let open = |name: &'static str| {
        let url = url.clone();
        async move {
            std::sync::Arc::new(
                postgres::PgStore::connect(&Secret::new(url), name, 4, false)
                    .await
                    .unwrap(),
            ) as SharedStore
        }
    };
    let before = open("a").await;
    before.record_delivery(delivery("k", b"{}")).await.unwrap();
    assert_eq!(before.unplanned(10).await.unwrap().len(), 1);
    // It dies while planning: another instance waits for the claim to lapse…
    drop(before);
    assert!(open("b").await.unplanned(10).await.unwrap().is_empty());
    // …but the same instance, restarted, plans it at once.
    assert_eq!(open("a").await.unplanned(10).await.unwrap().len(), 1);
}
