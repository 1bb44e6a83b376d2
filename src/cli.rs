//! The command line: `run`, `check`, `preview` and `queue`.
//!
//! Each command parses its arguments, loads the config through `config::load` and calls into the library.
//! Errors are reported here, once, with `anyhow` context; the exit code is 0 on success, 1 on a problem the
//! admin must fix, 2 on bad usage (clap's own).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config, ProcessEnv};
use crate::normalize::Provider;
use crate::outbox::{ItemState, Store};
use crate::plan;
use crate::telemetry::{self, LogFormat};

/// chirpd relays signed webhooks from project tools to X as short posts.
#[derive(Debug, Parser)]
#[command(name = "chirpd", version, about)]
pub struct Cli {
    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon.
    Run {
        /// Config file. Default: $CHIRPD_CONFIG, else ./chirpd.toml, else /etc/chirpd/chirpd.toml, else
        /// the embedded defaults.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Validate the config, secrets and templates, and render every route against bundled samples.
    Check {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print what would be posted for a payload, without any network.
    Preview {
        #[arg(long)]
        config: Option<PathBuf>,
        /// The source the payload would arrive on.
        #[arg(long)]
        source: String,
        /// The event name the provider puts in its headers (GitHub's X-GitHub-Event). For GitHub it
        /// defaults to the payload file name up to its first dot, e.g. issues.opened.json → issues.
        #[arg(long)]
        event: Option<String>,
        /// One JSON object per post: {"route","destination","kind","text","weighted_length"}.
        #[arg(long)]
        json: bool,
        /// The payload file.
        payload: PathBuf,
    },
    /// Inspect the outbox of a stopped or running daemon.
    Queue {
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: QueueCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// List outbox items, newest first.
    List {
        /// Only items in this state: pending, sending, retry, sent, dead.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Show one item.
    Show { id: String },
}

pub fn main(cli: Cli) -> ExitCode {
    telemetry::init(cli.log_format);
    let result = match cli.command {
        Command::Run { config } => run(config.as_deref()),
        Command::Check { config } => check(config.as_deref()),
        Command::Preview {
            config,
            source,
            event,
            json,
            payload,
        } => preview(config.as_deref(), &source, event.as_deref(), json, &payload),
        Command::Queue { config, command } => queue(config.as_deref(), command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chirpd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves the config file: the flag, `$CHIRPD_CONFIG`, `./chirpd.toml`, `/etc/chirpd/chirpd.toml`.
pub fn config_path(flag: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = flag {
        return Some(p.to_path_buf());
    }
    if let Ok(p) = std::env::var("CHIRPD_CONFIG") {
        return Some(PathBuf::from(p));
    }
    ["chirpd.toml", "/etc/chirpd/chirpd.toml"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn load(flag: Option<&Path>) -> anyhow::Result<Config> {
    let path = config_path(flag);
    config::load(path.as_deref(), &ProcessEnv)
        .map_err(|errors| anyhow::anyhow!("invalid config:\n{errors}"))
}

fn run(flag: Option<&Path>) -> anyhow::Result<()> {
    let config = load(flag)?;
    if config.path.is_none() {
        tracing::warn!(
            "No config file found; running on the embedded defaults (no sources, no destinations)."
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.server.listen))?;
        let shutdown = CancellationToken::new();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        crate::app::run(config, listener, shutdown).await
    })
}

/// Cancels `token` on SIGTERM or SIGINT. SIGHUP, whose default action would kill the daemon, is caught
/// and logged: this version applies config changes on restart only.
async fn stop_on_signal(token: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("Cannot install signal handlers; stop chirpd with SIGKILL.");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => {
                tracing::info!("SIGTERM received.");
                break;
            }
            _ = int.recv() => {
                tracing::info!("SIGINT received.");
                break;
            }
            _ = hup.recv() => {
                tracing::warn!("SIGHUP received: this version applies config changes on restart; still running the loaded config.");
            }
        }
    }
    token.cancel();
}

/// A payload bundled into the binary for `check`.
struct Sample {
    provider: &'static str,
    event: &'static str,
    name: &'static str,
    body: &'static str,
}

macro_rules! github_sample {
    ($event:literal, $file:literal) => {
        Sample {
            provider: "github",
            event: $event,
            name: $file,
            body: include_str!(concat!("../samples/github/", $file)),
        }
    };
}

const SAMPLES: &[Sample] = &[
    github_sample!("issues", "issues.opened.json"),
    github_sample!("issues", "issues.labeled.json"),
    github_sample!("issue_comment", "issue_comment.created.json"),
    github_sample!("pull_request", "pull_request.opened.json"),
    github_sample!("pull_request", "pull_request.closed.json"),
    github_sample!("push", "push.json"),
    github_sample!("release", "release.published.json"),
];

fn check(flag: Option<&Path>) -> anyhow::Result<()> {
    let config = load(flag)?;
    let mut out = std::io::stdout().lock();
    let mut failures = 0;
    let mut rendered = 0;
    for (id, source) in &config.sources {
        let samples: Vec<&Sample> = SAMPLES
            .iter()
            .filter(|s| s.provider == source.provider.name())
            .collect();
        if samples.is_empty() {
            writeln!(
                out,
                "note: source {id}: no bundled samples for provider {}; its routes were not rendered",
                source.provider.name()
            )?;
        }
        for sample in samples {
            let payload: serde_json::Value = serde_json::from_str(sample.body)
                .with_context(|| format!("bundled sample {} is not JSON", sample.name))?;
            let planned = plan::plan(
                &config.pipeline,
                id,
                &source.provider,
                Some(sample.event),
                &payload,
            );
            for (route, e) in &planned.errors {
                failures += 1;
                writeln!(
                    out,
                    "error: {e} (route {route}, sample {}/{})",
                    sample.provider, sample.name
                )?;
            }
            rendered += planned.posts.len();
        }
    }
    writeln!(
        out,
        "{}: {} sources, {} destinations, {} routes; {rendered} posts rendered from bundled samples",
        config
            .path
            .as_ref()
            .map_or("(defaults)".to_string(), |p| p.display().to_string()),
        config.sources.len(),
        config.destinations.len(),
        config.pipeline.routes.len(),
    )?;
    if failures > 0 {
        bail!("{failures} template error(s)");
    }
    Ok(())
}

fn preview(
    flag: Option<&Path>,
    source_id: &str,
    event: Option<&str>,
    as_json: bool,
    payload_path: &Path,
) -> anyhow::Result<()> {
    let config = load(flag)?;
    let source = config
        .sources
        .get(source_id)
        .with_context(|| format!("no source {source_id:?} in the config"))?;
    let text = std::fs::read_to_string(payload_path)
        .with_context(|| format!("cannot read {}", payload_path.display()))?;
    let payload: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", payload_path.display()))?;
    let inferred = payload_path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.split('.').next())
        .map(str::to_string);
    let event = match (event, &source.provider) {
        (Some(e), _) => Some(e.to_string()),
        (None, Provider::Github) => inferred,
        (None, _) => None,
    };
    if source.provider == Provider::Github && event.as_deref() == Some("ping") {
        eprintln!("ping is a handshake: answered, never posted");
        return Ok(());
    }
    let planned = plan::plan(
        &config.pipeline,
        source_id,
        &source.provider,
        event.as_deref(),
        &payload,
    );
    let mut out = std::io::stdout().lock();
    for p in &planned.posts {
        let kind = config
            .destinations
            .get(&p.destination)
            .map_or("tweet", |d| d.kind.name());
        if as_json {
            let line = json!({
                "route": p.route,
                "destination": p.destination,
                "kind": kind,
                "text": p.text,
                "weighted_length": p.length,
            });
            writeln!(out, "{line}")?;
        } else {
            let shortened = if p.shortened { ", shortened" } else { "" };
            writeln!(
                out,
                "route {} → {} ({kind}, {}/{}{shortened})\n{}\n",
                p.route,
                p.destination,
                p.length,
                p.limit.max(),
                p.text
            )?;
        }
    }
    if planned.posts.is_empty() && planned.errors.is_empty() {
        eprintln!(
            "no route posts this event (kind {}, native {}:{})",
            planned.event.kind.map_or("none", |k| k.as_str()),
            planned.event.provider,
            planned.event.native
        );
    }
    if !planned.errors.is_empty() {
        for (route, e) in &planned.errors {
            eprintln!("error: route {route}: {e}");
        }
        bail!("{} template error(s)", planned.errors.len());
    }
    Ok(())
}

fn queue(flag: Option<&Path>, command: QueueCommand) -> anyhow::Result<()> {
    let config = load(flag)?;
    if !config.store_path.exists() {
        bail!("no store at {}", config.store_path.display());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let store = Store::open(&config.store_path)?;
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
                for item in store.items(state, limit).await? {
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
                            "{}  {:<7}  {:<12}  {}  {first_line}",
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
    })
}
