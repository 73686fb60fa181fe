# kill -9 of the daemon while a probed target keeps calling the probed function: the target
# must survive (design: SIGTRAP safety handler in the diagnose page) and the next daemon
# must re-apply cleanly.
source "$(dirname "$0")/lib.sh"

start_fixture fx "$DIAG_FIXTURE_DIR/work-O0-pie" 1 0
start_daemon --pid "$fx_pid"
add k1 work incr > /dev/null
fixture_go fx
req '{"cmd":"wait","id":"k1","hits":100,"timeout":30}' > /dev/null
kill -KILL "$DPID"; wait "$DPID" 2>/dev/null; DPID=
start_daemon --pid "$fx_pid"
kill -0 "$fx_pid" 2>/dev/null && pass "target survives kill -9 of the daemon" || fail "target died after kill -9 of the daemon"
expect_eq "$(state_of k1 "$fx_pid")" applied "k1 re-applied after kill -9"
expect_eq "$(req '{"cmd":"wait","id":"k1","hits":100,"timeout":30}' | jget "j['ok']")" True "k1 counts again"
finish
