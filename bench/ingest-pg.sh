#!/usr/bin/env bash
# Durable ingest on PostgreSQL beside SQLite: the same wrk setup as bench/ingest.sh (distinct, HMAC-signed
# ~3 KB GitHub deliveries, 16 connections in all), against
#   1. chirpd on its SQLite file,
#   2. one chirpd on a local PostgreSQL,
#   3. two chirpd instances on that PostgreSQL, each taking half the connections and half the deliveries.
# Every 202 is a delivery committed before the answer (SQLite: fsync'd WAL; PostgreSQL: synchronous
# commit, which chirpd forces on every connection).
#
# Usage: bench/ingest-pg.sh [seconds=10] [connections=16]
# Needs: python3, wrk, curl, sqlite3 and Debian's postgresql (installed with apt-get when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-16}
secret='bench-secret-0123456789'
for tool in wrk curl sqlite3; do
    command -v "$tool" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$tool"; }
done
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || { apt-get update -qq && apt-get install -y -qq postgresql; }
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
cargo build --release --locked -q
work=$(mktemp -d)
chmod 755 "$work"
trap 'kill $(jobs -p) 2>/dev/null || true; as_pg "$pgbin/pg_ctl" stop -s -D "$work/pg/data" -m fast 2>/dev/null || true; rm -rf "$work"' EXIT

# PostgreSQL refuses to run as root: run it as the postgres user the package creates.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
mkdir "$work/pg"
[ "$(id -u)" = 0 ] && chown postgres: "$work/pg"
as_pg "$pgbin/initdb" -D "$work/pg/data" -U postgres --auth=trust -E UTF8 >/dev/null
as_pg "$pgbin/pg_ctl" start -s -w -D "$work/pg/data" -l "$work/pg/log" \
    -o "-p 15432 -k $work/pg -c listen_addresses=127.0.0.1 -c max_connections=200"
psql() { "$pgbin/psql" -X -A -t -q -h 127.0.0.1 -p 15432 -U postgres "$@"; }

python3 bench/gen_requests.py "$secret" $((secs * 12000)) "$work/requests.tsv"
# Two disjoint halves for two instances.
awk 'NR % 2 == 1' "$work/requests.tsv" >"$work/half1.tsv"
awk 'NR % 2 == 0' "$work/requests.tsv" >"$work/half2.tsv"

config() { # $1 port, $2 store keys
    cat <<TOML
[server]
listen = "127.0.0.1:$1"
max_connections = 1024
[store]
$2
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
}

start() { # $1 config file, $2 port; sets $started to the pid
    RUST_LOG=warn ./target/release/chirpd run --config "$1" >>"$work/chirpd.log" 2>&1 &
    started=$!
    for _ in $(seq 100); do curl -sf "localhost:$2/healthz" >/dev/null && break; sleep 0.1; done
}

load() { # $1 requests file, $2 port, $3 connections, $4 threads
    BENCH_REQUESTS="$1" BENCH_PATH=/hooks/gh BENCH_THREADS=$4 \
        wrk -t"$4" -c"$3" -d"${secs}s" --latency -s bench/wrk_post.lua "http://127.0.0.1:$2" |
        grep -E '^(p50|p90|p99|rps|accepted_rps|non_2xx|socket|answered)'
}

echo "== chirpd on SQLite"
config 18787 "path = \"$work/chirpd.db\"" >"$work/sqlite.toml"
start "$work/sqlite.toml" 18787; pid=$started
sleep 1
load "$work/requests.tsv" 18787 "$conns" 2
echo "deliveries_stored $(sqlite3 "$work/chirpd.db" 'select count(*) from deliveries')"
kill -TERM "$pid"; wait "$pid" || true

echo "== one chirpd on PostgreSQL"
psql -c "CREATE DATABASE one" postgres
config 18787 "url = \"postgres://postgres@127.0.0.1:15432/one?sslmode=disable\"
instance = \"a\"" >"$work/pg1.toml"
start "$work/pg1.toml" 18787; pid=$started
sleep 1
load "$work/requests.tsv" 18787 "$conns" 2
echo "deliveries_stored $(psql -c 'select count(*) from deliveries' one)"
kill -TERM "$pid"; wait "$pid" || true

echo "== two chirpd on PostgreSQL, half the connections each"
psql -c "CREATE DATABASE two" postgres
for i in 1 2; do
    config $((18786 + i)) "url = \"postgres://postgres@127.0.0.1:15432/two?sslmode=disable\"
instance = \"i$i\"" >"$work/pg2-$i.toml"
done
start "$work/pg2-1.toml" 18787; pid1=$started
start "$work/pg2-2.toml" 18788; pid2=$started
sleep 1
load "$work/half1.tsv" 18787 $((conns / 2)) 1 >"$work/w1" &
w1=$!
load "$work/half2.tsv" 18788 $((conns / 2)) 1 >"$work/w2" &
w2=$!
wait $w1 $w2
echo "-- instance 1"; cat "$work/w1"
echo "-- instance 2"; cat "$work/w2"
awk '/^accepted_rps/ {s += $2} END {printf "fleet_accepted_rps %.1f\n", s}' "$work/w1" "$work/w2"
echo "deliveries_stored $(psql -c 'select count(*) from deliveries' two)"
kill -TERM "$pid1" "$pid2"; wait "$pid1" "$pid2" || true
