//! The SQL of each store operation on PostgreSQL. A change runs inside the transaction its caller opened
//! and commits; a query runs on a pooled connection. Statements are prepared once per connection.
//!
//! This file mirrors `sqlite/sql.rs` operation by operation, and is as long for the same reason: all of
//! the backend's SQL in one place. Where the two differ, a comment says why (leases, planning claims and
//! announcements exist only here).

use std::time::Duration;

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::clock::UnixMillis;
use crate::outbox::{
    Block, DeliveryRecord, DeliveryWithBody, Finish, HoldCause, Item, ItemState, Led, NewDelivery,
    NewDigest, NewItem, PlanRecord, Prunable, Recorded, StoreError, StoreSize, StoredDelivery,
};

/// The database's clock in Unix milliseconds: planning claims lapse by it, so that no instance's clock
/// decides when another may take over.
const DB_NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// How long a planning claim lasts: planning takes milliseconds, so a claim still held after this belongs
/// to an instance that died while planning.
const PLANNING_CLAIM_MS: i64 = 30_000;

/// The announcement channels other instances listen on (`listen.rs`).
pub const DELIVERIES: &str = "chirpd_deliveries";
pub const ITEMS: &str = "chirpd_items";
pub const LEASES: &str = "chirpd_leases";

/// A database error as the store reports it: the data refused (a constraint, a value out of range) is a
/// rejection that trying again cannot mend; anything else (connection lost, server shutting down, disk
/// full) leaves the store unavailable for now.
pub fn pg(e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let text = format!("{} ({code})", db.message());
        // Class 22 is data exceptions, class 23 integrity constraint violations.
        if code.starts_with("22") || code.starts_with("23") {
            return StoreError::Rejected(text);
        }
        return StoreError::Unavailable(text);
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    StoreError::Unavailable(text)
}

async fn execute(
    c: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, StoreError> {
    let st = c.prepare_cached(sql).await.map_err(pg)?;
    c.execute(&st, params).await.map_err(pg)
}

async fn query(
    c: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, StoreError> {
    let st = c.prepare_cached(sql).await.map_err(pg)?;
    c.query(&st, params).await.map_err(pg)
}

async fn query_opt(
    c: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<Row>, StoreError> {
    let st = c.prepare_cached(sql).await.map_err(pg)?;
    c.query_opt(&st, params).await.map_err(pg)
}

async fn query_one(
    c: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Row, StoreError> {
    let st = c.prepare_cached(sql).await.map_err(pg)?;
    c.query_one(&st, params).await.map_err(pg)
}

/// Announces work on `channel`; delivered to the listeners when the transaction commits, and never if it
/// rolls back.
async fn notify(c: &impl GenericClient, channel: &str, payload: &str) -> Result<(), StoreError> {
    query(c, "SELECT pg_notify($1, $2)", &[&channel, &payload]).await?;
    Ok(())
}

fn count(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub async fn record_delivery(
    c: &impl GenericClient,
    d: &NewDelivery,
    id: &str,
) -> Result<Recorded, StoreError> {
    let state = if d.handshake { "handshake" } else { "received" };
    // One statement, so one round trip and its own transaction: the delivery and its body are stored
    // together or not at all. Without a conflict target, DO NOTHING covers both unique keys (delivery
    // id and body hash); a copy being inserted by another instance makes this insert wait for its
    // commit, then do nothing. No announcement: the instance that received a delivery plans it, and
    // another picks it up only if that one dies first (its planning claim lapses).
    let inserted: i64 = query_one(
        c,
        "WITH d AS (
             INSERT INTO deliveries (id, source, dedupe_key, body_sha256, event, received_at, state)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING id),
         b AS (INSERT INTO delivery_bodies (delivery_id, received_at, body) SELECT id, $6, $8 FROM d)
         SELECT count(*) FROM d",
        &[
            &id,
            &d.source,
            &d.dedupe_key,
            &d.body_sha256,
            &d.event,
            &d.received_at,
            &state,
            &d.body.as_ref(),
        ],
    )
    .await?
    .get(0);
    if inserted == 1 {
        return Ok(Recorded {
            id: id.to_string(),
            duplicate: false,
        });
    }
    let existing: String = query_one(
        c,
        "SELECT id FROM deliveries WHERE source = $1 AND (dedupe_key = $2 OR body_sha256 = $3) LIMIT 1",
        &[&d.source, &d.dedupe_key, &d.body_sha256],
    )
    .await?
    .get(0);
    Ok(Recorded {
        id: existing,
        duplicate: true,
    })
}

/// Claims up to `limit` deliveries to plan for instance `planner`: those `received` that no other
/// instance is planning (or whose claim lapsed), and those this instance claimed before it restarted. `SKIP LOCKED` lets instances claim side by side without waiting on each other.
pub async fn claim_unplanned(
    c: &impl GenericClient,
    planner: &str,
    n: usize,
) -> Result<Vec<StoredDelivery>, StoreError> {
    let sql = format!(
        "WITH c AS (
             SELECT id FROM deliveries
             WHERE state = 'received'
               AND (planner IS NULL OR planner = $1 OR planner_until < {DB_NOW_MS})
             ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
         UPDATE deliveries d SET planner = $1, planner_until = {DB_NOW_MS} + $3
         FROM c WHERE d.id = c.id
         RETURNING d.id, d.source, d.event, d.received_at,
                   coalesce((SELECT b.body FROM delivery_bodies b WHERE b.delivery_id = d.id), ''::bytea)"
    );
    let rows = query(c, &sql, &[&planner, &limit(n), &PLANNING_CLAIM_MS]).await?;
    let mut out: Vec<StoredDelivery> = rows
        .iter()
        .map(|r| StoredDelivery {
            id: r.get(0),
            source: r.get(1),
            event: r.get(2),
            received_at: r.get(3),
            body: r.get(4),
        })
        .collect();
    // RETURNING keeps no order; planning goes oldest first.
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// Stores each plan whose delivery is still `received`; a delivery another instance planned meanwhile
/// (its row is locked here, so that cannot happen during this transaction) is left as that one stored
/// it. Announces the destinations that got new items.
pub async fn save_plans(
    c: &impl GenericClient,
    plans: &[(PlanRecord, Vec<(String, NewItem)>)],
) -> Result<(), StoreError> {
    let mut destinations: Vec<&str> = Vec::new();
    for (plan, items) in plans {
        let state = query_opt(
            c,
            "SELECT state FROM deliveries WHERE id = $1 FOR UPDATE",
            &[&plan.delivery_id],
        )
        .await?
        .map(|r| r.get::<_, String>(0));
        if state.as_deref().is_some_and(|s| s != "received") {
            continue;
        }
        save_plan(c, plan, items).await?;
        destinations.extend(items.iter().map(|(_, i)| i.destination.as_str()));
    }
    destinations.sort_unstable();
    destinations.dedup();
    for d in destinations {
        notify(c, ITEMS, d).await?;
    }
    Ok(())
}

async fn save_plan(
    c: &impl GenericClient,
    plan: &PlanRecord,
    items: &[(String, NewItem)],
) -> Result<(), StoreError> {
    let (delivery_id, now) = (plan.delivery_id.as_str(), plan.now);
    for (id, item) in items {
        let merged = match item.merge_target() {
            Some(merge) => {
                execute(
                    c,
                    "UPDATE outbox SET state = 'folded', folded_into = $2, updated_at = $3
                     WHERE id = $1 AND state = 'pending'",
                    &[&merge.supersedes, id, &now],
                )
                .await?
                    == 1
            }
            None => false,
        };
        let stored = item.stored(now, merged);
        execute(
            c,
            "INSERT INTO outbox (id, delivery_id, route, destination, recipient, kind, text, length, state,
                                 attempts, next_attempt_at, created_at, updated_at, event_kind, project, subject)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $14, 0, $9, $10, $10, $11, $12, $13)
             ON CONFLICT (delivery_id, route, destination, recipient) DO NOTHING",
            &[
                id,
                &delivery_id,
                &(item.route as i64),
                &item.destination,
                &item.recipient,
                &item.kind,
                &stored.text,
                &(stored.length as i64),
                &stored.due,
                &now,
                &stored.event_kind,
                &item.project,
                &item.subject,
                &stored.state,
            ],
        )
        .await?;
    }
    let state = if plan.error.is_some() && items.is_empty() {
        "failed"
    } else {
        "planned"
    };
    execute(
        c,
        "UPDATE deliveries SET state = $2, native = $3, kind = $4, error = $5,
                               planner = NULL, planner_until = NULL
         WHERE id = $1",
        &[&delivery_id, &state, &plan.native, &plan.kind, &plan.error],
    )
    .await?;
    Ok(())
}

pub async fn fail_delivery(
    c: &impl GenericClient,
    id: &str,
    error: &str,
) -> Result<(), StoreError> {
    let changed = execute(
        c,
        "UPDATE deliveries SET state = 'dead', error = $2, planner = NULL, planner_until = NULL
         WHERE id = $1 AND state = 'received'",
        &[&id, &error],
    )
    .await?;
    if changed == 0 {
        return Err(StoreError::NotFound(format!(
            "delivery {id} awaiting planning"
        )));
    }
    Ok(())
}

const ITEM_COLUMNS: &str = "id, delivery_id, route, destination, kind, text, length, state, attempts,
    next_attempt_at, created_at, updated_at, sent_at, remote_id, last_error, recipient, event_kind, project,
    folded_into, decision, decided_by, decided_at";

fn item_from_row(r: &Row) -> Item {
    let state: String = r.get(7);
    Item {
        id: r.get(0),
        delivery_id: r.get(1),
        route: r.get(2),
        destination: r.get(3),
        kind: r.get(4),
        text: r.get(5),
        length: usize::try_from(r.get::<_, i64>(6)).unwrap_or(0),
        state: ItemState::parse(&state).unwrap_or(ItemState::Dead),
        attempts: r.get(8),
        next_attempt_at: r.get(9),
        created_at: r.get(10),
        updated_at: r.get(11),
        sent_at: r.get(12),
        remote_id: r.get(13),
        last_error: r.get(14),
        recipient: r.get(15),
        event_kind: r.get(16),
        project: r.get(17),
        folded_into: r.get(18),
        decision: r.get(19),
        decided_by: r.get(20),
        decided_at: r.get(21),
    }
}

/// Claims the next due item, only while `holder` holds the destination's lease on the database's clock:
/// a leader whose lease lapsed (it lost the database for a while, or stalled) cannot claim again before
/// it leads again, whatever it believes.
pub async fn claim(
    c: &impl GenericClient,
    destination: &str,
    now: UnixMillis,
    holder: &str,
) -> Result<Option<Item>, StoreError> {
    let sql = format!(
        "UPDATE outbox SET state = 'sending', attempts = attempts + 1, updated_at = $2
         WHERE id = (SELECT o.id FROM outbox o
                     WHERE o.destination = $1 AND o.state IN ('pending', 'retry') AND o.next_attempt_at <= $2
                       AND EXISTS (SELECT 1 FROM leases l WHERE l.name = $1 AND l.holder = $3
                                   AND l.expires_at > clock_timestamp())
                     ORDER BY o.next_attempt_at, o.id LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING {ITEM_COLUMNS}"
    );
    let item = query_opt(c, &sql, &[&destination, &now, &holder])
        .await?
        .map(|r| item_from_row(&r));
    if item.is_some() {
        // The ledger counts requests, not posts: X counts every request against its windows.
        execute(
            c,
            "INSERT INTO send_ledger (destination, at) VALUES ($1, $2)",
            &[&destination, &now],
        )
        .await?;
    }
    Ok(item)
}

pub async fn next_due(
    c: &impl GenericClient,
    destination: &str,
) -> Result<Option<UnixMillis>, StoreError> {
    Ok(query_one(
        c,
        "SELECT min(next_attempt_at) FROM outbox WHERE destination = $1 AND state IN ('pending', 'retry')",
        &[&destination],
    )
    .await?
    .get(0))
}

pub async fn finish(
    c: &impl GenericClient,
    id: &str,
    how: &Finish,
    now: UnixMillis,
) -> Result<(), StoreError> {
    let changed = match how {
        Finish::Sent {
            remote_id,
            note,
            cost_micros,
        } => {
            if *cost_micros > 0 {
                execute(
                    c,
                    "INSERT INTO spend (destination, at, amount_micros)
                     SELECT destination, $2, $3 FROM outbox WHERE id = $1",
                    &[&id, &now, cost_micros],
                )
                .await?;
            }
            execute(
                c,
                "UPDATE outbox SET state = 'sent', sent_at = $2, updated_at = $2, remote_id = $3, last_error = $4
                 WHERE id = $1 AND state = 'sending'",
                &[&id, &now, remote_id, note],
            )
            .await?
        }
        Finish::Retry { at, error } => {
            execute(
                c,
                "UPDATE outbox SET state = 'retry', next_attempt_at = $2, updated_at = $3, last_error = $4
                 WHERE id = $1 AND state = 'sending'",
                &[&id, at, &now, error],
            )
            .await?
        }
        Finish::Release { at, error } => {
            execute(
                c,
                "UPDATE outbox SET state = 'pending', attempts = greatest(attempts - 1, 0),
                                   next_attempt_at = $2, updated_at = $3, last_error = $4
                 WHERE id = $1 AND state = 'sending'",
                &[&id, at, &now, error],
            )
            .await?
        }
        Finish::Dead { error } => {
            execute(
                c,
                "UPDATE outbox SET state = 'dead', updated_at = $2, last_error = $3
                 WHERE id = $1 AND state = 'sending'",
                &[&id, &now, error],
            )
            .await?
        }
    };
    if changed == 0 {
        return Err(StoreError::NotFound(format!(
            "outbox item {id} in state sending"
        )));
    }
    Ok(())
}

/// Takes or renews `holder`'s leases on `names` (sorted, so that instances lock rows in one order). A
/// lease taken from another holder puts the items it left `sending` back in the queue.
pub async fn lead(
    c: &impl GenericClient,
    names: &[String],
    holder: &str,
    ttl: Duration,
    now: UnixMillis,
) -> Result<Vec<Led>, StoreError> {
    let ttl_ms = ttl.as_secs_f64() * 1000.0;
    execute(
        c,
        "INSERT INTO leases (name, holder, expires_at)
         SELECT n, '', '-infinity' FROM unnest($1::text[]) AS n ORDER BY n
         ON CONFLICT (name) DO NOTHING",
        &[&names],
    )
    .await?;
    let rows = query(
        c,
        "SELECT name, holder, expires_at > clock_timestamp() FROM leases
         WHERE name = ANY($1) ORDER BY name FOR UPDATE",
        &[&names],
    )
    .await?;
    let mut led = Vec::new();
    for r in rows {
        let (name, current, live): (String, String, bool) = (r.get(0), r.get(1), r.get(2));
        if current == holder {
            execute(
                c,
                "UPDATE leases SET expires_at = clock_timestamp() + $2::float8 * interval '1 millisecond'
                 WHERE name = $1",
                &[&name, &ttl_ms],
            )
            .await?;
            led.push(Led {
                destination: name,
                recovered: 0,
            });
        } else if !live {
            execute(
                c,
                "UPDATE leases SET holder = $2, acquired_at = clock_timestamp(),
                                   expires_at = clock_timestamp() + $3::float8 * interval '1 millisecond'
                 WHERE name = $1",
                &[&name, &holder, &ttl_ms],
            )
            .await?;
            let recovered = execute(
                c,
                "UPDATE outbox SET state = 'pending', next_attempt_at = $2, updated_at = $2,
                        last_error = 'interrupted while sending; sent again with the same text'
                 WHERE destination = $1 AND state = 'sending'",
                &[&name, &now],
            )
            .await?;
            led.push(Led {
                destination: name,
                recovered: count(recovered),
            });
        }
    }
    Ok(led)
}

/// Ends `holder`'s leases at once and says so, so that another instance takes over without waiting for
/// them to lapse. The holder stays recorded: whoever takes over next recovers what it left `sending`.
pub async fn release(
    c: &impl GenericClient,
    names: &[String],
    holder: &str,
) -> Result<(), StoreError> {
    let released = execute(
        c,
        "UPDATE leases SET expires_at = '-infinity' WHERE name = ANY($1) AND holder = $2",
        &[&names, &holder],
    )
    .await?;
    if released > 0 {
        notify(c, LEASES, holder).await?;
    }
    Ok(())
}

pub async fn ledger(
    c: &impl GenericClient,
    destination: &str,
    since: UnixMillis,
) -> Result<(u32, Option<UnixMillis>), StoreError> {
    let r = query_one(
        c,
        "SELECT count(*), min(at) FROM send_ledger WHERE destination = $1 AND at > $2",
        &[&destination, &since],
    )
    .await?;
    Ok((
        u32::try_from(r.get::<_, i64>(0)).unwrap_or(u32::MAX),
        r.get(1),
    ))
}

pub async fn block(
    c: &impl GenericClient,
    destination: &str,
    block: &Block,
) -> Result<(), StoreError> {
    execute(
        c,
        "INSERT INTO destination_blocks AS b (destination, until, reason, cause) VALUES ($1, $2, $3, $4)
         ON CONFLICT (destination) DO UPDATE SET
             reason = CASE WHEN excluded.until >= b.until THEN excluded.reason ELSE b.reason END,
             cause = CASE WHEN excluded.until >= b.until THEN excluded.cause ELSE b.cause END,
             until = greatest(b.until, excluded.until)",
        &[&destination, &block.until, &block.reason, &block.cause.as_str()],
    )
    .await?;
    Ok(())
}

pub async fn blocked(
    c: &impl GenericClient,
    destination: &str,
) -> Result<Option<Block>, StoreError> {
    Ok(query_opt(
        c,
        "SELECT until, reason, cause FROM destination_blocks WHERE destination = $1",
        &[&destination],
    )
    .await?
    .map(|r| Block {
        until: r.get(0),
        reason: r.get(1),
        cause: HoldCause::parse(&r.get::<_, String>(2)),
    }))
}

pub async fn prune(
    c: &impl GenericClient,
    what: Prunable,
    before: UnixMillis,
    n: usize,
) -> Result<usize, StoreError> {
    // Each statement touches at most `n` rows, found through an index on their age; rows another
    // instance is pruning at the same moment are skipped, not waited for.
    let sql = match what {
        Prunable::Bodies => {
            "DELETE FROM delivery_bodies WHERE delivery_id IN (
                 SELECT b.delivery_id FROM delivery_bodies b JOIN deliveries d ON d.id = b.delivery_id
                 WHERE b.received_at < $1 AND d.state <> 'received' LIMIT $2 FOR UPDATE OF b SKIP LOCKED)"
        }
        Prunable::Items => {
            "DELETE FROM outbox WHERE id IN (
                 SELECT id FROM outbox WHERE state IN ('sent', 'dead', 'folded', 'rejected') AND updated_at < $1
                 LIMIT $2 FOR UPDATE SKIP LOCKED)"
        }
        Prunable::Deliveries => {
            "DELETE FROM deliveries WHERE id IN (
                 SELECT d.id FROM deliveries d
                 WHERE d.received_at < $1 AND d.state <> 'received'
                   AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.delivery_id = d.id)
                   AND NOT EXISTS (SELECT 1 FROM delivery_bodies b WHERE b.delivery_id = d.id)
                 LIMIT $2 FOR UPDATE SKIP LOCKED)"
        }
        Prunable::Ledger => {
            "DELETE FROM send_ledger WHERE ctid IN (
                 SELECT ctid FROM send_ledger WHERE at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)"
        }
        Prunable::Spend => {
            "DELETE FROM spend WHERE ctid IN (
                 SELECT ctid FROM spend WHERE at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)"
        }
    };
    execute(c, sql, &[&before, &limit(n)]).await.map(count)
}

/// The database's size. PostgreSQL reuses the space of deleted rows after its autovacuum, and does not
/// say how much is free at a glance, so no free space is reported.
pub async fn size(c: &impl GenericClient) -> Result<StoreSize, StoreError> {
    let bytes: i64 = query_one(c, "SELECT pg_database_size(current_database())", &[])
        .await?
        .get(0);
    Ok(StoreSize {
        bytes: u64::try_from(bytes).unwrap_or(0),
        free_bytes: 0,
    })
}

pub async fn items(
    c: &impl GenericClient,
    state: Option<ItemState>,
    n: usize,
) -> Result<Vec<Item>, StoreError> {
    let sql = format!(
        "SELECT {ITEM_COLUMNS} FROM outbox WHERE ($1::text IS NULL OR state = $1)
         ORDER BY created_at DESC, id DESC LIMIT $2"
    );
    let rows = query(c, &sql, &[&state.map(ItemState::as_str), &limit(n)]).await?;
    Ok(rows.iter().map(item_from_row).collect())
}

pub async fn item(c: &impl GenericClient, id: &str) -> Result<Option<Item>, StoreError> {
    let sql = format!("SELECT {ITEM_COLUMNS} FROM outbox WHERE id = $1");
    Ok(query_opt(c, &sql, &[&id]).await?.map(|r| item_from_row(&r)))
}

pub async fn counts(c: &impl GenericClient) -> Result<Vec<(String, i64)>, StoreError> {
    let rows = query(
        c,
        "SELECT state, count(*) FROM outbox GROUP BY state ORDER BY state",
        &[],
    )
    .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

const DELIVERY_COLUMNS: &str = "id, source, event, received_at, state, native, kind, error";

fn delivery_from_row(r: &Row) -> DeliveryRecord {
    DeliveryRecord {
        id: r.get(0),
        source: r.get(1),
        event: r.get(2),
        received_at: r.get(3),
        state: r.get(4),
        native: r.get(5),
        kind: r.get(6),
        error: r.get(7),
    }
}

pub async fn deliveries(
    c: &impl GenericClient,
    n: usize,
) -> Result<Vec<DeliveryRecord>, StoreError> {
    let sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries ORDER BY id DESC LIMIT $1");
    let rows = query(c, &sql, &[&limit(n)]).await?;
    Ok(rows.iter().map(delivery_from_row).collect())
}

pub async fn delivery(
    c: &impl GenericClient,
    id: &str,
) -> Result<Option<DeliveryWithBody>, StoreError> {
    let sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = $1");
    let Some(row) = query_opt(c, &sql, &[&id]).await? else {
        return Ok(None);
    };
    let body = query_opt(
        c,
        "SELECT body FROM delivery_bodies WHERE delivery_id = $1",
        &[&id],
    )
    .await?
    .map(|r| r.get(0));
    Ok(Some((delivery_from_row(&row), body)))
}

pub async fn delivery_items(c: &impl GenericClient, id: &str) -> Result<Vec<Item>, StoreError> {
    let sql = format!(
        "SELECT {ITEM_COLUMNS} FROM outbox WHERE delivery_id = $1 ORDER BY route, destination, recipient"
    );
    let rows = query(c, &sql, &[&id]).await?;
    Ok(rows.iter().map(item_from_row).collect())
}

pub async fn requests_since(
    c: &impl GenericClient,
    destination: &str,
    since: UnixMillis,
) -> Result<Vec<UnixMillis>, StoreError> {
    let rows = query(
        c,
        "SELECT at FROM send_ledger WHERE destination = $1 AND at > $2 ORDER BY at",
        &[&destination, &since],
    )
    .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

pub async fn delivery_count(c: &impl GenericClient) -> Result<i64, StoreError> {
    Ok(query_one(c, "SELECT count(*) FROM deliveries", &[])
        .await?
        .get(0))
}

pub async fn set_learned_secret(
    c: &impl GenericClient,
    source: &str,
    secret: &str,
    now: UnixMillis,
) -> Result<(), StoreError> {
    execute(
        c,
        "INSERT INTO learned_secrets (source, secret, learned_at) VALUES ($1, $2, $3)
         ON CONFLICT (source) DO UPDATE SET secret = excluded.secret, learned_at = excluded.learned_at",
        &[&source, &secret, &now],
    )
    .await?;
    execute(
        c,
        "DELETE FROM handshake_windows WHERE source = $1",
        &[&source],
    )
    .await?;
    Ok(())
}

pub async fn learned_secret(
    c: &impl GenericClient,
    source: &str,
) -> Result<Option<String>, StoreError> {
    Ok(query_opt(
        c,
        "SELECT secret FROM learned_secrets WHERE source = $1",
        &[&source],
    )
    .await?
    .map(|r| r.get(0)))
}

pub async fn open_handshake(
    c: &impl GenericClient,
    source: &str,
    until: UnixMillis,
) -> Result<(), StoreError> {
    execute(
        c,
        "INSERT INTO handshake_windows (source, until) VALUES ($1, $2)
         ON CONFLICT (source) DO UPDATE SET until = excluded.until",
        &[&source, &until],
    )
    .await?;
    Ok(())
}

pub async fn handshake_open(
    c: &impl GenericClient,
    source: &str,
    now: UnixMillis,
) -> Result<bool, StoreError> {
    let n: i64 = query_one(
        c,
        "SELECT count(*) FROM handshake_windows WHERE source = $1 AND until > $2",
        &[&source, &now],
    )
    .await?
    .get(0);
    Ok(n > 0)
}

pub async fn retry_item(
    c: &impl GenericClient,
    id: &str,
    now: UnixMillis,
) -> Result<(), StoreError> {
    let destination = query_opt(
        c,
        "UPDATE outbox SET state = 'pending', next_attempt_at = $2, updated_at = $2,
                           last_error = 'retried by the admin'
         WHERE id = $1 AND state IN ('dead', 'retry', 'pending') RETURNING destination",
        &[&id, &now],
    )
    .await?;
    let Some(row) = destination else {
        return Err(StoreError::NotFound(format!(
            "outbox item {id} that is dead, waiting or pending (a sent item is never retried)"
        )));
    };
    notify(c, ITEMS, row.get::<_, &str>(0)).await
}

pub async fn drop_item(
    c: &impl GenericClient,
    id: &str,
    now: UnixMillis,
) -> Result<(), StoreError> {
    let changed = execute(
        c,
        "UPDATE outbox SET state = 'dead', updated_at = $2, last_error = 'dropped by the admin'
         WHERE id = $1 AND state IN ('pending', 'retry')",
        &[&id, &now],
    )
    .await?;
    if changed == 0 {
        return Err(StoreError::NotFound(format!(
            "outbox item {id} that is pending or waiting"
        )));
    }
    Ok(())
}

/// A person's approval of an item under review, as on SQLite; announced to the destination's leader.
pub async fn approve(
    c: &impl GenericClient,
    id: &str,
    by: &str,
    text: Option<&(String, usize)>,
    now: UnixMillis,
) -> Result<Item, StoreError> {
    let sql = format!(
        "UPDATE outbox SET state = 'pending', next_attempt_at = $3, updated_at = $3, decided_by = $2,
                decided_at = $3, decision = CASE WHEN $4::text IS NULL THEN 'approved' ELSE 'edited' END,
                original_text = CASE WHEN $4::text IS NULL THEN NULL ELSE text END,
                text = coalesce($4::text, text), length = coalesce($5::bigint, length)
         WHERE id = $1 AND state = 'review'
         RETURNING {ITEM_COLUMNS}"
    );
    let new_text = text.map(|(t, _)| t.as_str());
    let new_length = text.map(|(_, l)| *l as i64);
    let item = query_opt(c, &sql, &[&id, &by, &now, &new_text, &new_length])
        .await?
        .map(|r| item_from_row(&r))
        .ok_or_else(|| StoreError::NotFound(format!("outbox item {id} under review")))?;
    notify(c, ITEMS, &item.destination).await?;
    Ok(item)
}

pub async fn reject(
    c: &impl GenericClient,
    id: &str,
    by: &str,
    now: UnixMillis,
) -> Result<(), StoreError> {
    let changed = execute(
        c,
        "UPDATE outbox SET state = 'rejected', updated_at = $3, decided_by = $2, decided_at = $3,
                decision = 'rejected', last_error = 'rejected by ' || $2
         WHERE id = $1 AND state = 'review'",
        &[&id, &by, &now],
    )
    .await?;
    if changed == 0 {
        return Err(StoreError::NotFound(format!(
            "outbox item {id} under review"
        )));
    }
    Ok(())
}

pub async fn replay_delivery(c: &impl GenericClient, id: &str) -> Result<usize, StoreError> {
    let removed = execute(
        c,
        "DELETE FROM outbox WHERE delivery_id = $1 AND state = 'dead'",
        &[&id],
    )
    .await?;
    let changed = execute(
        c,
        "UPDATE deliveries SET state = 'received', error = NULL, planner = NULL, planner_until = NULL
         WHERE id = $1",
        &[&id],
    )
    .await?;
    if changed == 0 {
        return Err(StoreError::NotFound(format!("delivery {id}")));
    }
    notify(c, DELIVERIES, "").await?;
    Ok(count(removed))
}

pub async fn due(
    c: &impl GenericClient,
    destination: &str,
    now: UnixMillis,
    n: usize,
) -> Result<Vec<Item>, StoreError> {
    let sql = format!(
        "SELECT {ITEM_COLUMNS} FROM outbox WHERE destination = $1 AND state IN ('pending', 'retry')
         AND next_attempt_at <= $2 ORDER BY created_at, id LIMIT $3"
    );
    let rows = query(c, &sql, &[&destination, &now, &limit(n)]).await?;
    Ok(rows.iter().map(item_from_row).collect())
}

pub async fn fold(
    c: &impl GenericClient,
    fold: &NewDigest,
    digest_id: &str,
) -> Result<(), StoreError> {
    execute(
        c,
        "INSERT INTO outbox (id, delivery_id, route, destination, recipient, kind, text, length, state,
                             attempts, next_attempt_at, created_at, updated_at)
         VALUES ($1, NULL, -1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7, $7)",
        &[
            &digest_id,
            &fold.destination,
            &fold.recipient,
            &fold.kind,
            &fold.text,
            &(fold.length as i64),
            &fold.now,
        ],
    )
    .await?;
    for id in &fold.items {
        // Only items for the same recipient fold together: a digest never carries one person's DM to
        // another, or to the public.
        let changed = execute(
            c,
            "UPDATE outbox SET state = 'folded', folded_into = $2, updated_at = $3
             WHERE id = $1 AND destination = $4 AND recipient = $5 AND state IN ('pending', 'retry')",
            &[id, &digest_id, &fold.now, &fold.destination, &fold.recipient],
        )
        .await?;
        if changed == 0 {
            // The caller's transaction is dropped uncommitted, which rolls the digest back with it.
            return Err(StoreError::NotFound(format!(
                "queued outbox item {id} to fold"
            )));
        }
    }
    Ok(())
}

pub async fn drop_items(
    c: &impl GenericClient,
    items: &[String],
    reason: &str,
    now: UnixMillis,
) -> Result<usize, StoreError> {
    let n = execute(
        c,
        "UPDATE outbox SET state = 'dead', last_error = $2, updated_at = $3
         WHERE id = ANY($1) AND state IN ('pending', 'retry')",
        &[&items, &reason, &now],
    )
    .await?;
    Ok(count(n))
}

pub async fn set_text(
    c: &impl GenericClient,
    id: &str,
    text: &str,
    length: usize,
) -> Result<(), StoreError> {
    execute(
        c,
        "UPDATE outbox SET text = $2, length = $3 WHERE id = $1",
        &[&id, &text, &(length as i64)],
    )
    .await?;
    Ok(())
}

pub async fn spent_since(
    c: &impl GenericClient,
    destination: &str,
    since: UnixMillis,
) -> Result<i64, StoreError> {
    // sum() of bigint is numeric in PostgreSQL; the budget's sums fit a bigint by far.
    Ok(query_one(
        c,
        "SELECT coalesce(sum(amount_micros), 0)::bigint FROM spend WHERE destination = $1 AND at >= $2",
        &[&destination, &since],
    )
    .await?
    .get(0))
}

pub async fn user_id(c: &impl GenericClient, username: &str) -> Result<Option<String>, StoreError> {
    Ok(query_opt(
        c,
        "SELECT user_id FROM user_ids WHERE username = $1",
        &[&username],
    )
    .await?
    .map(|r| r.get(0)))
}

pub async fn set_user_id(
    c: &impl GenericClient,
    username: &str,
    user_id: &str,
    now: UnixMillis,
) -> Result<(), StoreError> {
    execute(
        c,
        "INSERT INTO user_ids (username, user_id, resolved_at) VALUES ($1, $2, $3)
         ON CONFLICT (username) DO UPDATE SET user_id = excluded.user_id, resolved_at = excluded.resolved_at",
        &[&username, &user_id, &now],
    )
    .await?;
    Ok(())
}

type TokenRow = (String, Option<String>, UnixMillis);

pub async fn tokens(
    c: &impl GenericClient,
    destination: &str,
) -> Result<Option<TokenRow>, StoreError> {
    Ok(query_opt(
        c,
        "SELECT access_token, refresh_token, expires_at FROM oauth_tokens WHERE destination = $1",
        &[&destination],
    )
    .await?
    .map(|r| (r.get(0), r.get(1), r.get(2))))
}

pub async fn set_tokens(
    c: &impl GenericClient,
    destination: &str,
    access: &str,
    refresh: Option<&str>,
    expires_at: UnixMillis,
    now: UnixMillis,
) -> Result<(), StoreError> {
    execute(
        c,
        "INSERT INTO oauth_tokens (destination, access_token, refresh_token, expires_at, updated_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (destination) DO UPDATE SET access_token = excluded.access_token,
             refresh_token = excluded.refresh_token, expires_at = excluded.expires_at,
             updated_at = excluded.updated_at",
        &[&destination, &access, &refresh, &expires_at, &now],
    )
    .await?;
    Ok(())
}

pub async fn settling(
    c: &impl GenericClient,
    destination: &str,
    recipient: &str,
    subject: &str,
) -> Result<Option<Item>, StoreError> {
    let sql = format!(
        "SELECT {ITEM_COLUMNS} FROM outbox WHERE destination = $1 AND recipient = $2 AND subject = $3
         AND state = 'pending' ORDER BY created_at DESC LIMIT 1"
    );
    Ok(query_opt(c, &sql, &[&destination, &recipient, &subject])
        .await?
        .map(|r| item_from_row(&r)))
}

/// The commit probe: a real write, so that it waits for the WAL flush as every change does. It records
/// this instance as alive, and forgets instances not seen for a day.
pub async fn heartbeat(c: &impl GenericClient, holder: &str) -> Result<(), StoreError> {
    execute(
        c,
        "INSERT INTO instances (holder, instance, seen_at) VALUES ($1, split_part($1, '/', 1), clock_timestamp())
         ON CONFLICT (holder) DO UPDATE SET seen_at = excluded.seen_at",
        &[&holder],
    )
    .await?;
    execute(
        c,
        "DELETE FROM instances WHERE seen_at < clock_timestamp() - interval '1 day'",
        &[],
    )
    .await?;
    Ok(())
}
