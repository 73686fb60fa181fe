# The one-line form (issue 16, items 2 and 3): `diagnosed -p PID -e '...'` attaches, prints
# events as they come and every incr/hist report at the end (at --duration, SIGINT, or when
# the lifespans end), then restores every byte; a daemon serving without --foreground prints
# no events on its stdout.
source "$(dirname "$0")/lib.sh"

start_fixture fx "$DIAG_FIXTURE_DIR/work-O0-pie" 1 20
"$DIAGNOSED" --no-socket -p "$fx_pid" -e 'log work $arg1' -e 'incr,by_value work $arg1 if $arg1 < 5' \
	-e 'hist work@return $arg1' -e 'bogus' > "$T/one.out" 2> "$T/one.err" &
dpid=$!
# startup only: a bounded wait for the daemon's line saying the probes are live
for _ in $(seq 400); do grep -q "probes live" "$T/one.err" && break; kill -0 "$dpid" || break; sleep 0.05; done
expect_contains "$(cat "$T/one.err")" "3 probes live; Ctrl-C ends the run" "the run says when it is ready"
fixture_go fx
expect_contains "$(fixture_line fx)" "sum" "the fixture ran"
kill -INT "$dpid"
wait "$dpid"
expect_eq "$?" 0 "one-shot run: exit 0 after SIGINT"
expect_contains "$(cat "$T/one.err")" "-e 'bogus': a TARGET must follow the type 'bogus'" "a bad line: its precise error"
expect_eq "$(grep -c '^Probe (work) = ' "$T/one.out")" 20 "every event printed as it came"
expect_contains "$(cat "$T/one.out")" "--- reports ---" "the reports at the end"
expect_contains "$(cat "$T/one.out")" "e2 (work) count=5" "incr: the condition's count"
expect_contains "$(cat "$T/one.out")" "           1  4" "incr by_value: one key per value"
expect_contains "$(cat "$T/one.out")" "e3 (work@return) count=20" "hist: its count"
expect_contains "$(cat "$T/one.out")" "[8, 16)" "hist: its bars"

# a service (no --spec, no -e, no --foreground) prints no events on stdout: bounded output
start_fixture fy "$DIAG_FIXTURE_DIR/work-O0-pie" 1 5
start_daemon --pid "$fy_pid"
add quiet work log > /dev/null
expect_eq "$(state_of quiet "$fy_pid")" applied "service: the log probe applied"
fixture_go fy
expect_contains "$(fixture_line fy)" "sum" "service: the fixture ran"
expect_eq "$(hits_of quiet "$fy_pid")" 5 "service: the hits were counted"
stop_daemon
expect_eq "$(grep -c '^Probe' "$DOUT")" 0 "service: no event on stdout"
finish
