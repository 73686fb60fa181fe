# A probed program execs one no spec takes, over and over: a shell selected by --exe, probed
# on libc's read, execs the work fixture. At the exec the engine puts the shell's spec back as
# pending in the new image (an int3 on the dynamic linker's _dl_debug_state, the safety
# handler mapped), then the manager finds no selector takes the new image and detaches, just
# as the new image runs into that int3. The interrupt of the detach used to win that race with
# the SIGTRAP still pending; the safety handler's removal (a remote syscall) swallowed it, and
# the program went on one byte past the int3, past the `ret` it displaced, into
# _dl_debug_update, and died (e2e.test_select_exec in the CI of stop 20; 1 exec in 40 here
# under load). Each round: the new program prints its ready line, is detached, and exits 0.
source "$(dirname "$0")/lib.sh"

rounds=$((FAULT_TRIALS * 3))
start_daemon
SH=$T/shsel$$
cp "$(readlink -f /bin/sh)" "$SH"
ctl add-probe --exe "$SH" --target libc.so.6:read --type incr --name s --id s1 > /dev/null 2>&1 ||
	fail "add-probe --exe SHELL"
NOT=$T/nosel$$
cp "$DIAG_FIXTURE_DIR/work-O2-pie" "$NOT"
traced() { ctl --json status | jget "$1 in [t['pid'] for t in j['targets']]"; }
ran=0 survived=0
for i in $(seq "$rounds"); do
	start_fixture y "$SH" -c "echo ready \$\$; read x; exec $NOT 1 1000"
	for _ in $(seq 200); do [ "$(state_of s1 "$y_pid")" = applied ] && break; sleep 0.05; done
	[ "$(state_of s1 "$y_pid")" = applied ] || { fail "round $i: the shell is not probed"; break; }
	fixture_go y
	ran=$((ran + 1))
	line=$(fixture_line y)
	[ "$line" = "ready $y_pid" ] || { fail "round $i: the exec'd program printed [$line]"; break; }
	for _ in $(seq 200); do [ "$(traced "$y_pid")" = False ] && break; sleep 0.05; done
	[ "$(traced "$y_pid")" = False ] || { fail "round $i: still traced after its exec"; break; }
	fixture_go y
	fixture_line y > /dev/null # its sum
	fixture_line y > /dev/null # its calls
	wait "$y_pid"
	st=$?
	[ "$st" = 0 ] || { fail "round $i: the exec'd program exited $st"; break; }
	survived=$((survived + 1))
done
expect_eq "$survived" "$rounds" "every exec'd program ran on detached and exited 0"
kill -0 "$DPID" 2> /dev/null || fail "the daemon runs on"
stop_daemon || fail "daemon exit status"
figure "exec into a program no spec takes (detach at its first int3)" "$ran of $rounds" "$survived" "-" "-"
finish
