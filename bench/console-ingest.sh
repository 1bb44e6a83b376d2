#!/usr/bin/env bash
# The console's cost to ingest: bench/ingest.sh's wrk run (distinct signed ~3 KB GitHub deliveries,
# fsync'd before each 202) against one chirpd, first alone, then while a signed-in client loads the
# console's overview (the page and its two assets, as a browser does) every second, and once more with the
# overview loaded as fast as one client can. Prints both wrk runs and the overview's own timings.
#
# Usage: bench/console-ingest.sh [seconds=10] [connections=16]
# Needs: python3, wrk and curl (Debian packages; installed with apt-get when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-16}
secret='bench-secret-0123456789'
password='bench-console-password'
for tool in wrk curl; do
    command -v "$tool" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$tool"; }
done
cargo build --release --locked -q
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
python3 bench/gen_requests.py "$secret" $((secs * 3 * 12000)) "$work/requests.tsv"
split -n l/3 -d "$work/requests.tsv" "$work/part"
hash=$(printf '%s\n' "$password" | ./target/release/chirpd admin hash-password)

cat > "$work/chirpd.toml" <<TOML
[server]
listen = "127.0.0.1:18787"
max_connections = 1024
[store]
path = "$work/chirpd.db"
[admin]
listen = "127.0.0.1:18790"
password_hash = "$hash"
[sources.gh]
provider = "github"
secret = "$secret"
[destinations.team]
kind = "x"
dry_run = true
require_protected = false
limits = ["300/15m", "2400/24h"]
[[routes]]
source = "gh"
events = ["task.created"]
to = ["team"]
template = "{{ event.project }}: {{ event.actor }} opened #{{ event.number }} {{ event.title }} {{ event.url }}"
TOML

RUST_LOG=warn ./target/release/chirpd run --config "$work/chirpd.toml" &
pid=$!
for _ in $(seq 100); do curl -sf localhost:18787/healthz >/dev/null && break; sleep 0.1; done
curl -s -c "$work/jar" -o /dev/null -d "user=admin&password=$password" localhost:18790/login

load() { # $1 requests file
    BENCH_REQUESTS="$1" BENCH_PATH=/hooks/gh BENCH_THREADS=2 \
        wrk -t2 -c"$conns" -d"${secs}s" --latency -s bench/wrk_post.lua http://127.0.0.1:18787 |
        grep -E '^(accepted_rps|p50|p90|p99|non_2xx)'
}
poll() { # $1 seconds between loads (0: back to back); writes one time in ms per overview load
    while :; do
        curl -s -b "$work/jar" -o /dev/null -w '%{time_total}\n' localhost:18790/ >>"$work/overview_s"
        curl -s -b "$work/jar" -o /dev/null localhost:18790/assets/style.css
        curl -s -b "$work/jar" -o /dev/null localhost:18790/assets/console.js
        [ "$1" = 0 ] || sleep "$1"
    done
}
summary() {
    sort -n "$work/overview_s" | awk '{a[NR]=$1} END {if (NR) printf "overview_loads %d p50_ms %.1f p99_ms %.1f\n", NR, a[int(NR*0.5)+1]*1000, a[int(NR*0.99)+1]*1000}'
    : >"$work/overview_s"
}

echo "== ingest alone"
load "$work/part00"
echo "== ingest while the overview is loaded every second"
poll 1 & poller=$!
load "$work/part01"
kill $poller; wait $poller 2>/dev/null || true
summary
echo "== ingest while one client loads the overview back to back"
poll 0 & poller=$!
load "$work/part02"
kill $poller; wait $poller 2>/dev/null || true
summary
kill -TERM $pid; wait $pid || true
