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

use crate::config::{self, Config, ProcessEnv};
use crate::normalize::Provider;
use crate::outbox::{self, ItemState, Tokens};
use crate::plan;
use crate::telemetry::{self, LogFormat};

/// chirpd relays signed webhooks from project tools to X as short posts.
#[derive(Debug, Parser)]
#[command(name = "chirpd", version, about)]
pub struct Cli {
    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Auto, global = true)]
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
        /// The event name the provider puts in its headers (X-GitHub-Event, X-Gitea-Event, X-Event-Key).
        /// It defaults to a guess from the file name: issues.opened.json → issues (GitHub),
        /// pull_request-opened.json → pull_request (Gitea), repo-push.json → repo:push (Bitbucket).
        #[arg(long)]
        event: Option<String>,
        /// One JSON object per post: {"route","destination","kind","text","weighted_length"}.
        #[arg(long)]
        json: bool,
        /// The payload file.
        payload: PathBuf,
    },
    /// Authorize chirpd to post for an X account with OAuth 2.0 (PKCE); the tokens go to the store.
    Auth {
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: AuthCommand,
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
pub enum AuthCommand {
    /// Run X's OAuth 2.0 authorization code flow with PKCE for a destination with auth = "oauth2".
    ///
    /// Prints the URL to open as the team account; then takes the redirect on the loopback address of
    /// --redirect-uri, or the code (or the whole redirect URL) pasted on standard input.
    X {
        #[arg(long)]
        destination: String,
        /// The callback URL registered in the X app's settings.
        #[arg(long, default_value = "http://127.0.0.1:8788/callback")]
        redirect_uri: String,
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
    /// Put a dead or waiting item back in the queue, due now.
    Retry { id: String },
    /// Never send a queued item; it stays listed as dead.
    Drop { id: String },
    /// Plan a stored delivery again with the current config (dead items of it are replaced).
    Replay { delivery: String },
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
        Command::Auth {
            config,
            command:
                AuthCommand::X {
                    destination,
                    redirect_uri,
                },
        } => auth_x(config.as_deref(), &destination, &redirect_uri),
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
        let listener = listener(&config).await?;
        let control = crate::app::Control::default();
        tokio::spawn(handle_signals(control.clone()));
        crate::app::run(config, listener, control).await
    })
}

/// The listening socket: the one systemd passed (socket activation, `systemd/chirpd.socket`), else a new
/// one bound to `server.listen`.
async fn listener(config: &Config) -> anyhow::Result<tokio::net::TcpListener> {
    let mut fds = listenfd::ListenFd::from_env();
    if let Some(std_listener) = fds
        .take_tcp_listener(0)
        .context("cannot use the socket systemd passed")?
    {
        std_listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(std_listener)?;
        tracing::info!(addr = %listener.local_addr()?, "Using the socket systemd passed; server.listen is ignored.");
        return Ok(listener);
    }
    tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))
}

/// SIGTERM or SIGINT stop the daemon; SIGHUP reloads its config.
async fn handle_signals(control: crate::app::Control) {
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
                tracing::info!("SIGHUP received: reloading the config.");
                control.reload.notify_one();
            }
        }
    }
    control.shutdown.cancel();
}

/// A payload bundled into the binary for `check`: the provider, the event name its headers would carry,
/// the file name and the body.
struct Sample {
    provider: Provider,
    event: Option<&'static str>,
    name: &'static str,
    body: &'static str,
}

macro_rules! sample {
    ($provider:expr, $event:expr, $dir:literal, $file:literal) => {
        Sample {
            provider: $provider,
            event: $event,
            name: concat!($dir, "/", $file),
            body: include_str!(concat!("../samples/", $dir, "/", $file)),
        }
    };
}

/// Real payloads of every provider, as the products sent them (see samples/README.md).
fn samples() -> Vec<Sample> {
    use Provider::*;
    vec![
        sample!(Github, Some("issues"), "github", "issues.opened.json"),
        sample!(Github, Some("issues"), "github", "issues.labeled.json"),
        sample!(
            Github,
            Some("issue_comment"),
            "github",
            "issue_comment.created.json"
        ),
        sample!(
            Github,
            Some("pull_request"),
            "github",
            "pull_request.opened.json"
        ),
        sample!(
            Github,
            Some("pull_request"),
            "github",
            "pull_request.closed.json"
        ),
        sample!(Github, Some("push"), "github", "push.json"),
        sample!(Github, Some("release"), "github", "release.published.json"),
        sample!(Gitlab, Some("Issue Hook"), "gitlab", "issue-open.json"),
        sample!(
            Gitlab,
            Some("Merge Request Hook"),
            "gitlab",
            "merge_request-merge.json"
        ),
        sample!(Gitlab, Some("Note Hook"), "gitlab", "note-issue.json"),
        sample!(Gitlab, Some("Push Hook"), "gitlab", "push.json"),
        sample!(
            Gitlab,
            Some("Release Hook"),
            "gitlab",
            "release-create.json"
        ),
        sample!(Gitea, Some("issues"), "gitea", "issues-opened.json"),
        sample!(
            Gitea,
            Some("pull_request"),
            "gitea",
            "pull_request-opened.json"
        ),
        sample!(Gitea, Some("push"), "gitea", "push.json"),
        sample!(Gitea, Some("release"), "gitea", "release-published.json"),
        sample!(
            Bitbucket,
            Some("pullrequest:created"),
            "bitbucket",
            "pullrequest-created.json"
        ),
        sample!(
            Bitbucket,
            Some("pullrequest:fulfilled"),
            "bitbucket",
            "pullrequest-fulfilled.json"
        ),
        sample!(Bitbucket, Some("repo:push"), "bitbucket", "repo-push.json"),
        sample!(Jira, None, "jira", "jira-issue_created.json"),
        sample!(Jira, None, "jira", "jira-issue_updated-resolved.json"),
        sample!(Jira, None, "jira", "comment_created.json"),
        sample!(Linear, Some("Issue"), "linear", "Issue-create.json"),
        sample!(Linear, Some("Comment"), "linear", "Comment-create.json"),
        sample!(Trello, None, "trello", "createCard.json"),
        sample!(Trello, None, "trello", "commentCard.json"),
        sample!(Asana, None, "asana", "events-task-changed-completed.json"),
        sample!(Basecamp, None, "basecamp", "todo_created.json"),
        sample!(Basecamp, None, "basecamp", "comment_created.json"),
    ]
}

/// The families a provider's samples stand for: Forgejo and Gogs speak Gitea's payloads.
fn sample_provider(p: &Provider) -> Provider {
    match p {
        Provider::Forgejo | Provider::Gogs => Provider::Gitea,
        other => other.clone(),
    }
}

fn check(flag: Option<&Path>) -> anyhow::Result<()> {
    let config = load(flag)?;
    let mut out = std::io::stdout().lock();
    let mut failures = 0;
    let mut rendered = 0;
    let samples = samples();
    // Every route is rendered against the samples of its source's provider; and, because templates are
    // meant to read well whatever the tracker, against every other provider's samples that its event
    // patterns match, as if they had arrived on its source.
    for route in &config.pipeline.routes {
        let own: Vec<Provider> = route
            .sources
            .iter()
            .filter_map(|s| config.sources.get(s))
            .map(|s| sample_provider(&s.provider))
            .collect();
        let Some(source_id) = route.sources.first() else {
            continue;
        };
        let single = plan::Pipeline {
            routes: vec![route.clone()],
            templates: config.pipeline.templates.clone(),
            targets: config.pipeline.targets.clone(),
        };
        for sample in &samples {
            let payload: serde_json::Value = serde_json::from_str(sample.body)
                .with_context(|| format!("bundled sample {} is not JSON", sample.name))?;
            if !own.contains(&sample.provider) {
                let event = crate::normalize::normalize(&sample.provider, sample.event, &payload);
                let by_kind = route.events.iter().any(|p| {
                    !matches!(p, crate::route::EventPattern::Native { .. }) && p.matches(&event)
                });
                if !by_kind {
                    continue;
                }
            }
            let planned = plan::plan(&single, source_id, &sample.provider, sample.event, &payload);
            for (index, e) in &planned.errors {
                failures += 1;
                writeln!(out, "error: {e} (route {index}, sample {})", sample.name)?;
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

/// The event name a provider's headers would carry, guessed from a sample file's name
/// (`issues.opened.json` → `issues` for GitHub, `pull_request-opened.json` → `pull_request` for Gitea,
/// `repo-push.json` → `repo:push` for Bitbucket).
fn event_from_file_name(provider: &Provider, file: &Path) -> Option<String> {
    let stem = file.file_name()?.to_str()?.strip_suffix(".json")?;
    match provider {
        Provider::Github => stem.split('.').next().map(str::to_string),
        Provider::Gitea | Provider::Forgejo | Provider::Gogs => {
            stem.split('-').next().map(str::to_string)
        }
        Provider::Bitbucket => stem
            .split_once('-')
            .map(|(a, b)| format!("{a}:{}", b.split('-').next().unwrap_or(b))),
        _ => None,
    }
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
    let event = match event {
        Some(e) => Some(e.to_string()),
        None => event_from_file_name(&source.provider, payload_path),
    };
    if event.as_deref() == Some("ping") {
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
        let store = outbox::open(&config.store_path, None)?;
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
    })
}

fn auth_x(flag: Option<&Path>, destination: &str, redirect_uri: &str) -> anyhow::Result<()> {
    use crate::sink::{Auth, oauth2};
    let config = load(flag)?;
    let d = config
        .destinations
        .get(destination)
        .with_context(|| format!("no destination {destination:?} in the config"))?;
    let Auth::OAuth2(client) = &d.auth else {
        bail!("destination {destination} does not use auth = \"oauth2\"");
    };
    let (verifier, challenge) = oauth2::pkce_pair();
    let state = oauth2::pkce_pair().0;
    let url = oauth2::authorize_url(client, redirect_uri, &state, &challenge);
    println!("Open this URL while logged in as the account chirpd should post for:\n\n{url}\n");
    println!(
        "Then wait here for the redirect, or paste the code (or the whole redirect URL) and press Enter."
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let code = receive_code(redirect_uri, &state).await?;
        let http = reqwest::Client::new();
        let now = crate::clock::now_ms();
        let tokens = oauth2::exchange_code(&http, client, &code, redirect_uri, &verifier, now)
            .await
            .map_err(|e| anyhow::anyhow!("X refused the code: {e}"))?;
        if tokens.refresh_token.is_none() {
            eprintln!("warning: X issued no refresh token (is offline.access among the app's scopes?); the token lasts two hours");
        }
        let store = outbox::open(&config.store_path, None)?;
        let tokens = Tokens {
            access: tokens.access_token,
            refresh: tokens.refresh_token,
            expires_at: tokens.expires_at,
        };
        store.set_tokens(destination, tokens, now).await?;
        println!("Tokens stored for {destination}; chirpd refreshes them by itself.");
        Ok(())
    })
}

/// Waits for the authorization code: from the redirect on the loopback callback, or pasted on stdin.
async fn receive_code(redirect_uri: &str, state: &str) -> anyhow::Result<String> {
    let pasted = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    });
    let addr = redirect_uri
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .filter(|host| host.starts_with("127.0.0.1:") || host.starts_with("localhost:"))
        .map(str::to_string);
    let redirected = async {
        let Some(addr) = addr else {
            return std::future::pending::<anyhow::Result<String>>().await;
        };
        let Ok(listener) = tokio::net::TcpListener::bind(&addr).await else {
            return std::future::pending().await;
        };
        callback(listener, state).await
    };
    tokio::select! {
        line = pasted => {
            let line = line??;
            code_from(line.trim(), state)?.or_else(|| Some(line.trim().to_string()).filter(|c| !c.is_empty()))
                .context("no code was pasted")
        }
        code = redirected => code,
        _ = tokio::time::sleep(std::time::Duration::from_secs(600)) => bail!("no authorization arrived within 10 minutes"),
    }
}

/// Serves the OAuth 2.0 redirect on the loopback `listener` (HTTP parsed by hyper) until a request
/// brings a code with this run's `state`. Requests without it, or with another state, are answered 400
/// and ignored: a stray or forged request cannot end the flow, nor plant a code.
async fn callback(listener: tokio::net::TcpListener, state: &str) -> anyhow::Result<String> {
    use http_body_util::Full;
    use hyper::body::Bytes;

    let (found_tx, mut found_rx) = tokio::sync::mpsc::channel::<String>(1);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            Some(code) = found_rx.recv() => return Ok(code),
        };
        let (found_tx, state) = (found_tx.clone(), state.to_string());
        let service =
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let (found_tx, state) = (found_tx.clone(), state.clone());
                async move {
                    let target = req.uri().to_string();
                    let (status, text) = match code_from(&target, &state) {
                        Ok(Some(code)) => {
                            let _ = found_tx.try_send(code);
                            (
                                200,
                                "chirpd received the authorization; you can close this tab.\n"
                                    .to_string(),
                            )
                        }
                        Ok(None) => (
                            400,
                            "ignored: no authorization code in this request\n".to_string(),
                        ),
                        Err(e) => (400, format!("ignored: {e}\n")),
                    };
                    let mut response = hyper::Response::new(Full::new(Bytes::from(text)));
                    *response.status_mut() =
                        hyper::StatusCode::from_u16(status).unwrap_or_default();
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

/// Extracts `code` from a redirect URL or query string. The redirect must carry this run's `state`
/// (RFC 6749 §10.12): one without it, or with another, is refused. Values are percent-decoded.
fn code_from(target: &str, state: &str) -> anyhow::Result<Option<String>> {
    let Some(query) = target.split_once('?').map(|(_, q)| q) else {
        return Ok(None);
    };
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let get = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    if let Some(err) = get("error") {
        bail!("the authorization was refused: {err}");
    }
    let Some(code) = get("code") else {
        return Ok(None);
    };
    match get("state") {
        Some(given) if given == state => Ok(Some(code)),
        Some(_) => bail!("the redirect's state does not match this run"),
        None => bail!("the redirect carries no state"),
    }
}
