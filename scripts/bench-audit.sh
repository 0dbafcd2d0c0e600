#!/usr/bin/env bash
# The audit chain's cost:
# 1. appends and verification (crates/store/benches/audit.rs): durable
#    single appends, group commits of 64, `verify` records/s;
# 2. the loop's cycle time with journal.audit on and off, on a generated
#    10k-file coordination directory (gen_coordination.py --seed 42):
#    `steward loop --max-cycles N --json`, the median of the cycles'
#    duration_ms, on and off alternated ROUNDS times in one run.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
gen="$here/../shared/tools/gen_coordination.py"
cargo bench -q --manifest-path "$here/Cargo.toml" -p steward-store --bench audit
if [ -z "${STEWARD:-}" ]; then
    cargo build --release --quiet --manifest-path "$here/Cargo.toml" -p steward-cli
fi
steward="${STEWARD:-$here/target/release/steward}"
work="${BENCH_DIR:-$(mktemp -d)}"
cycles="${CYCLES:-40}"
for round in $(seq 1 "${ROUNDS:-3}"); do
    for audit in true false; do
        dir="$work/c10k-$round-$audit"
        python3 "$gen" --total 10000 --seed 42 --out "$dir" --clean >/dev/null
        sync
        STEWARD_JOURNAL_AUDIT=$audit "$steward" --coordination "$dir" --state-dir "$dir.state" --json \
            loop --max-cycles "$cycles" --interval 0.1 2>/dev/null >"$work/cycles-$round-$audit.jsonl"
    done
done
python3 - "$work" <<'PY'
import glob, json, statistics, sys
work = sys.argv[1]
# duration_ms is whole milliseconds: a median moves in steps of 1 ms (~9 %
# of a cycle here), so the cost is judged on the trimmed mean (the middle
# 80 % of cycles), which resolves fractions of a millisecond.
def trimmed(d):
    d = sorted(d)
    k = len(d) // 10
    return statistics.mean(d[k:len(d) - k])
tm = {}
for audit in ("true", "false"):
    d = []
    for f in sorted(glob.glob(f"{work}/cycles-*-{audit}.jsonl")):
        rows = [json.loads(l) for l in open(f) if l.startswith("{")]
        d += [r["duration_ms"] for r in rows[1:]]  # the first cycle opens the journal
    tm[audit] = trimmed(d)
    print(f"loop cycle on 10k files, audit {'on ' if audit == 'true' else 'off'}: trimmed mean {tm[audit]:.2f} ms, median {statistics.median(d):.0f} ms, over {len(d)} cycles")
print(f"audit cost: {100 * (tm['true'] - tm['false']) / tm['false']:+.1f} % of a cycle (trimmed means)")
PY
