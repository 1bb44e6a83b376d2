//! The SQLite backend of `Store`: `SqliteStore` runs each operation as a job on the writer thread (changes,
//! group-committed) or on the read-only connection (queries), both in `writer.rs`; the SQL of each
//! operation is in `sql.rs`. Nothing outside `outbox` sees SQL or a `rusqlite` type.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;
#[cfg(test)]
use tokio::sync::oneshot;

use crate::clock::UnixMillis;
use crate::config::secret::Secret;
use crate::outbox::{
    Block, DeliveryRecord, DeliveryWithBody, Finish, Item, ItemState, Led, NewDelivery, NewDigest,
    NewItem, PlanRecord, Prunable, Recorded, Store, StoreError, StoreSize, StoredDelivery, Tokens,
    new_id, username_key,
};

mod sql;
mod writer;

use writer::{Reader, Writer};

/// The SQLite store: one writer thread with group commit for every change, and a read-only connection
/// for queries.
#[derive(Clone)]
pub struct SqliteStore {
    /// Every change, batched into group commits.
    writer: Writer,
    /// Queries, which need no commit.
    reader: Reader,
    /// The destinations led since the store was opened: their interrupted items were recovered.
    led: Arc<Mutex<HashSet<String>>>,
}

impl SqliteStore {
    /// Opens the store at `path`, creating and migrating it as needed; writes past `max_bytes` fail as
    /// on a full disk.
    pub fn open(path: &Path, max_bytes: Option<u64>) -> Result<SqliteStore, StoreError> {
        let writer = Writer::open(path, max_bytes)?;
        Ok(SqliteStore {
            writer,
            reader: Reader::open(path)?,
            led: Arc::default(),
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

    async fn lead(
        &self,
        destinations: &[String],
        _ttl: Duration,
        now: UnixMillis,
    ) -> Result<Vec<Led>, StoreError> {
        // One process has the file: it leads every destination. The first time it leads one since the
        // store was opened, what the last run left `sending` goes back to the queue.
        let first: Vec<String> = {
            let led = self.led.lock().unwrap_or_else(|p| p.into_inner());
            destinations
                .iter()
                .filter(|d| !led.contains(*d))
                .cloned()
                .collect()
        };
        let recovered = if first.is_empty() {
            Vec::new()
        } else {
            self.write((first.clone(), now), |c, (first, now)| {
                first
                    .iter()
                    .map(|d| sql::recover_interrupted(c, d, *now))
                    .collect::<Result<Vec<usize>, StoreError>>()
            })
            .await?
        };
        self.led
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(first.iter().cloned());
        Ok(destinations
            .iter()
            .map(|d| Led {
                destination: d.clone(),
                recovered: first
                    .iter()
                    .position(|f| f == d)
                    .map_or(0, |i| recovered[i]),
            })
            .collect())
    }

    async fn release(&self, _destinations: &[String]) -> Result<(), StoreError> {
        Ok(())
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

    async fn prune(
        &self,
        what: Prunable,
        before: UnixMillis,
        limit: usize,
    ) -> Result<usize, StoreError> {
        self.write((what, before, limit), |c, (what, before, limit)| {
            sql::prune(c, *what, *before, *limit)
        })
        .await
    }

    async fn size(&self) -> Result<StoreSize, StoreError> {
        self.read((), |c, ()| sql::size(c)).await
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

    async fn approve(
        &self,
        id: &str,
        by: &str,
        text: Option<(String, usize)>,
        now: UnixMillis,
    ) -> Result<Item, StoreError> {
        self.write(
            (id.to_owned(), by.to_owned(), text, now),
            |c, (id, by, text, now)| sql::approve(c, id, by, text.as_ref(), *now),
        )
        .await
    }

    async fn reject(&self, id: &str, by: &str, now: UnixMillis) -> Result<(), StoreError> {
        self.write((id.to_owned(), by.to_owned(), now), |c, (id, by, now)| {
            sql::reject(c, id, by, *now)
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

    async fn open_handshake(&self, source: &str, until: UnixMillis) -> Result<(), StoreError> {
        self.write((source.to_owned(), until), |c, (s, until)| {
            sql::open_handshake(c, s, *until)
        })
        .await
    }

    async fn handshake_open(&self, source: &str, now: UnixMillis) -> Result<bool, StoreError> {
        self.read((source.to_owned(), now), |c, (s, now)| {
            sql::handshake_open(c, s, *now)
        })
        .await
    }

    async fn delivery_count(&self) -> Result<i64, StoreError> {
        self.read((), |c, ()| sql::delivery_count(c)).await
    }

    async fn deliveries(&self, limit: usize) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.read(limit, |c, limit| sql::deliveries(c, *limit))
            .await
    }

    async fn delivery(&self, id: &str) -> Result<Option<DeliveryWithBody>, StoreError> {
        self.read(id.to_owned(), |c, id| sql::delivery(c, id)).await
    }

    async fn delivery_items(&self, id: &str) -> Result<Vec<Item>, StoreError> {
        self.read(id.to_owned(), |c, id| sql::delivery_items(c, id))
            .await
    }

    async fn requests_since(
        &self,
        destination: &str,
        since: UnixMillis,
    ) -> Result<Vec<UnixMillis>, StoreError> {
        self.read((destination.to_owned(), since), |c, (d, since)| {
            sql::requests_since(c, d, *since)
        })
        .await
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
                review: false,
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
