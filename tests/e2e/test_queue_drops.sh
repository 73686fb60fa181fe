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
# the fixture calls without end until both have refused (a sanitizer build is many times
# slower: a fixed number of calls may end before the queue fills), then it is stopped, so
# that its hits hold still while the rest is drained
start_fixture w "$DIAG_FIXTURE_DIR/work-O2-pie" 2 0
req "{\"cmd\":\"attach\",\"pid\":$w_pid}" > /dev/null
r=$(add q work log)
expect_eq "$(echo "$r" | jget "j['spec']['applied']['$(hostname):$w_pid']['instances'][0]['path']")" jump "placed on a jump"
fixture_go w
counts() { # hits dropped of spec q in the fixture; the ring's and the queue's drops (status)
	req '{"cmd":"list"}' | python3 -c "
import json,sys
j=json.loads(sys.stdin.readline())
a=[a for s in j['specs'] if s['id']=='q' for k,a in s['applied'].items() if k.endswith(':$w_pid')][0]
print(a.get('hits',0), a.get('dropped',0), end=' ')"
	req '{"cmd":"status"}' | jget "j['dropped']['ring'], j['dropped']['queue'], j['queue']['pushed'], j['queue']['fired']" |
		tr -d '(),'
}
# the queue refuses once the worker has been held long enough: a bounded poll
end=$((SECONDS + 120))
while [ $SECONDS -lt $end ]; do
	read -r h d ring queue pushed fired < <(counts)
	[ "$queue" -gt 0 ] && [ "$ring" -gt 0 ] && break
	sleep 0.1
done
[ "$ring" -gt 0 ] || fail "the 64 KiB ring refused nothing in 120 s"
[ "$queue" -gt 0 ] || fail "the queue refused nothing in 120 s while its worker was held"
kill -STOP "$w_pid"
# stopped: the hits hold still once every thread is in its group stop and the ring is drained
end=$((SECONDS + 30)) prev=
while [ $SECONDS -lt $end ]; do
	read -r h _ < <(counts)
	[ "$h" == "$prev" ] && break
	prev=$h
	sleep 0.3
done
# status names the sub-rings that refused: the fixture's 3 threads (main and 2 workers), and
# drops that are the ring's (the rest of the ring's count: records given up behind a writer
# stopped mid-record)
read -r nthreads subdrops < <(req '{"cmd":"status"}' | python3 -c "
import json,sys
j=json.loads(sys.stdin.readline())
t=[t for t in j['targets'] if t['pid']==$w_pid][0]
print(sum(s['threads'] for s in t['ring_subs']), sum(s['dropped'] for s in t['ring_subs']))")
read -r h d ring queue pushed fired < <(counts)
expect_eq "$nthreads" 3 "status: the sub-rings' threads are the fixture's"
[ "$subdrops" -gt 0 ] && [ "$subdrops" -le "$ring" ] ||
	fail "status: sub-ring drops $subdrops, not within the ring's $ring"
ctl status | grep -E "^$w_pid +3 +(shared|private); sub [0-9]+( \([0-9]+ threads\))?: [0-9]+ dropped" >/dev/null ||
	fail "diagnosectl status names the sub-rings that dropped: $(ctl status)"
kill -CONT "$catpid"
# every event pushed is written once the reader runs (the worker flushes when the queue is dry)
end=$((SECONDS + 60))
while [ $SECONDS -lt $end ]; do
	read -r h d ring queue pushed fired < <(counts)
	ev=$(grep -c '^Probe (q) = ' "$T/events.txt")
	[ "$fired" -ge "$pushed" ] && [ "$ev" -ge "$pushed" ] && [ $((ev + d)) -ge "$h" ] && break
	sleep 0.1
done
echo "hits $h dropped $d (ring $ring, queue $queue) events $ev"
[ "$h" -gt 0 ] || fail "no hits"
expect_eq "$((ev + d))" "$h" "events + applied.dropped is every hit"
expect_eq "$d" $((ring + queue)) "applied.dropped is the ring's refusals plus the queue's"
kill -CONT "$w_pid"
stop_daemon || fail "daemon exit status"
finish
