//! The command line: `run` here; `check` and `preview` in `check.rs`, `queue` in `queue.rs`, `auth` in
//! `auth.rs`.
//!
//! Each command parses its arguments, loads the config through `config::load` and calls into the library.
//! Errors are reported here, once, with `anyhow` context; the exit code is 0 on success, 1 on a problem the
//! admin must fix, 2 on bad usage (clap's own).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

mod auth;
mod check;
mod queue;

use crate::config::{self, Config, ProcessEnv};
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
        /// Config file; may also follow the subcommand (`chirpd auth x --config FILE …`).
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: AuthCommand,
    },
    /// Let the next handshake of a source (Asana's X-Hook-Secret) replace the secret it learned, within a
    /// window; outside one, a source that has a secret refuses handshakes.
    Handshake {
        /// Config file; may also follow the subcommand (`chirpd handshake open --config FILE …`).
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: HandshakeCommand,
    },
    /// The web console's password: `chirpd admin hash-password` reads one line from standard input and
    /// prints its argon2 hash, for admin.password_hash.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Manage the store itself.
    Store {
        /// Config file; may also follow the subcommand (`chirpd store migrate --config FILE …`).
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Inspect the outbox of a stopped or running daemon.
    Queue {
        /// Config file; may also follow the subcommand (`chirpd queue list --config FILE`).
        #[arg(long, global = true)]
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
pub enum HandshakeCommand {
    /// Open a window for one new handshake of SOURCE: recreate the webhook on the product's side within it.
    Open {
        #[arg(long)]
        source: String,
        /// How long the window stays open (e.g. 10m, 1h).
        #[arg(long = "for", default_value = "10m")]
        duration: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Read a password from standard input and print its argon2id hash.
    HashPassword,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy a SQLite store (stop the daemon using it first) into the PostgreSQL database of the config's
    /// store.url, which must hold no deliveries yet.
    Migrate {
        /// The SQLite file, e.g. /var/lib/chirpd/chirpd.db.
        #[arg(long)]
        from: PathBuf,
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
    /// Approve an item under review: it is queued and then obeys every limit as usual.
    Approve {
        id: String,
        /// Post this text instead (fitted to the destination's rule, as planning does).
        #[arg(long)]
        text: Option<String>,
    },
    /// Reject an item under review: it is never sent.
    Reject { id: String },
}

pub fn main(cli: Cli) -> ExitCode {
    telemetry::init(cli.log_format);
    let running = matches!(cli.command, Command::Run { .. });
    let result = match cli.command {
        Command::Run { config } => run(config.as_deref()),
        Command::Check { config } => check::check(config.as_deref()),
        Command::Preview {
            config,
            source,
            event,
            json,
            payload,
        } => check::preview(config.as_deref(), &source, event.as_deref(), json, &payload),
        Command::Queue { config, command } => queue::queue(config.as_deref(), command),
        Command::Admin {
            command: AdminCommand::HashPassword,
        } => hash_password(),
        Command::Store {
            config,
            command: StoreCommand::Migrate { from },
        } => queue::migrate_store(config.as_deref(), &from),
        Command::Handshake {
            config,
            command: HandshakeCommand::Open { source, duration },
        } => queue::open_handshake(config.as_deref(), &source, &duration),
        Command::Auth {
            config,
            command:
                AuthCommand::X {
                    destination,
                    redirect_uri,
                },
        } => auth::auth_x(config.as_deref(), &destination, &redirect_uri),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chirpd: {e:#}");
            // `check` answers 1 for any problem, as documented; `run` tells systemd a config is broken.
            if running && e.downcast_ref::<config::ConfigErrors>().is_some() {
                // The unit's RestartPreventExitStatus= names it: a broken config is not retried every two
                // seconds forever; the admin fixes it and starts the service again.
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// `chirpd admin hash-password`: one line from standard input (typed, or piped from a password manager),
/// its argon2id hash on standard output.
fn hash_password() -> anyhow::Result<()> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']);
    if password.len() < 12 {
        anyhow::bail!("a console password needs at least 12 characters");
    }
    let hash = crate::console::hash_password(password).map_err(anyhow::Error::msg)?;
    println!("{hash}");
    Ok(())
}

/// The exit status of an invalid config (sysexits' EX_CONFIG).
pub const EXIT_CONFIG: u8 = 78;

fn invalid_config(errors: config::ConfigErrors) -> anyhow::Error {
    anyhow::Error::new(errors).context("invalid config")
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

/// Runs a command's async part on a runtime of its own: the commands are short and single-threaded.
pub(super) fn block_on<T>(
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(work)
}

/// Loads the config without reading any secret, for commands that verify and sign nothing.
pub(super) fn load_for_inspection(flag: Option<&Path>) -> anyhow::Result<Config> {
    let path = config_path(flag);
    config::load_for_inspection(path.as_deref(), &ProcessEnv).map_err(invalid_config)
}

/// Opens the store the config names, which must exist: a command run with the wrong config or from the
/// wrong directory must not quietly create an empty store and work on that. A PostgreSQL store is named
/// by its URL, so it is opened (and migrated) as the daemon would.
pub(super) async fn existing_store(config: &Config) -> anyhow::Result<crate::outbox::SharedStore> {
    if config.fleet.url.is_some() {
        return Ok(crate::outbox::open_configured(config, crate::outbox::Role::Command).await?);
    }
    let path = &config.store_path;
    if !path.exists() {
        anyhow::bail!(
            "no store at {}: is this the config the service runs with? (a relative store.path is resolved against $STATE_DIRECTORY, else /var/lib/chirpd for {}, else the working directory)",
            path.display(),
            config::PACKAGED_CONFIG
        );
    }
    Ok(crate::outbox::open(path, None)?)
}

pub(super) fn load(flag: Option<&Path>) -> anyhow::Result<Config> {
    let path = config_path(flag);
    config::load(path.as_deref(), &ProcessEnv).map_err(invalid_config)
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
    // In a fleet every series carries the instance's name. Installed here, by the process, since the
    // recorder is process-wide: daemons run inside a test process share one.
    telemetry::install_metrics(
        config
            .fleet
            .url
            .is_some()
            .then_some(config.fleet.instance.as_str()),
    );
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
