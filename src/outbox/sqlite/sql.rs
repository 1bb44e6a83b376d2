//! The SQL of each store operation. Each function runs inside the writer's transaction (changes) or on
//! the read-only connection (queries); none opens or commits a transaction itself.
//!
//! This file is longer than the others on purpose: it is all of the store's SQL, one function per
//! operation, so that whoever changes a table finds every statement that touches it in one place.

use rusqlite::{Connection, OptionalExtension, params};

use super::writer::unavailable;
use crate::clock::UnixMillis;
use crate::outbox::{
    Block, DeliveryRecord, DeliveryWithBody, Finish, HoldCause, Item, ItemState, NewDelivery,
    NewDigest, NewItem, PlanRecord, Prunable, Recorded, StoreError, StoreSize, StoredDelivery,
};

pub fn record_delivery(
    conn: &Connection,
    d: &NewDelivery,
    id: &str,
) -> Result<Recorded, StoreError> {
    let inserted = conn
        .execute(
            "INSERT INTO deliveries (id, source, dedupe_key, body_sha256, event, received_at, state)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
            params![
                id,
                d.source,
                d.dedupe_key,
                d.body_sha256,
                d.event,
                d.received_at,
                if d.handshake { "handshake" } else { "received" }
            ],
        )
        .map_err(unavailable)?;
    if inserted == 1 {
        // Bodies live in a table of their own, so that pruning them frees whole pages for reuse.
        conn.execute(
            "INSERT INTO delivery_bodies (delivery_id, received_at, body) VALUES (?1, ?2, ?3)",
            params![id, d.received_at, d.body.as_ref()],
        )
        .map_err(unavailable)?;
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
            "SELECT d.id, d.source, d.event, coalesce(b.body, x''), d.received_at
             FROM deliveries d LEFT JOIN delivery_bodies b ON b.delivery_id = d.id
             WHERE d.state = 'received' ORDER BY d.id LIMIT ?1",
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
    plan: &PlanRecord,
    items: &[(String, NewItem)],
) -> Result<(), StoreError> {
    let (delivery_id, now) = (plan.delivery_id.as_str(), plan.now);
    for (id, item) in items {
        let merged = match item.merge_target() {
            Some(merge) => {
                conn.execute(
                    "UPDATE outbox SET state = 'folded', folded_into = ?2, updated_at = ?3
                     WHERE id = ?1 AND state = 'pending'",
                    params![merge.supersedes, id, now],
                )
                .map_err(unavailable)?
                    == 1
            }
            None => false,
        };
        let stored = item.stored(now, merged);
        conn.execute(
            "INSERT INTO outbox (id, delivery_id, route, destination, recipient, kind, text, length, state,
                                 attempts, next_attempt_at, created_at, updated_at, event_kind, project, subject)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?14, 0, ?9, ?10, ?10, ?11, ?12, ?13)
             ON CONFLICT (delivery_id, route, destination, recipient) DO NOTHING",
            params![
                id,
                delivery_id,
                item.route as i64,
                item.destination,
                item.recipient,
                item.kind,
                stored.text,
                stored.length as i64,
                stored.due,
                now,
                stored.event_kind,
                item.project,
                item.subject,
                stored.state
            ],
        )
        .map_err(unavailable)?;
    }
    let state = if plan.error.is_some() && items.is_empty() {
        "failed"
    } else {
        "planned"
    };
    conn.execute(
        "UPDATE deliveries SET state = ?2, native = ?3, kind = ?4, error = ?5 WHERE id = ?1",
        params![delivery_id, state, plan.native, plan.kind, plan.error],
    )
    .map_err(unavailable)?;
    Ok(())
}

/// A delivery that cannot be planned (its planning panicked, or its plan cannot be stored) is set aside
/// as `dead` with the reason, so that it stops holding up the deliveries behind it.
pub fn fail_delivery(conn: &Connection, id: &str, error: &str) -> Result<(), StoreError> {
    let changed = conn
        .execute(
            "UPDATE deliveries SET state = 'dead', error = ?2 WHERE id = ?1 AND state = 'received'",
            params![id, error],
        )
        .map_err(unavailable)?;
    if changed == 0 {
        return Err(StoreError::NotFound(format!(
            "delivery {id} awaiting planning"
        )));
    }
    Ok(())
}

const ITEM_COLUMNS: &str =
    "id, delivery_id, route, destination, kind, text, length, state, attempts,
    next_attempt_at, created_at, updated_at, sent_at, remote_id, last_error, recipient, event_kind, project,
    folded_into, decision, decided_by, decided_at";

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
        decision: r.get(19)?,
        decided_by: r.get(20)?,
        decided_at: r.get(21)?,
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

pub fn recover_interrupted(
    conn: &Connection,
    destination: &str,
    now: UnixMillis,
) -> Result<usize, StoreError> {
    conn.execute(
        "UPDATE outbox SET state = 'pending', next_attempt_at = ?1, updated_at = ?1,
                last_error = 'interrupted while sending; sent again with the same text'
         WHERE destination = ?2 AND state = 'sending'",
        params![now, destination],
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

pub fn block(conn: &Connection, destination: &str, block: &Block) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO destination_blocks (destination, until, reason, cause) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (destination) DO UPDATE SET
             reason = CASE WHEN excluded.until >= until THEN excluded.reason ELSE reason END,
             cause = CASE WHEN excluded.until >= until THEN excluded.cause ELSE cause END,
             until = max(until, excluded.until)",
        params![destination, block.until, block.reason, block.cause.as_str()],
    )
    .map_err(unavailable)?;
    Ok(())
}

pub fn blocked(conn: &Connection, destination: &str) -> Result<Option<Block>, StoreError> {
    conn.query_row(
        "SELECT until, reason, cause FROM destination_blocks WHERE destination = ?1",
        [destination],
        |r| {
            Ok(Block {
                until: r.get(0)?,
                reason: r.get(1)?,
                cause: HoldCause::parse(&r.get::<_, String>(2)?),
            })
        },
    )
    .optional()
    .map_err(unavailable)
}

pub fn prune(
    conn: &Connection,
    what: Prunable,
    before: UnixMillis,
    limit: usize,
) -> Result<usize, StoreError> {
    // Each statement touches at most `limit` rows, found through an index on their age.
    let sql = match what {
        Prunable::Bodies => {
            "DELETE FROM delivery_bodies WHERE rowid IN (
                 SELECT b.rowid FROM delivery_bodies b JOIN deliveries d ON d.id = b.delivery_id
                 WHERE b.received_at < ?1 AND d.state <> 'received' LIMIT ?2)"
        }
        Prunable::Items => {
            "DELETE FROM outbox WHERE rowid IN (
                 SELECT rowid FROM outbox INDEXED BY outbox_finished
                 WHERE state IN ('sent', 'dead', 'folded', 'rejected') AND updated_at < ?1 LIMIT ?2)"
        }
        Prunable::Deliveries => {
            "DELETE FROM deliveries WHERE rowid IN (
                 SELECT d.rowid FROM deliveries d INDEXED BY deliveries_received_at
                 WHERE d.received_at < ?1 AND d.state <> 'received'
                   AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.delivery_id = d.id)
                   AND NOT EXISTS (SELECT 1 FROM delivery_bodies b WHERE b.delivery_id = d.id)
                 LIMIT ?2)"
        }
        Prunable::Ledger => {
            "DELETE FROM send_ledger WHERE rowid IN (
                 SELECT rowid FROM send_ledger WHERE at < ?1 LIMIT ?2)"
        }
        Prunable::Spend => {
            "DELETE FROM spend WHERE rowid IN (SELECT rowid FROM spend WHERE at < ?1 LIMIT ?2)"
        }
    };
    conn.prepare_cached(sql)
        .and_then(|mut stmt| stmt.execute(params![before, limit as i64]))
        .map_err(unavailable)
}

pub fn size(conn: &Connection) -> Result<StoreSize, StoreError> {
    let pragma = |name: &str| -> Result<u64, StoreError> {
        conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0))
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(unavailable)
    };
    let page = pragma("page_size")?;
    Ok(StoreSize {
        bytes: pragma("page_count")?.saturating_mul(page),
        free_bytes: pragma("freelist_count")?.saturating_mul(page),
    })
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

const DELIVERY_COLUMNS: &str = "id, source, event, received_at, state, native, kind, error";

fn delivery_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeliveryRecord> {
    Ok(DeliveryRecord {
        id: r.get(0)?,
        source: r.get(1)?,
        event: r.get(2)?,
        received_at: r.get(3)?,
        state: r.get(4)?,
        native: r.get(5)?,
        kind: r.get(6)?,
        error: r.get(7)?,
    })
}

pub fn deliveries(conn: &Connection, limit: usize) -> Result<Vec<DeliveryRecord>, StoreError> {
    let sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries ORDER BY id DESC LIMIT ?1");
    let mut stmt = conn.prepare_cached(&sql).map_err(unavailable)?;
    let rows = stmt
        .query_map([limit as i64], delivery_from_row)
        .map_err(unavailable)?;
    rows.collect::<Result<_, _>>().map_err(unavailable)
}

pub fn delivery(conn: &Connection, id: &str) -> Result<Option<DeliveryWithBody>, StoreError> {
    let sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = ?1");
    let Some(record) = conn
        .query_row(&sql, [id], delivery_from_row)
        .optional()
        .map_err(unavailable)?
    else {
        return Ok(None);
    };
    let body = conn
        .query_row(
            "SELECT body FROM delivery_bodies WHERE delivery_id = ?1",
            [id],
            |r| r.get(0),
        )
        .optional()
        .map_err(unavailable)?;
    Ok(Some((record, body)))
}

pub fn delivery_items(conn: &Connection, id: &str) -> Result<Vec<Item>, StoreError> {
    let sql = format!(
        "SELECT {ITEM_COLUMNS} FROM outbox WHERE delivery_id = ?1 ORDER BY route, destination, recipient"
    );
    let mut stmt = conn.prepare(&sql).map_err(unavailable)?;
    let rows = stmt.query_map([id], item_from_row).map_err(unavailable)?;
    rows.collect::<Result<_, _>>().map_err(unavailable)
}

pub fn requests_since(
    conn: &Connection,
    destination: &str,
    since: UnixMillis,
) -> Result<Vec<UnixMillis>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT at FROM send_ledger WHERE destination = ?1 AND at > ?2 ORDER BY at")
        .map_err(unavailable)?;
    let rows = stmt
        .query_map(params![destination, since], |r| r.get(0))
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
    conn.execute("DELETE FROM handshake_windows WHERE source = ?1", [source])
        .map_err(unavailable)?;
    Ok(())
}

pub fn open_handshake(
    conn: &Connection,
    source: &str,
    until: UnixMillis,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO handshake_windows (source, until) VALUES (?1, ?2)
         ON CONFLICT (source) DO UPDATE SET until = excluded.until",
        params![source, until],
    )
    .map_err(unavailable)?;
    Ok(())
}

pub fn handshake_open(
    conn: &Connection,
    source: &str,
    now: UnixMillis,
) -> Result<bool, StoreError> {
    conn.query_row(
        "SELECT count(*) FROM handshake_windows WHERE source = ?1 AND until > ?2",
        params![source, now],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
    .map_err(unavailable)
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

/// A person's approval of an item under review: queued, due now, with the edited text if any (the
/// planned one is kept in `original_text`).
pub fn approve(
    conn: &Connection,
    id: &str,
    by: &str,
    text: Option<&(String, usize)>,
    now: UnixMillis,
) -> Result<Item, StoreError> {
    let sql = format!(
        "UPDATE outbox SET state = 'pending', next_attempt_at = ?3, updated_at = ?3, decided_by = ?2,
                decided_at = ?3, decision = CASE WHEN ?4 IS NULL THEN 'approved' ELSE 'edited' END,
                original_text = CASE WHEN ?4 IS NULL THEN NULL ELSE text END,
                text = coalesce(?4, text), length = coalesce(?5, length)
         WHERE id = ?1 AND state = 'review'
         RETURNING {ITEM_COLUMNS}"
    );
    conn.query_row(
        &sql,
        params![
            id,
            by,
            now,
            text.map(|(t, _)| t.as_str()),
            text.map(|(_, l)| *l as i64)
        ],
        item_from_row,
    )
    .optional()
    .map_err(unavailable)?
    .ok_or_else(|| StoreError::NotFound(format!("outbox item {id} under review")))
}

/// A person's rejection of an item under review: it is never sent.
pub fn reject(conn: &Connection, id: &str, by: &str, now: UnixMillis) -> Result<(), StoreError> {
    let changed = conn
        .execute(
            "UPDATE outbox SET state = 'rejected', updated_at = ?3, decided_by = ?2, decided_at = ?3,
                    decision = 'rejected', last_error = 'rejected by ' || ?2
             WHERE id = ?1 AND state = 'review'",
            params![id, by, now],
        )
        .map_err(unavailable)?;
    if changed == 0 {
        return Err(StoreError::NotFound(format!(
            "outbox item {id} under review"
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

pub fn fold(conn: &Connection, fold: &NewDigest, digest_id: &str) -> Result<(), StoreError> {
    let NewDigest {
        destination,
        recipient,
        kind,
        now,
        ..
    } = fold;
    conn.execute(
        "INSERT INTO outbox (id, delivery_id, route, destination, recipient, kind, text, length, state,
                             attempts, next_attempt_at, created_at, updated_at)
         VALUES (?1, NULL, -1, ?2, ?3, ?4, ?5, ?6, 'pending', 0, ?7, ?7, ?7)",
        params![digest_id, destination, recipient, kind, fold.text, fold.length as i64, now],
    )
    .map_err(unavailable)?;
    for id in &fold.items {
        // Only items for the same recipient fold together: a digest never carries one person's DM to
        // another, or to the public.
        let changed = conn
            .execute(
                "UPDATE outbox SET state = 'folded', folded_into = ?2, updated_at = ?3
                 WHERE id = ?1 AND destination = ?4 AND recipient = ?5 AND state IN ('pending', 'retry')",
                params![id, digest_id, now, destination, recipient],
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
        [username],
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
        params![username, user_id, now],
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
