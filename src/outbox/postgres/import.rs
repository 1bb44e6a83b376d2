//! `chirpd store migrate`: copies a SQLite store into an empty PostgreSQL database, in one transaction,
//! so that an admin moving to a fleet keeps the queue, the dedupe keys, the windows' ledger, the budget's
//! spend, holds, learned secrets and OAuth tokens.
//!
//! The SQLite file is first migrated to the latest schema (by opening it as the daemon would), then read
//! in batches by rowid so that large bodies never sit in memory all at once. Items a stopped daemon left
//! `sending` are copied as they are: the first instance to lead their destination queues them again, as
//! after any crash. The daemon using the file must be stopped: this reads, it does not lock.

use std::path::Path;

use rusqlite::types::Value;
use tokio_postgres::types::{ToSql, Type};

use super::sql::pg;
use super::{PgStore, Store};
use crate::config::secret::Secret;
use crate::outbox::StoreError;
use crate::outbox::sqlite::SqliteStore;

/// What was copied.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    pub deliveries: u64,
    pub items: u64,
    pub ledger: u64,
    pub other: u64,
}

/// The tables copied, in an order that keeps every reference valid, with their columns (the same names on
/// both backends).
const TABLES: &[(&str, &[&str])] = &[
    (
        "deliveries",
        &[
            "id",
            "source",
            "dedupe_key",
            "body_sha256",
            "event",
            "received_at",
            "state",
            "native",
            "kind",
            "error",
        ],
    ),
    ("delivery_bodies", &["delivery_id", "received_at", "body"]),
    (
        "outbox",
        &[
            "id",
            "delivery_id",
            "route",
            "destination",
            "recipient",
            "kind",
            "text",
            "length",
            "state",
            "event_kind",
            "project",
            "subject",
            "folded_into",
            "attempts",
            "next_attempt_at",
            "created_at",
            "updated_at",
            "sent_at",
            "remote_id",
            "last_error",
            "decision",
            "decided_by",
            "decided_at",
            "original_text",
        ],
    ),
    ("send_ledger", &["destination", "at"]),
    (
        "destination_blocks",
        &["destination", "until", "reason", "cause"],
    ),
    ("learned_secrets", &["source", "secret", "learned_at"]),
    ("handshake_windows", &["source", "until"]),
    ("spend", &["destination", "at", "amount_micros"]),
    ("user_ids", &["username", "user_id", "resolved_at"]),
    (
        "oauth_tokens",
        &[
            "destination",
            "access_token",
            "refresh_token",
            "expires_at",
            "updated_at",
        ],
    ),
];

/// Rows read from SQLite per batch.
const BATCH: i64 = 500;

/// Copies the SQLite store at `from` into the database at `url`, which must hold no deliveries.
pub async fn import_sqlite(
    from: &Path,
    url: &Secret,
    instance: &str,
) -> Result<Copied, StoreError> {
    // Brings the file to the latest schema, which the column lists above describe.
    drop(SqliteStore::open(from, None)?);
    let sqlite = rusqlite::Connection::open_with_flags(
        from,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", from.display())))?;
    let store = PgStore::connect(url, instance, 2, false).await?;
    if store.delivery_count().await? > 0 {
        return Err(StoreError::Rejected(
            "the PostgreSQL store already holds deliveries: migrate into an empty database".into(),
        ));
    }
    let mut conn = store.conn().await?;
    let tx = conn.transaction().await.map_err(pg)?;
    let mut copied = Copied::default();
    for (table, columns) in TABLES {
        let list = columns.join(", ");
        let marks: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
        let insert = tx
            .prepare(&format!(
                "INSERT INTO {table} ({list}) VALUES ({})",
                marks.join(", ")
            ))
            .await
            .map_err(pg)?;
        let types = insert.params().to_vec();
        let mut after = i64::MIN;
        loop {
            let (rows, last) = read_batch(&sqlite, table, &list, columns.len(), after)?;
            let n = rows.len();
            for row in rows {
                let values: Vec<Box<dyn ToSql + Sync + Send>> = row
                    .into_iter()
                    .zip(&types)
                    .map(|(v, t)| to_pg(v, t))
                    .collect::<Result<_, _>>()?;
                let params: Vec<&(dyn ToSql + Sync)> = values
                    .iter()
                    .map(|v| v.as_ref() as &(dyn ToSql + Sync))
                    .collect();
                tx.execute(&insert, &params).await.map_err(pg)?;
            }
            let n = n as u64;
            match *table {
                "deliveries" => copied.deliveries += n,
                "outbox" => copied.items += n,
                "send_ledger" => copied.ledger += n,
                _ => copied.other += n,
            }
            match last {
                Some(last) if n as i64 == BATCH => after = last,
                _ => break,
            }
        }
    }
    tx.commit().await.map_err(pg)?;
    Ok(copied)
}

type Rows = (Vec<Vec<Value>>, Option<i64>);

/// Up to `BATCH` rows of `table` after rowid `after`, and the last rowid read.
fn read_batch(
    sqlite: &rusqlite::Connection,
    table: &str,
    list: &str,
    width: usize,
    after: i64,
) -> Result<Rows, StoreError> {
    let read = |e: rusqlite::Error| StoreError::Unavailable(format!("cannot read {table}: {e}"));
    let mut stmt = sqlite
        .prepare(&format!(
            "SELECT rowid, {list} FROM {table} WHERE rowid > ?1 ORDER BY rowid LIMIT ?2"
        ))
        .map_err(read)?;
    let mut last = None;
    let mut out = Vec::new();
    let mut rows = stmt.query([after, BATCH]).map_err(read)?;
    while let Some(r) = rows.next().map_err(read)? {
        last = Some(r.get::<_, i64>(0).map_err(read)?);
        let mut values = Vec::with_capacity(width);
        for i in 1..=width {
            values.push(r.get::<_, Value>(i).map_err(read)?);
        }
        out.push(values);
    }
    Ok((out, last))
}

/// A SQLite value as the PostgreSQL column of type `t` takes it.
fn to_pg(v: Value, t: &Type) -> Result<Box<dyn ToSql + Sync + Send>, StoreError> {
    let wrong = |what: &str| StoreError::Rejected(format!("a {what} where {t} was expected"));
    Ok(match (v, t) {
        (Value::Null, &Type::INT8) => Box::new(None::<i64>),
        (Value::Null, &Type::BYTEA) => Box::new(None::<Vec<u8>>),
        (Value::Null, _) => Box::new(None::<String>),
        (Value::Integer(i), &Type::INT8) => Box::new(i),
        (Value::Integer(i), &Type::TEXT) => Box::new(i.to_string()),
        (Value::Text(s), &Type::TEXT) => Box::new(s),
        (Value::Blob(b), &Type::BYTEA) => Box::new(b),
        (Value::Text(s), &Type::BYTEA) => Box::new(s.into_bytes()),
        (Value::Integer(_), _) => return Err(wrong("number")),
        (Value::Real(_), _) => return Err(wrong("real number")),
        (Value::Text(_), _) => return Err(wrong("text")),
        (Value::Blob(_), _) => return Err(wrong("blob")),
    })
}
