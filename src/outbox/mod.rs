//! The durable store: deliveries, the outbox, the send ledger and rate-limit holds.
//!
//! `Store` is the trait the rest of the daemon uses, and `SharedStore` the handle it passes around.
//! Two backends keep it: SQLite (`sqlite/`, the embedded default, one process) and PostgreSQL
//! (`postgres/`, a fleet of instances sharing one database). Every method returns only after its
//! transaction committed durably, so a caller that got `Ok` may promise durability (the ingress answers
//! 2xx on it). Nothing here knows about HTTP, templates or X, and no other module sees SQL.

pub mod postgres;
pub mod sqlite;

use std::path::Path;
use std::time::Duration;

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
    /// A handshake or ping the ingress answered: kept only so that its body, replayed under another event
    /// name, is recognized as a duplicate; never planned.
    pub handshake: bool,
}

/// The result of recording a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub id: String,
    /// The delivery was already stored: nothing new will be posted.
    pub duplicate: bool,
}

/// A stored delivery as the console lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub id: String,
    pub source: String,
    pub event: Option<String>,
    pub received_at: UnixMillis,
    /// received | planned | failed | dead | handshake
    pub state: String,
    /// Set by planning: the provider's event name and the normalized kind.
    pub native: Option<String>,
    pub kind: Option<String>,
    pub error: Option<String>,
}

/// A delivery with its body, unless retention forgot it.
pub type DeliveryWithBody = (DeliveryRecord, Option<Vec<u8>>);

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
    /// The item waits in `review` for a person's decision instead of being queued.
    pub review: bool,
}

/// What a planned item is stored as, once its merge (if any) was tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored<'a> {
    pub text: &'a str,
    pub length: usize,
    pub due: UnixMillis,
    pub event_kind: Option<&'static str>,
    /// `review` for an item a person decides on, else `pending`.
    pub state: &'static str,
}

impl NewItem {
    /// The pending item this one would replace. An item under review never merges: a person decides on
    /// each one.
    pub fn merge_target(&self) -> Option<&Merge> {
        self.merge.as_ref().filter(|_| !self.review)
    }

    /// What to store for this item, planned at `now`. `merged`: the item it merges with was still pending
    /// and is now folded into this one, which takes the merged text and the earlier due time; otherwise
    /// (that one was already claimed) this one is posted on its own, with its own text.
    pub fn stored(&self, now: UnixMillis, merged: bool) -> Stored<'_> {
        let state = if self.review { "review" } else { "pending" };
        match self.merge_target().filter(|_| merged) {
            Some(m) => Stored {
                text: &m.text,
                length: m.length,
                due: m.due_at,
                event_kind: Some(m.event_kind),
                state,
            },
            None => Stored {
                text: &self.text,
                length: self.length,
                due: self.due_at.unwrap_or(now),
                event_kind: self.event_kind,
                state,
            },
        }
    }
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

/// The life of an outbox item: pending → sending → sent | retry | dead; an item under review starts in
/// review → pending (approved) | rejected.
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
    /// Waiting for a person to approve or reject it; never claimed.
    Review,
    /// Rejected by a person: never sent.
    Rejected,
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
            ItemState::Review => "review",
            ItemState::Rejected => "rejected",
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
            ItemState::Review,
            ItemState::Rejected,
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
    /// A person's decision on an item under review: `approved`, `edited` (approved with a new text) or
    /// `rejected`, by whom and when.
    pub decision: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<UnixMillis>,
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

    /// Takes or renews this process's lease on each destination, for `ttl`, and returns the ones it
    /// leads now. Only a destination's leader claims its items, so that one process sends for it across
    /// the fleet. A lease taken from a leader that stopped renewing it (or, on SQLite, a destination led
    /// for the first time since the store was opened) puts the items that leader left `sending` back in
    /// the queue, in the same transaction: they are sent again with the same text, and the duplicate
    /// refusal of X proves an earlier success.
    async fn lead(
        &self,
        destinations: &[String],
        ttl: Duration,
        now: UnixMillis,
    ) -> Result<Vec<Led>, StoreError>;

    /// Gives up this process's leases on `destinations` (at shutdown, once their workers stopped), so
    /// that another instance takes over at once instead of after the lease expires.
    async fn release(&self, destinations: &[String]) -> Result<(), StoreError>;

    /// Work other processes stored that this one should act on, for backends shared by several
    /// processes; none for a store only this process writes.
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<Change>> {
        None
    }

    /// Requests made to `destination` after `since`: their count and the oldest one's time.
    async fn ledger(
        &self,
        destination: &str,
        since: UnixMillis,
    ) -> Result<(u32, Option<UnixMillis>), StoreError>;

    /// Forgets at most `limit` records of one kind that are older than `before`; returns how many. Callers
    /// repeat it until it returns less than `limit`, so that no single transaction holds the writer long.
    async fn prune(
        &self,
        what: Prunable,
        before: UnixMillis,
        limit: usize,
    ) -> Result<usize, StoreError>;

    /// How big the store is, and how much of that is free space it will reuse.
    async fn size(&self) -> Result<StoreSize, StoreError>;

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

    /// Approves an item under review: it is queued, due now, with `text` (already fitted) in place of its
    /// own when given. Records who decided and when; returns the item as queued.
    async fn approve(
        &self,
        id: &str,
        by: &str,
        text: Option<(String, usize)>,
        now: UnixMillis,
    ) -> Result<Item, StoreError>;

    /// Rejects an item under review: it is never sent. Records who decided and when.
    async fn reject(&self, id: &str, by: &str, now: UnixMillis) -> Result<(), StoreError>;

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

    /// Keeps a secret a source learned at a handshake (Asana's `X-Hook-Secret`), replacing any earlier one,
    /// and closes the source's handshake window.
    async fn set_learned_secret(
        &self,
        source: &str,
        secret: Secret,
        now: UnixMillis,
    ) -> Result<(), StoreError>;

    async fn learned_secret(&self, source: &str) -> Result<Option<Secret>, StoreError>;

    /// Lets the next handshake of `source` replace its learned secret until `until` (`chirpd handshake
    /// open`); the window closes when a handshake is accepted.
    async fn open_handshake(&self, source: &str, until: UnixMillis) -> Result<(), StoreError>;

    /// Whether a handshake window of `source` is open at `now`.
    async fn handshake_open(&self, source: &str, now: UnixMillis) -> Result<bool, StoreError>;

    async fn delivery_count(&self) -> Result<i64, StoreError>;

    /// The newest deliveries, for the console.
    async fn deliveries(&self, limit: usize) -> Result<Vec<DeliveryRecord>, StoreError>;

    /// One delivery, with its body unless retention forgot it.
    async fn delivery(&self, id: &str) -> Result<Option<DeliveryWithBody>, StoreError>;

    /// The outbox items planned from a delivery.
    async fn delivery_items(&self, id: &str) -> Result<Vec<Item>, StoreError>;

    /// When each request to `destination` after `since` was made, oldest first (the console's chart).
    async fn requests_since(
        &self,
        destination: &str,
        since: UnixMillis,
    ) -> Result<Vec<UnixMillis>, StoreError>;

    /// Commits an empty transaction through the same path as every change: `Ok` means the store can
    /// durably write right now. The watchdog and `/readyz` ask this, not a query, because a writer that
    /// is dead or stuck still leaves queries answering.
    async fn probe_commit(&self) -> Result<(), StoreError>;
}

/// A destination this process leads after `Store::lead`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Led {
    pub destination: String,
    /// Items a former leader (or this process, before a crash) left `sending`, now queued again.
    pub recovered: usize,
}

/// Work another process stored, as a shared backend announces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// New deliveries wait to be planned.
    Deliveries,
    /// New or re-queued items wait for this destination.
    Items(String),
    /// Announcements may have been missed (the connection that hears them was lost): look at everything.
    Resync,
}

/// What retention may forget, oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prunable {
    /// The raw bodies of deliveries that were planned (the row stays, for deduplication and its history).
    Bodies,
    /// Outbox items that are sent, dead or folded, by their last change.
    Items,
    /// Deliveries no outbox item refers to any more: their dedupe keys are forgotten with them.
    Deliveries,
    /// Send-ledger rows, which only the admin's windows count.
    Ledger,
    /// Spend rows, which only the current month's budget counts.
    Spend,
}

/// The store's size on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreSize {
    pub bytes: u64,
    /// Pages freed by pruning, which new writes reuse before the file grows.
    pub free_bytes: u64,
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

/// What opening a store needs to know besides where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The daemon: listens for other instances' announcements.
    Daemon,
    /// A command run by the admin: reads and changes, and hears nothing.
    Command,
}

/// Opens the store the config names: PostgreSQL when `store.url` is set, else the SQLite file. On
/// PostgreSQL the schema is migrated under a lock, so that instances starting together do not race.
pub async fn open_configured(
    config: &crate::config::Config,
    role: Role,
) -> Result<SharedStore, StoreError> {
    match &config.fleet.url {
        None => open(&config.store_path, config.store_max_bytes),
        Some(url) => {
            let value = url.value.as_ref().map_err(|e| {
                let hint = if url.reference.starts_with("cred:") {
                    " (from a shell: CREDENTIALS_DIRECTORY=/etc/chirpd/creds chirpd …)"
                } else {
                    ""
                };
                StoreError::Unavailable(format!("store.url {}: {e}{hint}", url.reference))
            })?;
            let store = postgres::PgStore::connect(
                value,
                &config.fleet.instance,
                config.fleet.pool_size,
                role == Role::Daemon,
            )
            .await?;
            Ok(std::sync::Arc::new(store))
        }
    }
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

/// Lower case and without `@`: how every backend keys DM usernames.
fn username_key(username: &str) -> String {
    username.trim_start_matches('@').to_ascii_lowercase()
}

/// A new time-ordered id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests;
