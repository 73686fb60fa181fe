#!/usr/bin/env bash
# Add-probe to first value on a running 20,000-function `-g -O0` binary (issue 11's "Speed"),
# diagnose side by side with gdb and bpftrace in one run. The target calls f19999(struct req *,
# long) every 0.1 ms. Per rep, a fresh daemon (cold caches) and a fresh target:
#   diagnose: from sending add-probe (`log`, value `req->name`: attach, resolve, index the ELF
#     symbols and the DWARF in the indexer worker, compile, patch) to the return of a wait for
#     the first hit; also the CPU the indexer and the daemon spent (perf stat task-clock, so a
#     loaded machine's wait does not count) and the peak RSS of both;
#   gdb: `gdb -p PID -batch -ex 'break f19999' -ex continue -ex 'print req->name'` until the
#     value is printed (its peak RSS from /usr/bin/time);
#   bpftrace: a uprobe printing arg0 (registers only: it has no DWARF values) and exiting.
# Prints each rep and the medians. BEFORE=DIR also runs the diagnose column with the build in
# DIR (interleaved), for a before/after of a change.
# usage: bench/first_value.sh [BUILD_DIR]   (env REPS=5 NFUNCS=20000 BEFORE=; root)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_setup "${1:-build}" diagnose-first-value
REPS=${REPS:-5}
NFUNCS=${NFUNCS:-20000}
[ "$(id -u)" = 0 ] || { echo "bench/first_value.sh: needs root (ptrace, perf, bpftrace)" >&2; exit 1; }
for t in perf gdb bpftrace /usr/bin/time; do
	command -v "$t" >/dev/null || { echo "bench/first_value.sh: needs $t" >&2; exit 1; }
done

python3 - "$NFUNCS" >"$WORK/gen.c" <<'EOF'
import sys
n = int(sys.argv[1])
print('#include <stdio.h>\n#include <unistd.h>\nstruct req { const char *name; long len; };')
for i in range(n):
    print('__attribute__((noinline)) long f%d(struct req *req, long i) { return req->len + i + %d; }' % (i, i))
print('int main(void) { struct req r = { "hello", 5 }; long s = 0; printf("ready %%d\\n", (int)getpid());'
      ' fflush(stdout); for (long i = 0;; i++) { s += f%d(&r, i); usleep(100); } return (int)s; }' % (n - 1))
EOF
gcc -g -O0 -o "$WORK/gen" "$WORK/gen.c"
FN=f$((NFUNCS - 1))
echo "target: $WORK/gen, $(stat -c %s "$WORK/gen") bytes, $NFUNCS functions, probe $FN; load $(cut -d' ' -f1-3 /proc/loadavg)"

start_gen() {
	"$WORK/gen" >"$WORK/gen.out" &
	GPID=$!
	until grep -q '^ready' "$WORK/gen.out" 2>/dev/null; do sleep 0.01; done
}
stop_gen() { kill "$GPID" 2>/dev/null; wait "$GPID" 2>/dev/null || true; }
now_ns() { date +%s%N; }

# diagnose_rep BUILD: prints "wall_ms indexer_cpu_ms daemon_cpu_ms rss_kb"
diagnose_rep() {
	local b=$1 sock=$WORK/d.sock d ix p1 p2 t0 t1
	rm -f "$sock" "$WORK/st.json"
	"$b/daemon/diagnosed" --socket "$sock" --store "$WORK/st.json" --plugin-dir "$b/plugins" \
		>/dev/null 2>"$WORK/d.err" &
	d=$!
	until [ -S "$sock" ]; do sleep 0.01; done
	until ix=$(pgrep -P "$d" diagnose-index); do sleep 0.01; done
	start_gen
	perf stat -x, -e task-clock -p "$ix" -o "$WORK/ix.stat" &
	p1=$!
	perf stat -x, -e task-clock -p "$d" -o "$WORK/d.stat" &
	p2=$!
	sleep 0.2 # perf attached (its own start is not measured)
	t0=$(now_ns)
	"$b/daemon/diagnosectl" --socket "$sock" add-probe --pid "$GPID" --id p --target "$FN" \
		--type log --name p --value 'req->name' >/dev/null
	"$b/daemon/diagnosectl" --socket "$sock" wait p --hits 1 --timeout 60 >/dev/null
	t1=$(now_ns)
	local rss=$(($(awk '/VmHWM/ {print $2}' "/proc/$ix/status") + $(awk '/VmHWM/ {print $2}' "/proc/$d/status")))
	kill -INT "$p1" "$p2"
	wait "$p1" "$p2" 2>/dev/null || true
	kill -TERM "$d"; wait "$d" 2>/dev/null || true
	stop_gen
	printf '%d %s %s %d\n' $(((t1 - t0) / 1000000)) \
		"$(awk -F, '/task-clock/ {printf "%.0f", $1}' "$WORK/ix.stat")" \
		"$(awk -F, '/task-clock/ {printf "%.0f", $1}' "$WORK/d.stat")" "$rss"
}

# gdb_rep: prints "wall_ms rss_kb"
gdb_rep() {
	start_gen
	local t0 t1
	t0=$(now_ns)
	/usr/bin/time -f '%M' -o "$WORK/gdb.rss" gdb -nx -p "$GPID" -batch -ex "break $FN" -ex continue \
		-ex 'print req->name' >"$WORK/gdb.out" 2>&1 </dev/null
	t1=$(now_ns)
	stop_gen
	grep -q '"hello"' "$WORK/gdb.out" || { echo "gdb printed no value:" >&2; tail -3 "$WORK/gdb.out" >&2; }
	printf '%d %s\n' $(((t1 - t0) / 1000000)) "$(tail -1 "$WORK/gdb.rss")"
}

# bpftrace_rep: prints "wall_ms rss_kb"
bpftrace_rep() {
	start_gen
	local t0 t1
	t0=$(now_ns)
	/usr/bin/time -f '%M' -o "$WORK/bt.rss" bpftrace -e "uprobe:$WORK/gen:$FN /pid == $GPID/ { printf(\"%p\\n\", arg0); exit(); }" \
		>"$WORK/bt.out" 2>&1
	t1=$(now_ns)
	stop_gen
	printf '%d %s\n' $(((t1 - t0) / 1000000)) "$(tail -1 "$WORK/bt.rss")"
}

: >"$WORK/after"; : >"$WORK/before"; : >"$WORK/gdb"; : >"$WORK/bt"
for ((r = 1; r <= REPS; r++)); do
	[ -n "${BEFORE:-}" ] && diagnose_rep "$BEFORE" >>"$WORK/before"
	diagnose_rep "$BUILD" >>"$WORK/after"
	gdb_rep >>"$WORK/gdb"
	bpftrace_rep >>"$WORK/bt"
	echo "rep $r: diagnose $(tail -1 "$WORK/after") ${BEFORE:+| before $(tail -1 "$WORK/before") }| gdb $(tail -1 "$WORK/gdb") | bpftrace $(tail -1 "$WORK/bt")"
done
col() { awk -v c="$2" '{print $c}' "$1" | median; }
echo "medians over $REPS reps (load now $(cut -d' ' -f1-3 /proc/loadavg)):"
printf '  %-28s %8s ms  indexer CPU %s ms  daemon CPU %s ms  RSS %s kB\n' "diagnose ($BUILD)" \
	"$(col "$WORK/after" 1)" "$(col "$WORK/after" 2)" "$(col "$WORK/after" 3)" "$(col "$WORK/after" 4)"
[ -n "${BEFORE:-}" ] && printf '  %-28s %8s ms  indexer CPU %s ms  daemon CPU %s ms  RSS %s kB\n' \
	"diagnose ($BEFORE)" "$(col "$WORK/before" 1)" "$(col "$WORK/before" 2)" \
	"$(col "$WORK/before" 3)" "$(col "$WORK/before" 4)"
printf '  %-28s %8s ms  RSS %s kB\n' gdb "$(col "$WORK/gdb" 1)" "$(col "$WORK/gdb" 2)"
printf '  %-28s %8s ms  RSS %s kB (registers only)\n' bpftrace "$(col "$WORK/bt" 1)" "$(col "$WORK/bt" 2)"
