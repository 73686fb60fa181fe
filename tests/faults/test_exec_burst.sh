# The last events before an exec (issue 10): the reexec fixture calls work(i, 0) ITERS times
# in a tight loop and re-executes itself at once, GENS generations, while a jump probe sits on
# work(): a `log` of $arg1 (a record per call) or an `incr` (counted in the target, no
# record). Every call of every generation must reach the daemon, the last microseconds before
# each exec included: the (shared, default) ring is a memfd the daemon maps too, so it outlives the old image
# and is drained once more at the exec stop. With a 64 KiB ring (`drops`: a sub-ring holds
# ~170 of the 2,000 records of a burst) the hits stay exact and every call is either
# delivered once or counted as dropped, summed over the images. Leader exec and exec from a
# second thread (its tid becomes the leader's), -O0 and -O2. The target's results stay right
# and it exits 0.
source "$(dirname "$0")/lib.sh"

GENS=6
ITERS=2000
builds=(O0-pie O2-pie O2-nopie O0-nopie)
trials=$(( (FAULT_TRIALS + 3) / 4 ))
[ "$trials" -lt 4 ] && trials=4
ok=0
for trial in $(seq "$trials"); do
	i=$((trial - 1))
	build=${builds[i % 4]}
	mode=$([ $(( (i / 2) % 2 )) = 1 ] && echo thread || echo leader)
	kinds=(log log incr drops)
	kind=${kinds[(i + i / 4) % 4]}
	what="trial $trial ($build, $mode exec, $kind)"
	ring=$([ "$kind" = drops ] && echo "--ring-kib 64")
	start_daemon --foreground $NOGOV $ring # the log's events on its stdout
	rm -f "$T/x.in" "$T/x.out"
	start_fixture x "$DIAG_FIXTURE_DIR/reexec-$build" $GENS $ITERS 0 1 "$mode"
	req "{\"cmd\":\"attach\",\"pid\":$x_pid}" > /dev/null
	custom=$([ "$kind" = incr ] && echo '{}' || echo '{"format":"b {value}"}')
	type=$([ "$kind" = incr ] && echo incr || echo log)
	r=$(req "{\"cmd\":\"add\",\"spec\":{\"id\":\"b\",\"target\":\"work\",\"instrument\":{\"type\":\"$type\",\"name\":\"b\",\"value\":\"\$arg1\",\"custom\":$custom}}}")
	path=$(echo "$r" | jget "j['spec']['applied']['$(hostname):$x_pid']['instances'][0]['path']")
	expect_eq "$path" jump "$what: the probe is a jump"
	fixture_go x
	line=$(fixture_line x)
	wait "$x_pid"
	rc=$?
	hits=$(hits_of b)
	dropped=$(req '{"cmd":"stats","id":"b"}' | jget "j['stats'][0]['dropped']")
	applied_dropped=$(req '{"cmd":"list"}' | jget "j['specs'][0]['applied']['$(hostname):$x_pid']['dropped']")
	if [ "$kind" != incr ]; then
		# each value 0 .. ITERS-1 once per generation (at most, with drops), nothing else;
		# what is missing is what was dropped
		got=$(python3 - "$DOUT" "$GENS" "$ITERS" "$dropped" <<'PY'
import collections, sys
seen = collections.Counter()
for l in open(sys.argv[1]):
    if l.startswith("b "):
        seen[l.split()[1]] += 1
gens, iters, dropped = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
wrong = [v for v in map(str, range(iters)) if seen[v] > gens or (not dropped and seen[v] != gens)]
extra = set(seen) - set(map(str, range(iters)))
print("events+dropped=%d wrong=%d extra=%d" % (sum(seen.values()) + dropped, len(wrong), len(extra)))
PY
)
	else
		got="events+dropped=$((GENS * ITERS)) wrong=0 extra=0" # counted: hits is the whole story
	fi
	want="events+dropped=$((GENS * ITERS)) wrong=0 extra=0"
	# a burst into a 64 KiB ring drops most of its records; the default ring drops none
	if [ "$kind" = drops ]; then drops_ok=$([ "$dropped" -gt 0 ] && echo yes); else drops_ok=$([ "$dropped" = 0 ] && echo yes); fi
	if [ "$rc" = 0 ] && [ "$line" = "done gens=$GENS bad=0" ] && [ "$hits" = $((GENS * ITERS)) ] &&
		[ "$drops_ok" = yes ] && [ "$applied_dropped" = "$dropped" ] && [ "$got" = "$want" ]; then
		ok=$((ok + 1))
		pass "$what: $hits hits, $dropped dropped, $got"
	else
		fail "$what: exit $rc, [$line], $hits hits, $dropped dropped (applied $applied_dropped), $got (want 0, done gens=$GENS bad=0, $((GENS * ITERS)) hits, $want)"
	fi
	expect_eq "$(serving)" True "$what: daemon serving"
	stop_daemon || fail "$what: daemon exit status $?"
done
figure "target execs right after a burst of hits: every event of every image delivered" "$trials" "$ok" 0 0
finish
