# A target stopped with SIGSTOP while probes are added and removed: the operations complete
# (or fail cleanly), and after SIGCONT its results are right and no byte is left patched.
source "$(dirname "$0")/lib.sh"
start_fixture v "$DIAG_FIXTURE_DIR/victim-O2-pie" 2 ""
start_daemon --pid "$v_pid" $NOGOV
fixture_go v
add a work incr > /dev/null
[ "$(wait_more a 20)" = True ] || fail "probe not counting before SIGSTOP"
kill -STOP "$v_pid"
r=$(timeout 10 bash -c "$(declare -f exact_add req); DIAGREQ='$DIAGREQ' SOCK='$SOCK'; exact_add b work2")
p=0
if [ "$(echo "$r" | jget "j['ok']" 2>/dev/null)" != True ]; then
	fail "add while stopped: no reply in 10 s (the daemon blocks on a stopped target)"
	kill -CONT "$v_pid"
	p=$(patched_count "$v_pid" "$(first_addr b "$v_pid")")
else
	pass "add while stopped"
	addr=$(first_addr b "$v_pid")
	expect_eq "$(timeout 10 $DIAGREQ "$SOCK" '{"cmd":"remove","id":"a"}')" '{"ok":true}' "remove while stopped"
	expect_eq "$(timeout 10 $DIAGREQ "$SOCK" '{"cmd":"status"}' | jget "j['ok']")" True "daemon serving while the target is stopped"
	kill -CONT "$v_pid"
	[ "$(wait_more b 20)" = True ] && pass "probe added while stopped counts after SIGCONT" || fail "b not counting"
	expect_eq "$(req '{"cmd":"remove","id":"b"}')" '{"ok":true}' "remove"
	p=$(patched_count "$v_pid" "$addr")
	expect_eq "$p" 0 "bytes restored"
fi
r=$(victim_result v)
expect_eq "$(field "$r" bad)" 0 "results right ($r)"
figure "target stopped (SIGSTOP) while probes are added and removed" 1 1 0 "$p"
finish
