//! The SQLite backend: one writer thread owning the connection, group commit, migrations and the SQL.
//!
//! Every store operation is a job sent to the writer thread. The thread takes all jobs that are waiting,
//! runs each inside its own savepoint of one transaction, commits once (with `synchronous=FULL`, one fsync
//! of the WAL), and only then answers each caller. So an answer always means "committed and fsynced", and
//! many concurrent webhooks share one fsync instead of queueing for their own.
//! The SQL itself is in `sql.rs`. Nothing outside `outbox` sees SQL or a `rusqlite` type.

use std::path::Path;
use std::sync::mpsc;
#[cfg(test)]
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::clock::UnixMillis;
use crate::config::secret::Secret;
use crate::outbox::{
    Block, Finish, Item, ItemState, NewDelivery, NewDigest, NewItem, PlanRecord, Recorded, Store,
    StoreError, StoredDelivery, Tokens, new_id,
};

mod sql;

/// The most jobs folded into one transaction, so one commit's latency stays bounded.
const MAX_BATCH: usize = 512;

type Reply = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> (bool, Reply) + Send>;

/// The handle through which async code runs jobs on the writer thread.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

/// A read-only connection for queries, so that reads neither wait for nor add to the writer's commits.
/// In WAL mode a reader sees every transaction committed before its statement began.
#[derive(Clone)]
pub struct Reader {
    conn: std::sync::Arc<std::sync::Mutex<Connection>>,
}

impl Reader {
    /// Opens a read-only connection to a database the writer already created and migrated.
    pub fn open(path: &Path) -> Result<Reader, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(unavailable)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(unavailable)?;
        Ok(Reader {
            conn: std::sync::Arc::new(std::sync::Mutex::new(conn)),
        })
    }

    /// Runs a query on a blocking thread.
    pub async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let guard = conn.lock().map_err(|_| {
                StoreError::Unavailable("the read connection is poisoned".to_string())
            })?;
            f(&guard)
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }
}

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_learned_secrets.sql"),
    include_str!("migrations/0003_budget_dm_oauth.sql"),
    include_str!("migrations/0004_settle.sql"),
    include_str!("migrations/0005_hold_causes.sql"),
];

impl Writer {
    /// Opens (creating if needed) the database, migrates it and starts the writer thread.
    pub fn open(path: &Path, max_bytes: Option<u64>) -> Result<Writer, StoreError> {
        let conn = open_connection(path)?;
        migrate(&conn)?;
        if let Some(max) = max_bytes {
            let page: i64 = conn
                .query_row("PRAGMA page_size", [], |r| r.get(0))
                .map_err(unavailable)?;
            let pages = i64::try_from(max).unwrap_or(i64::MAX) / page.max(1);
            // The pragma answers the cap it set; it cannot go below the database's current size.
            let _: i64 = conn
                .query_row(
                    &format!("PRAGMA max_page_count = {}", pages.max(1)),
                    [],
                    |r| r.get(0),
                )
                .map_err(unavailable)?;
        }
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("chirpd-store".to_string())
            .spawn(move || run(conn, rx))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the store thread: {e}")))?;
        Ok(Writer { jobs: tx })
    }

    /// Runs `f` in the next group transaction and returns its result once that transaction committed.
    pub async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = f(conn);
            let ok = result.is_ok();
            let reply: Reply = Box::new(move |commit| {
                let _ = tx.send(commit.and(result));
            });
            (ok, reply)
        });
        self.jobs.send(job).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| {
            StoreError::Unavailable("the store could not begin a transaction".to_string())
        })?
    }
}

/// Opens a connection with the settings durability depends on.
pub fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(unavailable)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(unavailable)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(unavailable)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!(
            "{} cannot use WAL journaling (got {mode})",
            path.display()
        )));
    }
    // FULL, not NORMAL: in WAL mode NORMAL may lose the last commits on power loss, and a 202 promises
    // the sender that the delivery survives.
    conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
        .map_err(unavailable)?;
    Ok(conn)
}

fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let version: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .map_err(unavailable)?
        .try_into()
        .unwrap_or(0);
    if version > MIGRATIONS.len() {
        return Err(StoreError::Unavailable(format!(
            "the store was written by a newer chirpd (schema {version}, this one knows {})",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let batch = format!(
            "BEGIN IMMEDIATE; {sql}; PRAGMA user_version = {}; COMMIT;",
            i + 1
        );
        if let Err(e) = conn.execute_batch(&batch) {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(unavailable(e));
        }
    }
    Ok(())
}

/// The writer loop: batch, run each job in a savepoint, commit once, then answer.
fn run(conn: Connection, jobs: mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            // Dropping the jobs drops their reply channels, which their callers see as unavailability.
            tracing::error!(error = %e, jobs = batch.len(), "The store could not begin a transaction.");
            drop(batch);
            continue;
        }
        let mut replies = Vec::with_capacity(batch.len());
        for job in batch {
            let savepoint = conn.execute_batch("SAVEPOINT job");
            let (ok, reply) = job(&conn);
            if savepoint.is_ok() {
                let end = if ok {
                    "RELEASE job"
                } else {
                    "ROLLBACK TO job; RELEASE job"
                };
                let _ = conn.execute_batch(end);
            }
            replies.push(reply);
        }
        let started = std::time::Instant::now();
        let commit = conn.execute_batch("COMMIT").map_err(unavailable);
        metrics::histogram!("chirpd_store_commit_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("chirpd_store_batch_jobs").record(replies.len() as f64);
        if commit.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for reply in replies {
            reply(commit.clone());
        }
    }
}

/// Sorts SQLite's errors by what the caller can do: data the store refuses (a constraint, a value too
/// big) is `Rejected`, and trying again cannot help; anything else (a full disk, I/O, a lock) is
/// `Unavailable`, and the same request may succeed later.
pub fn unavailable(e: rusqlite::Error) -> StoreError {
    use rusqlite::ffi::ErrorCode;
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                ErrorCode::ConstraintViolation | ErrorCode::TooBig | ErrorCode::TypeMismatch
            ) =>
        {
            StoreError::Rejected(e.to_string())
        }
        _ => StoreError::Unavailable(e.to_string()),
    }
}

/// The SQLite store: one writer thread with group commit for every change, and a read-only connection
/// for queries.
#[derive(Clone)]
pub struct SqliteStore {
    /// Every change, batched into group commits.
    writer: Writer,
    /// Queries, which need no commit.
    reader: Reader,
}

impl SqliteStore {
    /// Opens the store at `path`, creating and migrating it as needed; writes past `max_bytes` fail as
    /// on a full disk.
    pub fn open(path: &Path, max_bytes: Option<u64>) -> Result<SqliteStore, StoreError> {
        let writer = Writer::open(path, max_bytes)?;
        Ok(SqliteStore {
            writer,
            reader: Reader::open(path)?,
        })
    }

    /// Runs `job` with its owned `args` in the writer's next group commit.
    async fn write<A, T>(
        &self,
        args: A,
        job: fn(&Connection, &A) -> Result<T, StoreError>,
    ) -> Result<T, StoreError>
    where
        A: Send + 'static,
        T: Send + 'static,
    {
        self.writer.call(move |c| job(c, &args)).await
    }

    /// Runs the query `job` with its owned `args` on the read-only connection.
    async fn read<A, T>(
        &self,
        args: A,
        job: fn(&Connection, &A) -> Result<T, StoreError>,
    ) -> Result<T, StoreError>
    where
        A: Send + 'static,
        T: Send + 'static,
    {
        self.reader.call(move |c| job(c, &args)).await
    }

    /// Runs a job on the writer thread that does not return before `release` is dropped or sent: a
    /// stand-in for a writer stuck on a disk, for tests.
    /// Returns once the writer thread is inside that job.
    #[cfg(test)]
    pub(crate) async fn stall_writer(&self) -> std::sync::mpsc::Sender<()> {
        let (release, stalled) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = oneshot::channel::<()>();
        let writer = self.writer.clone();
        tokio::spawn(async move {
            writer
                .call(move |_| {
                    let _ = started_tx.send(());
                    Ok(stalled.recv().ok())
                })
                .await
        });
        let _ = started.await;
        release
    }
}

/// Lower case and without `@`: how DM usernames are keyed.
fn username_key(username: &str) -> String {
    username.trim_start_matches('@').to_ascii_lowercase()
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn record_delivery(&self, d: NewDelivery) -> Result<Recorded, StoreError> {
        self.write((d, new_id()), |c, (d, id)| sql::record_delivery(c, d, id))
            .await
    }

    async fn unplanned(&self, limit: usize) -> Result<Vec<StoredDelivery>, StoreError> {
        self.read(limit, |c, limit| sql::unplanned(c, *limit)).await
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
        self.write(plans, |c, plans| {
            plans
                .iter()
                .try_for_each(|(plan, items)| sql::save_plan(c, plan, items))
        })
        .await
    }

    async fn fail_delivery(&self, id: &str, error: &str) -> Result<(), StoreError> {
        self.write((id.to_owned(), error.to_owned()), |c, (id, error)| {
            sql::fail_delivery(c, id, error)
        })
        .await
    }

    async fn settling(
        &self,
        destination: &str,
        recipient: &str,
        subject: &str,
    ) -> Result<Option<Item>, StoreError> {
        let args = (
            destination.to_owned(),
            recipient.to_owned(),
            subject.to_owned(),
        );
        self.read(args, |c, (d, r, s)| sql::settling(c, d, r, s))
            .await
    }

    async fn claim(&self, destination: &str, now: UnixMillis) -> Result<Option<Item>, StoreError> {
        self.write((destination.to_owned(), now), |c, (d, now)| {
            sql::claim(c, d, *now)
        })
        .await
    }

    async fn next_due(&self, destination: &str) -> Result<Option<UnixMillis>, StoreError> {
        self.read(destination.to_owned(), |c, d| sql::next_due(c, d))
            .await
    }

    async fn finish(&self, id: &str, how: Finish, now: UnixMillis) -> Result<(), StoreError> {
        self.write((id.to_owned(), how, now), |c, (id, how, now)| {
            sql::finish(c, id, how, *now)
        })
        .await
    }

    async fn recover_interrupted(&self, now: UnixMillis) -> Result<usize, StoreError> {
        self.write(now, |c, now| sql::recover_interrupted(c, *now))
            .await
    }

    async fn ledger(
        &self,
        destination: &str,
        since: UnixMillis,
    ) -> Result<(u32, Option<UnixMillis>), StoreError> {
        self.read((destination.to_owned(), since), |c, (d, since)| {
            sql::ledger(c, d, *since)
        })
        .await
    }

    async fn prune_ledger(&self, before: UnixMillis) -> Result<usize, StoreError> {
        self.write(before, |c, before| sql::prune_ledger(c, *before))
            .await
    }

    async fn block(&self, destination: &str, block: Block) -> Result<(), StoreError> {
        self.write((destination.to_owned(), block), |c, (d, block)| {
            sql::block(c, d, block)
        })
        .await
    }

    async fn blocked(&self, destination: &str) -> Result<Option<Block>, StoreError> {
        self.read(destination.to_owned(), |c, d| sql::blocked(c, d))
            .await
    }

    async fn items(&self, state: Option<ItemState>, limit: usize) -> Result<Vec<Item>, StoreError> {
        self.read((state, limit), |c, (state, limit)| {
            sql::items(c, *state, *limit)
        })
        .await
    }

    async fn item(&self, id: &str) -> Result<Option<Item>, StoreError> {
        self.read(id.to_owned(), |c, id| sql::item(c, id)).await
    }

    async fn retry_item(&self, id: &str, now: UnixMillis) -> Result<(), StoreError> {
        self.write((id.to_owned(), now), |c, (id, now)| {
            sql::retry_item(c, id, *now)
        })
        .await
    }

    async fn drop_item(&self, id: &str, now: UnixMillis) -> Result<(), StoreError> {
        self.write((id.to_owned(), now), |c, (id, now)| {
            sql::drop_item(c, id, *now)
        })
        .await
    }

    async fn replay_delivery(&self, id: &str) -> Result<usize, StoreError> {
        self.write(id.to_owned(), |c, id| sql::replay_delivery(c, id))
            .await
    }

    async fn due(
        &self,
        destination: &str,
        now: UnixMillis,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        self.read(
            (destination.to_owned(), now, limit),
            |c, (d, now, limit)| sql::due(c, d, *now, *limit),
        )
        .await
    }

    async fn fold(&self, fold: NewDigest) -> Result<String, StoreError> {
        self.write((fold, new_id()), |c, (fold, id)| {
            sql::fold(c, fold, id).map(|()| id.clone())
        })
        .await
    }

    async fn drop_items(
        &self,
        items: Vec<String>,
        reason: &str,
        now: UnixMillis,
    ) -> Result<usize, StoreError> {
        self.write(
            (items, reason.to_owned(), now),
            |c, (items, reason, now)| sql::drop_items(c, items, reason, *now),
        )
        .await
    }

    async fn set_text(&self, id: &str, text: String, length: usize) -> Result<(), StoreError> {
        self.write((id.to_owned(), text, length), |c, (id, text, length)| {
            sql::set_text(c, id, text, *length)
        })
        .await
    }

    async fn spent_since(&self, destination: &str, since: UnixMillis) -> Result<i64, StoreError> {
        self.read((destination.to_owned(), since), |c, (d, since)| {
            sql::spent_since(c, d, *since)
        })
        .await
    }

    async fn user_id(&self, username: &str) -> Result<Option<String>, StoreError> {
        self.read(username_key(username), |c, u| sql::user_id(c, u))
            .await
    }

    async fn set_user_id(
        &self,
        username: &str,
        user_id: &str,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let args = (username_key(username), user_id.to_owned(), now);
        self.write(args, |c, (u, id, now)| sql::set_user_id(c, u, id, *now))
            .await
    }

    async fn tokens(&self, destination: &str) -> Result<Option<Tokens>, StoreError> {
        let found = self
            .read(destination.to_owned(), |c, d| sql::tokens(c, d))
            .await?;
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
        self.write((destination.to_owned(), tokens, now), |c, (d, t, now)| {
            sql::set_tokens(
                c,
                d,
                t.access.expose(),
                t.refresh.as_ref().map(Secret::expose),
                t.expires_at,
                *now,
            )
        })
        .await
    }

    async fn counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.read((), |c, ()| sql::counts(c)).await
    }

    async fn set_learned_secret(
        &self,
        source: &str,
        secret: Secret,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.write((source.to_owned(), secret, now), |c, (s, secret, now)| {
            sql::set_learned_secret(c, s, secret.expose(), *now)
        })
        .await
    }

    async fn learned_secret(&self, source: &str) -> Result<Option<Secret>, StoreError> {
        let found = self
            .read(source.to_owned(), |c, s| sql::learned_secret(c, s))
            .await?;
        Ok(found.map(Secret::new))
    }

    async fn delivery_count(&self) -> Result<i64, StoreError> {
        self.read((), |c, ()| sql::delivery_count(c)).await
    }

    async fn probe_commit(&self) -> Result<(), StoreError> {
        self.write((), |_, ()| Ok(())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stuck_writer_fails_the_commit_probe_while_queries_still_answer() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db"), None).unwrap();
        store.probe_commit().await.unwrap();
        let release = store.stall_writer().await;
        let probe = tokio::time::timeout(Duration::from_millis(300), store.probe_commit()).await;
        assert!(
            probe.is_err(),
            "the probe must not pass while the writer is stuck"
        );
        // A probe on the read connection, as the watchdog used to make, would have passed.
        assert!(store.counts().await.is_ok());
        drop(release);
        tokio::time::timeout(Duration::from_secs(5), store.probe_commit())
            .await
            .expect("the writer is free again")
            .unwrap();
    }

    #[tokio::test]
    async fn constraint_violations_are_rejections_not_unavailability() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db"), None).unwrap();
        let plan = PlanRecord {
            delivery_id: "no-such-delivery".into(),
            native: "n".into(),
            kind: None,
            items: vec![NewItem {
                route: 0,
                destination: "team".into(),
                recipient: String::new(),
                kind: "tweet",
                text: "t".into(),
                length: 1,
                event_kind: None,
                project: None,
                subject: None,
                due_at: None,
                merge: None,
            }],
            error: None,
            now: 1,
        };
        // The outbox's foreign key refuses an item of a delivery that does not exist.
        assert!(matches!(
            store.save_plans(vec![plan]).await,
            Err(StoreError::Rejected(_))
        ));
    }
}
