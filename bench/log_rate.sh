#!/usr/bin/env bash
# Event delivery at a real rate: THREADS threads call bench_fn at RATE calls/s each (paced in
# 1 ms bursts) with a `log $arg1` probe; every value must reach the log exactly once and the
# target's sum must match an untraced run. Prints rate, delivered, duplicates, missing, dropped
# (as `stats` and `status` report them), the daemon's CPU time, and ok/FAIL.
# usage: bench/log_rate.sh [BUILD_DIR]  (env THREADS=4 RATE=500000 CALLS=1000000 RING_KIB=;
# DIAGNOSED_BIN and PLUGIN_DIR run another build of the daemon for comparisons; PERF=FILE
# records a profile of the daemon; SUBS=1 polls `status` during the run and prints the
# sub-rings' threads and drops)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_setup "${1:-build}" diagnose-lograte
THREADS=${THREADS:-4}
RATE=${RATE:-500000}
CALLS=${CALLS:-1000000}
TARGET=$BUILD/bench/bench_target
DIAGNOSED=${DIAGNOSED_BIN:-$DIAGNOSED} # another build of the daemon, for comparisons

untraced() { start_victim "$TARGET" "$THREADS" "$CALLS" "$RATE"; finish_victim; awk '/^sum/ {print $2}' "$WORK/out"; }
read -r base want_sum < <(untraced | tr '\n' ' '; echo)

start_victim "$TARGET" "$THREADS" "$CALLS" "$RATE"
env ${DIAG_ENV:-} "$DIAGNOSED" --foreground --pid "$VPID" --socket "$WORK/sock" --store "$WORK/specs.json" \
	--plugin-dir "${PLUGIN_DIR:-$BUILD/plugins}" --max-stopped-percent 0 ${RING_KIB:+--ring-kib $RING_KIB} \
	>"$WORK/log" 2>"$WORK/d.err" &
dpid=$!
until [ -S "$WORK/sock" ]; do sleep 0.01; done
if [ -n "${PERF:-}" ]; then # where the daemon spends its time: perf report -i $PERF
	perf record -g -o "$PERF" -p "$dpid" >/dev/null 2>&1 &
	perfpid=$!
	sleep 0.3
fi
"$CTL" --socket "$WORK/sock" add-probe --pid "$VPID" --target bench_fn --type log \
	--value '$arg1' --name v --id v >/dev/null
if [ -n "${TAIL:-}" ]; then # a tail client too: its events are checked like the log's
	"$CTL" --socket "$WORK/sock" --json tail v >"$WORK/tail" &
	tailpid=$!
	sleep 0.2
fi
if [ -n "${SUBS:-}" ]; then # the sub-rings while the threads run: which ones dropped, shared
	(while kill -0 "$VPID" 2>/dev/null; do
		"$CTL" --socket "$WORK/sock" --json status >"$WORK/st.tmp" 2>/dev/null &&
			grep -q '"ring_subs":\[{' "$WORK/st.tmp" && mv "$WORK/st.tmp" "$WORK/status_live.json"
		sleep 0.1
	done) &
fi
finish_victim >"$WORK/wall"
wall=$(cat "$WORK/wall")
sum=$(awk '/^sum/ {print $2}' "$WORK/out")
"$CTL" --socket "$WORK/sock" --json stats v >"$WORK/stats.json"
"$CTL" --socket "$WORK/sock" --json status >"$WORK/status.json"
"$CTL" --socket "$WORK/sock" --json list >"$WORK/list.json"
if [ -n "${TAIL:-}" ]; then
	"$CTL" --socket "$WORK/sock" wait v --hits "$((THREADS * CALLS))" --timeout 5 >/dev/null || true
	sleep 0.5 # the last tail writes (no reply says they were read)
	kill "$tailpid"; wait "$tailpid" || true
fi
cpu=$(for f in /proc/$dpid/task/*/stat; do awk '{printf "%.2f+", ($14 + $15) / 100}' "$f"; done)
cpu=${cpu%+}
[ -z "${PERF:-}" ] || { kill -INT "$perfpid"; wait "$perfpid" || true; }
kill -TERM "$dpid"; wait "$dpid" || true
python3 - "$WORK" "$THREADS" "$CALLS" "$wall" "$base" "$sum" "$want_sum" "$cpu" <<'PY'
import json, re, sys
work, threads, calls, wall, base, s, want, cpu = sys.argv[1:]
threads, calls = int(threads), int(calls)
n = threads * calls
seen = {}
pat = re.compile(r'^Probe \(v\) = (-?\d+)$')
for line in open(work + '/log', errors='replace'):
    m = pat.match(line.rstrip('\n'))
    if m:
        v = int(m.group(1))
        seen[v] = seen.get(v, 0) + 1
dup = sum(c - 1 for c in seen.values() if c > 1)
missing = sum(1 for v in range(n) if v not in seen)
extra = sum(1 for v in seen if not 0 <= v < n)
st = json.load(open(work + '/stats.json'))['stats'][0]
status = json.load(open(work + '/status.json'))
appl = list(json.load(open(work + '/list.json'))['specs'][0]['applied'].values())[0]
rate = n / (float(wall) / 1e9)
try:
    tv = {}
    for line in open(work + '/tail'):
        e = json.loads(line).get('event', {})
        tv[e.get('value')] = tv.get(e.get('value'), 0) + 1
    tdup = sum(c - 1 for c in tv.values() if c > 1)
    print(f"tail client: {len(tv)}/{n} values ({100*len(tv)/n:.2f}%), duplicates {tdup}, dropped to tail {status.get('dropped', {}).get('tail')}")
    ok_tail = len(tv) == n and tdup == 0
except FileNotFoundError:
    ok_tail = True
ok = dup == 0 and missing == 0 and extra == 0 and s == want and ok_tail
print(f"threads {threads}  calls {n}  rate {rate/1e6:.2f} M calls/s  (untraced {n/(float(base)/1e9)/1e6:.2f})")
print(f"delivered {len(seen)}/{n} ({100*len(seen)/n:.2f}%)  duplicates {dup}  missing {missing}  foreign {extra}")
print(f"dropped: applied {appl.get('dropped')}  stats {st.get('dropped')}  status {status.get('dropped')}")
if missing:
    # where the losses are: runs of consecutive missing calls of one thread (value = thread *
    # CALLS + call), so a long stall of the daemon (every thread's run at the same call
    # number) reads apart from one sub-ring overrun
    gaps = []
    for t in range(threads):
        i = 0
        while i < calls:
            if t * calls + i in seen:
                i += 1
                continue
            j = i
            while j < calls and t * calls + j not in seen:
                j += 1
            gaps.append((j - i, t, i))
            i = j
    gaps.sort(reverse=True)
    top = ', '.join(f"{g} calls of thread {t} from call {i}" for g, t, i in gaps[:4])
    print(f"missing in {len(gaps)} runs; longest {top}")
try:
    live = json.load(open(work + '/status_live.json'))
    for t in live.get('targets', []):
        subs = ', '.join(f"{s['sub']}: {s['threads']} threads {s['dropped']} dropped" for s in t.get('ring_subs', []))
        print(f"sub-rings of {t['pid']} (last seen running): {subs}")
except FileNotFoundError:
    pass
insts = appl.get('instances') or []
if isinstance(insts, str):
    insts = json.loads(insts)
print(f"path {', '.join(str(i.get('path')) + ' ' + str(i.get('record_bytes', '-')) + ' B/record' for i in insts)}")
print(f"drain period now {status.get('drain', {}).get('period_us')} us, changed {status.get('drain', {}).get('changes')} times; queue batches {status['queue'].get('batches')}")
print(f"sum {'unchanged' if s == want else 'CHANGED ' + s + ' != ' + want}  daemon cpu {cpu} s (per thread)  {'ok' if ok else 'FAIL'}")
PY
