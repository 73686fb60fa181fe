# Targets with their own SIGTRAP arrangements: a handler (which must still see its own
# traps), SIGTRAP blocked, SIGTRAP ignored; with fast and exact probes, then kill -9 of the
# daemon. The target's results and its own trap count are unchanged.
source "$(dirname "$0")/lib.sh"
for m in trap-handler trap-block trap-ignore; do
	start_fixture v "$DIAG_FIXTURE_DIR/victim-O2-nopie" 2 $m
	start_daemon --pid "$v_pid" $NOGOV
	add f work incr > /dev/null
	reply=$(exact_add e work2)
	if [ $m = trap-block ]; then
		# an int3 would make the kernel reset the target's SIGTRAP action and mask: refused
		expect_contains "$reply" "blocks SIGTRAP" "$m: exact probe refused with the reason"
		addr=$(nm "$DIAG_FIXTURE_DIR/victim-O2-nopie" | awk '$3 == "work2" {print "0x" $1}')
	else
		addr=$(first_addr e "$v_pid")
	fi
	fixture_go v
	[ $m = trap-block ] || [ "$(wait_more e 50)" = True ] || fail "$m: exact probe not counting"
	[ "$(wait_more f 50)" = True ] || fail "$m: fast probe not counting"
	kill -KILL "$DPID"; wait "$DPID" 2>/dev/null; DPID=
	alive=0
	kill -0 "$v_pid" 2>/dev/null && alive=1
	start_daemon --pid "$v_pid" $NOGOV
	stop_daemon
	p=$(patched_count "$v_pid" "$addr")
	r=$(victim_result v)
	want_traps=0; [ $m = trap-handler ] && want_traps=100
	expect_eq "$alive" 1 "$m: target survives kill -9 of the daemon"
	expect_eq "$(field "$r" bad) $(field "$r" traps)" "0 $want_traps" "$m: results and own traps unchanged ($r)"
	expect_eq "$p" 0 "$m: no byte left patched"
	rm -f "$STORE"
	figure "target $m, kill -9 of the daemon" 1 "$alive" 0 "$p"
	exec {v_in}>&- {v_out}<&-
	rm -f "$T/v.in" "$T/v.out"
done
finish
