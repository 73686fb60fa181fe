# kill9_run PATH_KIND SIGNAL TRIALS: the daemon dies by SIGNAL TRIALS times while 4 threads of
# the victim call the probed functions; after each death a new daemon re-applies the store.
# PATH_KIND fast: $arg1 on work (jump trampoline); exact: a memory read on work2 (int3);
# capture: str(r->path) under r->len > 6 on serve (capture_common.sh: a capture trampoline whose
# programs read memory, with NULL, freed and unmapped pointers on most calls; the victim in
# mode reqs, so a capture fault left unrepaired kills it).
# The death itself is kill9_die SIGNAL; a case may redefine it after sourcing this file
# (test_oom.sh: the kernel's OOM killer); it returns non-zero when the daemon did not die so.
# ours alone: a daemon of a parallel case sweeping the shared journal directory while no daemon
# traces the victim (the gap between a death and the restart) must not see our journal
export DIAG_JOURNAL_DIR=$T/journal
kill9_die() { kill -"$1" "$DPID"; wait "$DPID" 2>/dev/null; return 0; }
kill9_run() {
	local kind=$1 sig=$2 trials=$3 survived=0 lost=0 ran=0
	local mode=""
	[ "$kind" = capture ] && mode=reqs
	start_fixture v "$DIAG_FIXTURE_DIR/victim-O2-pie" 4 $mode
	start_daemon --pid "$v_pid" $NOGOV
	case $kind in
	fast) add k work incr > /dev/null ;;
	capture) cap_add k > /dev/null ;;
	*) exact_add k work2 > /dev/null ;;
	esac
	local addr
	addr=$(first_addr k "$v_pid")
	fixture_go v
	for i in $(seq "$trials"); do
		if [ "$(wait_more k 50)" != True ]; then fail "trial $i: probe not counting after the restart: $(state_of k "$v_pid"): $(grep -h "spec 'k'" "$T"/d.err* | tail -1)"; break; fi
		# the path under test is the one applied, even with 4 threads inside the function
		local want=cc; [ "$kind" != exact ] && want=e9
		[ "$(code_byte "$v_pid" "$addr")" = $want ] || fail "trial $i: the $kind probe is not a $want at $addr: $(code_byte "$v_pid" "$addr")"
		if ! kill9_die "$sig"; then DPID=; fail "trial $i: the daemon did not die of $sig"; break; fi
		DPID=
		ran=$((ran + 1))
		if kill -0 "$v_pid" 2>/dev/null && [ "$(awk '{print $3}' /proc/"$v_pid"/stat)" != Z ]; then
			survived=$((survived + 1))
		else
			fail "trial $i: the target died after the daemon's $sig"
			break
		fi
		FIGURE_PENDING="FIGURE|daemon $sig, $kind-path probe, 4 threads|$ran of $trials (stopped: the restart after trial $i failed)|$survived|$lost|?"
		start_daemon --pid "$v_pid" $NOGOV
		FIGURE_PENDING=
		[ "$(req '{"cmd":"list"}' | jget "[s['id'] for s in j['specs']]")" = "['k']" ] || lost=$((lost + 1))
	done
	expect_eq "$survived" "$trials" "$kind: target survived $sig of the daemon $trials times"
	expect_eq "$lost" 0 "$kind: no spec lost"
	expect_eq "$(serving)" True "daemon serving after the last restart"
	stop_daemon
	local patched
	patched=$(patched_count "$v_pid" "$addr")
	expect_eq "$patched" 0 "$kind: no byte left patched after the last daemon's exit"
	local r st label="daemon $sig, $kind-path probe, 4 threads"
	[ "$kind" = capture ] && label="daemon $sig, capture probe reading memory through bad pointers (jump), 4 threads"
	r=$(victim_result v)
	wait "$v_pid" 2>/dev/null
	st=$?
	expect_eq "$(field "$r" bad)" 0 "$kind: the target's own results all correct ($r)"
	expect_eq "$st" 0 "$kind: the target exited 0"
	FIGURE_PENDING=
	figure "$label" "$ran of $trials" "$survived" "$lost" "$patched"
}
