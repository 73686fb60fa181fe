#!/usr/bin/env bash
# The cost of the outputs to the target (issue 13): the per-hit overhead of one fast-path probe
# with each output on, side by side with no output, same binary, same run. The outputs run on
# the daemon's event worker, never in a hit, so every row should read the same as the first
# (within this machine's noise). usage: bench/outputs.sh [BUILD_DIR]   (env REPS=5 CALLS=200000)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_setup "${1:-build}" diagnose-outputs
REPS=${REPS:-5}
CALLS=${CALLS:-200000}
THREADS=${THREADS:-4}
TARGET=$BUILD/bench/bench_target

# a UDP receiver for StatsD that reads and discards
python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
while True: s.recv(65536)' > "$WORK/udp.port" &
until [ -s "$WORK/udp.port" ]; do sleep 0.01; done
PORT=$(head -1 "$WORK/udp.port")

# run_with TYPE CUSTOM: wall ns of the victim with one probe of that instrument and settings
run_with() {
	start_victim "$TARGET" "$THREADS" "$CALLS"
	"$DIAGNOSED" --pid "$VPID" --socket "$WORK/sock" --store "$WORK/specs.json" \
		--plugin-dir "$BUILD/plugins" --max-stopped-percent 0 >/dev/null 2>"$WORK/d.err" &
	local dpid=$!
	until [ -S "$WORK/sock" ]; do sleep 0.01; done
	"$CTL" --socket "$WORK/sock" add-probe --pid "$VPID" --target bench_fn --type "$1" \
		--name bench --id bench --value '$arg1' --custom "$2" >/dev/null
	finish_victim
	kill -TERM "$dpid"; wait "$dpid" || true
	rm -f "$WORK/sock" "$WORK"/ev.jsonl*
}
run_untraced() { start_victim "$TARGET" "$THREADS" "$CALLS"; finish_victim; }

overhead_ns() {
	local i
	for ((i = 0; i < REPS; i++)); do
		local base traced
		base=$(run_untraced)
		traced=$(run_with "$1" "$2")
		awk -v t="$traced" -v b="$base" -v n=$((THREADS * CALLS)) 'BEGIN {printf "%.1f\n", (t-b)/n}'
	done | median
}

printf '%-40s %10s %10s\n' "probe and output" "ns/hit" "vs none"
row() {
	local v
	v=$(overhead_ns "$2" "$3")
	[ -z "${BASE:-}" ] && BASE=$v
	printf '%-40s %10s %10s\n' "$1" "$v" "$(awk -v a="$v" -v b="$BASE" 'BEGIN {printf "%.2f", (b > 0 ? a/b : 0)}')"
}
row "incr, no output" incr '{}'
row "incr + StatsD" incr "{\"statsd\":\"127.0.0.1:$PORT\"}"
row "hist + StatsD (one line per value)" hist "{\"statsd\":\"127.0.0.1:$PORT\"}"
row "log + JSON lines file, rotated" log "{\"file\":\"$WORK/ev.jsonl\",\"max_bytes\":1048576,\"keep\":2}"
row "log + journal (rate-limited)" log '{"journal":true}'
