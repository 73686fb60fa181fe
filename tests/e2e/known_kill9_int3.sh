# NOT RUN BY CTEST (known failure, see docs/reliability.md "The window a dead tracer leaves"): about
# 1 kill in 15 loses the SIGTRAP of a thread that had just trapped, and the thread skips its
# displaced instruction. Run by hand: DIAG_BUILD_DIR=build bash tests/e2e/known_kill9_int3.sh
# kill -9 of the daemon while 4 threads call a function probed with an int3 (exact path): the
# SIGTRAP safety handler in the target sends every later hit to its out-of-line slot, so the
# target runs on and computes the same result as without the probe; a target that then gets
# a foreign SIGTRAP still gets the default action (the handler chains).
source "$(dirname "$0")/lib.sh"

for build in O2-pie O0-nopie; do
	start_fixture fx "$DIAG_FIXTURE_DIR/work-$build" 4 100000
	DIAG_NO_FASTPATH=1 start_daemon --pid "$fx_pid"
	add k1 work incr > /dev/null
	expect_eq "$(state_of k1 "$fx_pid")" applied "$build: int3 probe applied"
	fixture_go fx
	req '{"cmd":"wait","id":"k1","hits":200,"timeout":60}' > /dev/null
	kill -KILL "$DPID"; wait "$DPID" 2>/dev/null; DPID=
	# the fixture finishes its 400k calls through the int3s left behind
	sum=$(fixture_line fx)
	calls=$(fixture_line fx)
	expected=$(python3 -c "print(sum(i*3+t*2+7 for t in range(4) for i in range(100000)))")
	expect_eq "$sum" "sum $expected" "$build: target's own result unchanged after kill -9"
	expect_eq "$calls" "calls 400000" "$build: every call completed"
done
finish
