# kill -9 of the daemon while return probes on the jump path are hot (issue 10, item 3): the
# retstorm fixture's 4 threads call ret_outer -> ret_leaf, both return-probed (an elapsed hist
# and a result count), so threads are inside entry and exit trampolines when the daemon dies.
# A new daemon recovers from the journal (every patch, exit windows included, taken out) and
# applies the store again. FAULT_TRIALS times; then the last daemon exits: the target
# survived each death with every result right, no spec lost, no byte of either function left
# patched.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ret_common.sh"
bin="$DIAG_FIXTURE_DIR/retstorm-O2-pie"
start_fixture s "$bin" threads 4
start_daemon --pid "$s_pid" $NOGOV
r1=$(req '{"cmd":"add","spec":{"id":"lat","target":"ret_leaf","instrument":{"type":"hist","name":"lat","value":"elapsed","event":"return"}}}')
r2=$(req '{"cmd":"add","spec":{"id":"res","target":"ret_outer","instrument":{"type":"incr","name":"res","value":"result","event":"return"}}}')
[ "$(echo "$r1" | jget "j['ok']")$(echo "$r2" | jget "j['ok']")" = TrueTrue ] || fail "add refused: $r1 $r2"
fixture_go s
survived=0 lost=0 ran=0
for i in $(seq "$FAULT_TRIALS"); do
	p=$(paths_of lat "$s_pid")
	case " $p " in *" jump "*) ;; *) fail "trial $i: ret_leaf's instances are [$p], none a jump" ;; esac
	if [ "$(wait_more lat 500)" != True ]; then fail "trial $i: returns not counted"; break; fi
	kill -KILL "$DPID"; wait "$DPID" 2>/dev/null; DPID=
	ran=$((ran + 1))
	if kill -0 "$s_pid" 2>/dev/null && [ "$(awk '{print $3}' /proc/"$s_pid"/stat)" != Z ]; then
		survived=$((survived + 1))
	else
		fail "trial $i: the target died after the daemon's kill -9"
		break
	fi
	FIGURE_PENDING="FIGURE|daemon KILL, return probes on jumps, 4 threads|$ran of $FAULT_TRIALS (stopped: the restart after trial $i failed)|$survived|$lost|?"
	start_daemon --pid "$s_pid" $NOGOV
	FIGURE_PENDING=
	[ "$(req '{"cmd":"list"}' | jget "sorted(s['id'] for s in j['specs'])")" = "['lat', 'res']" ] || lost=$((lost + 1))
done
expect_eq "$survived" "$FAULT_TRIALS" "target survived kill -9 of the daemon $FAULT_TRIALS times"
expect_eq "$lost" 0 "no spec lost"
expect_eq "$(serving)" True "daemon serving after the last restart"
stop_daemon
same=$(funcs_unpatched "$s_pid" "$bin" ret_leaf ret_outer)
expect_eq "$same" same "no byte of ret_leaf or ret_outer left patched after the last daemon's exit"
victim_send s stop
line=$(fixture_line s)
case "$line" in "result calls="*" bad=0") pass "the target's own results all correct ($line)" ;; *) fail "target results: [$line]" ;; esac
victim_send s exit
patched=0; [ "$same" = same ] || patched=1
figure "daemon KILL, return probes on jumps, 4 threads" "$ran of $FAULT_TRIALS" "$survived" "$lost" "$patched"
finish
