//! Hearing other instances: one connection of its own (not from the pool) `LISTEN`s on the channels the
//! store's transactions `NOTIFY`, and turns each announcement into a `Change` for the daemon's stages.
//!
//! Announcements are a prompt, never the record: a lost connection loses those sent meanwhile, so after
//! every (re)connection a `Resync` tells the stages to look at everything, and the stages still poll
//! now and then. This task must not touch the store's tables.

use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_util::sync::CancellationToken;

use super::sql::{DELIVERIES, ITEMS, LEASES};
use crate::outbox::Change;

/// How long to wait before connecting again after the connection failed.
const RECONNECT: Duration = Duration::from_secs(1);

pub async fn listen_forever(
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    changes: broadcast::Sender<Change>,
    holder: String,
    stop: CancellationToken,
) {
    let mut connected_before = false;
    loop {
        let lost = tokio::select! {
            lost = listen_once(&config, &tls, &changes, &holder, &mut connected_before) => lost,
            _ = stop.cancelled() => return,
        };
        tracing::warn!(error = %lost, "Lost the connection that hears other instances; connecting again.");
        tokio::select! {
            _ = tokio::time::sleep(RECONNECT) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// Listens until the connection fails; returns why.
async fn listen_once(
    config: &tokio_postgres::Config,
    tls: &MakeRustlsConnect,
    changes: &broadcast::Sender<Change>,
    holder: &str,
    connected_before: &mut bool,
) -> String {
    let (client, mut connection) = match config.connect(tls.clone()).await {
        Ok(pair) => pair,
        Err(e) => return super::sql::pg(e).to_string(),
    };
    // The connection object yields the notifications; it must be polled for the client to work at all.
    let (heard_tx, mut heard) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if heard_tx.send(n).is_err() {
                        return "stopped".to_string();
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return super::sql::pg(e).to_string(),
                None => return "the server closed the connection".to_string(),
            }
        }
    });
    let listen = format!("LISTEN {DELIVERIES}; LISTEN {ITEMS}; LISTEN {LEASES}");
    if let Err(e) = client.batch_execute(&listen).await {
        driver.abort();
        return super::sql::pg(e).to_string();
    }
    if *connected_before {
        tracing::info!("Hearing other instances again.");
    }
    *connected_before = true;
    // Whatever was announced while nobody listened.
    let _ = changes.send(Change::Resync);
    while let Some(n) = heard.recv().await {
        let change = match n.channel() {
            c if c == DELIVERIES => Change::Deliveries,
            c if c == ITEMS => Change::Items(n.payload().to_string()),
            c if c == LEASES && n.payload() != holder => Change::Resync,
            _ => continue,
        };
        // No receiver yet (the daemon is starting) is not an error.
        let _ = changes.send(change);
    }
    drop(client);
    driver
        .await
        .unwrap_or_else(|e| format!("the listening task failed: {e}"))
}
