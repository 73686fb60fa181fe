# Clean detach (the daemon's SIGTERM) while capture programs fault on bad pointers in 4 threads
# of the victim (capture_common.sh, mode reqs: SIGSEGV is its default). Threads are often
# frozen inside a slot at a faulting load, held at its signal stop: detach must take each to its
# landing and out before the bytes, the guard and the pages go. Each trial: a daemon applies the
# probe (from the store), the probe counts, the daemon exits cleanly; the victim lives, serve's
# bytes are the file's and its mappings are as before any daemon.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/capture_common.sh"

trials=$(((FAULT_TRIALS + 1) / 2))
start_fixture v "$DIAG_FIXTURE_DIR/victim-O2-pie" 4 reqs
fixture_go v
wait_threads "$v_pid" 5 || fail "the victim's threads did not start"
maps_of "$v_pid" > "$T/maps.before"
ran=0 survived=0 patched=0 addr=
for i in $(seq "$trials"); do
	start_daemon --pid "$v_pid" $NOGOV
	[ "$i" = 1 ] && cap_add c > /dev/null
	[ -z "$addr" ] && addr=$(first_addr c "$v_pid")
	if [ "$(req '{"cmd":"wait","id":"c","hits":200,"timeout":10}' | jget "j['ok']")" != True ]; then
		fail "trial $i: the probe does not count: $(state_of c "$v_pid")"
		break
	fi
	j=$(cap_is_jump "$v_pid" "$addr")
	[ "$j" = yes ] || { fail "trial $i: serve at $addr: $j"; break; }
	stop_daemon || fail "trial $i: the daemon's exit status $?"
	ran=$((ran + 1))
	[ "$(alive "$v_pid")" = yes ] || { fail "trial $i: the victim died at detach"; break; }
	survived=$((survived + 1))
	p=$(patched_count "$v_pid" "$addr")
	[ "$p" = 0 ] || { patched=$((patched + p)); fail "trial $i: serve left patched after detach"; }
	maps_of "$v_pid" > "$T/maps.after"
	d=$(diff "$T/maps.before" "$T/maps.after" | grep -c '^[<>]')
	[ "$d" = 0 ] || fail "trial $i: mappings differ after detach: $(diff "$T/maps.before" "$T/maps.after" | tr '\n' ' ')"
done
expect_eq "$survived" "$trials" "the victim survived $trials clean detaches with captures faulting"
expect_eq "$patched" 0 "no byte left patched after any detach"
if [ "$(alive "$v_pid")" = yes ]; then
	victim_exit v
	expect_eq "$(field "$VICTIM_RESULT" bad)" 0 "the victim's results right ($VICTIM_RESULT)"
	expect_eq "$VICTIM_STATUS" 0 "the victim exited 0"
fi
figure "clean detach while capture programs fault on bad pointers, 4 threads" "$ran of $trials" "$survived" 0 "$patched"
finish
