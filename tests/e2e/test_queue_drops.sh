# Drops in both places at once are each counted once: a small ring (--ring-kib 64) refuses
# hits of a jump probe called without pause, and a `log` whose stdout nobody reads (a FIFO
# whose reader is stopped) holds up the queue's worker until the queue refuses events too. Once
# the reader runs again and everything is out, applied.hits equals the calls and events +
# applied.dropped equals the calls, exactly. Before the fix, each event the queue refused hid
# one of the ring's refusals from applied (the manager took the ring's refusals as
# info.dropped - applied.dropped, and applied.dropped holds the queue's too).
source "$(dirname "$0")/lib.sh"
mkfifo "$T/events"
cat "$T/events" > "$T/events.txt" &
catpid=$!
FIXTURE_PIDS+=("$catpid")
# a stopped reader would keep the daemon's worker in write(2) at its exit
trap 'kill -CONT "$catpid" 2>/dev/null; cleanup' EXIT
DAEMON_STDOUT=$T/events start_daemon --foreground --ring-kib 64 --max-stopped-ms-per-sec 0 \
	--max-total-stopped-ms-per-sec 0 --max-stopped-percent 0
kill -STOP "$catpid"
N=${N:-4000000}
start_fixture w "$DIAG_FIXTURE_DIR/work-O2-pie" 2 "$N" linger
req "{\"cmd\":\"attach\",\"pid\":$w_pid}" > /dev/null
r=$(add q work log)
expect_eq "$(echo "$r" | jget "j['spec']['applied']['$(hostname):$w_pid']['instances'][0]['path']")" jump "placed on a jump"
fixture_go w
line=$(fixture_line w)
[[ "$line" == sum\ * ]] || fail "the fixture's calls did not end: '$line'"
counts() { # hits dropped of spec q in the fixture; the ring's and the queue's drops (status)
	req '{"cmd":"list"}' | python3 -c "
import json,sys
j=json.loads(sys.stdin.readline())
a=[a for s in j['specs'] if s['id']=='q' for k,a in s['applied'].items() if k.endswith(':$w_pid')][0]
print(a.get('hits',0), a.get('dropped',0), end=' ')"
	req '{"cmd":"status"}' | jget "j['dropped']['ring'], j['dropped']['queue'], j['queue']['pushed'], j['queue']['fired']" |
		tr -d '(),'
}
# the queue has refused once the worker has been held long enough: a bounded poll
for _ in $(seq 200); do
	read -r h d ring queue pushed fired < <(counts)
	[ "$queue" -gt 0 ] && [ "$h" -ge $((2 * N)) ] && break
	sleep 0.05
done
[ "$ring" -gt 0 ] || fail "the 64 KiB ring refused nothing: raise N (now $N)"
[ "$queue" -gt 0 ] || fail "the queue refused nothing while its worker was held: raise N (now $N)"
kill -CONT "$catpid"
# every event pushed is written once the reader runs (the worker flushes when the queue is dry)
end=$((SECONDS + 30))
while [ $SECONDS -lt $end ]; do
	read -r h d ring queue pushed fired < <(counts)
	ev=$(grep -c '^Probe (q) = ' "$T/events.txt")
	[ "$fired" -ge "$pushed" ] && [ "$ev" -ge "$pushed" ] && [ "$h" -ge $((2 * N)) ] && break
	sleep 0.1
done
echo "calls $((2 * N)) hits $h dropped $d (ring $ring, queue $queue) events $ev"
expect_eq "$h" $((2 * N)) "applied.hits is every call"
expect_eq "$((ev + d))" $((2 * N)) "events + applied.dropped is every call"
expect_eq "$d" $((ring + queue)) "applied.dropped is the ring's refusals plus the queue's"
fixture_go w
stop_daemon || fail "daemon exit status"
finish
