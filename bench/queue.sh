#!/usr/bin/env bash
# Memory and start-up with a large queue: ingests N deliveries (default 100,000) into a destination whose
# window allows one post a day, so they all stay queued; reports RSS with the queue planned, then
# restarts chirpd and reports the time from exec to /readyz answering 200, and RSS after the restart.
#
# Usage: bench/queue.sh [deliveries=100000]
# Needs: python3, wrk, sqlite3 and curl (Debian packages; installed with apt-get when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
secret='bench-secret-0123456789'
for tool in wrk sqlite3 curl; do
    command -v "$tool" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$tool"; }
done
cargo build --release --locked -q
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
python3 bench/gen_requests.py "$secret" "$n" "$work/requests.tsv" 4

cat > "$work/chirpd.toml" <<TOML
[server]
listen = "127.0.0.1:18788"
max_connections = 1024
[store]
path = "$work/chirpd.db"
[sources.gh]
provider = "github"
secret = "$secret"
[destinations.team]
kind = "x"
dry_run = true
require_protected = false
limits = ["1/24h"]
[[routes]]
source = "gh"
events = ["task.created"]
to = ["team"]
template = "{{ event.project }}: {{ event.actor }} opened #{{ event.number }} {{ event.title }} {{ event.url }}"
TOML

rss_kb() { ps -o rss= -p "$1" | tr -d ' '; }
ready() { curl -sf localhost:18788/readyz >/dev/null; }

RUST_LOG=warn ./target/release/chirpd run --config "$work/chirpd.toml" &
pid=$!
until ready; do sleep 0.05; done
echo "idle_rss_kb $(rss_kb $pid)"
# Enough time for wrk to send every request once (it replays each request at most once per thread).
BENCH_REQUESTS="$work/requests.tsv" BENCH_PATH=/hooks/gh BENCH_THREADS=2 \
    wrk -t2 -c16 -d"$(( n / 3000 + 5 ))s" -s bench/wrk_post.lua http://127.0.0.1:18788 | grep -E '^(requests|rps|non_2xx)'
until [ "$(sqlite3 "$work/chirpd.db" "select count(*) from deliveries where state = 'received'")" = 0 ]; do sleep 0.5; done
echo "queued $(sqlite3 "$work/chirpd.db" "select count(*) from outbox where state = 'pending'")"
echo "rss_with_queue_kb $(rss_kb $pid)"
echo "db_bytes $(stat -c %s "$work/chirpd.db")"
kill -TERM $pid; wait $pid || true

start=$(date +%s%N)
RUST_LOG=warn ./target/release/chirpd run --config "$work/chirpd.toml" &
pid=$!
until ready; do sleep 0.005; done
end=$(date +%s%N)
echo "start_to_ready_ms $(( (end - start) / 1000000 ))"
sleep 1
echo "rss_after_restart_kb $(rss_kb $pid)"
kill -TERM $pid; wait $pid || true
