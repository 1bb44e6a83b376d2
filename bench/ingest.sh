#!/usr/bin/env bash
# Durable ingest benchmark: wrk posts distinct, HMAC-signed ~3 KB GitHub deliveries at chirpd and, in the
# same run, at adnanh/webhook (a hook with a payload-hmac-sha256 rule running /bin/true).
#
# Usage: bench/ingest.sh [seconds=10] [connections=16]
# Needs: python3, wrk, webhook, curl and sqlite3 (Debian packages; installed with apt-get when missing).
# Every chirpd 202 is a delivery committed with fsync (WAL, synchronous=FULL) before the answer.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-16}
threads=2
secret='bench-secret-0123456789'
for tool in wrk webhook curl sqlite3; do
    command -v "$tool" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$tool"; }
done
cargo build --release --locked -q
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

# Enough distinct deliveries that none repeats within the run.
python3 bench/gen_requests.py "$secret" $((secs * 10000)) "$work/requests.tsv"

cat > "$work/chirpd.toml" <<TOML
[server]
listen = "127.0.0.1:18787"
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
[[routes]]
source = "gh"
events = ["task.created"]
to = ["team"]
template = "{{ event.project }}: {{ event.actor }} opened #{{ event.number }} {{ event.title }} {{ event.url }}"
TOML

rss_kb() { ps -o rss= -p "$1" | tr -d ' '; }

echo "== chirpd"
RUST_LOG=warn ./target/release/chirpd run --config "$work/chirpd.toml" &
pid=$!
for _ in $(seq 100); do curl -sf localhost:18787/healthz >/dev/null && break; sleep 0.1; done
sleep 1
echo "idle_rss_kb $(rss_kb $pid)"
BENCH_REQUESTS="$work/requests.tsv" BENCH_PATH=/hooks/gh BENCH_THREADS=$threads \
    wrk -t$threads -c"$conns" -d"${secs}s" --latency -s bench/wrk_post.lua http://127.0.0.1:18787 | grep -E '^(p50|p90|p99|requests|rps|accepted_rps|non_2xx|socket|answered)'
echo "loaded_rss_kb $(rss_kb $pid)"
echo "deliveries_stored $(sqlite3 "$work/chirpd.db" 'select count(*) from deliveries')"
kill -TERM $pid; wait $pid || true

echo "== adnanh/webhook $(webhook -version 2>&1 | head -1)"
cat > "$work/hooks.json" <<JSON
[{"id": "bench", "execute-command": "/bin/true",
  "trigger-rule": {"match": {"type": "payload-hmac-sha256", "secret": "$secret",
                             "parameter": {"source": "header", "name": "X-Hub-Signature-256"}}}}]
JSON
webhook -hooks "$work/hooks.json" -ip 127.0.0.1 -port 19000 >/dev/null 2>&1 &
wpid=$!
for _ in $(seq 100); do curl -s -o /dev/null localhost:19000/ && break; sleep 0.1; done
sleep 1
echo "idle_rss_kb $(rss_kb $wpid)"
BENCH_REQUESTS="$work/requests.tsv" BENCH_PATH=/hooks/bench BENCH_THREADS=$threads \
    wrk -t$threads -c"$conns" -d"${secs}s" --latency -s bench/wrk_post.lua http://127.0.0.1:19000 | grep -E '^(p50|p90|p99|requests|rps|accepted_rps|non_2xx|socket|answered)'
echo "loaded_rss_kb $(rss_kb $wpid)"
kill $wpid; wait $wpid 2>/dev/null || true
