# The daemon's own fatal signals (SIGSEGV, SIGBUS, SIGABRT), sent by kill and raised for real
# (DIAG_TEST_CRASH), while 4 threads of the victim call a jump-probed (work) and an
# int3-probed (work2) function. No new daemon is started before the checks: the recovery
# process the dying daemon spawned (`diagnosed --recover-after`) must alone leave the target
# running with correct results, its code byte-identical to the file and its maps exactly as
# before any daemon (no diagnose page left). Each trial then starts the next daemon, which
# re-applies both specs from the store.
source "$(dirname "$0")/lib.sh"
export DIAG_JOURNAL_DIR=$T/journal # ours alone: parallel cases must not see our journals

start_fixture v "$DIAG_FIXTURE_DIR/victim-O2-pie" 4 ""
fixture_go v
# Its 4 threads (and their stacks) exist once the task count is 5: a bounded start-up poll,
# as for the daemon's socket. After that the victim maps nothing: any mapping that differs
# later is ours.
for _ in $(seq 200); do [ "$(ls /proc/"$v_pid"/task | wc -l)" -ge 5 ] && break; sleep 0.05; done
cp /proc/"$v_pid"/maps "$T/maps.before"
ADDRS=
VICTIM_DEAD=

# pid_wait_gone PID: until PID has exited (its pidfd; 30 s at most). 0 when gone.
pid_wait_gone() {
	python3 - "$1" <<'PY'
import os, select, sys
try:
    fd = os.pidfd_open(int(sys.argv[1]))
except ProcessLookupError:
    sys.exit(0)
sys.exit(0 if select.select([fd], [], [], 30)[0] else 1)
PY
}

# check_after_recovery WHAT ERRFILE DAEMON_STATUS WANT_STATUS: the checks of one trial, once
# the daemon is dead. Prints "ok" or the first problem.
check_after_recovery() {
	local what=$1 errf=$2 st=$3 want=$4 rp line
	[ "$st" = "$want" ] || { echo "daemon exit status $st, want $want"; return; }
	rp=$(sed -n 's/^diagnosed: fatal signal [0-9]* ([A-Z]*); recovery process \([0-9]*\) restores the targets$/\1/p' "$errf")
	[ -n "$rp" ] || { echo "no recovery process announced: $(tail -3 "$errf")"; return; }
	pid_wait_gone "$rp" || { echo "recovery process $rp still running after 30 s"; return; }
	line=$(grep "recover: pid $v_pid:" "$errf")
	case $line in *": 2 patch(es) restored"*) ;; *) echo "recovery of the victim: [$line]"; return ;; esac
	grep -q "recover after pid [0-9]*: 1 process(es) restored, 0 failed" "$errf" ||
		{ echo "recovery summary: $(grep 'recover after' "$errf")"; return; }
	local state
	state=$(awk '{print $3}' /proc/"$v_pid"/stat 2>/dev/null)
	case $state in R|S|D) ;; *) echo "victim state [$state] (gone, zombie or stopped)"; return ;; esac
	local patched
	patched=$(patched_count "$v_pid" $ADDRS)
	[ "$patched" = 0 ] || { echo "$patched probe address(es) still differ from the file"; return; }
	if ! diff "$T/maps.before" /proc/"$v_pid"/maps > "$T/maps.diff"; then
		echo "maps differ from before the daemon: $(tr '\n' ' ' < "$T/maps.diff")"; return
	fi
	[ -z "$(ls -A "$DIAG_JOURNAL_DIR")" ] || { echo "journal left: $(ls "$DIAG_JOURNAL_DIR")"; return; }
	echo ok
}

specs_kept() {
	python3 -c "import json,sys; print(sorted(s['id'] for s in json.load(open(sys.argv[1]))))" "$STORE"
}

# fatal_run SIG HOW TRIALS: HOW kill (kill -SIG) or real (DIAG_TEST_CRASH: the daemon faults
# at its first hit after start).
fatal_run() {
	local sig=$1 how=$2 trials=$3 survived=0 lost=0 ran=0 patched=0 want status res errf
	local label="daemon SIG$sig by kill"
	[ "$how" = kill ] || label="daemon SIG$sig, a real fault"
	label="$label, int3 + jump probes, 4 threads, restored by the recovery process"
	if [ -n "$VICTIM_DEAD" ]; then
		figure "$label" "0 of $trials (the target died in an earlier case)" - - -
		return
	fi
	want=$((128 + $(kill -l "$sig")))
	for i in $(seq "$trials"); do
		if [ "$how" = kill ]; then
			start_daemon --pid "$v_pid" $NOGOV
			if [ -z "$ADDRS" ]; then
				add f work incr > /dev/null
				exact_add x work2 > /dev/null
				ADDRS="$(first_addr f "$v_pid") $(first_addr x "$v_pid")"
			fi
			if [ "$(wait_more f 50)" != True ] || [ "$(wait_more x 50)" != True ]; then
				fail "$sig $how trial $i: probes not counting: f $(state_of f "$v_pid"), x $(state_of x "$v_pid")"
				break
			fi
			errf=$DERR
			kill -"$sig" "$DPID"
		else
			errf=$T/real.err$i
			DIAG_TEST_CRASH=$how "$DIAGNOSED" --no-socket --store "$STORE" --pid "$v_pid" $NOGOV \
				> /dev/null 2> "$errf" &
			DPID=$!
		fi
		wait "$DPID"
		status=$?
		DPID=
		ran=$((ran + 1))
		res=$(check_after_recovery "$sig $how" "$errf" "$status" "$want")
		if [ "$res" != ok ]; then
			fail "$sig $how trial $i: $res"
			echo "--- $errf"; tail -20 "$errf"
			if [ -e /proc/"$v_pid"/maps ]; then
				survived=$((survived + 1))
				patched=$(patched_count "$v_pid" $ADDRS)
			else
				VICTIM_DEAD=1 patched=?
			fi
			break
		fi
		survived=$((survived + 1))
		[ "$(specs_kept)" = "['f', 'x']" ] || lost=$((lost + 1))
	done
	expect_eq "$survived" "$trials" "$sig ($how): target survived and was restored by the recovery process $trials times"
	expect_eq "$lost" 0 "$sig ($how): no spec lost from the store"
	figure "$label" "$ran of $trials" "$survived" "$lost" "$patched"
}

# The real faults need the addresses (the kill cases record them through the socket).
fatal_run SEGV kill "$FAULT_TRIALS"
fatal_run BUS kill "$FAULT_TRIALS"
fatal_run ABRT kill "$FAULT_TRIALS"
fatal_run SEGV segv "$FAULT_TRIALS"
fatal_run BUS bus "$FAULT_TRIALS"
fatal_run ABRT abort "$FAULT_TRIALS"

[ -n "$VICTIM_DEAD" ] && finish
r=$(victim_result v)
expect_eq "$(field "$r" bad)" 0 "the target's own results all correct after every crash ($r)"
finish
