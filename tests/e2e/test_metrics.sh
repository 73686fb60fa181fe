# --metrics-listen: the daemon's Prometheus page, read by curl and scraped by Debian's real
# `prometheus` server on loopback. An incr probe shows as a counter series that grows with the
# hits, a hist probe as _bucket{le=...}, _sum and _count series, hits per process carry the pid,
# `promtool check metrics` accepts the page, and Prometheus's HTTP API answers queries on the
# scraped series. A bad address or a port in use stops the daemon at start with the reason.
source "$(dirname "$0")/lib.sh"
command -v prometheus >/dev/null || die "prometheus is not installed (scripts/deps.sh installs it)"
command -v promtool >/dev/null || die "promtool is not installed"

start_daemon --metrics-listen 127.0.0.1:0
port=$(sed -n 's/.*metrics: serving GET \/metrics on 127.0.0.1:0 (port \([0-9]*\)).*/\1/p' "$DERR")
[ -n "$port" ] || die "no metrics port in the daemon's log: $(cat "$DERR")"
URL=http://127.0.0.1:$port/metrics
start_fixture w "$DIAG_FIXTURE_DIR/work-O2-pie" 2 0
req "{\"cmd\":\"attach\",\"pid\":$w_pid}" > /dev/null
ctl add-probe --pid "$w_pid" --target work --type incr --name reqs --id reqs >/dev/null ||
	fail "add the incr probe"
ctl add-probe --pid "$w_pid" --target work --type hist --name sizes --id sizes --value '$arg1' \
	--custom '{"unit":"bytes"}' >/dev/null || fail "add the hist probe"
fixture_go w
ctl wait reqs --hits 1000 --timeout 60 >/dev/null || fail "reqs reached 1000 hits"

series() { curl -s "$URL" | sed -n "s/^$1 //p"; }
host=$(hostname)
c1=$(series "diagnose_incr_total{host=\"$host\",id=\"reqs\",name=\"reqs\"}")
ctl wait reqs --hits $((${c1%.*} + 1000)) --timeout 60 >/dev/null || fail "more hits"
c2=$(series "diagnose_incr_total{host=\"$host\",id=\"reqs\",name=\"reqs\"}")
[ -n "$c1" ] && [ "${c2:-0}" -gt "$c1" ] && pass "the incr counter grows with the hits ($c1 -> $c2)" ||
	fail "incr counter: [$c1] then [$c2]"
page=$(curl -s -D "$T/headers" "$URL")
expect_contains "$(cat "$T/headers")" "Content-Type: text/plain; version=0.0.4" "Prometheus content type"
expect_contains "$page" "# TYPE diagnose_hist histogram" "the hist is a histogram family"
expect_contains "$page" "diagnose_hist_bucket{host=\"$host\",id=\"sizes\",name=\"sizes\",unit=\"bytes\",le=\"+Inf\"}" "hist +Inf bucket"
expect_contains "$page" "diagnose_hist_sum{host=\"$host\",id=\"sizes\"" "hist _sum"
expect_contains "$page" "diagnose_hist_count{host=\"$host\",id=\"sizes\"" "hist _count"
expect_contains "$page" "diagnose_probe_hits_total{host=\"$host\",id=\"reqs\",name=\"reqs\",pid=\"$w_pid\"}" "hits per process, by pid"
expect_contains "$page" "diagnose_processes_traced{host=\"$host\"} 1" "the daemon's own figures"
out=$(echo "$page" | promtool check metrics 2>&1) && [ -z "$out" ] && pass "promtool check metrics: clean" ||
	fail "promtool check metrics: $out"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/other")
expect_eq "$code" 404 "another path is 404"

# A real Prometheus scrapes the page; its query API sees the probe's series.
ppp=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$T/prom.yml" <<YML
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: diagnose
    static_configs: [{targets: ['127.0.0.1:$port']}]
YML
prometheus --config.file="$T/prom.yml" --storage.tsdb.path="$T/tsdb" \
	--web.listen-address="127.0.0.1:$ppp" > "$T/prom.log" 2>&1 &
PROM=$!
FIXTURE_PIDS+=($PROM)
query() {
	curl -s "http://127.0.0.1:$ppp/api/v1/query" --data-urlencode "query=$1" |
		python3 -c 'import json,sys
try: r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")
except Exception: print("")'
}
got=
for _ in $(seq 300); do # bounded poll: Prometheus scrapes on its own schedule
	got=$(query 'diagnose_incr_total{id="reqs"}')
	[ -n "$got" ] && [ "${got%.*}" -gt 0 ] && break
	sleep 0.1
done
[ -n "$got" ] && [ "${got%.*}" -gt 0 ] && pass "Prometheus scraped the counter ($got)" ||
	fail "Prometheus query: [$got]; $(tail -5 "$T/prom.log")"
expect_eq "$(query 'up{job="diagnose"}')" 1 "Prometheus sees the target up"
h=$(query 'diagnose_hist_count{id="sizes"}')
[ -n "$h" ] && [ "${h%.*}" -gt 0 ] && pass "Prometheus has the histogram ($h)" || fail "hist count: [$h]"
kill "$PROM"; wait "$PROM" 2>/dev/null
stop_daemon || fail "daemon exit status"

# Refusals at start: a bad address, a port in use.
"$DIAGNOSED" --socket "$T/s2" --store "$T/st2" --pid "$w_pid" --metrics-listen localhost:9464 \
	> /dev/null 2> "$T/bad.err" && fail "a bad --metrics-listen was accepted"
expect_contains "$(cat "$T/bad.err")" "--metrics-listen localhost:9464: 'localhost' is not an IPv4 address" "bad address refused"
python3 -c 'import socket,time,sys; s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(120)' \
	> "$T/busy.port" &
FIXTURE_PIDS+=($!)
for _ in $(seq 100); do [ -s "$T/busy.port" ] && break; sleep 0.05; done
busy=$(cat "$T/busy.port")
"$DIAGNOSED" --socket "$T/s3" --store "$T/st3" --pid "$w_pid" --metrics-listen "127.0.0.1:$busy" \
	> /dev/null 2> "$T/busy.err" && fail "a port in use was accepted"
expect_contains "$(cat "$T/busy.err")" "cannot listen" "port in use refused"
kill "$w_pid"
finish
