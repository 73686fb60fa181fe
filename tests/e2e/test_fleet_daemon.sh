# diagnosed --store redis://... (issue 12): one daemon follows the shared store. It loads the
# set at start, applies a spec added through `diagnosectl --store` (no daemon involved), writes
# its applied record HOST:PID with state and hits and its heartbeat; a change and a removal
# reach it through the store; the password comes from a file or the environment, never the
# command line; a store that refuses the password or does not answer is a clear error in
# status while the daemon keeps running and retrying.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fleet_lib.sh"
trap 'stop_redis; cleanup' EXIT
start_redis
export DIAG_JOURNAL_DIR=$T/journal

start_fixture fx "$DIAG_FIXTURE_DIR/work-O0-pie" 1 0
fixture_go fx
# a spec stored before the daemon starts: applied from the set read at start
sc add-probe --target work --type incr --name before --id w0 > /dev/null || fail "add-probe w0"
"$DIAGNOSED" --socket "$SOCK" --store "$(URL)" --store-password-file "$T/pw" --host-name web-1 \
	--store-heartbeat 1 --pid "$fx_pid" > "$T/d.out0" 2> "$T/d.err0" &
DPID=$!
wait_for 10 "the daemon's socket" req '{"cmd":"status"}'
wait_for 10 "a spec stored before the start is applied (web-1:PID in the store)" \
	list_has "any(s['id']=='w0' and s['applied'].get('web-1:$fx_pid',{}).get('state')=='applied' for s in j['specs'])"

out=$(sc add-probe --target work --type incr --name n --id w1 --lifespan 5)
expect_eq "$out" "w1" "add-probe through the store prints the id"
wait_for 5 "the new spec is applied on the host within seconds" \
	list_has "any(s['id']=='w1' and s['applied'].get('web-1:$fx_pid',{}).get('state')=='applied' for s in j['specs'])"
wait_for 10 "its applied record counts hits" \
	list_has "any(s['id']=='w1' and s['applied']['web-1:$fx_pid']['hits']>0 for s in j['specs'])"
expect_eq "$(rcli HEXISTS diagnose:applied:w1 "web-1:$fx_pid")" 1 "the record is the field HOST:PID of diagnose:applied:ID"
expect_eq "$(sc --json hosts | jget "(j['hosts']['web-1']['processes'], j['hosts']['web-1']['stale'])")" \
	"(1, False)" "the heartbeat: one process traced, live"
expect_eq "$(ctl --json list | jget "[s['id'] for s in j['specs']]" | tr -d "'")" "[w0, w1]" \
	"the daemon's own list holds the store's specs"
expect_eq "$(ctl --json status | jget "(j['store']['connected'], j['store']['host'])")" "(True, 'web-1')" \
	"status: connected, as host web-1"
expect_contains "$(ctl status)" "store: $(URL) as host web-1: connected" "status (text) names the store and the host"

# the issue's contract with a selector: `add-probe --exe BIN` through the store, no --pid; the
# daemon takes a process of that executable started after the spec, and its record
# HOST:PID is in the store's list
EXE=$T/fleetsel$$
cp "$DIAG_FIXTURE_DIR/work-O2-pie" "$EXE"
expect_eq "$(sc add-probe --exe "$EXE" --target work --type incr --name s --id ws --lifespan 5)" ws \
	"add-probe --exe through the store prints the id"
start_fixture fs "$EXE" 1 0
fixture_go fs
wait_for 20 "a process of the --exe executable, started after the spec, is applied (web-1:PID)" \
	list_has "any(s['id']=='ws' and s['applied'].get('web-1:$fs_pid',{}).get('state')=='applied' for s in j['specs'])"
wait_for 10 "... and its record counts hits" \
	list_has "any(s['id']=='ws' and s['applied']['web-1:$fs_pid']['hits']>0 for s in j['specs'])"
ctl --json status | grep -q "\"pid\": *$fs_pid\b" && pass "status lists the selector's process" ||
	fail "status does not list the selector's process $fs_pid"
sc remove-probe ws > /dev/null || fail "remove-probe ws"
wait_for 10 "removed through the store: the selector's process is detached" \
	sh -c "! $(printf '%q ' "$DIAGNOSECTL") --socket $SOCK --json status | grep -q '\"pid\": *$fs_pid\b'"

# a change (new version) replaces the running spec; a removal removes it
sc add-probe --target work --type incr --name n2 --id w1 > /dev/null
wait_for 5 "a changed spec is applied again at its new version" \
	sh -c "$(printf '%q ' "$DIAGNOSECTL") --socket $SOCK --json list | grep -q '\"name\":\"n2\"'"
rcli SCRIPT FLUSH > /dev/null # the record script is gone: NOSCRIPT, loaded again
sc add-probe --target work --type incr --name n3 --id w2 > /dev/null
wait_for 5 "records are written after the server's scripts were flushed" \
	list_has "any(s['id']=='w2' and s['applied'].get('web-1:$fx_pid',{}).get('state')=='applied' for s in j['specs'])"
sc remove-probe w0
wait_for 5 "a spec removed through the store is removed on the host" \
	sh -c "! $(printf '%q ' "$DIAGNOSECTL") --socket $SOCK --json list | grep -q '\"id\":\"w0\"'"
expect_eq "$(rcli EXISTS diagnose:applied:w0)" 0 "no applied record is written back for a removed spec"

# a record that does not parse: kept in the store, reported in status and hosts, others applied
rcli SADD diagnose:specs bad1 > /dev/null
rcli HSET diagnose:spec:bad1 json '{"id":"bad1","target":' version 1 lastmodified 1 > /dev/null
rcli PUBLISH diagnose:changes "bad1 1" > /dev/null
wait_for 5 "a record that does not parse shows in status" \
	sh -c "$(printf '%q ' "$DIAGNOSECTL") --socket $SOCK --json status | grep -q 'bad1'"
wait_for 5 "... and in hosts (the heartbeat's problem)" sh -c "$(printf '%q ' "$DIAGNOSECTL") --store $(URL) --store-password-file $T/pw --json hosts | grep -q bad1"
expect_eq "$(rcli HEXISTS diagnose:spec:bad1 json)" 1 "... and stays in the store"
expect_contains "$(cat "$T/d.err0")" "spec 'bad1'" "... and is logged"
stop_daemon || fail "the daemon exits 0 at SIGTERM"
expect_eq "$(sc --json list | jget "[(s['applied']['web-1:$fx_pid']['state'], s['applied']['web-1:$fx_pid']['error']) for s in j['specs'] if s['id']=='w1'][0]")" \
	"('removed', 'diagnosed on web-1 stopped: the probe is removed')" "a clean stop writes its records as removed"

# the least a daemon's ACL user needs (docs/fleet.md): it applies, writes records and beats
redis-cli -p "$PORT" -a topsecret --no-auth-warning ACL SETUSER dmn on '>d4emon' '~diagnose:*' \
	'&diagnose:changes' +smembers +sismember +hmget +hset +hdel +exists +subscribe +evalsha \
	'+script|load' '+client|setname' +ping +select > /dev/null || fail "ACL SETUSER dmn"
echo d4emon > "$T/dpw"
"$DIAGNOSED" --socket "$SOCK" --store "redis://dmn@127.0.0.1:$PORT" --store-password-file "$T/dpw" \
	--host-name web-9 --store-heartbeat 1 --pid "$fx_pid" > "$T/d.out4" 2> "$T/d.err4" &
DPID=$!
wait_for 10 "with the documented least ACL: the record is written" \
	list_has "any(s['id']=='w1' and s['applied'].get('web-9:$fx_pid',{}).get('state')=='applied' for s in j['specs'])"
wait_for 5 "... and the heartbeat" sh -c "$(printf '%q ' "$DIAGNOSECTL") --store $(URL) --store-password-file $T/pw --json hosts | grep -q web-9"
expect_eq "$(grep -c 'NOPERM\|no permissions' "$T/d.err4")" 0 "... and nothing is refused"
stop_daemon || fail "the daemon exits 0 at SIGTERM"

# a refused password, then an unreachable store: the daemon runs, status says why
echo wrong > "$T/bad"
"$DIAGNOSED" --socket "$SOCK" --store "$(URL)" --store-password-file "$T/bad" --host-name web-1 \
	--pid "$fx_pid" > "$T/d.out1" 2> "$T/d.err1" &
DPID=$!
wait_for 10 "a daemon whose password is refused keeps running" req '{"cmd":"status"}'
wait_for 5 "status names the refused password" \
	sh -c "$(printf '%q ' "$DIAGNOSECTL") --socket $SOCK --json status | grep -q 'the password was refused'"
stop_daemon
DIAGNOSE_REDIS_PASSWORD=topsecret "$DIAGNOSED" --socket "$SOCK" --store "redis://127.0.0.1:$PORT" \
	--host-name web-1 --pid "$fx_pid" > "$T/d.out2" 2> "$T/d.err2" &
DPID=$!
wait_for 10 "the password from the environment (the default user)" \
	sh -c "$(printf '%q ' "$DIAGNOSECTL") --socket $SOCK --json status | grep -q '\"connected\":true'"
stop_daemon
"$DIAGNOSED" --socket "$SOCK" --store "redis://127.0.0.1:1" --host-name web-1 --pid "$fx_pid" \
	> "$T/d.out3" 2> "$T/d.err3" &
DPID=$!
wait_for 10 "an unreachable store: the daemon keeps running" req '{"cmd":"status"}'
wait_for 5 "status: unreachable, retrying" \
	sh -c "$(printf '%q ' "$DIAGNOSECTL") --socket $SOCK --json status | grep -q 'unreachable.*retrying'"
expect_contains "$(ctl status)" "WARNING: store 127.0.0.1:1: unreachable" "status (text) says why"
stop_daemon
"$DIAGNOSED" --socket "$SOCK" --store "redis://alice:pw@127.0.0.1:$PORT" 2> "$T/err"
expect_eq "$?" 1 "a password in the URL: refused at start"
expect_contains "$(cat "$T/err")" "no password in the URL" "... and why"
"$DIAGNOSED" --socket "$SOCK" --store "$(URL)" --host-name 'web:1' 2> "$T/err"
expect_eq "$?" 2 "a host name with ':' is a usage error"
finish
