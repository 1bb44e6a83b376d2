//! The writer thread and the read connection: group commit, durability settings and migrations.
//!
//! Every change is a job sent to the writer thread. The thread takes all jobs that are waiting, runs each
//! inside its own savepoint of one transaction, commits once (with `synchronous=FULL`, one fsync of the
//! WAL), and only then answers each caller. So an answer always means "committed and fsynced", and many
//! concurrent webhooks share one fsync instead of queueing for their own. Queries go to a read-only
//! connection, which neither waits for nor adds to the writer's commits.

use std::path::Path;
use std::sync::mpsc;

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::outbox::StoreError;

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
    include_str!("migrations/0006_handshake_windows.sql"),
    include_str!("migrations/0007_retention.sql"),
    include_str!("migrations/0008_review.sql"),
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

/// Makes the database private to its owner before SQLite opens it: it holds OAuth tokens, learned
/// secrets and raw bodies. A new file is created 0600 (SQLite gives its `-wal` and `-shm` files the same
/// mode); an existing file readable by others is narrowed to 0600, with a warning, or refused if that
/// fails.
fn make_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if !path.exists() {
        return std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map(drop)
            .or_else(|e| match e.kind() {
                // Another process created it meanwhile; its mode is checked below on the next start.
                std::io::ErrorKind::AlreadyExists => Ok(()),
                _ => Err(StoreError::Unavailable(format!(
                    "cannot create {}: {e}",
                    path.display()
                ))),
            });
    }
    let mut files = vec![path.to_path_buf()];
    for suffix in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        files.push(name.into());
    }
    for file in files.iter().filter(|f| f.exists()) {
        let mode = std::fs::metadata(file)
            .map_err(|e| StoreError::Unavailable(format!("cannot read {}: {e}", file.display())))?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
                StoreError::Unavailable(format!(
                    "{} is readable by others (mode {mode:o}) and cannot be made private: {e}; run chmod 600 on it",
                    file.display()
                ))
            })?;
            tracing::warn!(file = %file.display(), was = format!("{mode:o}"), "The store was readable by others; it is now 0600.");
        }
    }
    Ok(())
}

/// Opens a connection with the settings durability depends on.
fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    make_private(path)?;
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_store_is_private_and_a_loose_one_is_made_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        let conn = open_connection(&path).unwrap();
        conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .unwrap();
        assert_eq!(mode(&path), 0o600);
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        assert_eq!(mode(Path::new(&wal)), 0o600, "SQLite's WAL copies the mode");
        drop(conn);

        let loose = dir.path().join("loose.db");
        std::fs::write(&loose, b"").unwrap();
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
        open_connection(&loose).unwrap();
        assert_eq!(mode(&loose), 0o600);
    }
}
