#!/usr/bin/env bash
# The probes of issue 10, side by side with bpftrace in one run on the same binaries (gcc -g
# -O2): per-hit overhead = (traced wall - untraced wall) / calls, median of REPS runs, 1 thread.
#   entry, registers only, `incr`        bench_target bench_fn   vs uprobe count()
#   entry, a string two loads away       bench_req handle, incr by value of str(req->path)
#                                        vs uprobe @[str(((struct req *)arg0)->path)] = count()
#   return, $elapsed into a `hist`       bench_req handle        vs uprobe + uretprobe pair
# with the events each tool saw (diagnose: the instrument's count / calls) and, for the
# histogram, both p50s. Targets (issue 10): registers only <= 0.02x bpftrace, the others
# <= 0.1x. usage: bench/probes.sh [BUILD_DIR]
# (env REPS=3 CALLS=200000 FAST_CALLS=2000000 BT_CALLS=100000)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_setup "${1:-build}" diagnose-probes
REPS=${REPS:-3}
CALLS=${CALLS:-200000}          # diagnose, probes that may take an int3 today
FAST_CALLS=${FAST_CALLS:-2000000} # diagnose, registers only (tens of ns per hit)
BT_CALLS=${BT_CALLS:-100000}    # bpftrace (microseconds per hit)
TARGET=$BUILD/bench/bench_target
REQ=$BUILD/bench/bench_req
for f in "$TARGET" "$REQ" "$DIAGNOSED" "$CTL" "$BUILD/plugins/hist.so"; do
	[ -x "$f" ] || [ -f "$f" ] || { echo "missing $f: run scripts/build.sh" >&2; exit 1; }
done
HAVE_BT=$(command -v bpftrace >/dev/null && echo 1 || echo "")

untraced() { start_victim "$1" 1 "$2"; finish_victim; }

# diag VICTIM CALLS FUNC TYPE EVENT VALUE CUSTOM: traced wall ns; appends "count p50" to
# $WORK/seen (p50 empty unless a hist)
diag() {
	local victim=$1 calls=$2 func=$3 type=$4 event=$5 value=$6 custom=$7
	start_victim "$victim" 1 "$calls"
	rm -f "$WORK/sock"
	"$DIAGNOSED" --pid "$VPID" --socket "$WORK/sock" --store "$WORK/specs.json" \
		--plugin-dir "$BUILD/plugins" --max-stopped-percent 0 >"$WORK/d.out" 2>"$WORK/d.err" &
	local dpid=$!
	until [ -S "$WORK/sock" ]; do sleep 0.01; done
	"$CTL" --socket "$WORK/sock" add-probe --pid "$VPID" --target "$func" --type "$type" \
		--name b --id b --event "$event" ${value:+--value "$value"} \
		${custom:+--custom "$custom"} >/dev/null
	"$CTL" --socket "$WORK/sock" --json list >"$WORK/list.json"
	finish_victim
	"$CTL" --socket "$WORK/sock" --json stats b | python3 -c '
import json, sys
r = json.load(sys.stdin)["stats"][0]["report"] or {}
p50 = r.get("p50")
print(r.get("count", 0), "" if p50 is None else p50)' >>"$WORK/seen"
	python3 -c '
import json, sys
a = list(json.load(open(sys.argv[1]))["specs"][0]["applied"].values())[0]
print(",".join(sorted({i.get("path", "skipped") for i in a.get("instances", [])})))' \
		"$WORK/list.json" >"$WORK/path" 2>/dev/null || echo "?" >"$WORK/path"
	kill -TERM "$dpid"; wait "$dpid" || true
}

# bt VICTIM CALLS SCRIPT: traced wall ns; appends bpftrace's p50 (us, from @h) or "" to $WORK/bt
bt() {
	local victim=$1 calls=$2 script=$3
	start_victim "$victim" 1 "$calls"
	bpftrace -e "$script" >"$WORK/bt.out" 2>&1 &
	local bpid=$!
	until grep -q 'Attaching' "$WORK/bt.out" 2>/dev/null; do sleep 0.01; done
	sleep 0.3 # bpftrace prints before its probes are live
	finish_victim
	kill -INT "$bpid"; wait "$bpid" || true
	python3 "$(dirname "$0")/hist_p50.py" "$WORK/bt.out" >>"$WORK/bt"
}

# per_hit_us TOOL VICTIM CALLS ARGS...: median over REPS of (traced - untraced) / calls
per_hit_us() {
	local tool=$1 victim=$2 calls=$3 i
	shift 3
	for ((i = 0; i < REPS; i++)); do
		local base traced
		base=$(untraced "$victim" "$calls")
		traced=$("$tool" "$victim" "$calls" "$@")
		awk -v t="$traced" -v b="$base" -v n="$calls" 'BEGIN {printf "%.4f\n", (t-b)/n/1000}'
	done | median
}

seen_pct() { awk -v n="$1" '{s += $1; k++} END {printf "%.1f%%", 100 * s / (k * n)}' "$WORK/seen"; }
p50_of() { awk '$2 != "" {print $2}' "$WORK/seen" | median; }

row() { printf '%-40s %12s %12s %8s %7s  %s\n' "$@"; }
row probe "diagnose us" "bpftrace us" ratio target "diagnose: path, events seen, p50"

# probe NAME TARGET_RATIO VICTIM DIAG_CALLS FUNC TYPE EVENT VALUE CUSTOM BPFTRACE_SCRIPT
probe() {
	local name=$1 goal=$2 victim=$3 calls=$4 func=$5 type=$6 event=$7 value=$8 custom=$9
	local script=${10} d b="-" ratio="-" bp50=""
	rm -f "$WORK/seen" "$WORK/bt"
	d=$(per_hit_us diag "$victim" "$calls" "$func" "$type" "$event" "$value" "$custom")
	local info
	info="$(cat "$WORK/path"), $(seen_pct "$calls")"
	[ "$type" != hist ] || info="$info, p50 $(p50_of) ns"
	if [ -n "$HAVE_BT" ]; then
		b=$(per_hit_us bt "$victim" "$BT_CALLS" "$script")
		ratio=$(awk -v d="$d" -v b="$b" 'BEGIN {printf "%.3f", d/b}')
		bp50=$(awk '$1 != "" {print $1}' "$WORK/bt" | median)
		[ -z "$bp50" ] || info="$info; bpftrace p50 ${bp50} ns"
	fi
	row "$name" "$d" "$b" "$ratio" "<= $goal" "$info"
}

probe "entry, registers only, incr" 0.02 "$TARGET" "$FAST_CALLS" bench_fn incr call "" "" \
	"uprobe:$TARGET:bench_fn { @c = count(); }"
probe "entry, str(req->path), incr by value" 0.1 "$REQ" "$CALLS" handle incr call \
	'str(req->path)' '{"by_value":true}' \
	"struct req { int id; char *name; char *path; }
	 uprobe:$REQ:handle { @[str(((struct req *)arg0)->path)] = count(); }"
probe "return, \$elapsed into hist" 0.1 "$REQ" "$CALLS" handle hist return '$elapsed' "" \
	"uprobe:$REQ:handle { @s[tid] = nsecs; }
	 uretprobe:$REQ:handle /@s[tid]/ { @h = lhist(nsecs - @s[tid], 0, 100000, 100); delete(@s[tid]); }"
[ -n "$HAVE_BT" ] || echo "bpftrace not installed: apt-get install -y bpftrace"
