//! The SQLite backend: one writer thread owning the connection, group commit, migrations and the SQL.
//!
//! Every store operation is a job sent to the writer thread. The thread takes all jobs that are waiting,
//! runs each inside its own savepoint of one transaction, commits once (with `synchronous=FULL`, one fsync
//! of the WAL), and only then answers each caller. So an answer always means "committed and fsynced", and
//! many concurrent webhooks share one fsync instead of queueing for their own.
//! Nothing outside `outbox` sees SQL or a `rusqlite` type.

use std::path::Path;
use std::sync::mpsc;

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use crate::clock::UnixMillis;
use crate::outbox::{
    Finish, Item, ItemState, NewDelivery, NewItem, Recorded, StoreError, StoredDelivery,
};

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

pub fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

// The SQL of each operation follows. Each runs inside the writer's transaction.

pub fn record_delivery(
    conn: &Connection,
    d: &NewDelivery,
    id: &str,
) -> Result<Recorded, StoreError> {
    let inserted = conn
        .execute(
            "INSERT INTO deliveries (id, source, dedupe_key, body_sha256, event, body, received_at, state)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'received') ON CONFLICT DO NOTHING",
            params![id, d.source, d.dedupe_key, d.body_sha256, d.event, d.body.as_ref(), d.received_at],
        )
        .map_err(unavailable)?;
    if inserted == 1 {
        return Ok(Recorded {
            id: id.to_string(),
            duplicate: false,
        });
    }
    let existing: String = conn
        .query_row(
            "SELECT id FROM deliveries WHERE source = ?1 AND (dedupe_key = ?2 OR body_sha256 = ?3) LIMIT 1",
            params![d.source, d.dedupe_key, d.body_sha256],
            |r| r.get(0),
        )
        .map_err(unavailable)?;
    Ok(Recorded {
        id: existing,
        duplicate: true,
    })
}

pub fn unplanned(conn: &Connection, limit: usize) -> Result<Vec<StoredDelivery>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, source, event, body, received_at FROM deliveries
             WHERE state = 'received' ORDER BY id LIMIT ?1",
        )
        .map_err(unavailable)?;
    let rows = stmt
        .query_map([limit as i64], |r| {
            Ok(StoredDelivery {
                id: r.get(0)?,
                source: r.get(1)?,
                event: r.get(2)?,
                body: r.get(3)?,
                received_at: r.get(4)?,
            })
        })
        .map_err(unavailable)?;
    rows.collect::<Result<_, _>>().map_err(unavailable)
}

pub fn save_plan(
    conn: &Connection,
    delivery_id: &str,
    native: &str,
    kind: Option<&str>,
    items: &[(String, NewItem)],
    error: Option<&str>,
    now: UnixMillis,
) -> Result<(), StoreError> {
    for (id, item) in items {
        // A settling item replaces the pending one it merges with, if that one is still pending;
        // otherwise (already claimed) it is posted on its own, with its own text.
        let mut text = item.text.as_str();
        let mut length = item.length;
        let mut due = item.due_at.unwrap_or(now);
        let mut event_kind = item.event_kind;
        if let Some(merge) = &item.merge {
            let taken = conn
                .execute(
                    "UPDATE outbox SET state = 'folded', folded_into = ?2, updated_at = ?3
                     WHERE id = ?1 AND state = 'pending'",
                    params![merge.supersedes, id, now],
                )
                .map_err(unavailable)?;
            if taken == 1 {
                text = merge.text.as_str();
                length = merge.length;
                due = merge.due_at;
                event_kind = Some(merge.event_kind);
            }
        }
        conn.execute(
            "INSERT INTO outbox (id, delivery_id, route, destination, recipient, kind, text, length, state,
                                 attempts, next_attempt_at, created_at, updated_at, event_kind, project, subject)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', 0, ?9, ?10, ?10, ?11, ?12, ?13)
             ON CONFLICT (delivery_id, route, destination, recipient) DO NOTHING",
            params![
                id,
                delivery_id,
                item.route as i64,
                item.destination,
                item.recipient,
                item.kind,
                text,
                length as i64,
                due,
                now,
                event_kind,
                item.project,
                item.subject
            ],
        )
        .map_err(unavailable)?;
    }
    let state = if error.is_some() && items.is_empty() {
        "failed"
    } else {
        "planned"
    };
    conn.execute(
        "UPDATE deliveries SET state = ?2, native = ?3, kind = ?4, error = ?5 WHERE id = ?1",
        params![delivery_id, state, native, kind, error],
    )
    .map_err(unavailable)?;
    Ok(())
}

const ITEM_COLUMNS: &str =
    "id, delivery_id, route, destination, kind, text, length, state, attempts,
    next_attempt_at, created_at, updated_at, sent_at, remote_id, last_error, recipient, event_kind, project,
    folded_into";

fn item_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Item> {
    let state: String = r.get(7)?;
    Ok(Item {
        id: r.get(0)?,
        delivery_id: r.get(1)?,
        route: r.get(2)?,
        destination: r.get(3)?,
        kind: r.get(4)?,
        text: r.get(5)?,
        length: r.get::<_, i64>(6)? as usize,
        state: ItemState::parse(&state).unwrap_or(ItemState::Dead),
        attempts: r.get(8)?,
        next_attempt_at: r.get(9)?,
        created_at: r.get(10)?,
        updated_at: r.get(11)?,
        sent_at: r.get(12)?,
        remote_id: r.get(13)?,
        last_error: r.get(14)?,
        recipient: r.get(15)?,
        event_kind: r.get(16)?,
        project: r.get(17)?,
        folded_into: r.get(18)?,
    })
}

pub fn claim(
    conn: &Connection,
    destination: &str,
    now: UnixMillis,
) -> Result<Option<Item>, StoreError> {
    let sql = format!(
        "UPDATE outbox SET state = 'sending', attempts = attempts + 1, updated_at = ?2
         WHERE id = (SELECT id FROM outbox WHERE destination = ?1 AND state IN ('pending', 'retry')
                     AND next_attempt_at <= ?2 ORDER BY next_attempt_at, id LIMIT 1)
         RETURNING {ITEM_COLUMNS}"
    );
    let item = conn
        .query_row(&sql, params![destination, now], item_from_row)
        .optional()
        .map_err(unavailable)?;
    if item.is_some() {
        // The ledger counts requests, not posts: X counts every request against its windows.
        conn.execute(
            "INSERT INTO send_ledger (destination, at) VALUES (?1, ?2)",
            params![destination, now],
        )
        .map_err(unavailable)?;
    }
    Ok(item)
}

pub fn next_due(conn: &Connection, destination: &str) -> Result<Option<UnixMillis>, StoreError> {
    conn.query_row(
        "SELECT min(next_attempt_at) FROM outbox WHERE destination = ?1 AND state IN ('pending', 'retry')",
        [destination],
        |r| r.get(0),
    )
    .map_err(unavailable)
}

pub fn finish(
    conn: &Connection,
    id: &str,
    how: &Finish,
    now: UnixMillis,
) -> Result<(), StoreError> {
    let changed = match how {
        Finish::Sent { remote_id, note, cost_micros } => {
            if *cost_micros > 0 {
                conn.execute(
                    "INSERT INTO spend (destination, at, amount_micros) SELECT destination, ?2, ?3 FROM outbox WHERE id = ?1",
                    params![id, now, cost_micros],
                )
                .map_err(unavailable)?;
            }
            conn.execute(
            "UPDATE outbox SET state = 'sent', sent_at = ?2, updated_at = ?2, remote_id = ?3, last_error = ?4
             WHERE id = ?1 AND state = 'sending'",
            params![id, now, remote_id, note],
            )
        }
        Finish::Retry { at, error } => conn.execute(
            "UPDATE outbox SET state = 'retry', next_attempt_at = ?2, updated_at = ?3, last_error = ?4
             WHERE id = ?1 AND state = 'sending'",
            params![id, at, now, error],
        ),
        Finish::Release { at, error } => conn.execute(
            "UPDATE outbox SET state = 'pending', attempts = max(attempts - 1, 0), next_attempt_at = ?2,
                               updated_at = ?3, last_error = ?4
             WHERE id = ?1 AND state = 'sending'",
            params![id, at, now, error],
        ),
        Finish::Dead { error } => conn.execute(
            "UPDATE outbox SET state = 'dead', updated_at = ?2, last_error = ?3 WHERE id = ?1 AND state = 'sending'",
            params![id, now, error],
        ),
    }
    .map_err(unavailable)?;
    if changed == 0 {
        return Err(StoreError::NotFound(format!(
            "outbox item {id} in state sending"
        )));
    }
    Ok(())
}

pub fn recover_interrupted(conn: &Connection, now: UnixMillis) -> Result<usize, StoreError> {
    conn.execute(
        "UPDATE outbox SET state = 'pending', next_attempt_at = ?1, updated_at = ?1,
                last_error = 'interrupted while sending; sent again with the same text'
         WHERE state = 'sending'",
        [now],
    )
    .map_err(unavailable)
}

pub fn ledger(
    conn: &Connection,
    destination: &str,
    since: UnixMillis,
) -> Result<(u32, Option<UnixMillis>), StoreError> {
    conn.query_row(
        "SELECT count(*), min(at) FROM send_ledger WHERE destination = ?1 AND at > ?2",
        params![destination, since],
        |r| Ok((r.get::<_, i64>(0)? as u32, r.get(1)?)),
    )
    .map_err(unavailable)
}

pub fn block(
    conn: &Connection,
    destination: &str,
    until: UnixMillis,
    reason: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO destination_blocks (destination, until, reason) VALUES (?1, ?2, ?3)
         ON CONFLICT (destination) DO UPDATE SET until = max(until, excluded.until),
             reason = CASE WHEN excluded.until >= until THEN excluded.reason ELSE reason END",
        params![destination, until, reason],
    )
    .map_err(unavailable)?;
    Ok(())
}

pub fn blocked(
    conn: &Connection,
    destination: &str,
) -> Result<Option<(UnixMillis, String)>, StoreError> {
    conn.query_row(
        "SELECT until, reason FROM destination_blocks WHERE destination = ?1",
        [destination],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
    .map_err(unavailable)
}

pub fn prune_ledger(conn: &Connection, before: UnixMillis) -> Result<usize, StoreError> {
    conn.execute("DELETE FROM send_ledger WHERE at < ?1", [before])
        .map_err(unavailable)
}

pub fn items(
    conn: &Connection,
    state: Option<ItemState>,
    limit: usize,
) -> Result<Vec<Item>, StoreError> {
    let sql = format!(
        "SELECT {ITEM_COLUMNS} FROM outbox WHERE (?1 IS NULL OR state = ?1) ORDER BY created_at DESC, id DESC LIMIT ?2"
    );
    let mut stmt = conn.prepare(&sql).map_err(unavailable)?;
    let rows = stmt
        .query_map(
            params![state.map(ItemState::as_str), limit as i64],
            item_from_row,
        )
        .map_err(unavailable)?;
    rows.collect::<Result<_, _>>().map_err(unavailable)
}

pub fn item(conn: &Connection, id: &str) -> Result<Option<Item>, StoreError> {
    let sql = format!("SELECT {ITEM_COLUMNS} FROM outbox WHERE id = ?1");
    conn.query_row(&sql, [id], item_from_row)
        .optional()
        .map_err(unavailable)
}

pub fn counts(conn: &Connection) -> Result<Vec<(String, i64)>, StoreError> {
    let mut stmt = conn
        .prepare("SELECT state, count(*) FROM outbox GROUP BY state ORDER BY state")
        .map_err(unavailable)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(unavailable)?;
    rows.collect::<Result<_, _>>().map_err(unavailable)
}

pub fn delivery_count(conn: &Connection) -> Result<i64, StoreError> {
    conn.query_row("SELECT count(*) FROM deliveries", [], |r| r.get(0))
        .map_err(unavailable)
}

pub fn set_learned_secret(
    conn: &Connection,
    source: &str,
    secret: &str,
    now: UnixMillis,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO learned_secrets (source, secret, learned_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (source) DO UPDATE SET secret = excluded.secret, learned_at = excluded.learned_at",
        params![source, secret, now],
    )
    .map_err(unavailable)?;
    Ok(())
}

pub fn learned_secret(conn: &Connection, source: &str) -> Result<Option<String>, StoreError> {
    conn.query_row(
        "SELECT secret FROM learned_secrets WHERE source = ?1",
        [source],
        |r| r.get(0),
    )
    .optional()
    .map_err(unavailable)
}

/// The admin's retry: a dead, waiting or pending item goes back to the queue, due now.
pub fn retry_item(conn: &Connection, id: &str, now: UnixMillis) -> Result<(), StoreError> {
    let changed = conn
        .execute(
            "UPDATE outbox SET state = 'pending', next_attempt_at = ?2, updated_at = ?2,
                               last_error = 'retried by the admin'
             WHERE id = ?1 AND state IN ('dead', 'retry', 'pending')",
            params![id, now],
        )
        .map_err(unavailable)?;
    if changed == 0 {
        return Err(StoreError::NotFound(format!(
            "outbox item {id} that is dead, waiting or pending (a sent item is never retried)"
        )));
    }
    Ok(())
}

/// The admin's drop: a queued item will not be sent; it stays listed as dead with the reason.
pub fn drop_item(conn: &Connection, id: &str, now: UnixMillis) -> Result<(), StoreError> {
    let changed = conn
        .execute(
            "UPDATE outbox SET state = 'dead', updated_at = ?2, last_error = 'dropped by the admin'
             WHERE id = ?1 AND state IN ('pending', 'retry')",
            params![id, now],
        )
        .map_err(unavailable)?;
    if changed == 0 {
        return Err(StoreError::NotFound(format!(
            "outbox item {id} that is pending or waiting"
        )));
    }
    Ok(())
}

/// The admin's replay: the delivery is planned again with the current config. Dead items of it are
/// replaced; items already sent or still queued are kept, so nothing is posted twice.
pub fn replay_delivery(conn: &Connection, id: &str) -> Result<usize, StoreError> {
    let removed = conn
        .execute(
            "DELETE FROM outbox WHERE delivery_id = ?1 AND state = 'dead'",
            [id],
        )
        .map_err(unavailable)?;
    let changed = conn
        .execute(
            "UPDATE deliveries SET state = 'received', error = NULL WHERE id = ?1",
            [id],
        )
        .map_err(unavailable)?;
    if changed == 0 {
        return Err(StoreError::NotFound(format!("delivery {id}")));
    }
    Ok(removed)
}

pub fn due(
    conn: &Connection,
    destination: &str,
    now: UnixMillis,
    limit: usize,
) -> Result<Vec<Item>, StoreError> {
    let sql = format!(
        "SELECT {ITEM_COLUMNS} FROM outbox WHERE destination = ?1 AND state IN ('pending', 'retry')
         AND next_attempt_at <= ?2 ORDER BY created_at, id LIMIT ?3"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(unavailable)?;
    let rows = stmt
        .query_map(params![destination, now, limit as i64], item_from_row)
        .map_err(unavailable)?;
    rows.collect::<Result<_, _>>().map_err(unavailable)
}

pub fn fold(
    conn: &Connection,
    destination: &str,
    digest_id: &str,
    items: &[String],
    text: &str,
    length: usize,
    now: UnixMillis,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO outbox (id, delivery_id, route, destination, recipient, kind, text, length, state,
                             attempts, next_attempt_at, created_at, updated_at)
         VALUES (?1, NULL, -1, ?2, '', 'digest', ?3, ?4, 'pending', 0, ?5, ?5, ?5)",
        params![digest_id, destination, text, length as i64, now],
    )
    .map_err(unavailable)?;
    for id in items {
        let changed = conn
            .execute(
                "UPDATE outbox SET state = 'folded', folded_into = ?2, updated_at = ?3
                 WHERE id = ?1 AND destination = ?4 AND state IN ('pending', 'retry')",
                params![id, digest_id, now, destination],
            )
            .map_err(unavailable)?;
        if changed == 0 {
            // The savepoint rolls the digest back with it.
            return Err(StoreError::NotFound(format!(
                "queued outbox item {id} to fold"
            )));
        }
    }
    Ok(())
}

pub fn drop_items(
    conn: &Connection,
    items: &[String],
    reason: &str,
    now: UnixMillis,
) -> Result<usize, StoreError> {
    let mut n = 0;
    for id in items {
        n += conn
            .execute(
                "UPDATE outbox SET state = 'dead', last_error = ?2, updated_at = ?3
                 WHERE id = ?1 AND state IN ('pending', 'retry')",
                params![id, reason, now],
            )
            .map_err(unavailable)?;
    }
    Ok(n)
}

pub fn set_text(conn: &Connection, id: &str, text: &str, length: usize) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE outbox SET text = ?2, length = ?3 WHERE id = ?1",
        params![id, text, length as i64],
    )
    .map_err(unavailable)?;
    Ok(())
}

pub fn spent_since(
    conn: &Connection,
    destination: &str,
    since: UnixMillis,
) -> Result<i64, StoreError> {
    conn.query_row(
        "SELECT coalesce(sum(amount_micros), 0) FROM spend WHERE destination = ?1 AND at >= ?2",
        params![destination, since],
        |r| r.get(0),
    )
    .map_err(unavailable)
}

pub fn user_id(conn: &Connection, username: &str) -> Result<Option<String>, StoreError> {
    conn.query_row(
        "SELECT user_id FROM user_ids WHERE username = ?1",
        [username.trim_start_matches('@')],
        |r| r.get(0),
    )
    .optional()
    .map_err(unavailable)
}

pub fn set_user_id(
    conn: &Connection,
    username: &str,
    user_id: &str,
    now: UnixMillis,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO user_ids (username, user_id, resolved_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (username) DO UPDATE SET user_id = excluded.user_id, resolved_at = excluded.resolved_at",
        params![username.trim_start_matches('@'), user_id, now],
    )
    .map_err(unavailable)?;
    Ok(())
}

type TokenRow = (String, Option<String>, UnixMillis);

pub fn tokens(conn: &Connection, destination: &str) -> Result<Option<TokenRow>, StoreError> {
    conn.query_row(
        "SELECT access_token, refresh_token, expires_at FROM oauth_tokens WHERE destination = ?1",
        [destination],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .optional()
    .map_err(unavailable)
}

pub fn set_tokens(
    conn: &Connection,
    destination: &str,
    access: &str,
    refresh: Option<&str>,
    expires_at: UnixMillis,
    now: UnixMillis,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO oauth_tokens (destination, access_token, refresh_token, expires_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (destination) DO UPDATE SET access_token = excluded.access_token,
             refresh_token = excluded.refresh_token, expires_at = excluded.expires_at,
             updated_at = excluded.updated_at",
        params![destination, access, refresh, expires_at, now],
    )
    .map_err(unavailable)?;
    Ok(())
}

/// The pending item of a destination and recipient about `subject`, if one is waiting to settle.
pub fn settling(
    conn: &Connection,
    destination: &str,
    recipient: &str,
    subject: &str,
) -> Result<Option<Item>, StoreError> {
    let sql = format!(
        "SELECT {ITEM_COLUMNS} FROM outbox WHERE destination = ?1 AND recipient = ?2 AND subject = ?3
         AND state = 'pending' ORDER BY created_at DESC LIMIT 1"
    );
    conn.query_row(
        &sql,
        params![destination, recipient, subject],
        item_from_row,
    )
    .optional()
    .map_err(unavailable)
}
