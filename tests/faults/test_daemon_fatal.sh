# The daemon's own fatal signals (SIGSEGV, SIGBUS, SIGABRT), sent by kill and raised for real
# (DIAG_TEST_CRASH), while 4 threads of the victim call a jump-probed (work) and an
# int3-probed (work2) function (the trials: fatal_common.sh). No new daemon is started before
# the checks: the recovery process the dying daemon spawned (`diagnosed --recover-after`) must alone leave the target
# running with correct results, its code byte-identical to the file and its maps exactly as
# before any daemon (no diagnose page left). Each trial then starts the next daemon, which
# re-applies both specs from the store.
source "$(dirname "$0")/lib.sh"
export DIAG_JOURNAL_DIR=$T/journal # ours alone: parallel cases must not see our journals
# Sanitizer builds: the daemon hands a fault to ASan's handler (a report, then exit 1); here it
# must die of the signal itself, as the plain build does.
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}handle_segv=0:handle_sigbus=0:handle_abort=0

start_fixture v "$DIAG_FIXTURE_DIR/victim-O2-pie" 4 ""
fixture_go v
# Its 4 threads (and their stacks) exist once the task count is 5: a bounded start-up poll,
# as for the daemon's socket. After that the victim maps nothing: any mapping that differs
# later is ours.
for _ in $(seq 200); do [ "$(ls /proc/"$v_pid"/task | wc -l)" -ge 5 ] && break; sleep 0.05; done
cp /proc/"$v_pid"/maps "$T/maps.before"
source "$(dirname "$0")/fatal_common.sh"
fatal_specs() {
	add f work incr > /dev/null
	exact_add x work2 > /dev/null
	ADDRS="$(first_addr f "$v_pid") $(first_addr x "$v_pid")"
}
fatal_counting() {
	[ "$(req '{"cmd":"wait","id":"f","hits":50,"timeout":10}' '{"cmd":"wait","id":"x","hits":50,"timeout":10}' | grep -c '"ok":true')" = 2 ] && return 0
	echo "probes not counting: f $(state_of f "$v_pid"), x $(state_of x "$v_pid")"
	return 1
}
FATAL_NPATCH=2
FATAL_IDS="f x"
FATAL_WHAT="int3 + jump probes"

# The real faults need the addresses (the kill cases record them through the socket).
# The handler's path is the same for every signal: SIGSEGV gets FAULT_TRIALS, the others half
# (ctest's 600 s at the default 20, on a loaded 2-CPU machine).
fatal_run SEGV kill "$FAULT_TRIALS"
fatal_run BUS kill "$(((FAULT_TRIALS + 1) / 2))"
fatal_run ABRT kill "$(((FAULT_TRIALS + 1) / 2))"
# A real fault takes the same path from the handler on: a fifth of the trials (ctest's 600 s).
REAL_TRIALS=$(((FAULT_TRIALS + 4) / 5))
fatal_run SEGV segv "$REAL_TRIALS"
fatal_run BUS bus "$REAL_TRIALS"
fatal_run ABRT abort "$REAL_TRIALS"

[ -n "$VICTIM_DEAD" ] && finish
r=$(victim_result v)
expect_eq "$(field "$r" bad)" 0 "the target's own results all correct after every crash ($r)"
finish
