#!/usr/bin/env bash
# Issue 10 on a real program: Debian's redis-server, whose jemalloc background thread blocks
# SIGTRAP (so every probe that needs an int3 is refused in it). On `call` (redis's command
# dispatch, in .dynsym: no DWARF needed), under redis-benchmark load:
#   1. entry, a memory read: the client's id, *(unsigned long *)$arg1, incr by value
#   2. return, $elapsed into a hist (p50 against bpftrace's uprobe + uretprobe pair)
#   3. end event, counted by an incr
# Prints for each: applied state and path of every instance (or the refusal), events, the
# requests/s under load and untraced. Installs redis-server and redis-tools if missing.
# usage: bench/real_redis.sh [BUILD_DIR]   (env REQUESTS=200000 CLIENTS=20 PORT=6399)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_setup "${1:-build}" diagnose-redis
REQUESTS=${REQUESTS:-200000}
CLIENTS=${CLIENTS:-20}
PORT=${PORT:-6399}
command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null ||
	DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server redis-tools >/dev/null
REDIS=$(command -v redis-server)

start_redis() {
	"$REDIS" --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
		--dir "$WORK" >"$WORK/redis.log" 2>&1 &
	RPID=$!
	until redis-cli -p "$PORT" ping 2>/dev/null | grep -q PONG; do sleep 0.05; done
}
stop_redis() { kill -TERM "$RPID"; wait "$RPID" || true; }
rps() { # requests/s of GET and SET, summed
	redis-benchmark -p "$PORT" -t get,set -n "$REQUESTS" -c "$CLIENTS" -q 2>/dev/null |
		tr '\r' '\n' | awk '/requests per second/ {for (i = 1; i <= NF; i++) if ($i ~ /^[0-9.]+$/) {s += $i; break}} END {printf "%.0f", s / 2}'
}
ctl() { "$CTL" --socket "$WORK/sock" "$@"; }

start_redis
base=$(rps)
echo "redis-server $("$REDIS" --version | awk '{print $3}') pid $RPID: untraced $base requests/s (GET+SET mean, -c $CLIENTS)"
for t in /proc/$RPID/task/*; do # SIGTRAP is signal 5: bit 4 of SigBlk
	blk=$(awk '/^SigBlk/ {print $2}' "$t/status" 2>/dev/null || echo 0)
	(( (16#${blk:-0} & 16#10) == 0 )) || echo "  thread ${t##*/} ($(cat "$t/comm")) blocks SIGTRAP"
done

"$DIAGNOSED" --pid "$RPID" --socket "$WORK/sock" --store "$WORK/specs.json" \
	--plugin-dir "$BUILD/plugins" --max-stopped-percent 0 >"$WORK/d.out" 2>"$WORK/d.err" &
DPID=$!
until [ -S "$WORK/sock" ]; do sleep 0.01; done
ctl add-probe --pid "$RPID" --target call --type incr --name id --id id \
	--value '*(unsigned long *)$arg1' --custom '{"by_value":true}' >/dev/null 2>"$WORK/e1" || true
ctl add-probe --pid "$RPID" --target call --type hist --name lat --id lat --event return \
	--value '$elapsed' >/dev/null 2>"$WORK/e2" || true
ctl add-probe --pid "$RPID" --target call --type incr --name end --id end --event end \
	>/dev/null 2>"$WORK/e3" || true
traced=$(rps)
ctl --json list >"$WORK/list.json"
ctl --json stats >"$WORK/stats.json"
kill -TERM "$DPID"; wait "$DPID" || true

bt_p50=""
if command -v bpftrace >/dev/null; then
	bpftrace -e "uprobe:$REDIS:call { @s[tid] = nsecs; }
		uretprobe:$REDIS:call /@s[tid]/ { @h = lhist(nsecs - @s[tid], 0, 100000, 100); delete(@s[tid]); }" \
		>"$WORK/bt.out" 2>&1 &
	bpid=$!
	until grep -q Attaching "$WORK/bt.out" 2>/dev/null; do sleep 0.05; done
	sleep 0.3
	bt_rps=$(rps)
	kill -INT "$bpid"; wait "$bpid" || true
	bt_p50=$(python3 "$(dirname "$0")/hist_p50.py" "$WORK/bt.out")
	echo "bpftrace uprobe+uretprobe on call: $bt_rps requests/s, p50 ${bt_p50:-?} ns"
fi
base2=$(rps) # untraced again: the server's own drift
stop_redis

python3 - "$WORK" "$base" "$traced" "${bt_p50:-}" "$base2" <<'PY'
import json, sys
work, base, traced, bt_p50, base2 = sys.argv[1:]
print(f"untraced: {base} then {base2} requests/s")
base = str((float(base) + float(base2)) / 2)
specs = {s["id"]: s for s in json.load(open(work + "/list.json"))["specs"]}
stats = {s["id"]: s for s in json.load(open(work + "/stats.json"))["stats"]}
print(f"diagnose, three probes on call: {traced} requests/s ({100 * float(traced) / float(base):.0f}% of untraced)")
for pid, what in (("id", "entry, *(unsigned long *)$arg1, incr by value"),
                  ("lat", "return, $elapsed, hist"), ("end", "end, count, incr")):
    s = specs.get(pid)
    if not s:
        print(f"  {what}: refused: {open(work + '/e' + str(['id', 'lat', 'end'].index(pid) + 1)).read().strip()}")
        continue
    for a in s["applied"].values():
        inst = "; ".join(f"{i.get('path', 'skipped')}" + (f" ({i['reason']})" if i.get("reason") else "")
                         for i in a.get("instances", []))
        rep = (stats.get(pid) or {}).get("report") or {}
        extra = f", p50 {rep.get('p50')} ns" if "p50" in rep else ""
        print(f"  {what}: {a['state']}{': ' + a['error'] if a.get('error') else ''}; "
              f"instances: {inst or '-'}; hits {a.get('hits')}, dropped {a.get('dropped')}, "
              f"events {rep.get('count', 0)}{extra}")
if bt_p50 and "lat" in stats and (stats["lat"].get("report") or {}).get("p50") is not None:
    d = float(stats["lat"]["report"]["p50"])
    print(f"  p50 diagnose - bpftrace: {(d - float(bt_p50)) / 1000:+.2f} us")
PY
