//! The durable store: deliveries, the outbox, the send ledger and rate-limit holds.
//!
//! `Store` is the trait the rest of the daemon uses, and `SharedStore` the handle it passes around;
//! SQLite (`sqlite/`) is its backend today. Every method returns only after its transaction committed
//! durably, so a caller that got `Ok` may promise durability (the ingress answers 2xx on it).
//! Nothing here knows about HTTP, templates or X, and no other module sees SQL.

pub mod sqlite;

use std::path::Path;

use crate::clock::UnixMillis;
use crate::config::secret::Secret;

/// Why the store could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be written (disk full, I/O error, locked): the sender should retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store has shut down.
    #[error("store closed")]
    Closed,
    #[error("not found: {0}")]
    NotFound(String),
    /// The store refused this data itself (a constraint, a value it cannot hold): trying again cannot
    /// help, unlike `Unavailable`.
    #[error("refused by the store: {0}")]
    Rejected(String),
}

/// Why a destination is held, as persisted with the hold. The cause, not the text of the reason, decides
/// what follows: only `Paused` needs the admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldCause {
    /// The admin's own window is full; ends when its oldest request leaves it. Never persisted: the
    /// ledger is the record.
    OwnWindow,
    /// The API answered 429 or its headers showed a spent window; ends at the reset.
    RateLimited,
    /// The monthly budget is spent; ends with the month.
    Budget,
    /// The account itself was refused (credentials, credits, access level): the admin must act.
    Paused,
}

impl HoldCause {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldCause::OwnWindow => "own_window",
            HoldCause::RateLimited => "rate_limited",
            HoldCause::Budget => "budget",
            HoldCause::Paused => "paused",
        }
    }

    /// Reads a stored cause; an unknown one (written by a newer chirpd) is taken as the strictest.
    pub fn parse(s: &str) -> HoldCause {
        match s {
            "own_window" => HoldCause::OwnWindow,
            "rate_limited" => HoldCause::RateLimited,
            "budget" => HoldCause::Budget,
            _ => HoldCause::Paused,
        }
    }

    pub fn needs_admin(self) -> bool {
        self == HoldCause::Paused
    }
}

/// A persisted hold on a destination: nothing is sent to it before `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub until: UnixMillis,
    pub cause: HoldCause,
    pub reason: String,
}

/// A verified webhook to record.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub source: String,
    /// The sender's delivery id, or `sha256:<hex>` of the body when the sender gives none.
    pub dedupe_key: String,
    /// The body's SHA-256, set when the delivery id is not covered by the signature.
    pub body_sha256: Option<String>,
    pub event: Option<String>,
    pub body: bytes::Bytes,
    pub received_at: UnixMillis,
}

/// The result of recording a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub id: String,
    /// The delivery was already stored: nothing new will be posted.
    pub duplicate: bool,
}

/// A stored delivery awaiting planning.
#[derive(Debug, Clone)]
pub struct StoredDelivery {
    pub id: String,
    pub source: String,
    pub event: Option<String>,
    pub body: Vec<u8>,
    pub received_at: UnixMillis,
}

/// An outbox item to create.
#[derive(Debug, Clone)]
pub struct NewItem {
    pub route: usize,
    pub destination: String,
    /// The DM recipient, or empty.
    pub recipient: String,
    pub kind: &'static str,
    pub text: String,
    pub length: usize,
    /// The event's kind and project, for digests.
    pub event_kind: Option<&'static str>,
    pub project: Option<String>,
    /// What the event is about (provider:project:number), for settling.
    pub subject: Option<String>,
    /// When the item may go out; none: at once. Settling destinations wait their settle window.
    pub due_at: Option<UnixMillis>,
    /// A pending item about the same subject that this one replaces, with the merged text to use if it
    /// is still pending when this plan is stored.
    pub merge: Option<Merge>,
}

/// A delivery's plan, ready to store.
#[derive(Debug, Clone)]
pub struct PlanRecord {
    pub delivery_id: String,
    pub native: String,
    pub kind: Option<&'static str>,
    pub items: Vec<NewItem>,
    pub error: Option<String>,
    pub now: UnixMillis,
}

/// How a settling item replaces an earlier pending one about the same subject.
#[derive(Debug, Clone)]
pub struct Merge {
    pub supersedes: String,
    pub text: String,
    pub length: usize,
    /// The earlier item's due time: a stream of updates cannot postpone the post forever.
    pub due_at: UnixMillis,
    /// The kind the merged post shows ("opened" stays opened through later updates).
    pub event_kind: &'static str,
}

/// The life of an outbox item: pending → sending → sent | retry | dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemState {
    Pending,
    /// Marked before the request to X; found in this state after a crash, the item is sent again.
    Sending,
    /// Waiting for its backoff after a transient failure.
    Retry,
    Sent,
    /// Given up on, with the reason in `last_error`.
    Dead,
    /// Carried by a digest (`folded_into`), not posted on its own.
    Folded,
}

impl ItemState {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemState::Pending => "pending",
            ItemState::Sending => "sending",
            ItemState::Retry => "retry",
            ItemState::Sent => "sent",
            ItemState::Dead => "dead",
            ItemState::Folded => "folded",
        }
    }

    pub fn parse(s: &str) -> Option<ItemState> {
        [
            ItemState::Pending,
            ItemState::Sending,
            ItemState::Retry,
            ItemState::Sent,
            ItemState::Dead,
            ItemState::Folded,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// An outbox item as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub id: String,
    /// None for a digest, which carries several deliveries' items.
    pub delivery_id: Option<String>,
    pub route: i64,
    pub destination: String,
    pub recipient: String,
    pub kind: String,
    pub text: String,
    pub length: usize,
    pub state: ItemState,
    pub attempts: i64,
    pub next_attempt_at: UnixMillis,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
    pub sent_at: Option<UnixMillis>,
    pub remote_id: Option<String>,
    pub last_error: Option<String>,
    pub event_kind: Option<String>,
    pub project: Option<String>,
    pub folded_into: Option<String>,
}

impl Item {
    /// A digest carries several deliveries' items and comes from none itself.
    pub fn is_digest(&self) -> bool {
        self.delivery_id.is_none()
    }
}

/// How an attempt on a `sending` item ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// Posted; `cost_micros` goes to the spend ledger.
    Sent {
        remote_id: Option<String>,
        note: Option<String>,
        cost_micros: i64,
    },
    /// A failed attempt: try again at `at`.
    Retry {
        at: UnixMillis,
        error: String,
    },
    /// Not an attempt at all (rate-limited, destination paused): back to pending without counting it.
    Release {
        at: UnixMillis,
        error: String,
    },
    Dead {
        error: String,
    },
}

/// The durable store, as every other module sees it. SQLite (`sqlite::SqliteStore`) implements it today;
/// a PostgreSQL backend will implement the same trait, so nothing outside `outbox` changes with the
/// backend.
///
/// The contract every backend keeps:
/// - a method that changes anything returns only after its transaction committed durably (fsync, or
///   PostgreSQL's synchronous commit), so a caller holding `Ok` may promise durability;
/// - each method is one transaction: all or nothing;
/// - `claim` is atomic across every process sharing the store: one item is never claimed twice;
/// - queries may run on a separate connection and see every transaction committed before they began.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Records a verified delivery, or finds the earlier copy of a duplicate.
    async fn record_delivery(&self, d: NewDelivery) -> Result<Recorded, StoreError>;

    /// Deliveries not yet turned into outbox items, oldest first.
    async fn unplanned(&self, limit: usize) -> Result<Vec<StoredDelivery>, StoreError>;

    /// Stores several deliveries' plans (their outbox items and new state) in one transaction: all or
    /// nothing, so a crash leaves either a delivery's plan and its `planned` state, or neither.
    async fn save_plans(&self, plans: Vec<PlanRecord>) -> Result<(), StoreError>;

    /// Gives up on a delivery that cannot be planned: it is kept, marked `dead` with the reason, and
    /// never offered for planning again (until `replay_delivery`).
    async fn fail_delivery(&self, id: &str, error: &str) -> Result<(), StoreError>;

    /// The pending item about `subject` for a destination and recipient, if one waits to settle.
    async fn settling(
        &self,
        destination: &str,
        recipient: &str,
        subject: &str,
    ) -> Result<Option<Item>, StoreError>;

    /// Claims the next due item of `destination`: marks it `sending` and records the request in the
    /// ledger, committed before the caller makes the request.
    async fn claim(&self, destination: &str, now: UnixMillis) -> Result<Option<Item>, StoreError>;

    /// When the earliest waiting item of `destination` becomes due.
    async fn next_due(&self, destination: &str) -> Result<Option<UnixMillis>, StoreError>;

    /// Commits how an attempt on a `sending` item ended.
    async fn finish(&self, id: &str, how: Finish, now: UnixMillis) -> Result<(), StoreError>;

    /// Puts items left `sending` by a crash back in the queue; they are sent again with the same text.
    async fn recover_interrupted(&self, now: UnixMillis) -> Result<usize, StoreError>;

    /// Requests made to `destination` after `since`: their count and the oldest one's time.
    async fn ledger(
        &self,
        destination: &str,
        since: UnixMillis,
    ) -> Result<(u32, Option<UnixMillis>), StoreError>;

    /// Forgets ledger rows older than `before`.
    async fn prune_ledger(&self, before: UnixMillis) -> Result<usize, StoreError>;

    /// Holds `destination` until `block.until` (the later of this and any existing hold wins, with its
    /// cause and reason).
    async fn block(&self, destination: &str, block: Block) -> Result<(), StoreError>;

    /// The persisted hold of `destination`, if any.
    async fn blocked(&self, destination: &str) -> Result<Option<Block>, StoreError>;

    /// The newest items, optionally in one state.
    async fn items(&self, state: Option<ItemState>, limit: usize) -> Result<Vec<Item>, StoreError>;

    async fn item(&self, id: &str) -> Result<Option<Item>, StoreError>;

    /// Puts a dead, waiting or pending item back in the queue, due now.
    async fn retry_item(&self, id: &str, now: UnixMillis) -> Result<(), StoreError>;

    /// Marks a queued item dead so it is never sent.
    async fn drop_item(&self, id: &str, now: UnixMillis) -> Result<(), StoreError>;

    /// Plans a delivery again; returns how many dead items it replaces.
    async fn replay_delivery(&self, id: &str) -> Result<usize, StoreError>;

    /// The due items of a destination, oldest first: the candidates for a digest.
    async fn due(
        &self,
        destination: &str,
        now: UnixMillis,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError>;

    /// Folds `fold.items` into a new digest item for one recipient, in one transaction; returns the
    /// digest's id. Every folded item must be queued for that destination and recipient.
    async fn fold(&self, fold: NewDigest) -> Result<String, StoreError>;

    /// Marks items dead with a reason (overflow = "drop").
    async fn drop_items(
        &self,
        items: Vec<String>,
        reason: &str,
        now: UnixMillis,
    ) -> Result<usize, StoreError>;

    /// Replaces an item's text before its request (a link removed to stay within budget).
    async fn set_text(&self, id: &str, text: String, length: usize) -> Result<(), StoreError>;

    /// Money spent on `destination` since `since`, in micro-dollars.
    async fn spent_since(&self, destination: &str, since: UnixMillis) -> Result<i64, StoreError>;

    /// A DM recipient's user id, if resolved before. Usernames compare without `@` and case.
    async fn user_id(&self, username: &str) -> Result<Option<String>, StoreError>;

    async fn set_user_id(
        &self,
        username: &str,
        user_id: &str,
        now: UnixMillis,
    ) -> Result<(), StoreError>;

    /// The OAuth 2.0 tokens of a destination.
    async fn tokens(&self, destination: &str) -> Result<Option<Tokens>, StoreError>;

    /// Stores a destination's new OAuth 2.0 tokens; committed before the caller uses them.
    async fn set_tokens(
        &self,
        destination: &str,
        tokens: Tokens,
        now: UnixMillis,
    ) -> Result<(), StoreError>;

    /// Outbox items per state.
    async fn counts(&self) -> Result<Vec<(String, i64)>, StoreError>;

    /// Keeps a secret a source learned at a handshake (Asana's `X-Hook-Secret`), replacing any earlier one.
    async fn set_learned_secret(
        &self,
        source: &str,
        secret: Secret,
        now: UnixMillis,
    ) -> Result<(), StoreError>;

    async fn learned_secret(&self, source: &str) -> Result<Option<Secret>, StoreError>;

    async fn delivery_count(&self) -> Result<i64, StoreError>;

    /// Commits an empty transaction through the same path as every change: `Ok` means the store can
    /// durably write right now. The watchdog and `/readyz` ask this, not a query, because a writer that
    /// is dead or stuck still leaves queries answering.
    async fn probe_commit(&self) -> Result<(), StoreError>;
}

/// The store as the daemon shares it between tasks.
pub type SharedStore = std::sync::Arc<dyn Store>;

/// Opens the SQLite store at `path`, creating and migrating it as needed; `max_bytes` caps its size
/// (writes past it fail as on a full disk).
pub fn open(path: &Path, max_bytes: Option<u64>) -> Result<SharedStore, StoreError> {
    Ok(std::sync::Arc::new(sqlite::SqliteStore::open(
        path, max_bytes,
    )?))
}

/// A destination's OAuth 2.0 user tokens.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: Secret,
    /// None when the app was not granted `offline.access`.
    pub refresh: Option<Secret>,
    pub expires_at: UnixMillis,
}

/// A digest to create from queued items of one destination and recipient.
#[derive(Debug, Clone)]
pub struct NewDigest {
    pub destination: String,
    /// The DM recipient every folded item was for, or empty for posts: a digest of DMs is a DM to the
    /// same person, never a public post.
    pub recipient: String,
    /// The outbox item kind of the destination (tweet, dm, mastodon).
    pub kind: &'static str,
    pub items: Vec<String>,
    pub text: String,
    pub length: usize,
    pub now: UnixMillis,
}

/// A new time-ordered id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_in(dir: &tempfile::TempDir) -> SharedStore {
        open(&dir.path().join("s.db"), None).unwrap()
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

    #[tokio::test]
    async fn duplicates_by_id_or_body_find_the_first_copy() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_in(&dir);
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

    #[tokio::test]
    async fn concurrent_records_share_commits_and_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_in(&dir);
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

    #[tokio::test]
    async fn items_move_through_their_states_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = open(&path, None).unwrap();
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

        // A crash while sending: reopening finds it `sending` and recovery queues it again.
        let store = open(&path, None).unwrap();
        assert_eq!(store.recover_interrupted(20).await.unwrap(), 1);
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

    #[tokio::test]
    async fn folding_replaces_items_with_one_digest_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_in(&dir);
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

    #[tokio::test]
    async fn tokens_and_user_ids_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_in(&dir);
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

    #[tokio::test]
    async fn planning_twice_creates_no_second_item() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_in(&dir);
        let d = store.record_delivery(delivery("a", b"{}")).await.unwrap();
        for _ in 0..2 {
            save_plan(&store, d.id.clone(), "n", None, vec![item("team")], 1)
                .await
                .unwrap();
        }
        assert_eq!(store.items(None, 10).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn released_items_do_not_count_an_attempt_and_blocks_keep_the_latest() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_in(&dir);
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

    #[tokio::test]
    async fn a_digest_folds_only_its_own_recipients_items() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_in(&dir);
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
}
