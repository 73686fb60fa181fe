# A target that re-executes itself in a loop while a probe sits on the first function each new
# image calls (issue 15, item 6): the probe is placed again at every exec stop and the new
# image reaches that function microseconds after it is resumed. Every trial varies the
# timings and the kind of probe: build (-O0/-O2, PIE or not), 1 or 4 threads, exec period,
# the exec from the leader or from another thread (its tid becomes the leader's), jump (incr
# of a register) or int3 (a pointer or a string read; or usleep in libc, pending at each exec
# stop and placed while main starts its threads), the fast path on or off
# (DIAG_NO_FASTPATH=1). The target must finish every generation with right results, exit 0,
# and the probe must have fired in every generation after the first.
source "$(dirname "$0")/lib.sh"
export DIAG_RING_SHARED=1 # shared rings (the default, said again): fork and exec with them

GENS=8
builds=(O0-pie O0-nopie O2-pie O2-nopie)
periods=(50 200 1000 5000)
kinds=(incr ptr str lib)
ok=0
for trial in $(seq "$FAULT_TRIALS"); do
	i=$((trial - 1))
	build=${builds[i % 4]}
	thr=$(( (i / 2) % 2 ? 4 : 1 ))
	per=${periods[(i / 3) % 4]}
	kind=${kinds[(i + i / 4) % 4]}
	mode=$([ $(( (i / 5) % 2 )) = 1 ] && echo thread || echo leader)
	nofast=$(( (i / 4) % 2 ))
	case $kind in
	incr) ty=incr v='$arg1' ;;
	ptr) ty=log v='*(long *)$rsp' ;;
	str) ty=log v='str($arg2)' ;;
	lib) ty=log v='*(long *)$rsp' ;; # an int3 in libc, pending at each exec stop
	esac
	# every other trial execs right after its hit (one work() call, PERIOD_US later): the
	# generation's records and counts must survive its exec (the ring is shared with the
	# daemon, drained once more at the exec stop); the others live >= 5 ms
	iters=$((i % 2 ? (per >= 250 ? 20 : 5000 / per) : 1))
	target=after_exec want=$((GENS - 1))
	[ $kind = lib ] && target=libc.so.6:usleep want=$((GENS * iters))
	what="trial $trial ($build, $thr threads, ${per}us, $mode exec, $kind, nofast=$nofast)"
	if [ "$nofast" = 1 ]; then DIAG_NO_FASTPATH=1 start_daemon $NOGOV; else start_daemon $NOGOV; fi
	rm -f "$T/x.in" "$T/x.out"
	start_fixture x "$DIAG_FIXTURE_DIR/reexec-$build" $GENS "$iters" "$per" "$thr" "$mode"
	req "{\"cmd\":\"attach\",\"pid\":$x_pid}" > /dev/null
	r=$(req "{\"cmd\":\"add\",\"spec\":{\"id\":\"a\",\"target\":\"$target\",\"instrument\":{\"type\":\"$ty\",\"name\":\"a\",\"value\":\"$v\"}}}")
	[ "$(echo "$r" | jget "j['ok']")" = True ] || fail "$what: add refused: $r"
	fixture_go x
	line=$(fixture_line x)
	wait "$x_pid"
	rc=$?
	hits=$(hits_of a)
	if [ "$rc" = 0 ] && [ "$line" = "done gens=$GENS bad=0" ] && [ "$hits" = "$want" ]; then
		ok=$((ok + 1))
	else
		fail "$what: exit $rc, [$line], $hits hits (want 0, done gens=$GENS bad=0, $want)"
	fi
	expect_eq "$(serving)" True "$what: daemon serving"
	stop_daemon || fail "$what: daemon exit status $?"
done
figure "target re-executes itself, probe on the first function of each image" "$FAULT_TRIALS" "$ok" 0 0
finish
