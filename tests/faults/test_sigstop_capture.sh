# The daemon stopped (SIGSTOP) for 0.5 s, then continued, while capture programs read memory
# through bad pointers in 4 threads of the victim (capture_common.sh, mode reqs-handler). A
# stopped tracer holds each capture fault in its signal-delivery stop (the guard never runs:
# the signal is the tracer's first), and the heartbeat stops the other captures ~200 ms later;
# once continued the daemon repairs the held faults and the probe counts again. Checked after
# every trial: the victim runs, the probe counts; at the end: no byte patched after a clean
# exit, mappings as before the daemon, results right, the victim's own faults its own, exit 0.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/capture_common.sh"

trials=$(((FAULT_TRIALS + 1) / 2))
start_fixture v "$DIAG_FIXTURE_DIR/victim-O2-pie" 4 reqs-handler
fixture_go v
wait_threads "$v_pid" 5 || fail "the victim's threads did not start"
maps_of "$v_pid" > "$T/maps.before"
start_daemon --pid "$v_pid" $NOGOV
cap_add c > /dev/null
addr=$(first_addr c "$v_pid")
ran=0 survived=0
for i in $(seq "$trials"); do
	if [ "$(wait_more c 50)" != True ]; then fail "trial $i: the probe does not count: $(state_of c "$v_pid")"; break; fi
	j=$(cap_is_jump "$v_pid" "$addr")
	[ "$j" = yes ] || { fail "trial $i: serve at $addr: $j"; break; }
	kill -STOP "$DPID"
	sleep 0.5 # the fault under test: the daemon stays stopped
	kill -CONT "$DPID"
	ran=$((ran + 1))
	[ "$(alive "$v_pid")" = yes ] || { fail "trial $i: the victim died while the daemon was stopped"; break; }
	survived=$((survived + 1))
done
expect_eq "$survived" "$trials" "the victim survived the stopped daemon $trials times"
expect_eq "$(wait_more c 50)" True "the probe counts after the last continue"
expect_eq "$(req '{"cmd":"list"}' | jget "[s['id'] for s in j['specs']]")" "['c']" "no spec lost"
patched=?
if [ "$(alive "$v_pid")" = yes ]; then
	stop_daemon
	patched=$(patched_count "$v_pid" "$addr")
	expect_eq "$patched" 0 "no byte left patched after the daemon's exit"
	maps_of "$v_pid" > "$T/maps.after"
	expect_eq "$(diff "$T/maps.before" "$T/maps.after" | grep -c '^[<>]')" 0 "mappings as before the daemon: $(diff "$T/maps.before" "$T/maps.after" | tr '\n' ' ')"
	victim_exit v
	expect_eq "$(field "$VICTIM_RESULT" bad)" 0 "the victim's results right and its own faults all its own ($VICTIM_RESULT)"
	expect_eq "$VICTIM_STATUS" 0 "the victim exited 0"
fi
figure "daemon stopped (SIGSTOP 0.5 s, SIGCONT) with capture probes reading through bad pointers, 4 threads" "$ran of $trials" "$survived" 0 "$patched"
finish
