//! The durable store: deliveries, the outbox, the send ledger and rate-limit holds.
//!
//! `Store` is the narrow interface the rest of the daemon uses; SQLite (`sqlite.rs`) is its backend, and a
//! Postgres backend would implement the same methods. Every method returns only after its transaction
//! committed with fsync, so a caller that got `Ok` may promise durability (the ingress answers 2xx on it).
//! Concurrent calls share commits (group commit), so durability does not cap throughput.
//! Nothing here knows about HTTP, templates or X.

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

/// The store handle. Cheap to clone; all clones share one writer thread and one read connection.
#[derive(Clone)]
pub struct Store {
    /// Every change, batched into group commits.
    writer: sqlite::Writer,
    /// Queries, which need no commit.
    reader: sqlite::Reader,
}

impl Store {
    /// Opens the store at `path`, creating and migrating it as needed.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with_cap(path, None)
    }

    /// Opens the store with a cap on its size: writes past it fail as on a full disk.
    pub fn open_with_cap(path: &Path, max_bytes: Option<u64>) -> Result<Store, StoreError> {
        let writer = sqlite::Writer::open(path, max_bytes)?;
        Ok(Store {
            writer,
            reader: sqlite::Reader::open(path)?,
        })
    }

    /// Records a verified delivery, or finds the earlier copy of a duplicate.
    pub async fn record_delivery(&self, d: NewDelivery) -> Result<Recorded, StoreError> {
        let id = new_id();
        self.writer
            .call(move |c| sqlite::record_delivery(c, &d, &id))
            .await
    }

    /// Deliveries not yet turned into outbox items, oldest first.
    pub async fn unplanned(&self, limit: usize) -> Result<Vec<StoredDelivery>, StoreError> {
        self.reader.call(move |c| sqlite::unplanned(c, limit)).await
    }

    /// Stores a delivery's outbox items and marks it planned, in one transaction, so that a crash
    /// leaves either both or neither.
    pub async fn save_plan(
        &self,
        delivery_id: String,
        native: String,
        kind: Option<&'static str>,
        items: Vec<NewItem>,
        error: Option<String>,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.save_plans(vec![PlanRecord {
            delivery_id,
            native,
            kind,
            items,
            error,
            now,
        }])
        .await
    }

    /// Stores several deliveries' plans in one job, hence one commit: the fanout's work costs one fsync
    /// per batch instead of one per delivery. The job is all or nothing: if one plan fails, none is
    /// stored, and the deliveries stay queued for planning.
    pub async fn save_plans(&self, plans: Vec<PlanRecord>) -> Result<(), StoreError> {
        let plans: Vec<(PlanRecord, Vec<(String, NewItem)>)> = plans
            .into_iter()
            .map(|mut p| {
                let items = std::mem::take(&mut p.items)
                    .into_iter()
                    .map(|i| (new_id(), i))
                    .collect();
                (p, items)
            })
            .collect();
        self.writer
            .call(move |c| {
                for (p, items) in &plans {
                    sqlite::save_plan(
                        c,
                        &p.delivery_id,
                        &p.native,
                        p.kind,
                        items,
                        p.error.as_deref(),
                        p.now,
                    )?;
                }
                Ok(())
            })
            .await
    }

    /// The pending item about `subject` for a destination and recipient, if one waits to settle.
    pub async fn settling(
        &self,
        destination: &str,
        recipient: &str,
        subject: &str,
    ) -> Result<Option<Item>, StoreError> {
        let (destination, recipient, subject) = (
            destination.to_string(),
            recipient.to_string(),
            subject.to_string(),
        );
        self.reader
            .call(move |c| sqlite::settling(c, &destination, &recipient, &subject))
            .await
    }

    /// Claims the next due item of `destination`: marks it `sending` and records the request in the
    /// ledger, committed before the caller makes the request.
    pub async fn claim(
        &self,
        destination: &str,
        now: UnixMillis,
    ) -> Result<Option<Item>, StoreError> {
        let destination = destination.to_string();
        self.writer
            .call(move |c| sqlite::claim(c, &destination, now))
            .await
    }

    /// When the earliest waiting item of `destination` becomes due.
    pub async fn next_due(&self, destination: &str) -> Result<Option<UnixMillis>, StoreError> {
        let destination = destination.to_string();
        self.reader
            .call(move |c| sqlite::next_due(c, &destination))
            .await
    }

    pub async fn finish(&self, id: &str, how: Finish, now: UnixMillis) -> Result<(), StoreError> {
        let id = id.to_string();
        self.writer
            .call(move |c| sqlite::finish(c, &id, &how, now))
            .await
    }

    /// Puts items left `sending` by a crash back in the queue; they are sent again with the same text.
    pub async fn recover_interrupted(&self, now: UnixMillis) -> Result<usize, StoreError> {
        self.writer
            .call(move |c| sqlite::recover_interrupted(c, now))
            .await
    }

    /// Requests made to `destination` after `since`: their count and the oldest one's time.
    pub async fn ledger(
        &self,
        destination: &str,
        since: UnixMillis,
    ) -> Result<(u32, Option<UnixMillis>), StoreError> {
        let destination = destination.to_string();
        self.reader
            .call(move |c| sqlite::ledger(c, &destination, since))
            .await
    }

    /// Forgets ledger rows older than any window needs.
    pub async fn prune_ledger(&self, before: UnixMillis) -> Result<usize, StoreError> {
        self.writer
            .call(move |c| sqlite::prune_ledger(c, before))
            .await
    }

    /// Holds `destination` until `until` (the later of this and any existing hold wins).
    pub async fn block(
        &self,
        destination: &str,
        until: UnixMillis,
        reason: &str,
    ) -> Result<(), StoreError> {
        let (destination, reason) = (destination.to_string(), reason.to_string());
        self.writer
            .call(move |c| sqlite::block(c, &destination, until, &reason))
            .await
    }

    pub async fn blocked(
        &self,
        destination: &str,
    ) -> Result<Option<(UnixMillis, String)>, StoreError> {
        let destination = destination.to_string();
        self.reader
            .call(move |c| sqlite::blocked(c, &destination))
            .await
    }

    pub async fn items(
        &self,
        state: Option<ItemState>,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        self.reader
            .call(move |c| sqlite::items(c, state, limit))
            .await
    }

    pub async fn item(&self, id: &str) -> Result<Option<Item>, StoreError> {
        let id = id.to_string();
        self.reader.call(move |c| sqlite::item(c, &id)).await
    }

    /// Puts a dead, waiting or pending item back in the queue, due now.
    pub async fn retry_item(&self, id: &str, now: UnixMillis) -> Result<(), StoreError> {
        let id = id.to_string();
        self.writer
            .call(move |c| sqlite::retry_item(c, &id, now))
            .await
    }

    /// Marks a queued item dead so it is never sent.
    pub async fn drop_item(&self, id: &str, now: UnixMillis) -> Result<(), StoreError> {
        let id = id.to_string();
        self.writer
            .call(move |c| sqlite::drop_item(c, &id, now))
            .await
    }

    /// Plans a delivery again; returns how many dead items it replaces.
    pub async fn replay_delivery(&self, id: &str) -> Result<usize, StoreError> {
        let id = id.to_string();
        self.writer
            .call(move |c| sqlite::replay_delivery(c, &id))
            .await
    }

    /// The due items of a destination, oldest first: the candidates for a digest.
    pub async fn due(
        &self,
        destination: &str,
        now: UnixMillis,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let destination = destination.to_string();
        self.reader
            .call(move |c| sqlite::due(c, &destination, now, limit))
            .await
    }

    /// Folds `items` into a new digest item with `text`, in one transaction; returns the digest's id.
    pub async fn fold(
        &self,
        destination: &str,
        items: Vec<String>,
        text: String,
        length: usize,
        now: UnixMillis,
    ) -> Result<String, StoreError> {
        let (destination, id) = (destination.to_string(), new_id());
        self.writer
            .call(move |c| {
                sqlite::fold(c, &destination, &id, &items, &text, length, now).map(|()| id)
            })
            .await
    }

    /// Marks items dead with a reason (overflow = "drop").
    pub async fn drop_items(
        &self,
        items: Vec<String>,
        reason: &str,
        now: UnixMillis,
    ) -> Result<usize, StoreError> {
        let reason = reason.to_string();
        self.writer
            .call(move |c| sqlite::drop_items(c, &items, &reason, now))
            .await
    }

    /// Replaces an item's text before its request (a link removed to stay within budget).
    pub async fn set_text(&self, id: &str, text: String, length: usize) -> Result<(), StoreError> {
        let id = id.to_string();
        self.writer
            .call(move |c| sqlite::set_text(c, &id, &text, length))
            .await
    }

    /// Money spent on `destination` since `since`, in micro-dollars.
    pub async fn spent_since(
        &self,
        destination: &str,
        since: UnixMillis,
    ) -> Result<i64, StoreError> {
        let destination = destination.to_string();
        self.reader
            .call(move |c| sqlite::spent_since(c, &destination, since))
            .await
    }

    /// A DM recipient's user id, if resolved before.
    pub async fn user_id(&self, username: &str) -> Result<Option<String>, StoreError> {
        let username = username.to_ascii_lowercase();
        self.reader
            .call(move |c| sqlite::user_id(c, &username))
            .await
    }

    pub async fn set_user_id(
        &self,
        username: &str,
        user_id: &str,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let (username, user_id) = (username.to_ascii_lowercase(), user_id.to_string());
        self.writer
            .call(move |c| sqlite::set_user_id(c, &username, &user_id, now))
            .await
    }

    /// The OAuth 2.0 tokens of a destination: access token, refresh token, expiry.
    pub async fn tokens(
        &self,
        destination: &str,
    ) -> Result<Option<(Secret, Option<Secret>, UnixMillis)>, StoreError> {
        let destination = destination.to_string();
        let found = self
            .reader
            .call(move |c| sqlite::tokens(c, &destination))
            .await?;
        Ok(found.map(|(a, r, e)| (Secret::new(a), r.map(Secret::new), e)))
    }

    /// Stores a destination's new OAuth 2.0 tokens; committed before the caller uses them.
    pub async fn set_tokens(
        &self,
        destination: &str,
        access: Secret,
        refresh: Option<Secret>,
        expires_at: UnixMillis,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let destination = destination.to_string();
        self.writer
            .call(move |c| {
                sqlite::set_tokens(
                    c,
                    &destination,
                    access.expose(),
                    refresh.as_ref().map(Secret::expose),
                    expires_at,
                    now,
                )
            })
            .await
    }

    /// Outbox items per state.
    pub async fn counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.reader.call(sqlite::counts).await
    }

    /// Keeps a secret a source learned at a handshake (Asana's `X-Hook-Secret`), replacing any earlier one.
    pub async fn set_learned_secret(
        &self,
        source: &str,
        secret: Secret,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let source = source.to_string();
        self.writer
            .call(move |c| sqlite::set_learned_secret(c, &source, secret.expose(), now))
            .await
    }

    pub async fn learned_secret(&self, source: &str) -> Result<Option<Secret>, StoreError> {
        let source = source.to_string();
        let found = self
            .reader
            .call(move |c| sqlite::learned_secret(c, &source))
            .await?;
        Ok(found.map(Secret::new))
    }

    pub async fn delivery_count(&self) -> Result<i64, StoreError> {
        self.reader.call(sqlite::delivery_count).await
    }
}

/// A new time-ordered id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let store = Store::open(&dir.path().join("s.db")).unwrap();
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
        let store = Store::open(&dir.path().join("s.db")).unwrap();
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
        let store = Store::open(&path).unwrap();
        let d = store.record_delivery(delivery("a", b"{}")).await.unwrap();
        assert_eq!(store.unplanned(10).await.unwrap().len(), 1);
        store
            .save_plan(
                d.id.clone(),
                "issues.opened".into(),
                Some("task.created"),
                vec![item("team")],
                None,
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
        let store = Store::open(&path).unwrap();
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

    #[tokio::test]
    async fn folding_replaces_items_with_one_digest_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
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
            store
                .save_plan(d.id, "n".into(), None, vec![item("team")], None, 1)
                .await
                .unwrap();
        }
        for it in store.due("team", 1, 10).await.unwrap() {
            ids.push(it.id);
        }
        assert_eq!(ids.len(), 3);
        let digest = store
            .fold("team", ids.clone(), "3 updates".into(), 9, 2)
            .await
            .unwrap();
        let due = store.due("team", 2, 10).await.unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(
            (due[0].id.as_str(), due[0].kind.as_str()),
            (digest.as_str(), "digest")
        );
        let folded = store.item(&ids[0]).await.unwrap().unwrap();
        assert_eq!(
            (folded.state, folded.folded_into.as_deref()),
            (ItemState::Folded, Some(digest.as_str()))
        );
        // Folding an item that is no longer queued fails and changes nothing.
        assert!(
            store
                .fold("team", vec![ids[0].clone()], "x".into(), 1, 3)
                .await
                .is_err()
        );
        assert_eq!(store.due("team", 3, 10).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn tokens_and_user_ids_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        assert!(store.tokens("team").await.unwrap().is_none());
        store
            .set_tokens(
                "team",
                Secret::new("a1".into()),
                Some(Secret::new("r1".into())),
                100,
                1,
            )
            .await
            .unwrap();
        let (a, r, e) = store.tokens("team").await.unwrap().unwrap();
        assert_eq!(
            (a.expose(), r.unwrap().expose().to_string(), e),
            ("a1", "r1".to_string(), 100)
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
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        let d = store.record_delivery(delivery("a", b"{}")).await.unwrap();
        for _ in 0..2 {
            store
                .save_plan(d.id.clone(), "n".into(), None, vec![item("team")], None, 1)
                .await
                .unwrap();
        }
        assert_eq!(store.items(None, 10).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn released_items_do_not_count_an_attempt_and_blocks_keep_the_latest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        let d = store.record_delivery(delivery("a", b"{}")).await.unwrap();
        store
            .save_plan(d.id, "n".into(), None, vec![item("team")], None, 1)
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
        store.block("team", 900, "429").await.unwrap();
        store.block("team", 800, "older").await.unwrap();
        assert_eq!(
            store.blocked("team").await.unwrap(),
            Some((900, "429".to_string()))
        );
    }
}
