#!/usr/bin/env bash
# The main job on the embedded defaults: copy the sample coordination
# directory to a scratch place, then analyze, execute one cycle and show
# the status. Nothing to install beyond cargo; nothing outside the scratch
# directory is touched.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cargo build --release --quiet --manifest-path "$here/../Cargo.toml" -p steward-cli
steward="$here/../target/release/steward"
work="${STEWARD_EXAMPLE_DIR:-$(mktemp -d)}"
rm -rf "$work/coordination" "$work/.steward"
cp -r "$here/coordination" "$work/coordination"
cd "$work"
echo "== steward analyze (what it sees and would do) =="
"$steward" --coordination coordination analyze
echo
echo "== steward execute (one cycle: decide, guard, journal, act) =="
"$steward" --coordination coordination execute || true
echo
echo "== steward status (state plus the journal) =="
"$steward" --coordination coordination status
echo
echo "Scratch directory: $work (coordination/ and its journal in .steward/coordination/)"
