#!/usr/bin/env bash
# Failover time of a two-instance fleet: two chirpd on one local PostgreSQL, one destination; the leader
# is killed with SIGKILL and the time until the other instance's /readyz lists the destination as led is
# measured, RUNS times. Also the time when the leader stops with SIGTERM (a rolling upgrade): it releases
# its leases, so the other takes over at once.
#
# Usage: bench/failover.sh [runs=3] [lease=10s]
# Needs: curl, python3 and Debian's postgresql (installed with apt-get when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
lease=${2:-10s}
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl; }
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || { apt-get update -qq && apt-get install -y -qq postgresql; }
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
cargo build --release --locked -q
work=$(mktemp -d)
chmod 755 "$work"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
trap 'kill $(jobs -p) 2>/dev/null || true; as_pg "$pgbin/pg_ctl" stop -s -D "$work/pg/data" -m fast 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir "$work/pg"
[ "$(id -u)" = 0 ] && chown postgres: "$work/pg"
as_pg "$pgbin/initdb" -D "$work/pg/data" -U postgres --auth=trust -E UTF8 >/dev/null
as_pg "$pgbin/pg_ctl" start -s -w -D "$work/pg/data" -l "$work/pg/log" \
    -o "-p 15433 -k $work/pg -c listen_addresses=127.0.0.1"

for i in 1 2; do
    cat >"$work/$i.toml" <<TOML
[server]
listen = "127.0.0.1:1879$i"
[store]
url = "postgres://postgres@127.0.0.1:15433/postgres?sslmode=disable"
instance = "i$i"
lease = "$lease"
[destinations.team]
kind = "x"
dry_run = true
require_protected = false
TOML
done

declare -A pids
start() { # $1 instance number
    RUST_LOG=warn ./target/release/chirpd run --config "$work/$1.toml" >>"$work/chirpd.log" 2>&1 &
    pids[$1]=$!
    for _ in $(seq 100); do curl -sf "localhost:1879$1/healthz" >/dev/null && break; sleep 0.1; done
}
leads() { curl -s "localhost:1879$1/readyz" | python3 -c 'import json,sys; print("team" in json.load(sys.stdin).get("leading", []))' 2>/dev/null || echo False; }
now_ms() { date +%s%3N; }

start 1
start 2
for run in $(seq "$runs"); do
    for how in KILL TERM; do
        # Whoever leads is stopped; the other must take over.
        for _ in $(seq 200); do
            if [ "$(leads 1)" = True ]; then leader=1; other=2; break; fi
            if [ "$(leads 2)" = True ]; then leader=2; other=1; break; fi
            sleep 0.05
        done
        t0=$(now_ms)
        kill -"$how" "${pids[$leader]}"
        while [ "$(leads $other)" != True ]; do sleep 0.01; done
        echo "run $run SIG$how: i$other leads after $(($(now_ms) - t0)) ms (lease $lease)"
        wait "${pids[$leader]}" 2>/dev/null || true
        start "$leader"
    done
done
