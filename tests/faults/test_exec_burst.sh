# The last events before an exec (issue 10): the reexec fixture calls work(i, 0) ITERS times
# in a tight loop and re-executes itself at once, GENS generations, while a jump probe sits on
# work(): a `log` of $arg1 (a record per call) or an `incr` (counted in the target, no
# record). Every call of every generation must reach the daemon, the last microseconds before
# each exec included: the ring is a memfd the daemon maps too, so it outlives the old image
# and is drained once more at the exec stop. Leader exec and exec from a second thread (its
# tid becomes the leader's), -O0 and -O2. The target's results stay right and it exits 0.
source "$(dirname "$0")/lib.sh"

GENS=6
ITERS=2000
builds=(O0-pie O2-pie O2-nopie O0-nopie)
trials=$(( (FAULT_TRIALS + 1) / 2 ))
[ "$trials" -lt 4 ] && trials=4
ok=0
for trial in $(seq "$trials"); do
	i=$((trial - 1))
	build=${builds[i % 4]}
	mode=$([ $(( (i / 2) % 2 )) = 1 ] && echo thread || echo leader)
	kind=$([ $((i % 3)) = 2 ] && echo incr || echo log)
	what="trial $trial ($build, $mode exec, $kind)"
	start_daemon --foreground $NOGOV # the log's events on its stdout
	rm -f "$T/x.in" "$T/x.out"
	start_fixture x "$DIAG_FIXTURE_DIR/reexec-$build" $GENS $ITERS 0 1 "$mode"
	req "{\"cmd\":\"attach\",\"pid\":$x_pid}" > /dev/null
	custom=$([ "$kind" = log ] && echo '{"format":"b {value}"}' || echo '{}')
	r=$(req "{\"cmd\":\"add\",\"spec\":{\"id\":\"b\",\"target\":\"work\",\"instrument\":{\"type\":\"$kind\",\"name\":\"b\",\"value\":\"\$arg1\",\"custom\":$custom}}}")
	path=$(echo "$r" | jget "j['spec']['applied']['$(hostname):$x_pid']['instances'][0]['path']")
	expect_eq "$path" jump "$what: the probe is a jump"
	fixture_go x
	line=$(fixture_line x)
	wait "$x_pid"
	rc=$?
	hits=$(hits_of b)
	dropped=$(req '{"cmd":"stats","id":"b"}' | jget "j['stats'][0]['dropped']")
	if [ "$kind" = log ]; then
		# each value 0 .. ITERS-1 once per generation, nothing else
		got=$(python3 - "$DOUT" "$GENS" "$ITERS" <<'PY'
import collections, sys
seen = collections.Counter()
for l in open(sys.argv[1]):
    if l.startswith("b "):
        seen[l.split()[1]] += 1
gens, iters = int(sys.argv[2]), int(sys.argv[3])
wrong = [v for v in map(str, range(iters)) if seen[v] != gens]
extra = set(seen) - set(map(str, range(iters)))
print("events=%d wrong=%d extra=%d" % (sum(seen.values()), len(wrong), len(extra)))
PY
)
	else
		got="events=$((GENS * ITERS)) wrong=0 extra=0" # counted: hits is the whole story
	fi
	want="events=$((GENS * ITERS)) wrong=0 extra=0"
	if [ "$rc" = 0 ] && [ "$line" = "done gens=$GENS bad=0" ] && [ "$hits" = $((GENS * ITERS)) ] &&
		[ "$dropped" = 0 ] && [ "$got" = "$want" ]; then
		ok=$((ok + 1))
		pass "$what: $hits hits, $got"
	else
		fail "$what: exit $rc, [$line], $hits hits, $dropped dropped, $got (want 0, done gens=$GENS bad=0, $((GENS * ITERS)) hits, 0 dropped, $want)"
	fi
	expect_eq "$(serving)" True "$what: daemon serving"
	stop_daemon || fail "$what: daemon exit status $?"
done
figure "target execs right after a burst of hits: every event of every image delivered" "$trials" "$ok" 0 0
finish
