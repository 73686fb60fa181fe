# The daemon's own fatal signal (SIGSEGV, sent by kill and raised for real) while 4 threads of
# the victim (mode reqs: SIGSEGV is its default) call serve() under a capture probe whose
# programs read memory through NULL, freed and unmapped pointers (capture_common.sh). Between
# the daemon's death and its recovery process's work the trampoline stays patched and its
# faults are the in-target guard's; the recovery process alone must then leave the victim
# running with right results, its code as in the file and its maps as before any daemon (the
# trials: fatal_common.sh).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/capture_common.sh"
export DIAG_JOURNAL_DIR=$T/journal # ours alone: parallel cases must not see our journals
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}handle_segv=0:handle_sigbus=0:handle_abort=0

start_fixture v "$DIAG_FIXTURE_DIR/victim-O2-pie" 4 reqs
fixture_go v
wait_threads "$v_pid" 5 || fail "the victim's threads did not start"
cp /proc/"$v_pid"/maps "$T/maps.before"
source "$(dirname "$0")/fatal_common.sh"
fatal_specs() {
	cap_add c > /dev/null
	ADDRS=$(first_addr c "$v_pid")
}
fatal_counting() {
	[ "$(req '{"cmd":"wait","id":"c","hits":50,"timeout":10}' | jget "j['ok']")" = True ] ||
		{ echo "probe not counting: $(state_of c "$v_pid")"; return 1; }
	local j
	j=$(cap_is_jump "$v_pid" "$ADDRS")
	[ "$j" = yes ] || { echo "serve at $ADDRS: $j"; return 1; }
}
FATAL_NPATCH=1
FATAL_IDS="c"
FATAL_WHAT="capture probe reading memory through bad pointers (jump)"

fatal_run SEGV kill "$(((FAULT_TRIALS + 1) / 2))"
fatal_run SEGV segv "$(((FAULT_TRIALS + 4) / 5))"

[ -n "$VICTIM_DEAD" ] && finish
victim_exit v
expect_eq "$(field "$VICTIM_RESULT" bad)" 0 "the target's own results all correct after every crash ($VICTIM_RESULT)"
expect_eq "$VICTIM_STATUS" 0 "the target exited 0"
finish
