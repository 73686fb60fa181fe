#!/usr/bin/env bash
# Per-hit cost of an entry probe: diagnose vs gdb dprintf vs bpftrace uprobe, same binary, same
# run, 1 and 4 threads. Overhead per hit = (traced wall - untraced wall) / hits, median of
# REPS runs. Then issue 10's probes side by side with bpftrace (bench/probes.sh) and event
# delivery of `log $arg1` at 2 million calls/s from 4 threads (bench/log_rate.sh); the real
# programs are bench/real_redis.sh and bench/real_nginx.sh (not run here: they install
# packages). usage: bench/run.sh [BUILD_DIR]   (env REPS=3 CALLS=20000 GDB_CALLS=1000;
# ONLY=issue10 skips the first table)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_setup "${1:-build}" diagnose-bench
REPS=${REPS:-3}
CALLS=${CALLS:-20000}
GDB_CALLS=${GDB_CALLS:-1000}
TARGET=$BUILD/bench/bench_target

run_untraced() { start_victim "$TARGET" "$1" "$2"; finish_victim; }

# The governor is off here: this measures what a hit costs, and a hot int3 probe is exactly
# what its stopped-time budget disables (the exact path then showed 5% of the hits counted).
run_diagnose() {
	start_victim "$TARGET" "$1" "$2"
	env ${DIAG_ENV:-} "$DIAGNOSED" --pid "$VPID" --socket "$WORK/sock" --store "$WORK/specs.json" \
		--plugin-dir "$BUILD/plugins" --max-stopped-percent 0 >"$WORK/d.out" 2>"$WORK/d.err" &
	local dpid=$!
	until [ -S "$WORK/sock" ]; do sleep 0.01; done
	"$CTL" --socket "$WORK/sock" add-probe --pid "$VPID" --target bench_fn --type incr \
		--name bench --id bench >/dev/null
	finish_victim
	"$CTL" --socket "$WORK/sock" --json stats bench >"$WORK/stats.json"
	"$CTL" --socket "$WORK/sock" --json list >"$WORK/list.json"
	kill -TERM "$dpid"; wait "$dpid" || true
	# hits counted (exact, in the target for the fast path) / calls made
	python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(list(j["specs"][0]["applied"].values())[0]["hits"])' \
		"$WORK/list.json" >>"$WORK/counted"
	# events delivered to the instrument / calls made
	python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["stats"][0]["report"]["count"])' \
		"$WORK/stats.json" >>"$WORK/seen"
}

run_gdb() {
	start_victim "$TARGET" "$1" "$2"
	gdb -p "$VPID" -batch -ex 'set pagination off' -ex 'dprintf bench_fn,"hit\n"' \
		-ex continue >"$WORK/gdb.out" 2>&1 &
	until grep -q '^Dprintf 1' "$WORK/gdb.out" 2>/dev/null; do sleep 0.01; done
	finish_victim
	wait || true
}

run_bpftrace() {
	start_victim "$TARGET" "$1" "$2"
	bpftrace -e "uprobe:$TARGET:bench_fn { @c = count(); }" >"$WORK/bt.out" 2>&1 &
	local bpid=$!
	until grep -q 'Attaching' "$WORK/bt.out" 2>/dev/null; do sleep 0.01; done
	sleep 0.2 # bpftrace prints before the probe is live; give the kernel its moment
	finish_victim
	kill -INT "$bpid"; wait "$bpid" || true
}

# overhead_us TOOL THREADS CALLS: median over REPS of (traced - untraced)/hits
overhead_us() {
	local tool=$1 threads=$2 calls=$3 i
	rm -f "$WORK/seen" "$WORK/counted"
	for ((i = 0; i < REPS; i++)); do
		local base traced
		base=$(run_untraced "$threads" "$calls")
		traced=$(run_"$tool" "$threads" "$calls")
		awk -v t="$traced" -v b="$base" -v n=$((threads * calls)) 'BEGIN {printf "%.3f\n", (t-b)/n/1000}'
	done | median
}

seen() { # calls counted / delivered as events, in the last diagnose runs
	awk -v n="$1" '{s += $1; k++} END {printf "%.0f%%/", 100 * s / (k * n)}' "$WORK/counted"
	awk -v n="$1" '{s += $1; k++} END {printf "%.0f%%", 100 * s / (k * n)}' "$WORK/seen"
}

HERE=$(dirname "$0")
printf '%-34s %8s %12s %12s %16s\n' tool threads "us/hit" "vs diagnose" "counted/events"
for threads in 1 4; do
	[ "${ONLY:-}" != issue10 ] || break
	d=$(overhead_us diagnose "$threads" "$CALLS")
	printf '%-34s %8s %12s %12s %16s\n' "diagnose fast path (jump+ring)" "$threads" "$d" "1.00" \
		"$(seen $((threads * CALLS)))"
	x=$(DIAG_ENV=DIAG_NO_FASTPATH=1 overhead_us diagnose "$threads" "$CALLS")
	printf '%-34s %8s %12s %12s %16s\n' "diagnose exact path (int3+XOL)" "$threads" "$x" \
		"$(awk -v a="$x" -v d="$d" 'BEGIN {printf "%.2fx", a/d}')" "$(seen $((threads * CALLS)))"
	if command -v bpftrace >/dev/null; then
		b=$(overhead_us bpftrace "$threads" "$CALLS")
		printf '%-34s %8s %12s %12s %16s\n' "bpftrace uprobe, count()" "$threads" "$b" \
			"$(awk -v a="$b" -v d="$d" 'BEGIN {printf "%.2fx", a/d}')" "in-kernel"
	else
		echo "bpftrace not installed: apt-get install -y bpftrace"
	fi
	g=$(overhead_us gdb "$threads" "$GDB_CALLS")
	printf '%-34s %8s %12s %12s %16s\n' "gdb dprintf" "$threads" "$g" \
		"$(awk -v a="$g" -v d="$d" 'BEGIN {printf "%.2fx", a/d}')" "-"
done

echo
echo "== issue 10 probes, side by side with bpftrace (bench/probes.sh)"
REPS=$REPS "$HERE/probes.sh" "$BUILD"
echo
echo "== log \$arg1 at 2 million calls/s from 4 threads (bench/log_rate.sh)"
THREADS=4 RATE=500000 CALLS=${LOG_CALLS:-500000} "$HERE/log_rate.sh" "$BUILD"
