# StatsD output (issue 13): incr and hist probes send to a real UDP receiver on loopback,
# under load from 4 threads on the fast path; the counts sum to the hits, every value of the
# histogram arrives as a `|h` line, tags name probe and pid, and datagrams stay within one
# frame; the last counts before a pause arrive without waiting for another event. The daemon's
# --statsd is the default for specs without custom.statsd.
source "$(dirname "$0")/lib.sh"

python3 - "$T/statsd.port" "$T/statsd.lines" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.bind(("127.0.0.1", 0))
open(sys.argv[1] + ".tmp", "w").write(str(s.getsockname()[1]))
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as out:
    while True:
        d = s.recv(65536)
        if len(d) > 1432: out.write("OVERSIZE %d\n" % len(d))
        out.write(d.decode() + "\n")
PY
RECV=$!
for _ in $(seq 100); do [ -s "$T/statsd.port" ] && break; sleep 0.05; done
PORT=$(cat "$T/statsd.port")
[ -n "$PORT" ] || die "the UDP receiver did not start"

start_fixture fx "$DIAG_FIXTURE_DIR/work-O2-pie" 4 2000
start_daemon --pid "$fx_pid" --statsd "127.0.0.1:$PORT"
add cnt work incr > /dev/null
req '{"cmd":"add","spec":{"id":"lat","target":"work","instrument":{"type":"hist","name":"lat","value":"$arg1","event":"call","custom":{"statsd_tags":true}}}}' > /dev/null
expect_eq "$(state_of cnt "$fx_pid")" applied "incr applied"
expect_eq "$(state_of lat "$fx_pid")" applied "hist applied"
fixture_go fx
expect_contains "$(fixture_line fx)" "sum" "the fixture ran"
ctl wait cnt --hits 8000 --timeout 30 > /dev/null
ctl wait lat --hits 8000 --timeout 30 > /dev/null
# No report, no further event: what the plugins held back for batching leaves when the
# event stream pauses (the queue worker's idle call, ABI 2), within a few hundred ms.
count() { python3 - "$T/statsd.lines" "$1" <<'PY'
import sys, re
total = 0; values = 0
for line in open(sys.argv[1]):
    line = line.strip()
    if sys.argv[2] == "cnt":
        m = re.fullmatch(r"cnt:(\d+)\|c", line)
        if m: total += int(m.group(1))
    elif re.fullmatch(r"lat:\d+\|h\|#probe:lat,pid:\d+", line):
        values += 1
print(total if sys.argv[2] == "cnt" else values)
PY
}
for _ in $(seq 200); do [ "$(count cnt)" = 8000 ] && [ "$(count lat)" = 8000 ] && break; sleep 0.05; done
expect_eq "$(count cnt)" 8000 "StatsD: the counts sum to every hit"
expect_eq "$(count lat)" 8000 "StatsD: every histogram value, tagged with probe and pid"
expect_eq "$(grep -c OVERSIZE "$T/statsd.lines")" 0 "StatsD: every datagram within 1432 bytes"
expect_eq "$(hits_of cnt)" 8000 "the probe's own count is exact too"
kill "$RECV"
finish
