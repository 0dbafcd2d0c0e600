#!/usr/bin/env bash
# Issue 14's evaluation of `steward detect` in one run: nab-dev in-sample,
# leave-one-category-out with frozen thresholds, and the generator sanity
# check on labelled server-metric series (scripts/eval-detect.py; its --help
# says how each number is made). Builds steward in release first, unless
# STEWARD=/path/to/steward names another build. Arguments go to the script:
#   scripts/eval-detect.sh [--seeds N] [--seed S] [--keep DIR] [--json [FILE]]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
if [ -z "${STEWARD:-}" ]; then
    (cd "$here" && cargo build --release -p steward-cli -q)
fi
exec python3 "$here/scripts/eval-detect.py" --steward "${STEWARD:-$here/target/release/steward}" "$@"
