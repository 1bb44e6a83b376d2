//! `chirpd queue` and `chirpd handshake`: inspect and repair the outbox of a running or stopped daemon,
//! and open handshake windows, through the same store API the daemon uses (so a running daemon sees each
//! change at its next turn or request).

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use serde_json::json;

use crate::outbox::ItemState;

use super::{QueueCommand, existing_store, load_for_inspection};

pub(super) fn queue(flag: Option<&Path>, command: QueueCommand) -> anyhow::Result<()> {
    let config = load_for_inspection(flag)?;
    super::block_on(async {
        let store = existing_store(&config).await?;
        let mut out = std::io::stdout().lock();
        match command {
            QueueCommand::List {
                state,
                limit,
                json: as_json,
            } => {
                let state = match state.as_deref() {
                    Some(s) => {
                        Some(ItemState::parse(s).with_context(|| format!("unknown state {s:?}"))?)
                    }
                    None => None,
                };
                let items = store.items(state, limit).await?;
                if !as_json {
                    writeln!(
                        out,
                        "{:<36}  {:<7}  {:<12}  {:>8}  TEXT",
                        "ID", "STATE", "DESTINATION", "ATTEMPTS"
                    )?;
                }
                for item in items {
                    if as_json {
                        writeln!(out, "{}", item_json(&item))?;
                    } else {
                        let first_line: String = item
                            .text
                            .lines()
                            .next()
                            .unwrap_or("")
                            .chars()
                            .take(60)
                            .collect();
                        writeln!(
                            out,
                            "{:<36}  {:<7}  {:<12}  {:>8}  {first_line}",
                            item.id,
                            item.state.as_str(),
                            item.destination,
                            item.attempts
                        )?;
                    }
                }
            }
            QueueCommand::Show { id } => {
                let item = store
                    .item(&id)
                    .await?
                    .with_context(|| format!("no outbox item {id}"))?;
                writeln!(out, "{}", serde_json::to_string_pretty(&item_json(&item))?)?;
            }
            QueueCommand::Retry { id } => {
                store.retry_item(&id, crate::clock::now_ms()).await?;
                writeln!(out, "{id}: queued again")?;
            }
            QueueCommand::Drop { id } => {
                store.drop_item(&id, crate::clock::now_ms()).await?;
                writeln!(out, "{id}: dropped")?;
            }
            QueueCommand::Approve { id, text } => {
                let text = match text {
                    None => None,
                    Some(text) => {
                        let item = store
                            .item(&id)
                            .await?
                            .with_context(|| format!("no outbox item {id}"))?;
                        Some(
                            crate::plan::refit(&config.pipeline, &item.destination, &text)
                                .with_context(|| {
                                    format!(
                                        "cannot fit the text for {}: an empty text, or a destination the config lacks",
                                        item.destination
                                    )
                                })?,
                        )
                    }
                };
                let item = store
                    .approve(&id, &decider(), text, crate::clock::now_ms())
                    .await?;
                writeln!(
                    out,
                    "{id}: approved; queued for {} ({} weighted characters): {}",
                    item.destination, item.length, item.text
                )?;
            }
            QueueCommand::Reject { id } => {
                store
                    .reject(&id, &decider(), crate::clock::now_ms())
                    .await?;
                writeln!(out, "{id}: rejected; it will never be sent")?;
            }
            QueueCommand::Replay { delivery } => {
                let replaced = store.replay_delivery(&delivery).await?;
                writeln!(
                    out,
                    "{delivery}: will be planned again ({replaced} dead item(s) replaced)"
                )?;
            }
        }
        Ok(())
    })
}

fn item_json(item: &crate::outbox::Item) -> serde_json::Value {
    json!({
        "id": item.id,
        "delivery": item.delivery_id,
        "route": item.route,
        "destination": item.destination,
        "kind": item.kind,
        "state": item.state.as_str(),
        "attempts": item.attempts,
        "text": item.text,
        "weighted_length": item.length,
        "next_attempt_at": item.next_attempt_at,
        "created_at": item.created_at,
        "sent_at": item.sent_at,
        "remote_id": item.remote_id,
        "last_error": item.last_error,
        "decision": item.decision,
        "decided_by": item.decided_by,
        "decided_at": item.decided_at,
    })
}

/// Who decides from the command line, as the decision records it: the admin's login name.
fn decider() -> String {
    let name = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".to_string());
    format!("cli:{name}")
}

/// `chirpd handshake open`: the next handshake of `source` within `duration` may replace its secret.
pub(super) fn open_handshake(
    flag: Option<&Path>,
    source: &str,
    duration: &str,
) -> anyhow::Result<()> {
    let config = load_for_inspection(flag)?;
    if !config.sources.contains_key(source) {
        bail!("no source {source:?} in the config");
    }
    let window = crate::ratelimit::parse_duration(duration).map_err(anyhow::Error::msg)?;
    super::block_on(async {
        let store = existing_store(&config).await?;
        let until = crate::clock::now_ms().saturating_add(crate::clock::millis(window));
        store.open_handshake(source, until).await?;
        println!(
            "The next handshake of {source} within {duration} may replace its secret; recreate the webhook now."
        );
        Ok(())
    })
}

/// `chirpd store migrate --from FILE`: copies a SQLite store into the config's PostgreSQL database.
pub(super) fn migrate_store(flag: Option<&Path>, from: &Path) -> anyhow::Result<()> {
    let config = load_for_inspection(flag)?;
    let Some(url) = &config.fleet.url else {
        anyhow::bail!(
            "the config has no store.url: name the PostgreSQL database to copy the store into"
        );
    };
    if !from.exists() {
        anyhow::bail!("no SQLite store at {}", from.display());
    }
    let url = url
        .value
        .clone()
        .map_err(|e| anyhow::anyhow!("store.url {}: {e}", url.reference))?;
    super::block_on(async {
        let copied =
            crate::outbox::postgres::import_sqlite(from, &url, &config.fleet.instance).await?;
        println!(
            "Copied {} deliveries, {} outbox items, {} ledger rows and {} other rows from {} into PostgreSQL.",
            copied.deliveries,
            copied.items,
            copied.ledger,
            copied.other,
            from.display()
        );
        println!(
            "Point every instance at store.url and start them; keep {} until you have checked the posts.",
            from.display()
        );
        Ok(())
    })
}
