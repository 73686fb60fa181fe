# Detach (and attach again) over and over while 4 threads of the victim hammer a function
# probed with an int3 (exact path, no fast path), at -O0 (work starts with the 1-byte
# `push rbp`) and -O2. Detaching interrupts every thread, and the interrupt races the int3
# a thread has just run: the kernel reports the interrupt first, with the SIGTRAP still
# pending and the pc one past the int3. Taken as a plain stop, that SIGTRAP was swallowed by
# the next remote syscall (the safety handler's removal) and the thread went on past the
# displaced instruction: under load, 1 exec in 40 of a probed shell died in
# _dl_debug_update (e2e.test_select_exec, CI of stop 20). The victim checks every result:
# a skipped `push rbp` or half an instruction shows as bad results or a dead victim.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/capture_common.sh"

rounds=$((FAULT_TRIALS * 4))
DIAG_NO_FASTPATH=1 start_daemon $NOGOV
ran=0 survived=0 bad=0
for build in O0-nopie O2-pie; do
	start_fixture v "$DIAG_FIXTURE_DIR/victim-$build" 4
	fixture_go v
	wait_threads "$v_pid" 5 || fail "$build: the victim's threads did not start"
	ctl attach "$v_pid" > /dev/null || fail "$build: attach"
	if [ "$build" = O0-nopie ]; then add k1 work incr > /dev/null; fi
	for i in $(seq "$rounds"); do
		[ "$i" = 1 ] || ctl attach "$v_pid" > /dev/null || { fail "$build round $i: attach"; break; }
		h=$(hits_of k1)
		ctl wait k1 --hits $((h + 50)) --timeout 30 > /dev/null ||
			{ fail "$build round $i: the int3 probe does not count ($(state_of k1 "$v_pid"))"; break; }
		ctl detach "$v_pid" > /dev/null || { fail "$build round $i: detach"; break; }
		ran=$((ran + 1))
		[ "$(alive "$v_pid")" = yes ] || { fail "$build round $i: the victim died at detach"; break; }
		survived=$((survived + 1))
	done
	if [ "$(alive "$v_pid")" = yes ]; then
		victim_exit v
		[ "$(field "$VICTIM_RESULT" bad)" = 0 ] || bad=$((bad + 1))
		expect_eq "$(field "$VICTIM_RESULT" bad)" 0 "$build: the victim's results right ($VICTIM_RESULT)"
		expect_eq "$VICTIM_STATUS" 0 "$build: the victim exited 0"
	fi
done
expect_eq "$survived" $((rounds * 2)) "the victim survived every detach amid int3 hits"
kill -0 "$DPID" 2> /dev/null || fail "the daemon runs on"
stop_daemon || fail "daemon exit status"
figure "detach and attach again amid int3 hits (exact path, -O0/-O2, 4 threads)" "$ran of $((rounds * 2))" "$survived" "-" "-"
finish
