#!/usr/bin/env bash
# Abuse measurements (bench/abuse.py): peak RSS under 200 large bodies, and answers while 256 slow
# clients hold every connection. Usage: bench/abuse.sh. Needs python3; traffic stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 bench/abuse.py "$PWD/target/release/chirpd" "$work"
