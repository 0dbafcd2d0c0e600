#!/usr/bin/env bash
# `steward reconcile --once` on generated local lakes of 50k, 200k and 1M
# expected keys (10 hourly datasets; 94 % of keys present, 1 % truncated,
# 5 % missing): the median wall time of a reconciliation (hyperfine, after
# the first one queued the gaps) and its peak RSS (GNU time).
# Installs hyperfine and time from Debian if missing. BENCH_DIR keeps the lakes.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
for tool in hyperfine /usr/bin/time; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        apt-get update -qq && apt-get install -y -qq hyperfine time >/dev/null
    fi
done
if [ -z "${STEWARD:-}" ]; then
    cargo build --release --quiet --manifest-path "$here/Cargo.toml" -p steward-cli
fi
steward="${STEWARD:-$here/target/release/steward}"
work="${BENCH_DIR:-$(mktemp -d)}"
printf '%-10s %12s %12s %10s\n' keys median_s peak_rss_mb gaps
for n in ${SIZES:-50000 200000 1000000}; do
    dir="$work/lake-$n"
    if [ ! -f "$dir/.complete" ]; then
        rm -rf "$dir"
        python3 - "$dir" "$n" <<'PY'
import os, sys, datetime
root, n = sys.argv[1], int(sys.argv[2])
per = n // 10
start = datetime.datetime(2020, 1, 1)
os.makedirs(root, exist_ok=True)
with open(os.path.join(root, "steward.yaml"), "w") as f:
    f.write("inventory:\n  url: lake\ndatasets:\n")
    end = start + datetime.timedelta(hours=per - 1)
    for d in range(10):
        f.write(f"  - name: ds{d}\n    key: \"ds{d}/{{date:%Y/%m/%d/%H}}.json\"\n")
        f.write(f"    dates: {{from: {start:%Y-%m-%dT%H:%M:%SZ}, to: {end:%Y-%m-%dT%H:%M:%SZ}, every: 1h}}\n")
        f.write("    min_bytes: 100\n    collector: [\"true\"]\n")
body, short = b"x" * 200, b"{}"
for d in range(10):
    for i in range(per):
        h = i * 7919 % 100
        if h < 5:
            continue  # missing
        t = start + datetime.timedelta(hours=i)
        p = os.path.join(root, "lake", f"ds{d}", t.strftime("%Y/%m/%d"))
        os.makedirs(p, exist_ok=True)
        with open(os.path.join(p, t.strftime("%H") + ".json"), "wb") as f:
            f.write(short if h == 5 else body)
PY
        sync
        touch "$dir/.complete"  # a lake cut short is made again
    fi
    (cd "$dir" && "$steward" reconcile --once --json > "$work/first-$n.json")
    gaps=$(python3 -c "import json; print(json.load(open('$work/first-$n.json'))['gaps'])")
    json="$work/hf-$n.json"
    (cd "$dir" && hyperfine -N --warmup 1 --runs "${RUNS:-5}" --export-json "$json" "$steward reconcile --once --json" >/dev/null)
    median=$(python3 -c "import json; print(f\"{json.load(open('$json'))['results'][0]['median']:.2f}\")")
    rss=$(cd "$dir" && /usr/bin/time -f '%M' "$steward" reconcile --once --json 2>&1 >/dev/null | tail -1)
    printf '%-10s %12s %12s %10s\n' "$n" "$median" "$(python3 -c "print(f'{$rss / 1024:.1f}')")" "$gaps"
done
