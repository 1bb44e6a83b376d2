//! chirpd relays signed webhooks from project tools to X as short posts.
//!
//! # Layout
//!
//! The modules follow the pipeline a webhook travels, in reading order:
//!
//! - `ingress`: the HTTP server. Reads the raw body under limits, asks `verify`, stores the delivery and
//!   answers the sender. It never parses a body before verification.
//! - `verify`: pure signature checks, one file per scheme.
//! - `normalize`: pure mapping of a provider's payload into one `Event`, one file per provider.
//! - `route`: pure matching of events against the admin's routes.
//! - `render`: pure template rendering and the fit to X's weighted length.
//! - `plan`: the pure composition normalize → route → render → fit, shared by the daemon, `check` and
//!   `preview`.
//! - `outbox`: the durable store (SQLite) and its narrow API; `fanout` turns stored deliveries into outbox
//!   items.
//! - `ratelimit`: the gate in front of every request to X.
//! - `dispatch`: one worker per destination driving outbox items to a `sink`.
//! - `sink`: the X API client, one file per kind of destination.
//!
//! `app` wires these together; `cli` implements the commands; `config` parses and validates the file.

pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod dispatch;
pub mod failpoint;
pub mod fanout;
pub mod health;
pub mod ingress;
pub mod normalize;
pub mod outbox;
pub mod plan;
pub mod ratelimit;
pub mod render;
pub mod retention;
pub mod route;
pub mod sink;
pub mod systemd;
pub mod telemetry;
pub mod verify;
