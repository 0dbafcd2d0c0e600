#!/usr/bin/env bash
# Whole-process `steward analyze --format json` on generated coordination
# directories of 1k, 10k and 100k files (gen_coordination.py --seed 42,
# 10 % agent files), reporting the median time (hyperfine) and peak RSS
# (GNU time). Installs hyperfine and time from Debian if missing.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
gen="$here/../shared/tools/gen_coordination.py"
for tool in hyperfine /usr/bin/time; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        apt-get update -qq && apt-get install -y -qq hyperfine time >/dev/null
    fi
done
# STEWARD=/path/to/steward measures another build (e.g. an older one, to compare in one run).
if [ -z "${STEWARD:-}" ]; then
    cargo build --release --quiet --manifest-path "$here/Cargo.toml" -p steward-cli
fi
steward="${STEWARD:-$here/target/release/steward}"
work="${BENCH_DIR:-$(mktemp -d)}"
for n in ${SIZES:-1000 10000 100000}; do
    dir="$work/c$n"
    # Always fresh: agent liveness comes from mtimes, and a directory older
    # than agent_ttl (5 min) would be measured as a fleet of silent agents.
    python3 "$gen" --total "$n" --seed 42 --out "$dir" --clean >/dev/null
    sync  # let writeback of the fresh files finish before timing
    json="$work/hf-$n.json"
    hyperfine -N --warmup 5 --runs "${RUNS:-50}" --export-json "$json" \
        "$steward --coordination $dir analyze --format json" >/dev/null
    median_ms=$(python3 -c "import json,sys; r=json.load(open('$json'))['results'][0]; print(f\"{r['median']*1000:.1f}\")")
    mean_ms=$(python3 -c "import json,sys; r=json.load(open('$json'))['results'][0]; print(f\"{r['mean']*1000:.1f}\")")
    rss=$(/usr/bin/time -f '%M' "$steward" --coordination "$dir" analyze --format json 2>&1 >/dev/null | tail -1)
    printf '%7s files: median %6s ms  mean %6s ms  peak RSS %6.1f MiB\n' "$n" "$median_ms" "$mean_ms" "$(python3 -c "print($rss / 1024)")"
done
