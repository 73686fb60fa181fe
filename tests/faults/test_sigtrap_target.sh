# Targets with their own SIGTRAP arrangements: a handler (which must still see its own
# traps), SIGTRAP blocked, SIGTRAP ignored; with fast and exact probes, then kill -9 of the
# daemon. The target's results and its own trap count are unchanged.
source "$(dirname "$0")/lib.sh"
# sigtrap_state PID: how the target holds SIGTRAP: threads blocking it, ignored, caught
sigtrap_state() {
	local blk=0 ign cgt
	for f in /proc/"$1"/task/*/status; do
		(( 0x$(awk '/^SigBlk/ {print $2}' "$f") & 0x10 )) && blk=$((blk + 1))
	done
	ign=$(( (0x$(awk '/^SigIgn/ {print $2}' /proc/"$1"/status) & 0x10) != 0 ))
	cgt=$(( (0x$(awk '/^SigCgt/ {print $2}' /proc/"$1"/status) & 0x10) != 0 ))
	echo "blocked-in=$blk ignored=$ign caught=$cgt"
}
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
	# stepping a thread out of a trampoline raises a forced SIGTRAP: it must not have reset
	# the target's action or unblocked SIGTRAP in a thread
	case $m in # main + 2 threads
	trap-handler) want="blocked-in=0 ignored=0 caught=1" ;;
	trap-block) want="blocked-in=3 ignored=0 caught=0" ;;
	trap-ignore) want="blocked-in=0 ignored=1 caught=0" ;;
	esac
	expect_eq "$(sigtrap_state "$v_pid")" "$want" "$m: the target's SIGTRAP action and masks as before"
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
