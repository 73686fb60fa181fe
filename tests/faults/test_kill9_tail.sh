# kill -9 of the daemon while return sites are hot (issue 10, item 3): the retstorm fixture's
# 4 threads call ret_tail, which at -O2 leaves by a ret or by a tail call to ret_leaf, under a
# return probe (an elapsed hist): its entry and ret take jumps, and the return address in the
# threads' loop a return site (a jump in the caller's code), so threads are inside all three
# trampolines when the daemon dies. A new daemon recovers from the journal (every patch taken
# out, the return site's included) and applies the store again, placing the return site anew.
# (FAULT_TRIALS + 1) / 2 times (about 8 s a trial: each restart places the return site anew);
# then the last daemon exits (detach with the return site hot): the target
# survived with every result right, no spec lost, no byte of ret_tail, ret_leaf or the loop
# (runner) left patched.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ret_common.sh"
bin="$DIAG_FIXTURE_DIR/retstorm-O2-pie"
start_fixture s "$bin" threads 4
start_daemon --pid "$s_pid" $NOGOV
r=$(req '{"cmd":"add","spec":{"id":"tail","target":"ret_tail","instrument":{"type":"hist","name":"tail","value":"elapsed","event":"return"}}}')
[ "$(echo "$r" | jget "j['ok']")" = True ] || fail "add refused: $r"
fixture_go s
trials=$(((FAULT_TRIALS + 1) / 2))
survived=0 lost=0 ran=0
for i in $(seq "$trials"); do
	if [ "$(wait_return_site tail "$s_pid")" != True ]; then
		fail "trial $i: no return site on a jump: $(instances_of tail "$s_pid" | tr '\n' ' ')"
		break
	fi
	p=$(paths_of tail "$s_pid")
	case " $p " in *" int3 "*) fail "trial $i: ret_tail's instances are [$p], an int3 among them" ;; esac
	if [ "$(wait_more tail 500)" != True ]; then fail "trial $i: returns not counted"; break; fi
	kill -KILL "$DPID"; wait "$DPID" 2>/dev/null; DPID=
	ran=$((ran + 1))
	if kill -0 "$s_pid" 2>/dev/null && [ "$(awk '{print $3}' /proc/"$s_pid"/stat)" != Z ]; then
		survived=$((survived + 1))
	else
		fail "trial $i: the target died after the daemon's kill -9"
		break
	fi
	FIGURE_PENDING="FIGURE|daemon KILL, return sites on jumps, 4 threads|$ran of $trials (stopped: the restart after trial $i failed)|$survived|$lost|?"
	start_daemon --pid "$s_pid" $NOGOV
	FIGURE_PENDING=
	[ "$(req '{"cmd":"list"}' | jget "sorted(s['id'] for s in j['specs'])")" = "['tail']" ] || lost=$((lost + 1))
done
expect_eq "$survived" "$trials" "target survived kill -9 of the daemon $trials times"
expect_eq "$lost" 0 "no spec lost"
expect_eq "$(wait_return_site tail "$s_pid")" True "the last daemon placed the return site again"
expect_eq "$(wait_more tail 500)" True "returns counted after the last restart"
stop_daemon
same=$(funcs_unpatched "$s_pid" "$bin" ret_tail ret_leaf runner)
expect_eq "$same" same "no byte of ret_tail, ret_leaf or runner (the return site) left patched after the detach"
victim_send s stop
line=$(fixture_line s)
case "$line" in "result calls="*" bad=0") pass "the target's own results all correct ($line)" ;; *) fail "target results: [$line]" ;; esac
victim_send s exit
patched=0; [ "$same" = same ] || patched=1
figure "daemon KILL, return sites on jumps, 4 threads" "$ran of $trials" "$survived" "$lost" "$patched"
finish
