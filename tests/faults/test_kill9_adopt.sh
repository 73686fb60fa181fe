# kill -9 of the daemon while it attaches a new process at exec (issue 11): a selector spec
# (--exe) is in the store; a program is started, held at its exec gate and probed, and the
# daemon dies: in odd trials exactly there (DIAG_TEST_KILL_AT_ADOPT=1: probes placed, the
# process held, not released), in even ones at an arbitrary moment of the exec (a kill a few
# ms after the start). Each time the program must run on, a new daemon must take it again
# from the store (its journal restoring what the dead one placed), its results must be the
# unprobed ones, and after the last daemon's exit no byte may be left patched.
source "$(dirname "$0")/lib.sh"
TRIALS=${FAULT_TRIALS:-20}
[ "$TRIALS" -gt 6 ] && TRIALS=6 # each trial starts two daemons (~9 s): keep it within a minute
export DIAG_JOURNAL_DIR=$T/journal
VIC=$T/adopt$$
cp "$DIAG_FIXTURE_DIR/work-O2-pie" "$VIC"
# the unprobed result, for comparison
start_fixture base "$VIC" 2 20000
fixture_go base
want=$(fixture_line base)
start_daemon $NOGOV
ctl add-probe --exe "$VIC" --target work --type incr --name k --id k > /dev/null 2>&1
stop_daemon
survived=0 bad=0 left=0
for i in $(seq "$TRIALS"); do
	if [ $((i % 2)) = 1 ]; then
		DIAG_TEST_KILL_AT_ADOPT=1 start_daemon $NOGOV
		start_fixture v "$VIC" 2 20000 linger
	else
		start_daemon $NOGOV
		( sleep "0.00$((RANDOM % 10))"; kill -KILL "$DPID" ) &
		killer=$!
		start_fixture v "$VIC" 2 20000 linger
		wait "$killer"
	fi
	wait "$DPID" 2>/dev/null
	DPID=
	if [ "$(awk '{print $3}' "/proc/$v_pid/stat" 2>/dev/null)" = S ] ||
	   [ "$(awk '{print $3}' "/proc/$v_pid/stat" 2>/dev/null)" = R ]; then
		survived=$((survived + 1))
	else
		fail "trial $i: the program did not survive the daemon's death ($(cat "/proc/$v_pid/stat" 2>/dev/null))"
	fi
	start_daemon $NOGOV
	for _ in $(seq 200); do [ "$(state_of k "$v_pid")" = applied ] && break; sleep 0.05; done
	[ "$(state_of k "$v_pid")" = applied ] || fail "trial $i: the new daemon did not take it again: $(state_of k "$v_pid")"
	addr=$(first_addr k "$v_pid")
	fixture_go v
	got=$(fixture_line v)
	[ "$got" = "$want" ] || { bad=$((bad + 1)); fail "trial $i: result $got, unprobed $want"; }
	fixture_line v > /dev/null # calls N
	stop_daemon || fail "trial $i: daemon exit status"
	[ "$addr" != none ] && [ "$(code_bytes_match "$v_pid" "$addr")" != same ] && left=$((left + 1))
	fixture_go v # linger: exit
	wait "$v_pid" 2>/dev/null
	st=$?
	[ "$st" = 0 ] || fail "trial $i: the program exited $st"
done
expect_eq "$survived" "$TRIALS" "the program survived every death of the daemon at its exec"
expect_eq "$bad" 0 "its results were the unprobed ones"
expect_eq "$left" 0 "no byte left patched after the last daemon's exit"
figure "daemon kill -9 while attaching a process at exec (gate)" "$TRIALS" "$survived" 0 "$left"
finish
