# $comm is the name of the thread that hit, as /proc/PID/task/TID/comm gives it, on the jump
# path (the engine reads it at the drain) and on the int3 path (DIAG_NO_FASTPATH=1). The work
# fixture's threads name themselves worker-0 and worker-1.
source "$(dirname "$0")/lib.sh"
for path in jump int3; do
	gov="--max-stopped-ms-per-sec 0 --max-total-stopped-ms-per-sec 0 --max-stopped-percent 0"
	if [ $path = int3 ]; then DIAG_NO_FASTPATH=1 start_daemon $gov; else start_daemon $gov; fi
	rm -f "$T/w.in" "$T/w.out"
	start_fixture w "$DIAG_FIXTURE_DIR/work-O2-pie" 2 0 named
	req "{\"cmd\":\"attach\",\"pid\":$w_pid}" > /dev/null
	fixture_go w
	r=$(req '{"cmd":"add","spec":{"id":"c","target":"work","instrument":{"type":"log","name":"c","value":"$comm"}}}')
	got=$(echo "$r" | jget "j['spec']['applied']['$(hostname):$w_pid']['instances'][0]['path']")
	expect_eq "$got" $path "$path: placed on the $path path"
	ev=$($DIAGREQ "$SOCK" --tail 40 '{"cmd":"tail","id":"c"}' | tail -40)
	bad=$(echo "$ev" | python3 -c "
import json, sys
bad, names = [], set()
for line in sys.stdin:
    e = json.loads(line)['event']
    want = open('/proc/%d/task/%d/comm' % (e['pid'], e['tid'])).read().rstrip('\n')
    names.add(want)
    if e['text'] != '\"%s\"' % want:
        bad.append((e['tid'], e['text'], want))
print(bad if bad else 'none', names <= {'worker-0', 'worker-1'} and len(names) > 0)")
	expect_eq "$bad" "none True" "$path: every event's \$comm is its thread's name (worker-N)"
	stop_daemon || fail "$path: daemon exit status"
	kill "$w_pid"
done
finish
