#!/usr/bin/env bash
# The DWARF benchmark of issue 4, in one run:
#  (a) per-hit cost through the real daemon of a probe whose value is `req->name` (a string two
#      pointers away: read req's field, then the string) next to `$arg1` on the fast path and
#      `$arg1` forced onto the exact path (DIAG_NO_FASTPATH=1). Overhead per hit = (traced wall -
#      untraced wall) / hits, median of REPS runs, as bench/run.sh measures it.
#  (b) the time to index the DWARF of a generated C program with NFUNCS functions (gcc -g -O0)
#      with diagnose (bench/dwarf_index: a new cache + the scope at the last function, and
#      `diagnosectl vars` through a daemon, cold then cached) against `gdb -batch -ex 'info
#      address fN'` loading the same binary; median of REPS, and the ratio.
# usage: bench/dwarf.sh [BUILD_DIR]   (env REPS=3 CALLS=20000 NFUNCS=20000; root for (a))
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_setup "${1:-build}" diagnose-dwarf-bench
REPS=${REPS:-3}
CALLS=${CALLS:-20000}
NFUNCS=${NFUNCS:-20000}
VICTIM=$BUILD/bench/bench_req
for f in "$VICTIM" "$DIAGNOSED" "$CTL" "$BUILD/bench/dwarf_index"; do
	[ -x "$f" ] || { echo "missing $f: run scripts/build.sh (or make bench_req dwarf_index diagnosed diagnosectl plugins)" >&2; exit 1; }
done

now_ns() { date +%s%N; }

# start_daemon [ENV...]: diagnosed on this run's socket; sets DPID
start_daemon() {
	rm -f "$WORK/sock" "$WORK/specs.json"
	env "$@" "$DIAGNOSED" --socket "$WORK/sock" --store "$WORK/specs.json" \
		--plugin-dir "$BUILD/plugins" --max-stopped-percent 0 >"$WORK/d.out" 2>"$WORK/d.err" &
	DPID=$!
	until [ -S "$WORK/sock" ]; do sleep 0.01; done
}
stop_daemon() { kill -TERM "$DPID"; wait "$DPID" || true; }
ctl() { "$CTL" --socket "$WORK/sock" "$@"; }

# ---- (a) per-hit cost ----

# traced_wall VALUE [ENV...]: one traced run of CALLS calls; prints its wall ns, and appends the
# events counted and the most frequent value to $WORK/seen
traced_wall() {
	local value=$1; shift
	start_victim "$VICTIM" 1 "$CALLS"
	start_daemon "$@"
	ctl attach "$VPID"
	ctl add-probe --pid "$VPID" --target handle --type incr --name b --id b --value "$value" \
		--custom '{"by_value":true}' >/dev/null
	finish_victim
	ctl --json stats b | python3 -c '
import json,sys
r=json.load(sys.stdin)["stats"][0]["report"]
keys=r.get("keys",{})
top=max(keys, key=keys.get) if keys else "-"
print(r["count"], top)' >>"$WORK/seen"
	stop_daemon
}

untraced_wall() { start_victim "$VICTIM" 1 "$CALLS"; finish_victim; }

# overhead_us VALUE [ENV...]: median over REPS of (traced - untraced) / calls, in us
overhead_us() {
	local i
	rm -f "$WORK/seen"
	for ((i = 0; i < REPS; i++)); do
		local base traced
		base=$(untraced_wall)
		traced=$(traced_wall "$@")
		awk -v t="$traced" -v b="$base" -v n="$CALLS" 'BEGIN {printf "%.3f\n", (t-b)/n/1000}'
	done | median
}

# what the last runs saw: events / calls, the most frequent value
seen() {
	awk -v n="$CALLS" '{s += $1; k++; $1 = ""; key = $0} END {printf "%5.1f%% %s", 100 * s / (k * n), key}' "$WORK/seen"
}

echo "(a) per-hit cost, 1 thread, $CALLS calls, median of $REPS (bench_req: handle(struct req *req, long i))"
printf '%-36s %10s %10s  %s\n' probe "us/hit" "vs \$arg1" "events  value"
a=$(overhead_us '$arg1')
printf '%-36s %10s %10s  %s\n' '$arg1 (fast path)' "$a" 1.00 "$(seen)"
x=$(overhead_us '$arg1' DIAG_NO_FASTPATH=1)
printf '%-36s %10s %10s  %s\n' '$arg1 (exact path, int3)' "$x" "$(awk -v v="$x" -v a="$a" 'BEGIN {printf "%.2fx", v/a}')" "$(seen)"
r=$(overhead_us 'req->name')
printf '%-36s %10s %10s  %s\n' 'req->name (string, 2 pointers)' "$r" "$(awk -v v="$r" -v a="$a" 'BEGIN {printf "%.2fx", v/a}')" "$(seen)"
printf '%-36s %10s\n' 'req->name minus exact $arg1' "$(awk -v r="$r" -v x="$x" 'BEGIN {printf "%.3f", r-x}')"

# ---- (b) DWARF indexing ----

echo
echo "(b) DWARF index of a generated program with $NFUNCS functions (gcc -g -O0), median of $REPS"
python3 - "$NFUNCS" >"$WORK/gen.c" <<'EOF'
import sys
n = int(sys.argv[1])
print('#include <stdio.h>\n#include <unistd.h>')
print('struct item { int id; const char *name; struct item *next; };')
for i in range(n):
    print(f'__attribute__((noinline)) long f{i}(struct item *it, long n) '
          f'{{ long acc = n + {i}; for (struct item *p = it; p; p = p->next) acc += p->id; return acc; }}')
print('int main(void) { struct item it = {1, "x", 0}; char line[8];')
print('  setvbuf(stdout, NULL, _IOLBF, 0); printf("ready %d\\n", (int)getpid());')
print(f'  if (!fgets(line, sizeof(line), stdin)) return 2; return (int)f{n - 1}(&it, 2) & 1; }}')
EOF
t0=$(now_ns)
gcc -g -O0 -o "$WORK/gen" "$WORK/gen.c"
last=f$((NFUNCS - 1))
addr=0x$(nm "$WORK/gen" | awk -v f="$last" '$3 == f {print $1}')
printf 'generated and compiled in %.1f s: %s, %s bytes, %s at %s\n' \
	"$(awk -v a="$t0" -v b="$(now_ns)" 'BEGIN {print (b-a)/1e9}')" "$WORK/gen" \
	"$(stat -c %s "$WORK/gen")" "$last" "$addr"

diag_ms=$(for ((i = 0; i < REPS; i++)); do
	"$BUILD/bench/dwarf_index" "$WORK/gen" "$addr" | awk '/^index_ms/ {print $2}'
done | median)
cached_ms=$("$BUILD/bench/dwarf_index" "$WORK/gen" "$addr" | awk '/^cached_ms/ {print $2}')
gdb_ms=$(for ((i = 0; i < REPS; i++)); do
	s=$(now_ns)
	gdb -nx -batch -ex "info address $last" "$WORK/gen" >"$WORK/gdb.out" 2>&1
	grep -q "is a function at address" "$WORK/gdb.out" || { cat "$WORK/gdb.out" >&2; exit 1; }
	awk -v a="$s" -v b="$(now_ns)" 'BEGIN {printf "%.1f\n", (b-a)/1e6}'
done | median)
gdb_small_ms=$(for ((i = 0; i < REPS; i++)); do
	s=$(now_ns)
	gdb -nx -batch -ex "info address handle" "$VICTIM" >/dev/null 2>&1
	awk -v a="$s" -v b="$(now_ns)" 'BEGIN {printf "%.1f\n", (b-a)/1e6}'
done | median)
gdb_scope_ms=$(for ((i = 0; i < REPS; i++)); do
	s=$(now_ns)
	gdb -nx -batch -ex "info scope $last" "$WORK/gen" >/dev/null 2>&1
	awk -v a="$s" -v b="$(now_ns)" 'BEGIN {printf "%.1f\n", (b-a)/1e6}'
done | median)

# through the daemon: the first `vars` builds the index, the second finds it in the cache
vars_cold=() vars_warm=()
for ((i = 0; i < REPS; i++)); do
	start_victim "$WORK/gen"
	start_daemon
	s=$(now_ns); ctl vars --pid "$VPID" "$last" >"$WORK/vars.out"; m=$(now_ns)
	ctl vars --pid "$VPID" "$last" >/dev/null; e=$(now_ns)
	grep -q "acc" "$WORK/vars.out" || { cat "$WORK/vars.out" >&2; exit 1; }
	vars_cold+=("$(awk -v a="$s" -v b="$m" 'BEGIN {printf "%.1f", (b-a)/1e6}')")
	vars_warm+=("$(awk -v a="$m" -v b="$e" 'BEGIN {printf "%.1f", (b-a)/1e6}')")
	stop_daemon
	finish_victim >/dev/null
done
cold=$(printf '%s\n' "${vars_cold[@]}" | median)
warm=$(printf '%s\n' "${vars_warm[@]}" | median)

printf '%-58s %10s %10s\n' what ms "gdb / it"
printf '%-58s %10s %10s\n' "diagnose: index + scope of $last (dwarf_index)" "$diag_ms" \
	"$(awk -v g="$gdb_ms" -v d="$diag_ms" 'BEGIN {printf "%.1fx", g/d}')"
printf '%-58s %10s\n' "diagnose: scope again from the built index" "$cached_ms"
printf '%-58s %10s %10s\n' "diagnosectl vars through the daemon, first (index built)" "$cold" \
	"$(awk -v g="$gdb_ms" -v d="$cold" 'BEGIN {printf "%.1fx", g/d}')"
printf '%-58s %10s\n' "diagnosectl vars through the daemon, second (cached)" "$warm"
printf '%-58s %10s %10s\n' "gdb -batch -ex 'info address $last'" "$gdb_ms" 1.0x
printf '%-58s %10s\n' "gdb -batch -ex 'info scope $last'" "$gdb_scope_ms"
printf '%-58s %10s\n' "gdb start-up alone: the same on bench_req (a small binary)" "$gdb_small_ms"
