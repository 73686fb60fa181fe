# A daemon that stops draining (SIGSTOP here; a long operation alike) lets the heartbeat lapse:
# the trampolines stop recording, and every hit from then on is counted as dropped, so that
# applied.hits (events + dropped) equals the calls the target made once it is done (before, the
# hits of the lapse were in neither: ~half of them). Jump path, 2 threads calling `work` 40 million times each
# without pause, a probe with no condition.
source "$(dirname "$0")/lib.sh"
start_daemon --max-stopped-ms-per-sec 0 --max-total-stopped-ms-per-sec 0 --max-stopped-percent 0
N=${N:-40000000} # the threads must outlast a 0.8 s stall at ~20 M calls/s each
start_fixture w "$DIAG_FIXTURE_DIR/work-O2-pie" 2 $N linger
req "{\"cmd\":\"attach\",\"pid\":$w_pid}" > /dev/null
r=$(add s work incr)
expect_eq "$(echo "$r" | jget "j['spec']['applied']['$(hostname):$w_pid']['instances'][0]['path']")" jump "placed on a jump"
fixture_go w
counts() { # hits dropped of spec s in the fixture
	req '{"cmd":"list"}' | python3 -c "
import json,sys
j=json.loads(sys.stdin.readline())
a=[a for s in j['specs'] if s['id']=='s' for k,a in s['applied'].items() if k.endswith(':$w_pid')][0]
print(a.get('hits',0), a.get('dropped',0))"
}
for _ in $(seq 100); do read -r h _ < <(counts); [ "$h" -gt 10000 ] && break; sleep 0.05; done
[ "$h" -gt 10000 ] || fail "the probe is not counting ($h hits)"
# the stall itself is what is tested: 0.8 s, four times the 200 ms heartbeat
kill -STOP "$DPID"
sleep 0.8
# the stall must end while the threads still call (else the lapse had no hit to count)
nt=$(ls /proc/"$w_pid"/task | wc -l)
kill -CONT "$DPID"
[ "$nt" -ge 3 ] || fail "the fixture's threads ended before the stall did: raise N (now $N)"
line=$(fixture_line w)
[[ "$line" == sum\ * ]] || fail "the fixture's calls did not end: '$line'"
# the counts settle once the daemon has drained the last records (a drain every <= 1 ms)
end=$((SECONDS + 20))
while [ $SECONDS -lt $end ]; do
	read -r h d < <(counts)
	[ "$h" -ge $((2 * N)) ] && break
	sleep 0.1
done
echo "calls $((2 * N)) hits $h dropped $d (unaccounted $((2 * N - h)))"
[ "$d" -gt 0 ] && pass "the stall's hits are dropped ($d)" || fail "no drop counted over a 0.8 s stall"
# Exact in most runs; under load 9-14, four runs of ten left 1.4%, 1.8%, 3.7% and 7.9%
# unaccounted by a path not found yet (docs/architecture.md, known limits). Before the fix
# about half the calls were (46% in the run against main's daemon): the bound keeps that
# failure.
[ $((2 * N - h)) -le $((2 * N / 5)) ] && pass "every call but at most 20% is an event or a drop" ||
	fail "calls unaccounted: $((2 * N - h)) of $((2 * N)) (hits $h)"
fixture_go w
stop_daemon || fail "daemon exit status"
finish
