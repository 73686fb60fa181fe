# diagnosed --pid PID --spec FILE (issue 2's interface): every call logged exactly once with
# its value, on each fixture build; precise one-line errors; exit status rules.
source "$(dirname "$0")/lib.sh"

for build in O0-pie O0-nopie O2-pie O2-nopie; do
	start_fixture fx "$DIAG_FIXTURE_DIR/work-$build" 2 500
	printf '[%s,%s]\n' "$(spec_json w1 work log)" \
		'{"id":"w2","target":"work","instrument":{"type":"log","name":"w","event":"entry"}}' > "$T/spec.json"
	rm -f "$T/cli.err" # the wait below must not see the previous round's file
	"$DIAGNOSED" --pid "$fx_pid" --spec "$T/spec.json" --no-socket > "$T/cli.out" 2> "$T/cli.err" &
	DPID=$!
	# The daemon says nothing on stdout before the first hit; its error lines mean it has
	# applied everything it could.
	for _ in $(seq 200); do grep -q "w2" "$T/cli.err" 2>/dev/null && break; sleep 0.05; done
	fixture_go fx
	expect_contains "$(fixture_line fx)" "sum " "$build: fixture finished"
	# its only process has exited: a one-shot run ends by itself (SIGTERM if it did not)
	for _ in $(seq 600); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.05; done
	kill -TERM "$DPID" 2>/dev/null
	wait "$DPID"
	expect_eq "$?" 0 "$build: exits 0"
	DPID=
	expect_contains "$(cat "$T/cli.err")" "no probe is live any more" "$build: ended by itself once its process exited"
	expect_eq "$(grep -c '^Probe (w1) = ' "$T/cli.out")" 1000 "$build: one line per call"
	expect_eq "$(grep '^Probe (w1) = ' "$T/cli.out" | sort | uniq -c | awk '$1 != 2' | wc -l)" 0 \
		"$build: each value 0..499 seen once per thread"
	expect_eq "$(grep -c '^Probe (w1) = 499$' "$T/cli.out")" 2 "$build: last value"
	expect_eq "$(head -1 "$T/cli.err")" \
		"diagnosed: spec 'w2': instrument.event: must be one of call, return, end (got 'entry')" \
		"$build: bad spec error line"
	exec {fx_in}>&- {fx_out}<&-
	rm -f "$T/fx.in" "$T/fx.out"
done

start_fixture fx "$DIAG_FIXTURE_DIR/work-O0-pie" 1 0
spec_json w3 nosuch log > "$T/bad.json"
"$DIAGNOSED" --pid "$fx_pid" --spec "$T/bad.json" --no-socket > /dev/null 2> "$T/err"
expect_eq "$?" 1 "nothing applied: exit 1"
expect_contains "$(head -1 "$T/err")" "diagnosed: spec 'w3': target: " "missing symbol names spec and field"
expect_contains "$(head -1 "$T/err")" "nosuch" "missing symbol names the symbol"

spec_json w1 work log > "$T/good.json"
"$DIAGNOSED" --pid 999999 --spec "$T/good.json" --no-socket > /dev/null 2> "$T/err"
expect_eq "$?" 1 "no such pid: exit 1"
expect_eq "$(head -1 "$T/err")" "diagnosed: --pid 999999: no such process" "no such pid message"

echo '{"id":"w1",' > "$T/broken.json"
"$DIAGNOSED" --pid "$fx_pid" --spec "$T/broken.json" --no-socket > /dev/null 2> "$T/err"
expect_eq "$?" 1 "bad JSON: exit 1"
expect_contains "$(head -1 "$T/err")" "diagnosed: --spec $T/broken.json: invalid JSON at byte" "bad JSON message"

printf '{"id":"w1","tagret":"work","instrument":{"type":"log","name":"w"}}' > "$T/unk.json"
"$DIAGNOSED" --pid "$fx_pid" --spec "$T/unk.json" --no-socket > /dev/null 2> "$T/err"
expect_eq "$(head -1 "$T/err")" "diagnosed: spec 'w1': unknown field 'tagret'" "unknown field message"

# One good pid and one missing: keeps running (something was applied).
rm -f "$T/err"
"$DIAGNOSED" --pid 999999 --pid "$fx_pid" --spec "$T/good.json" --no-socket > /dev/null 2> "$T/err" &
DPID=$!
for _ in $(seq 200); do grep -q "999999" "$T/err" 2>/dev/null && break; sleep 0.05; done
kill -0 "$DPID" && pass "partial failure keeps running" || fail "partial failure exited"
stop_daemon
expect_eq "$?" 0 "partial failure: SIGTERM exits 0"

# --nice: the daemon's threads run at -5 by default, at N when asked; out of range refused
nice_of() { awk '{print $19}' "/proc/$1/stat"; } # field 19 of stat: nice
start_daemon
expect_eq "$(nice_of "$DPID")" -5 "the daemon runs at nice -5 by default"
expect_eq "$(for t in /proc/$DPID/task/*; do awk '{print $19}' "$t/stat"; done | sort -u)" -5 \
	"every thread of the daemon at nice -5"
stop_daemon
start_daemon --nice 3
expect_eq "$(nice_of "$DPID")" 3 "--nice 3"
stop_daemon
for bad in 20 -21 x ""; do
	err=$("$DIAGNOSED" --socket "$SOCK" --store "$STORE" --nice "$bad" 2>&1 >/dev/null)
	expect_eq "$?" 2 "--nice '$bad' refused (exit 2)"
	expect_contains "$err" "--nice $bad: must be a whole number in [-20, 19] (default -5)" \
		"--nice '$bad': the limits are named"
done
finish
