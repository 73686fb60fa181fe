# Return probes with 4 threads inside their epilogues (issue 10, item 3): the retstorm fixture's
# 4 threads call ret_outer -> ret_leaf in a loop, each with a return probe (an elapsed hist
# and a result log), so at any moment threads are inside the entry and exit trampolines (or
# at the int3s). Then the probes go while the threads run: by a detach, or by lifespan expiry,
# alternately, on -O0 and -O2 builds, the jump path and DIAG_NO_FASTPATH=1. Every trial: the
# target survives with every result right, no byte of either function is left patched, the
# daemon serves on.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ret_common.sh"
builds=(O2-pie O0-nopie O0-pie O2-nopie)
ok=0 left=0
for trial in $(seq "$FAULT_TRIALS"); do
	i=$((trial - 1))
	build=${builds[i % 4]}
	how=$([ $((i % 2)) = 0 ] && echo detach || echo lifespan)
	nofast=$(( (i / 2) % 2 ))
	what="trial $trial ($build, $how, nofast=$nofast)"
	if [ $nofast = 1 ]; then DIAG_NO_FASTPATH=1 start_daemon $NOGOV; else start_daemon $NOGOV; fi
	bin="$DIAG_FIXTURE_DIR/retstorm-$build"
	start_fixture s "$bin" threads 4
	req "{\"cmd\":\"attach\",\"pid\":$s_pid}" > /dev/null
	life=
	[ $how = lifespan ] && life=',"lifespan":0.25'
	r1=$(req "{\"cmd\":\"add\",\"spec\":{\"id\":\"lat\",\"target\":\"ret_leaf\",\"instrument\":{\"type\":\"hist\",\"name\":\"lat\",\"value\":\"elapsed\",\"event\":\"return\"}$life}}")
	r2=$(req "{\"cmd\":\"add\",\"spec\":{\"id\":\"res\",\"target\":\"ret_outer\",\"instrument\":{\"type\":\"incr\",\"name\":\"res\",\"value\":\"result\",\"event\":\"return\"}$life}}")
	[ "$(echo "$r1" | jget "j['ok']")$(echo "$r2" | jget "j['ok']")" = TrueTrue ] || fail "$what: add refused: $r1 $r2"
	want=jump; [ $nofast = 1 ] && want=int3
	p=$(paths_of lat "$s_pid")
	case " $p " in *" $want "*) ;; *) fail "$what: ret_leaf's instances are [$p], none $want" ;; esac
	fixture_go s
	[ "$(wait_more lat 2000)" = True ] || fail "$what: no returns counted"
	[ "$(wait_more res 2000)" = True ] || fail "$what: no results counted"
	if [ $how = detach ]; then
		req "{\"cmd\":\"detach\",\"pid\":$s_pid}" > /dev/null
	else
		for _ in $(seq 400); do [ "$(state_of lat "$s_pid")$(state_of res "$s_pid")" = expiredexpired ] && break; sleep 0.05; done
		expect_eq "$(state_of lat "$s_pid")$(state_of res "$s_pid")" expiredexpired "$what: both expired"
	fi
	same=$(funcs_unpatched "$s_pid" "$bin" ret_leaf ret_outer)
	[ "$same" = same ] || { fail "$what: $same after the $how"; left=$((left + 1)); }
	victim_send s stop
	line=$(fixture_line s)
	alive=$(kill -0 "$s_pid" 2>/dev/null && echo yes)
	victim_send s exit
	wait "$s_pid"
	rc=$?
	case "$line" in
	"result calls="*" bad=0") [ "$rc" = 0 ] && [ "$same" = same ] && [ "$alive" = yes ] && ok=$((ok + 1)) ;;
	*) fail "$what: [$line] exit $rc" ;;
	esac
	expect_eq "$(serving)" True "$what: daemon serving"
	stop_daemon || fail "$what: daemon exit status"
done
expect_eq "$ok" "$FAULT_TRIALS" "4 threads in return-probe trampolines: every trial survived, results right"
figure "detach and lifespan expiry with 4 threads inside return-probe trampolines" "$FAULT_TRIALS" "$ok" 0 "$left"
finish
