# Bad pointers with the daemon dead: the in-target fault guard must take every fault of the
# capture programs left patched in the target. The victim (reqs-handler: its own SIGSEGV handler,
# which exits 97 should a capture fault ever reach it, and its own deliberate faults that must
# still reach it) calls serve() from 4 threads with NULL, freed and unmapped pointers under a
# capture probe (capture_common.sh). Each trial: a daemon applies the probe (and recovers its
# predecessor's patches), the probe counts, the daemon is killed with -9, the dead daemon's
# heartbeat is made to last (ring_ctl arm: the captures go on, not just for the ~200 ms a real
# death leaves), and for 0.5 s of the victim's running the captures must have run (the ring's
# records and drops grew) while the victim lives. The last daemon detaches cleanly: every byte
# as in the file, the victim's mappings as before any daemon (no guard, slot or ring page), its
# results right, its own faults all handled by its own handler, exit status 0.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/capture_common.sh"
export DIAG_JOURNAL_DIR=$T/journal

trials=$(((FAULT_TRIALS + 1) / 2))
start_fixture v "$DIAG_FIXTURE_DIR/victim-O2-pie" 4 reqs-handler
fixture_go v
wait_threads "$v_pid" 5 || fail "the victim's threads did not start"
maps_of "$v_pid" > "$T/maps.before"
ran=0 survived=0 lost=0 ran_dead=0 addr=
for i in $(seq "$trials"); do
	start_daemon --pid "$v_pid" $NOGOV
	[ "$i" = 1 ] && cap_add c > /dev/null
	[ -z "$addr" ] && addr=$(first_addr c "$v_pid")
	[ "$(req '{"cmd":"list"}' | jget "[s['id'] for s in j['specs']]")" = "['c']" ] || lost=$((lost + 1))
	if [ "$(req '{"cmd":"wait","id":"c","hits":50,"timeout":10}' | jget "j['ok']")" != True ]; then
		fail "trial $i: the probe does not count: $(state_of c "$v_pid")"
		break
	fi
	j=$(cap_is_jump "$v_pid" "$addr")
	[ "$j" = yes ] || { fail "trial $i: serve at $addr: $j"; break; }
	kill -KILL "$DPID"
	wait "$DPID" 2>/dev/null
	DPID=
	ran=$((ran + 1))
	a=$(ring_ctl "$v_pid" arm)
	[ "$a" = armed ] || { fail "trial $i: no ring v2 mapping in the victim ($a)"; break; }
	p0=$(ring_ctl "$v_pid" progress)
	sleep 0.5 # the fault under test: the daemon stays dead while the captures fault
	p1=$(ring_ctl "$v_pid" progress)
	if [ "$(alive "$v_pid")" != yes ]; then
		fail "trial $i: the victim died with the daemon dead: $(tail -2 "$T/v.out" 2>/dev/null)"
		break
	fi
	survived=$((survived + 1))
	[ "$p1" -gt "$p0" ] && ran_dead=$((ran_dead + 1)) || fail "trial $i: no capture ran with the daemon dead (progress $p0 -> $p1)"
done
expect_eq "$survived" "$trials" "the victim survived bad pointers with the daemon dead, $trials times"
expect_eq "$ran_dead" "$trials" "captures ran (and faulted) with the daemon dead in every trial"
expect_eq "$lost" 0 "no spec lost"
patched=?
if [ "$(alive "$v_pid")" = yes ]; then
	start_daemon --pid "$v_pid" $NOGOV # recovers the last dead daemon's patches
	expect_eq "$(serving)" True "daemon serving after the last recovery"
	stop_daemon
	patched=$(patched_count "$v_pid" "$addr")
	expect_eq "$patched" 0 "no byte left patched after the last daemon's exit"
	maps_of "$v_pid" > "$T/maps.after"
	expect_eq "$(diff "$T/maps.before" "$T/maps.after" | grep -c '^[<>]')" 0 "mappings as before any daemon: $(diff "$T/maps.before" "$T/maps.after" | tr '\n' ' ')"
	victim_exit v
	expect_eq "$(field "$VICTIM_RESULT" bad)" 0 "the victim's results right and its own faults all its own ($VICTIM_RESULT)"
	expect_eq "$VICTIM_STATUS" 0 "the victim exited 0"
fi
figure "bad pointers in capture programs with the daemon dead (kill -9, heartbeat kept), 4 threads" "$ran of $trials" "$survived" "$lost" "$patched"
finish
