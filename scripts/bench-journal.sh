#!/usr/bin/env bash
# Cycle time with the journal on PostgreSQL against the embedded SQLite
# journal: `steward execute --format json` on a generated coordination
# directory of 10,000 files (gen_coordination.py --seed 42), RUNS times
# each, alternating, reporting the median of the cycle's own duration_ms
# and of the whole process. PostgreSQL (Debian's package) starts on a free
# loopback port in a temp dir with its durable defaults (fsync on), as the
# SQLite journal syncs every commit too.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
gen="$here/../shared/tools/gen_coordination.py"
if [ -z "${STEWARD:-}" ]; then
    cargo build --release --quiet --manifest-path "$here/Cargo.toml" -p steward-cli
fi
steward="${STEWARD:-$here/target/release/steward}"
runs="${RUNS:-30}"
files="${FILES:-10000}"
work="$(mktemp -d -p "${BENCH_TMP:-${TMPDIR:-/tmp}}")"
chmod 755 "$work"
pport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort | tail -1)
as_pg=(); if [ "$(id -u)" -eq 0 ]; then as_pg=(runuser -u postgres --); chown postgres "$work"; fi
cleanup() {
    "${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
"${as_pg[@]}" "$pgbin/initdb" -D "$work/pg" -U steward --auth=trust >/dev/null
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w -o "-p $pport -k $work -c listen_addresses=127.0.0.1" start >/dev/null

dir="$work/c$files"
python3 "$gen" --total "$files" --seed 42 --out "$dir" --clean >/dev/null
sync
printf 'state: {journal: "postgres://steward@127.0.0.1:%s/postgres?schema=bench"}\n' "$pport" > "$work/pg.yaml"
: > "$work/empty.yaml"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
one() { # config state-dir: "cycle_ms wall_ms"
    local t0 t1 out
    t0=$(date +%s%N)
    out=$("$steward" --config "$1" --coordination "$dir" --state-dir "$2" execute --format json 2>/dev/null || true)
    t1=$(date +%s%N)
    printf '%s %s\n' "$(printf '%s' "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("data", d).get("duration_ms", -1))')" $(( (t1 - t0) / 1000000 ))
}
# One warm-up each: the first cycle creates the journal (and its schema).
one "$work/empty.yaml" "$work/s-lite" >/dev/null
one "$work/pg.yaml" "$work/s-pg" >/dev/null
: > "$work/lite.txt"; : > "$work/pg.txt"
for _ in $(seq "$runs"); do
    one "$work/empty.yaml" "$work/s-lite" >> "$work/lite.txt"
    one "$work/pg.yaml" "$work/s-pg" >> "$work/pg.txt"
done
for k in lite pg; do
    c=$(cut -d' ' -f1 "$work/$k.txt" | median)
    w=$(cut -d' ' -f2 "$work/$k.txt" | median)
    printf '%-6s journal: cycle median %4s ms, whole process median %4s ms (%s runs, %s files)\n' \
        "$([ $k = lite ] && echo sqlite || echo postgres)" "$c" "$w" "$runs" "$files"
done
