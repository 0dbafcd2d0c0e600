#!/usr/bin/env bash
# Real queues: worker throughput on a Redis stream and a PostgreSQL job
# table (N built-in workers, zero service time, --batch 64, draining ITEMS
# items; median of RUNS), and `analyze` against a stream of 1,000,000
# entries with 10,000 pending (median of 15 runs: the whole command, and
# the snapshot alone as the engine logs it). Starts its own redis-server
# and PostgreSQL (Debian's packages) on free loopback ports in a temp dir.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
if [ -z "${STEWARD:-}" ]; then
    cargo build --release --quiet --manifest-path "$here/Cargo.toml" -p steward-cli
fi
steward="${STEWARD:-$here/target/release/steward}"
redis_items="${REDIS_ITEMS:-100000}"
pg_items="${PG_ITEMS:-40000}"
runs="${RUNS:-3}"
work="$(mktemp -d -p "${BENCH_TMP:-${TMPDIR:-/tmp}}")"
chmod 755 "$work"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rport=$(port); pport=$(port)
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort | tail -1)
as_pg=(); if [ "$(id -u)" -eq 0 ]; then as_pg=(runuser -u postgres --); chown postgres "$work"; fi
cleanup() {
    redis-cli -p "$rport" shutdown nosave >/dev/null 2>&1 || true
    "${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes --dir "$work" --logfile "$work/redis.log"
"${as_pg[@]}" "$pgbin/initdb" -D "$work/pg" -U steward --auth=trust --no-sync >/dev/null
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w -o "-p $pport -k $work -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=100" start >/dev/null
psql_() { psql -h 127.0.0.1 -p "$pport" -U steward -d postgres -Atqc "$1"; }

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

done_count() { # kind
    if [ "$1" = redis ]; then redis-cli -p "$rport" hlen bench:completed; else psql_ "SELECT count(*) FROM bench WHERE state = 'done'"; fi
}

drain() { # kind url workers items: items/s from the workers' start to the last completion
    local kind=$1 url=$2 n=$3 items=$4 start end pids=()
    start=$(date +%s.%N)
    for i in $(seq 1 "$n"); do
        "$steward" worker --queue "$url" --id "b$i" --batch 64 --exit-when-idle 1 >/dev/null 2>&1 &
        pids+=($!)
    done
    until [ "$(done_count "$kind")" = "$items" ]; do sleep 0.005; done
    end=$(date +%s.%N)
    wait "${pids[@]}"
    python3 -c "print(round($items / ($end - $start)))"
}

for n in ${WORKERS:-4 16}; do
    r=(); p=()
    for run in $(seq 1 "$runs"); do
        redis-cli -p "$rport" flushall >/dev/null
        redis-cli -p "$rport" eval "for i=1,tonumber(ARGV[1]) do redis.call('XADD', KEYS[1], '*', 'id', 'i'..i, 'payload', '{\"n\":'..i..'}') end return 1" 1 bench "$redis_items" >/dev/null
        r+=("$(drain redis "redis://127.0.0.1:$rport/0?stream=bench&group=workers" "$n" "$redis_items")")
        [ "$(redis-cli -p "$rport" hlen bench:completed)" = "$redis_items" ] || { echo "redis: not every item completed" >&2; exit 1; }
        psql_ "SET client_min_messages = warning; DROP TABLE IF EXISTS bench, bench_workers" >/dev/null
        "$steward" worker --queue "postgres://steward@127.0.0.1:$pport/postgres?table=bench" --id prep --max-items 1 --exit-when-idle 0.1 >/dev/null 2>&1 || true
        psql_ "INSERT INTO bench (item, payload) SELECT 'i'||g, json_build_object('n', g) FROM generate_series(1, $pg_items) g" >/dev/null
        psql_ "VACUUM ANALYZE bench" >/dev/null
        p+=("$(drain postgres "postgres://steward@127.0.0.1:$pport/postgres?table=bench" "$n" "$pg_items")")
        [ "$(psql_ "SELECT count(*) FROM bench WHERE state = 'done'")" = "$pg_items" ] || { echo "postgres: not every item completed" >&2; exit 1; }
    done
    echo "workers=$n  redis: $(printf '%s\n' "${r[@]}" | median) items/s (runs: ${r[*]})  postgres: $(printf '%s\n' "${p[@]}" | median) items/s (runs: ${p[*]})"
done

# analyze on a big stream: 1,000,000 entries, 10,000 pending.
redis-cli -p "$rport" flushall >/dev/null
redis-cli -p "$rport" eval "for i=1,1000000 do redis.call('XADD', KEYS[1], '*', 'payload', '{}') end return 1" 1 big >/dev/null
redis-cli -p "$rport" xgroup create big workers 0 >/dev/null
for c in $(seq 1 10); do redis-cli -p "$rport" xreadgroup group workers "c$c" count 1000 streams big '>' >/dev/null; done
url="redis://127.0.0.1:$rport/0?stream=big&group=workers"
state="$work/state"
"$steward" --source "$url" --state-dir "$state" analyze --json >/dev/null
whole=(); snap=()
for i in $(seq 1 15); do
    s=$(date +%s%N)
    out=$("$steward" --source "$url" --state-dir "$state" -v --log-format json analyze --json 2>&1 >/dev/null)
    e=$(date +%s%N)
    whole+=($(( (e - s) / 1000000 )))
    snap+=($(printf '%s\n' "$out" | python3 -c 'import json,sys
for l in sys.stdin:
    try: d=json.loads(l)
    except Exception: continue
    f=d.get("fields",d)
    if "elapsed_ms" in f: print(f["elapsed_ms"]); break'))
done
echo "analyze, stream of $(redis-cli -p "$rport" xlen big) entries, $(redis-cli -p "$rport" xpending big workers | head -1) pending: whole command $(printf '%s\n' "${whole[@]}" | median) ms, snapshot $(printf '%s\n' "${snap[@]}" | median) ms (medians of 15)"
