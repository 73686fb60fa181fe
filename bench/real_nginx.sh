#!/usr/bin/env bash
# Issue 10 on a real program: nginx (Debian's build; ngx_http_process_request is in .dynsym,
# so no DWARF is needed for a return-latency probe), 2 workers serving a small static file
# under `ab -k -c CLIENTS`. Measures, one after another on the same server:
#   untraced requests/s
#   diagnose: a return probe on ngx_http_process_request, $elapsed into a hist, in both workers
#   bpftrace: its uprobe + uretprobe pair on the same function, lhist of the latency
# and prints requests/s of each, the cost against untraced (target: diagnose < 10%), the path
# of each instance, and both p50s (target: within 2 us). Installs nginx and apache2-utils
# if missing. usage: bench/real_nginx.sh [BUILD_DIR]   (env REQUESTS=200000 CLIENTS=20 PORT=8089)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_setup "${1:-build}" diagnose-nginx
REQUESTS=${REQUESTS:-200000}
CLIENTS=${CLIENTS:-20}
PORT=${PORT:-8089}
command -v nginx >/dev/null && command -v ab >/dev/null ||
	DEBIAN_FRONTEND=noninteractive apt-get install -y nginx apache2-utils >/dev/null
NGINX=$(command -v nginx)
FUNC=ngx_http_process_request

mkdir -p "$WORK/html" "$WORK/logs"
echo "hello from nginx" >"$WORK/html/index.html"
cat >"$WORK/nginx.conf" <<EOF
worker_processes 2;
pid $WORK/nginx.pid;
error_log $WORK/logs/error.log;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path $WORK/tmp; proxy_temp_path $WORK/tmp; fastcgi_temp_path $WORK/tmp;
	uwsgi_temp_path $WORK/tmp; scgi_temp_path $WORK/tmp;
	server { listen 127.0.0.1:$PORT; root $WORK/html; }
}
EOF
mkdir -p "$WORK/tmp"
"$NGINX" -c "$WORK/nginx.conf" -p "$WORK" -g 'daemon off;' 2>"$WORK/nginx.err" &
NPID=$!
until [ "$(pgrep -P "$NPID" | wc -l)" -ge 2 ]; do sleep 0.05; done
WORKERS=$(pgrep -P "$NPID" | tr '\n' ' ')
until curl -s "http://127.0.0.1:$PORT/" >/dev/null 2>&1 || ab -n 1 "http://127.0.0.1:$PORT/" >/dev/null 2>&1; do sleep 0.05; done
rps() { ab -k -c "$CLIENTS" -n "$REQUESTS" "http://127.0.0.1:$PORT/" 2>/dev/null | awk '/^Requests per second/ {print $4}'; }
ctl() { "$CTL" --socket "$WORK/sock" "$@"; }

rps >/dev/null # warm up
base=$(rps)
echo "nginx $("$NGINX" -v 2>&1 | sed 's/.*\///') master $NPID, workers $WORKERS: untraced $base requests/s (ab -k -c $CLIENTS -n $REQUESTS)"

pids=()
for w in $WORKERS; do pids+=(--pid "$w"); done
"$DIAGNOSED" "${pids[@]}" --socket "$WORK/sock" --store "$WORK/specs.json" \
	--plugin-dir "$BUILD/plugins" --max-stopped-percent 0 >"$WORK/d.out" 2>"$WORK/d.err" &
DPID=$!
until [ -S "$WORK/sock" ]; do sleep 0.01; done
ctl add-probe "${pids[@]}" --target "$FUNC" --type hist --name lat --id lat --event return \
	--value '$elapsed' >/dev/null 2>"$WORK/e1" || cat "$WORK/e1"
traced=$(rps)
ctl --json list >"$WORK/list.json"
ctl --json stats lat >"$WORK/stats.json"
kill -TERM "$DPID"; wait "$DPID" || true
base2=$(rps) # untraced again: the server's own drift

bt_rps="" bt_p50=""
if command -v bpftrace >/dev/null; then
	bpftrace -e "uprobe:$NGINX:$FUNC { @s[tid] = nsecs; }
		uretprobe:$NGINX:$FUNC /@s[tid]/ { @h = lhist(nsecs - @s[tid], 0, 200000, 250); delete(@s[tid]); }" \
		>"$WORK/bt.out" 2>&1 &
	bpid=$!
	until grep -q Attaching "$WORK/bt.out" 2>/dev/null; do sleep 0.05; done
	sleep 0.3
	bt_rps=$(rps)
	kill -INT "$bpid"; wait "$bpid" || true
	bt_p50=$(python3 "$(dirname "$0")/hist_p50.py" "$WORK/bt.out")
fi
kill -TERM "$NPID"; wait "$NPID" || true

python3 - "$WORK" "$base" "$base2" "$traced" "$bt_rps" "$bt_p50" <<'PY'
import json, sys
work, base, base2, traced, bt_rps, bt_p50 = sys.argv[1:]
ref = (float(base) + float(base2)) / 2
print(f"untraced: {base} then {base2} requests/s (mean {ref:.0f})")
specs = json.load(open(work + "/list.json"))["specs"]
st = (json.load(open(work + "/stats.json"))["stats"] or [{}])[0]
rep = st.get("report") or {}
paths = sorted({i.get("path", "skipped") for s in specs for a in s["applied"].values()
                for i in a.get("instances", [])})
errs = sorted({a["error"] for s in specs for a in s["applied"].values() if a.get("error")})
cost = 100 * (1 - float(traced) / ref)
print(f"diagnose return hist: {traced} requests/s, cost {cost:.1f}% (target < 10%), "
      f"paths {','.join(paths) or '-'}, events {rep.get('count', 0)}, p50 {rep.get('p50')} ns"
      + (f"; errors: {'; '.join(errs)}" if errs else ""))
if bt_rps:
    print(f"bpftrace uprobe+uretprobe: {bt_rps} requests/s, cost {100 * (1 - float(bt_rps) / ref):.1f}%, p50 {bt_p50 or '?'} ns")
    if bt_p50 and rep.get("p50") is not None:
        print(f"p50 diagnose - bpftrace: {(float(rep['p50']) - float(bt_p50)) / 1000:+.2f} us (target within 2 us)")
PY
