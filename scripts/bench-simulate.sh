#!/usr/bin/env bash
# `steward simulate` on the NASA trace (two months of 5-minute rows, the
# busiest row scaled to need 50 agents of 30 s, 5-minute SLA, 60 s
# start-up): the median wall time of each policy alone (hyperfine), its
# peak RSS (GNU time), then the comparison table of every policy.
# Installs hyperfine and time from Debian if missing.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
trace="${TRACE:-$here/../shared/datasets/workload/nasa_http_5min.csv}"
for tool in hyperfine /usr/bin/time; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        apt-get update -qq && apt-get install -y -qq hyperfine time >/dev/null
    fi
done
# STEWARD=/path/to/steward measures another build.
if [ -z "${STEWARD:-}" ]; then
    cargo build --release --quiet --manifest-path "$here/Cargo.toml" -p steward-cli
fi
steward="${STEWARD:-$here/target/release/steward}"
args=(simulate --trace "$trace" --peak-agents 50 --startup 60 --sla 300 --max-agents 100 --service-time exp:30)
work="$(mktemp -d)"
printf '%-9s %12s %12s\n' policy median_s peak_rss_mb
for p in adaptive classic hpa keda oracle; do
    runs=5
    [ "$p" = oracle ] && runs=3
    hyperfine -N --warmup 1 --runs "$runs" --export-json "$work/$p.json" "$steward ${args[*]} --policy $p --json" >/dev/null
    median=$(python3 -c "import json; print(f\"{json.load(open('$work/$p.json'))['results'][0]['median']:.2f}\")")
    rss=$(/usr/bin/time -f '%M' "$steward" "${args[@]}" --policy "$p" --json 2>&1 >/dev/null | tail -1)
    printf '%-9s %12s %12s\n' "$p" "$median" "$(python3 -c "print(f'{$rss / 1024:.1f}')")"
done
echo
"$steward" "${args[@]}" --compare
