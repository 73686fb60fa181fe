# diagnosectl tells the truth in its exit status (issue 16, item 1): add-probe exits non-zero
# when the probe applied in no process (a typo in the target, a PID that is not there, nothing
# attached), with the reason on stderr, and 0 when any process applied it or holds it pending;
# --json carries the same `applied` records and the same exit status.
source "$(dirname "$0")/lib.sh"

start_fixture fx "$DIAG_FIXTURE_DIR/work-O0-pie" 1 0
start_daemon

# nothing attached yet: stored, applied nowhere, exit 1 naming why
ctl add-probe --target work --type incr --name n0 --id n0 > "$T/out" 2> "$T/err"
expect_eq "$?" 1 "add-probe with nothing attached: exit 1"
expect_contains "$(cat "$T/err")" "n0 is stored but applied in no process: no process is attached" \
	"add-probe with nothing attached: the reason"
expect_eq "$(cat "$T/out")" "n0" "add-probe with nothing attached: the id is still printed"

ctl attach "$fx_pid" > /dev/null
expect_eq "$?" 0 "attach"
# the stored probe now applies in the attached process
expect_eq "$(state_of n0 "$fx_pid")" applied "n0 applied after attach"

# a typo in the target
ctl add-probe --pid "$fx_pid" --target wrok --type incr --name typo --id typo > /dev/null 2> "$T/err"
expect_eq "$?" 1 "add-probe with a typo in the target: exit 1"
expect_contains "$(cat "$T/err")" "error: typo not applied in " "typo: which process"
expect_contains "$(cat "$T/err")" "wrok" "typo: the target is named"
expect_contains "$(cat "$T/err")" "applied in none of its 1 process" "typo: the summary"

# the same with --json: the reply is printed, the exit status is the same
ctl --json add-probe --pid "$fx_pid" --target wrok --type incr --name typo2 --id typo2 > "$T/out" 2> /dev/null
expect_eq "$?" 1 "--json add-probe with a typo: exit 1"
expect_eq "$(jget "[v['state'] for v in j['spec']['applied'].values()]" < "$T/out")" "['error']" \
	"--json: the applied record says error"

# a PID that does not exist
ctl add-probe --pid 999999999 --target work --type incr --name nopid --id nopid > /dev/null 2> "$T/err"
rc=$?
[ "$rc" -ne 0 ] && pass "add-probe --pid of no process: exit $rc" || fail "add-probe --pid of no process: exit 0"
[ -s "$T/err" ] && pass "add-probe --pid of no process: a reason" || fail "add-probe --pid of no process: silent"

# one good process among several: success
ctl add-probe --pid "$fx_pid" --target work --type incr --name good --id good > "$T/out" 2> "$T/err"
expect_eq "$?" 0 "add-probe that applied: exit 0"
expect_eq "$(cat "$T/out")" "good" "add-probe that applied: the id"
expect_eq "$(cat "$T/err")" "" "add-probe that applied: nothing on stderr"

# a library not loaded yet: pending is a success (it applies when the library comes)
ctl add-probe --pid "$fx_pid" --target 'nosuchlib.so:work' --type incr --name pend --id pend > /dev/null 2> "$T/err"
expect_eq "$?" 0 "add-probe pending on a library: exit 0"

# other commands: unknown ids and PIDs fail
ctl remove-probe nosuchid > /dev/null 2>&1
expect_eq "$?" 1 "remove-probe of an unknown id: exit 1"
ctl detach 999999999 > /dev/null 2>&1
expect_eq "$?" 1 "detach of a PID not attached: exit 1"
fixture_go fx
finish
