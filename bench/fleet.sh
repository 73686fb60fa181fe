#!/bin/bash
# bench/fleet.sh: the shared store (issue 12, docs/fleet.md) on one machine. HOSTS daemons,
# each in a PID namespace of its own with a paced fixture (1,000 calls/s), follow one
# redis-server on a loopback port. Reports:
#   - propagation: from `diagnosectl --store add-probe` starting to the spec applied on every
#     host (each daemon's own list over its socket), and the same for remove-probe; median and
#     max over TRIALS changes (the client's own start, ~10 ms, included);
#   - store traffic per daemon from MONITOR (commands and bytes of arguments, per connection
#     name "diagnosed:HOST"): at rest over REST seconds (default heartbeat 5 s), and per change.
# usage: bench/fleet.sh [BUILD_DIR] (env HOSTS=3 TRIALS=10 REST=30)
set -u
cd "$(dirname "$0")/.." || exit 1
. bench/lib.sh
bench_setup "${1:-build}" diag-fleet-bench
HOSTS=${HOSTS:-3} TRIALS=${TRIALS:-10} REST=${REST:-30}
FX=$BUILD/fixtures/paced-O0-pie
[ -x "$FX" ] || { echo "no $FX (build the fixtures target)"; exit 1; }
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" > "$WORK/redis.log" 2>&1 &
until redis-cli -p "$PORT" ping > /dev/null 2>&1; do sleep 0.05; done
URL=redis://127.0.0.1:$PORT
PIDS=()
for i in $(seq "$HOSTS"); do
	h=host-$i
	mkfifo "$WORK/$h.in"
	exec {fd}<> "$WORK/$h.in"
	echo go >&"$fd"
	unshare --pid --fork --mount-proc bash -c '
		"$1" < "$2" > "$3" & fx=$!
		until grep -q ready "$3" 2>/dev/null; do sleep 0.05; done
		export DIAG_JOURNAL_DIR=$4; shift 4
		exec "$@" --pid "$fx"' host "$FX" "$WORK/$h.in" "$WORK/$h.fx" "$WORK/$h.journal" \
		"$DIAGNOSED" --socket "$WORK/$h.sock" --store "$URL" --host-name "$h" \
		> "$WORK/$h.out" 2> "$WORK/$h.err" &
	PIDS+=($!)
done
for i in $(seq "$HOSTS"); do
	until [ -S "$WORK/host-$i.sock" ] && "$CTL" --socket "$WORK/host-$i.sock" --json status 2>/dev/null | grep -q '"connected":true'; do sleep 0.05; done
done
stop_all() {
	for u in "${PIDS[@]}"; do kill "$(cat /proc/$u/task/$u/children 2>/dev/null)" 2>/dev/null; done
	wait "${PIDS[@]}" 2>/dev/null
	redis-cli -p "$PORT" shutdown nosave > /dev/null 2>&1
}
trap 'stop_all; rm -rf "$WORK"' EXIT

# MONITOR over a window: per daemon connection name, commands and argument bytes
monitor_start() { redis-cli -p "$PORT" MONITOR > "$WORK/mon.$1" & MON=$!; sleep 0.2; }
monitor_stop() { kill "$MON"; wait "$MON" 2>/dev/null; }
monitor_report() { # WHAT SECONDS_OR_CHANGES UNIT
	redis-cli -p "$PORT" CLIENT LIST > "$WORK/clients"
	python3 - "$WORK/mon.$1" "$WORK/clients" "$2" "$3" "$1" <<'PY'
import re, sys
mon, clients, div, unit, what = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5]
names = {}
for line in open(clients):
    f = dict(kv.split('=', 1) for kv in line.split() if '=' in kv)
    if f.get('name', '').startswith('diagnosed:'):
        names[f['addr']] = f['name']
per = {}
for line in open(mon, errors='replace'):
    m = re.match(r'[\d.]+ \[\d+ ([^\]]+)\] (.*)', line)
    if not m or m.group(1) not in names:
        continue
    n = names[m.group(1)]
    c = per.setdefault(n, {'cmds': 0, 'bytes': 0, 'kinds': {}})
    c['cmds'] += 1
    c['bytes'] += len(m.group(2))
    k = m.group(2).split(' ', 1)[0].strip('"').upper()
    c['kinds'][k] = c['kinds'].get(k, 0) + 1
hosts = sorted(set(n.split(':')[1] for n in names.values()))
tot_c = sum(v['cmds'] for v in per.values()); tot_b = sum(v['bytes'] for v in per.values())
nh = max(len(hosts), 1)
kinds = {}
for v in per.values():
    for k, x in v['kinds'].items(): kinds[k] = kinds.get(k, 0) + x
print(f"{what}: per daemon {tot_c / nh / div:.2f} commands and {tot_b / nh / div:.0f} bytes of arguments per {unit}"
      f" ({', '.join(f'{k} {x / nh / div:.2f}' for k, x in sorted(kinds.items()))})")
PY
}

# propagation
python3 - "$CTL" "$URL" "$WORK" "$HOSTS" "$TRIALS" <<'PY'
import json, socket, statistics, subprocess, sys, time
ctl, url, work, hosts, trials = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
def state(h, sid):
    s = socket.socket(socket.AF_UNIX); s.connect(f"{work}/host-{h}.sock")
    s.sendall(b'{"cmd":"list"}\n'); f = s.makefile('rb'); j = json.loads(f.readline()); s.close()
    for sp in j['specs']:
        if sp['id'] == sid:
            return sp['applied'].get(f'host-{h}:2', {}).get('state', 'none')
    return 'absent'
def until(sid, want):
    t0 = time.monotonic(); left = set(range(1, hosts + 1))
    while left and time.monotonic() - t0 < 30:
        left = {h for h in left if state(h, sid) != want}
        if left: time.sleep(0.002)
    return None if left else time.monotonic()
add, rm = [], []
for k in range(trials):
    sid = f'bench{k}'
    t0 = time.monotonic()
    subprocess.run([ctl, '--store', url, 'add-probe', '--target', 'handle', '--type', 'incr', '--name', sid, '--id', sid], check=True, stdout=subprocess.DEVNULL)
    t = until(sid, 'applied'); add.append((t - t0) * 1000 if t else float('inf'))
    t0 = time.monotonic()
    subprocess.run([ctl, '--store', url, 'remove-probe', sid], check=True)
    t = until(sid, 'absent'); rm.append((t - t0) * 1000 if t else float('inf'))
print(f"propagation over {hosts} hosts, {trials} changes: add -> applied on every host: median {statistics.median(add):.0f} ms, max {max(add):.0f} ms; "
      f"remove -> gone on every host: median {statistics.median(rm):.0f} ms, max {max(rm):.0f} ms")
PY

# traffic per change: TRIALS adds and removes of a spec every host applies
monitor_start change
for k in $(seq "$TRIALS"); do
	"$CTL" --store "$URL" add-probe --target handle --type incr --name "c$k" --id "c$k" > /dev/null
	until [ "$(redis-cli -p "$PORT" HLEN "diagnose:applied:c$k")" -ge "$HOSTS" ]; do sleep 0.02; done
	"$CTL" --store "$URL" remove-probe "c$k"
done
sleep 0.5
monitor_stop
monitor_report change "$((TRIALS * 2))" change

# at rest: one spec live everywhere, nothing changes
"$CTL" --store "$URL" add-probe --target handle --type incr --name rest --id rest > /dev/null
sleep 6
monitor_start rest
sleep "$REST"
monitor_stop
monitor_report rest "$REST" second
