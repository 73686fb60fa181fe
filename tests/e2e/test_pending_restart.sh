# A probe on a library not loaded yet survives a daemon restart (issue 15, item 12): with an
# int3 probe in the process first (so the SIGTRAP safety handler exists when the library watch
# is placed), the pending spec stays pending at the restart instead of failing with "cannot map
# the out-of-line page near 0x7f...: Resource temporarily unavailable", and once the fixture
# dlopens the library the probe applies and counts its 100 calls.
source "$(dirname "$0")/lib.sh"
start_fixture d "$DIAG_FIXTURE_DIR/dl-O2-pie" "$DIAG_FIXTURE_DIR/libdlfx.so"
state() { req '{"cmd":"list"}' | jget "[s['applied']['$(hostname):$d_pid'] for s in j['specs'] if s['id'] == '$1'][0].get('$2', '')"; }
for run in first restart; do
	if [ $run = first ]; then
		start_daemon
		req "{\"cmd\":\"attach\",\"pid\":$d_pid}" > /dev/null
		req '{"cmd":"add","spec":{"id":"x","target":"main","instrument":{"type":"log","name":"x","value":"*(long *)$rsp"}}}' > /dev/null
		req '{"cmd":"add","spec":{"id":"p","target":"libdlfx.so:dlfx_work","instrument":{"type":"incr","name":"p","value":"$arg1"}}}' > /dev/null
	else
		stop_daemon
		start_daemon --pid "$d_pid"
	fi
	expect_eq "$(state x state)" applied "$run: the int3 probe applied"
	expect_eq "$(state p state)" "pending" "$run: the library probe pending"
	expect_contains "$(state p error)" "waiting for its module to be loaded; mapped now: " "$run: and what it waits for"
done
fixture_go d
expect_eq "$(fixture_line d)" "round1 $(python3 -c 'print(sum(i * 2 + 1 for i in range(100)))')" "round 1 result unchanged"
expect_eq "$(hits_of p)" 100 "the probe applied at dlopen and counted every call"
finish
