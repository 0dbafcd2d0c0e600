#!/usr/bin/env bash
# Load on the daemon's /health and /metrics over loopback (wrk, installed
# from Debian if missing) while the loop keeps its interval; then the
# daemon's idle RSS. DURATION seconds per endpoint (default 30).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --quiet --manifest-path "$here/Cargo.toml" -p steward-cli
steward="$here/target/release/steward"
work="$(mktemp -d)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 "$here/../shared/tools/gen_coordination.py" --total 1000 --seed 42 --out "$work/coordination" >/dev/null
printf 'server: {listen: "127.0.0.1:%s"}\nauto: {interval: 5s}\n' "$port" > "$work/steward.yaml"
cd "$work"
"$steward" start >/dev/null
trap '"$steward" stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
pid=$(cut -d' ' -f1 .steward/steward.pid)
sleep 2
echo "idle RSS: $(awk '/VmRSS/ {print $2/1024 " MiB"}' /proc/$pid/status)"
for path in /health /metrics; do
    cycles_before=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^steward_cycles_total/ {print $2}')
    echo "== GET $path for ${DURATION:-30} s (2 threads, 64 connections) =="
    wrk -t2 -c64 -d"${DURATION:-30}s" --latency "http://127.0.0.1:$port$path" | grep -E "Requests/sec|99%|50%|Non-2xx|Socket errors" || true
    cycles_after=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^steward_cycles_total/ {print $2}')
    echo "cycles during the load: $((cycles_after - cycles_before)) (interval 5 s: about $(( ${DURATION:-30} / 5 )) expected)"
done
echo "RSS after the load: $(awk '/VmRSS/ {print $2/1024 " MiB"}' /proc/$pid/status)"
