//! The PostgreSQL backend of `Store`, for a fleet of instances sharing one database.
//!
//! `PgStore` runs each change in one transaction on a pooled connection (synchronous commit is forced on
//! every connection, so a commit that returned is on the server's disk), and each query on a pooled
//! connection outside any transaction. The SQL of each operation is in `sql.rs`; this file holds the
//! pool, the migrations, the TLS setup and the connection that listens for other instances' work.
//!
//! What a fleet needs beyond the SQLite backend, and where it is kept:
//! - deduplication across instances: the same unique keys, which make a concurrent second insert wait for
//!   the first and then find it;
//! - planning claims: `unplanned` claims deliveries with `FOR UPDATE SKIP LOCKED` and a lapse time, and
//!   `save_plans` stores a plan only for a delivery still `received` (locked in its transaction);
//! - one sender per destination: `lead` takes leases on the database's clock, and `claim` checks the
//!   lease in its own transaction, so a process whose lease lapsed cannot claim;
//! - announcements: `NOTIFY` in the transactions that store new work, heard by `listen.rs`.
//!
//! Nothing outside `outbox` sees SQL or a `tokio_postgres` type.

mod import;
mod listen;
mod sql;
#[cfg(test)]
pub mod test_cluster;

pub use import::{Copied, import_sqlite};

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::broadcast;
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::clock::UnixMillis;
use crate::config::secret::Secret;
use crate::outbox::{
    Block, Change, DeliveryRecord, DeliveryWithBody, Finish, Item, ItemState, Led, NewDelivery,
    NewDigest, NewItem, PlanRecord, Prunable, Recorded, Store, StoreError, StoreSize,
    StoredDelivery, Tokens, new_id, username_key,
};

/// The migrations, in order; each runs once, in the transaction that records it.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("migrations/0001_init.sql")),
    (2, include_str!("migrations/0002_review.sql")),
];

/// The advisory lock that serializes migrations across instances starting together.
const MIGRATION_LOCK: i64 = 0x6368_6972_7064; // "chirpd"

/// How long a request waits for a pooled connection, or for a new one, before the store counts as
/// unavailable: the ingress then answers 503 well within a sender's timeout.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);

/// The PostgreSQL store. Cloning shares the pool.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// This process's name as a lease holder: the instance name and a random suffix, so that two
    /// processes given the same name (or one restarted) never mistake each other's leases for their own.
    holder: String,
    /// The instance's name, which planning claims carry: a restarted instance (same name, new holder)
    /// takes back at once the deliveries it was planning when it died. Two processes given one name can
    /// then plan the same delivery side by side, which `save_plans` makes harmless.
    instance: String,
    /// Announcements heard from other instances; none for a command, which listens to nothing.
    changes: Option<broadcast::Sender<Change>>,
    /// Stops the listening task when the last handle to the store goes.
    _listening: Option<DropGuard>,
}

impl PgStore {
    /// Connects to the database at `url`, migrates it, and (for the daemon) starts listening for other
    /// instances' announcements.
    pub async fn connect(
        url: &Secret,
        instance: &str,
        pool_size: usize,
        listen: bool,
    ) -> Result<PgStore, StoreError> {
        let mut config: tokio_postgres::Config = url
            .expose()
            .parse()
            .map_err(|e| StoreError::Unavailable(format!("store.url: {e}")))?;
        // A 2xx promises that the delivery is on disk: whatever the server's default, every commit of
        // chirpd waits for its WAL flush.
        let options = format!(
            "{} -c synchronous_commit=on",
            config.get_options().unwrap_or_default()
        );
        config
            .options(options.trim())
            .application_name(format!("chirpd {instance}"))
            .connect_timeout(POOL_TIMEOUT)
            .keepalives_idle(Duration::from_secs(30));
        let tls = tls()?;
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_TIMEOUT))
            .create_timeout(Some(POOL_TIMEOUT))
            .recycle_timeout(Some(POOL_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Unavailable(format!("cannot set up the pool: {e}")))?;
        migrate(&pool).await?;
        let holder = format!("{instance}/{}", &new_id()[24..]);
        let (changes, listening) = if listen {
            let (tx, _) = broadcast::channel(1024);
            let stop = CancellationToken::new();
            tokio::spawn(listen::listen_forever(
                config,
                tls,
                tx.clone(),
                holder.clone(),
                stop.clone(),
            ));
            (Some(tx), Some(stop.drop_guard()))
        } else {
            (None, None)
        };
        Ok(PgStore {
            inner: Arc::new(Inner {
                pool,
                holder,
                instance: instance.to_string(),
                changes,
                _listening: listening,
            }),
        })
    }

    /// This process's lease holder name.
    pub fn holder(&self) -> &str {
        &self.inner.holder
    }

    async fn conn(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.inner
            .pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot reach PostgreSQL: {e}")))
    }
}

/// rustls with the system's certificate authorities, for managed databases that require TLS; a URL
/// with `sslmode=disable` connects in the clear (a database on the same host or a private network).
fn tls() -> Result<MakeRustlsConnect, StoreError> {
    use rustls_platform_verifier::ConfigVerifierExt;
    let config = rustls::ClientConfig::with_platform_verifier()
        .map_err(|e| StoreError::Unavailable(format!("cannot set up TLS: {e}")))?;
    Ok(MakeRustlsConnect::new(config))
}

/// Applies every migration the database lacks, under an advisory lock held by the transaction, so that
/// instances starting together apply each migration once.
async fn migrate(pool: &Pool) -> Result<(), StoreError> {
    let mut conn = pool
        .get()
        .await
        .map_err(|e| StoreError::Unavailable(format!("cannot reach PostgreSQL: {e}")))?;
    let tx = conn.transaction().await.map_err(sql::pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(sql::pg)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS chirpd_migrations (
             version    INTEGER PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(sql::pg)?;
    let have: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM chirpd_migrations",
            &[],
        )
        .await
        .map_err(sql::pg)?
        .get(0);
    let latest = MIGRATIONS.last().map_or(0, |(v, _)| *v);
    if have > latest {
        return Err(StoreError::Rejected(format!(
            "the database is at schema version {have}, newer than this chirpd knows ({latest}): upgrade chirpd"
        )));
    }
    for (version, text) in MIGRATIONS.iter().filter(|(v, _)| *v > have) {
        tx.batch_execute(text).await.map_err(sql::pg)?;
        tx.execute(
            "INSERT INTO chirpd_migrations (version) VALUES ($1)",
            &[version],
        )
        .await
        .map_err(sql::pg)?;
        tracing::info!(version, "Migrated the PostgreSQL store.");
    }
    tx.commit().await.map_err(sql::pg)
}

/// Runs `$body` (which uses `$tx`) in a transaction on a pooled connection and commits it.
macro_rules! in_tx {
    ($self:ident, |$tx:ident| $body:expr) => {{
        let mut conn = $self.conn().await?;
        let $tx = conn.transaction().await.map_err(sql::pg)?;
        let out = $body;
        $tx.commit().await.map_err(sql::pg)?;
        Ok(out)
    }};
}

#[async_trait::async_trait]
impl Store for PgStore {
    async fn record_delivery(&self, d: NewDelivery) -> Result<Recorded, StoreError> {
        let conn = self.conn().await?;
        sql::record_delivery(&conn, &d, &new_id()).await
    }

    async fn unplanned(&self, limit: usize) -> Result<Vec<StoredDelivery>, StoreError> {
        let conn = self.conn().await?;
        sql::claim_unplanned(&conn, &self.inner.instance, limit).await
    }

    async fn save_plans(&self, plans: Vec<PlanRecord>) -> Result<(), StoreError> {
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
        in_tx!(self, |tx| sql::save_plans(&tx, &plans).await?)
    }

    async fn fail_delivery(&self, id: &str, error: &str) -> Result<(), StoreError> {
        in_tx!(self, |tx| sql::fail_delivery(&tx, id, error).await?)
    }

    async fn settling(
        &self,
        destination: &str,
        recipient: &str,
        subject: &str,
    ) -> Result<Option<Item>, StoreError> {
        let conn = self.conn().await?;
        sql::settling(&conn, destination, recipient, subject).await
    }

    async fn claim(&self, destination: &str, now: UnixMillis) -> Result<Option<Item>, StoreError> {
        let holder = self.holder();
        in_tx!(self, |tx| sql::claim(&tx, destination, now, holder).await?)
    }

    async fn next_due(&self, destination: &str) -> Result<Option<UnixMillis>, StoreError> {
        let conn = self.conn().await?;
        sql::next_due(&conn, destination).await
    }

    async fn finish(&self, id: &str, how: Finish, now: UnixMillis) -> Result<(), StoreError> {
        in_tx!(self, |tx| sql::finish(&tx, id, &how, now).await?)
    }

    async fn lead(
        &self,
        destinations: &[String],
        ttl: Duration,
        now: UnixMillis,
    ) -> Result<Vec<Led>, StoreError> {
        let mut names = destinations.to_vec();
        // Locked in one order by every instance, so that two of them never wait on each other.
        names.sort();
        names.dedup();
        let holder = self.holder();
        in_tx!(self, |tx| sql::lead(&tx, &names, holder, ttl, now).await?)
    }

    async fn release(&self, destinations: &[String]) -> Result<(), StoreError> {
        let holder = self.holder();
        in_tx!(self, |tx| sql::release(&tx, destinations, holder).await?)
    }

    fn changes(&self) -> Option<broadcast::Receiver<Change>> {
        self.inner
            .changes
            .as_ref()
            .map(broadcast::Sender::subscribe)
    }

    async fn ledger(
        &self,
        destination: &str,
        since: UnixMillis,
    ) -> Result<(u32, Option<UnixMillis>), StoreError> {
        let conn = self.conn().await?;
        sql::ledger(&conn, destination, since).await
    }

    async fn prune(
        &self,
        what: Prunable,
        before: UnixMillis,
        limit: usize,
    ) -> Result<usize, StoreError> {
        in_tx!(self, |tx| sql::prune(&tx, what, before, limit).await?)
    }

    async fn size(&self) -> Result<StoreSize, StoreError> {
        let conn = self.conn().await?;
        sql::size(&conn).await
    }

    async fn block(&self, destination: &str, block: Block) -> Result<(), StoreError> {
        in_tx!(self, |tx| sql::block(&tx, destination, &block).await?)
    }

    async fn blocked(&self, destination: &str) -> Result<Option<Block>, StoreError> {
        let conn = self.conn().await?;
        sql::blocked(&conn, destination).await
    }

    async fn items(&self, state: Option<ItemState>, limit: usize) -> Result<Vec<Item>, StoreError> {
        let conn = self.conn().await?;
        sql::items(&conn, state, limit).await
    }

    async fn item(&self, id: &str) -> Result<Option<Item>, StoreError> {
        let conn = self.conn().await?;
        sql::item(&conn, id).await
    }

    async fn retry_item(&self, id: &str, now: UnixMillis) -> Result<(), StoreError> {
        in_tx!(self, |tx| sql::retry_item(&tx, id, now).await?)
    }

    async fn drop_item(&self, id: &str, now: UnixMillis) -> Result<(), StoreError> {
        in_tx!(self, |tx| sql::drop_item(&tx, id, now).await?)
    }

    async fn approve(
        &self,
        id: &str,
        by: &str,
        text: Option<(String, usize)>,
        now: UnixMillis,
    ) -> Result<Item, StoreError> {
        in_tx!(self, |tx| sql::approve(&tx, id, by, text.as_ref(), now)
            .await?)
    }

    async fn reject(&self, id: &str, by: &str, now: UnixMillis) -> Result<(), StoreError> {
        in_tx!(self, |tx| sql::reject(&tx, id, by, now).await?)
    }

    async fn replay_delivery(&self, id: &str) -> Result<usize, StoreError> {
        in_tx!(self, |tx| sql::replay_delivery(&tx, id).await?)
    }

    async fn due(
        &self,
        destination: &str,
        now: UnixMillis,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let conn = self.conn().await?;
        sql::due(&conn, destination, now, limit).await
    }

    async fn fold(&self, fold: NewDigest) -> Result<String, StoreError> {
        let id = new_id();
        in_tx!(self, |tx| {
            sql::fold(&tx, &fold, &id).await?;
            id
        })
    }

    async fn drop_items(
        &self,
        items: Vec<String>,
        reason: &str,
        now: UnixMillis,
    ) -> Result<usize, StoreError> {
        in_tx!(self, |tx| sql::drop_items(&tx, &items, reason, now).await?)
    }

    async fn set_text(&self, id: &str, text: String, length: usize) -> Result<(), StoreError> {
        in_tx!(self, |tx| sql::set_text(&tx, id, &text, length).await?)
    }

    async fn spent_since(&self, destination: &str, since: UnixMillis) -> Result<i64, StoreError> {
        let conn = self.conn().await?;
        sql::spent_since(&conn, destination, since).await
    }

    async fn user_id(&self, username: &str) -> Result<Option<String>, StoreError> {
        let conn = self.conn().await?;
        sql::user_id(&conn, &username_key(username)).await
    }

    async fn set_user_id(
        &self,
        username: &str,
        user_id: &str,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let key = username_key(username);
        in_tx!(self, |tx| sql::set_user_id(&tx, &key, user_id, now).await?)
    }

    async fn tokens(&self, destination: &str) -> Result<Option<Tokens>, StoreError> {
        let conn = self.conn().await?;
        let found = sql::tokens(&conn, destination).await?;
        Ok(found.map(|(access, refresh, expires_at)| Tokens {
            access: Secret::new(access),
            refresh: refresh.map(Secret::new),
            expires_at,
        }))
    }

    async fn set_tokens(
        &self,
        destination: &str,
        tokens: Tokens,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        in_tx!(self, |tx| sql::set_tokens(
            &tx,
            destination,
            tokens.access.expose(),
            tokens.refresh.as_ref().map(Secret::expose),
            tokens.expires_at,
            now
        )
        .await?)
    }

    async fn counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let conn = self.conn().await?;
        sql::counts(&conn).await
    }

    async fn set_learned_secret(
        &self,
        source: &str,
        secret: Secret,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        in_tx!(self, |tx| sql::set_learned_secret(
            &tx,
            source,
            secret.expose(),
            now
        )
        .await?)
    }

    async fn learned_secret(&self, source: &str) -> Result<Option<Secret>, StoreError> {
        let conn = self.conn().await?;
        Ok(sql::learned_secret(&conn, source).await?.map(Secret::new))
    }

    async fn open_handshake(&self, source: &str, until: UnixMillis) -> Result<(), StoreError> {
        in_tx!(self, |tx| sql::open_handshake(&tx, source, until).await?)
    }

    async fn handshake_open(&self, source: &str, now: UnixMillis) -> Result<bool, StoreError> {
        let conn = self.conn().await?;
        sql::handshake_open(&conn, source, now).await
    }

    async fn delivery_count(&self) -> Result<i64, StoreError> {
        let conn = self.conn().await?;
        sql::delivery_count(&conn).await
    }

    async fn deliveries(&self, limit: usize) -> Result<Vec<DeliveryRecord>, StoreError> {
        let conn = self.conn().await?;
        sql::deliveries(&conn, limit).await
    }

    async fn delivery(&self, id: &str) -> Result<Option<DeliveryWithBody>, StoreError> {
        let conn = self.conn().await?;
        sql::delivery(&conn, id).await
    }

    async fn delivery_items(&self, id: &str) -> Result<Vec<Item>, StoreError> {
        let conn = self.conn().await?;
        sql::delivery_items(&conn, id).await
    }

    async fn requests_since(
        &self,
        destination: &str,
        since: UnixMillis,
    ) -> Result<Vec<UnixMillis>, StoreError> {
        let conn = self.conn().await?;
        sql::requests_since(&conn, destination, since).await
    }

    async fn probe_commit(&self) -> Result<(), StoreError> {
        let holder = self.holder();
        in_tx!(self, |tx| sql::heartbeat(&tx, holder).await?)
    }
}
