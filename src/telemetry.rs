//! Logging and metrics setup.
//!
//! Logs: human-readable lines on a terminal, journald's native fields when systemd runs the daemon with
//! its output on the journal, or JSON on request. Log lines carry fields first and a short message last;
//! `journalctl -u chirpd` shows only the message, so the lines an admin reads for (a post's text, why a
//! webhook or a post was refused) repeat those values in the message itself. Secrets never reach a log,
//! since they exist only as `Secret` values whose `Debug` is redacted.
//!
//! Metrics: the `metrics` facade with a Prometheus recorder, rendered by `/metrics`. The recorder is
//! process-wide by the facade's design; `metrics_handle` installs it once.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// journald when systemd connected stderr to the journal, else text.
    Auto,
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
    /// journald's native protocol, with fields as journal fields.
    Journald,
}

/// Installs the global subscriber. `RUST_LOG` overrides the default level (info).
pub fn init(format: LogFormat) {
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // systemd sets JOURNAL_STREAM when stdout or stderr is connected to the journal.
    let journald = match format {
        LogFormat::Journald => true,
        LogFormat::Auto => std::env::var_os("JOURNAL_STREAM").is_some(),
        _ => false,
    };
    if journald && let Ok(layer) = tracing_journald::layer() {
        let _ = tracing_subscriber::registry()
            .with(filter())
            .with(layer)
            .try_init();
        return;
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr);
    // A second initialisation (tests running several daemons in one process) is harmless; ignore it.
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        _ => builder.try_init(),
    };
}

static METRICS: OnceLock<PrometheusHandle> = OnceLock::new();

/// Latency buckets in seconds, from a fast local commit to a slow X answer.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The Prometheus handle, installing the recorder on first use.
pub fn metrics_handle() -> PrometheusHandle {
    install_metrics(None)
}

/// Installs the recorder if no one did yet, with every series labelled `chirpd_instance` when `instance`
/// is given (a fleet member; `instance` is the label Prometheus itself sets to the scraped address), and
/// returns its handle.
pub fn install_metrics(instance: Option<&str>) -> PrometheusHandle {
    METRICS
        .get_or_init(|| {
            let builder = match instance {
                Some(name) => PrometheusBuilder::new().add_global_label("chirpd_instance", name),
                None => PrometheusBuilder::new(),
            };
            let recorder = builder
                .set_buckets(BUCKETS)
                .map(PrometheusBuilder::build_recorder)
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("A metrics recorder was already installed; /metrics will be empty.");
            }
            handle
        })
        .clone()
}
