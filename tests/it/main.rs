//! chirpd's integration tests: one binary, the real daemon on 127.0.0.1:0, a temporary store, and a fake X
//! that is a real HTTP server checking OAuth 1.0a signatures and answering with X's headers and bodies.

mod chaos;
mod citizen;
mod cli;
mod console;
mod crash;
mod fleet;
mod ingress;
mod ops;
mod providers;
mod relay;
mod security;
mod support;
mod systemd;
