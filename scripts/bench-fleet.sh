#!/usr/bin/env bash
# Throughput of the claim protocol itself: N built-in workers with zero
# service time drain a directory of ITEMS work items. Reports items/s and
# the per-item cost (wall time per item, and CPU time per item summed over
# all workers). Repeats RUNS times per worker count and prints the median.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
# STEWARD=/path/to/steward measures another build (e.g. an older one, to compare in one run).
if [ -z "${STEWARD:-}" ]; then
    cargo build --release --quiet --manifest-path "$here/Cargo.toml" -p steward-cli
fi
steward="${STEWARD:-$here/target/release/steward}"
items="${ITEMS:-20000}"
runs="${RUNS:-3}"
work="$(mktemp -d -p "${BENCH_TMP:-${TMPDIR:-/tmp}}")"
trap 'rm -rf "$work"' EXIT
for n in ${WORKERS:-4 16}; do
    results=()
    for r in $(seq 1 "$runs"); do
        dir="$work/c"
        rm -rf "$dir" && mkdir -p "$dir"
        python3 - "$dir" "$items" <<'PY'
import json, os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(os.path.join(d, f"work_{i:06d}.json"), "w") as f:
        f.write(json.dumps({"id": f"{i:06d}", "status": "pending", "payload": {"n": i}}))
PY
        sync
        start=$(date +%s.%N)
        pids=()
        for w in $(seq 1 "$n"); do
            /usr/bin/time -f '%U %S' -o "$work/cpu-$w" "$steward" --coordination "$dir" worker --id "b$w" \
                --service-time 0 --heartbeat-interval 1 --exit-when-idle 0.2 &
            pids+=($!)
        done
        wait "${pids[@]}"
        end=$(date +%s.%N)
        done_items=$(find "$dir" -name 'completed_*' | wc -l)
        [ "$done_items" -eq "$items" ] || { echo "only $done_items of $items completed" >&2; exit 1; }
        cpu=$(cat "$work"/cpu-* | awk '{s += $1 + $2} END {print s}')
        # The workers wait 0.2 s idle before exiting: not part of the work.
        results+=("$(python3 -c "w=$end-$start-0.2; print(f'{$items/w:.0f} {w/$items*1e6:.1f} {$cpu/$items*1e6:.1f}')")")
    done
    median=$(printf '%s\n' "${results[@]}" | sort -n | awk -v k=$(( (runs + 1) / 2 )) 'NR==k')
    read -r rate wall_us cpu_us <<<"$median"
    printf '%3s workers: %7s items/s   %6s us wall/item   %6s us CPU/item   (median of %s runs of %s items)\n' "$n" "$rate" "$wall_us" "$cpu_us" "$runs" "$items"
done
