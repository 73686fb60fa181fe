# The store: a restarted daemon (SIGTERM, then kill -9) loads every spec and applies the
# unexpired ones to processes still running; a corrupt store is kept aside with a clear error.
source "$(dirname "$0")/lib.sh"

start_fixture fx "$DIAG_FIXTURE_DIR/work-O0-pie" 1 0
start_daemon --pid "$fx_pid"
add a1 work incr > /dev/null
add a2 work log '"lifespan":30' > /dev/null
add gone work incr '"lifespan":0.01' > /dev/null
for _ in $(seq 100); do [ "$(state_of gone "$fx_pid")" = expired ] && break; sleep 0.1; done
expect_eq "$(state_of gone "$fx_pid")" expired "short spec expired"
stop_daemon

# Restart after SIGTERM: the process was detached; pid-less specs follow --pid again.
start_daemon --pid "$fx_pid"
ids=$(req '{"cmd":"list"}' | jget "sorted(s['id'] for s in j['specs'])")
expect_eq "$ids" "['a1', 'a2', 'gone']" "specs survive a restart"
expect_eq "$(state_of a1 "$fx_pid")" applied "a1 re-applied"
expect_eq "$(state_of gone "$fx_pid")" expired "expired spec stays expired"
fixture_go fx
expect_eq "$(req '{"cmd":"wait","id":"a1","hits":50,"timeout":30}' | jget "j['ok']")" True "a1 counts after restart"

# kill -9 right after an acknowledged add: the spec must be in the next run. This test is
# about the store; what kill -9 leaves in the target is test_daemon_kill9_target.sh.
stop_daemon
start_daemon
add late work incr "\"pid\":$fx_pid" > /dev/null
kill -KILL "$DPID"; wait "$DPID" 2>/dev/null; DPID=
start_daemon
ids=$(req '{"cmd":"list"}' | jget "sorted(s['id'] for s in j['specs'])")
expect_eq "$ids" "['a1', 'a2', 'gone', 'late']" "every acknowledged spec survives kill -9"
expect_eq "$(req '{"cmd":"list"}' | jget "[s['pid'] for s in j['specs'] if s['id']=='late'][0]")" "$fx_pid" "its pid list too"
stop_daemon

# A corrupt store: the daemon starts empty and keeps the bad file.
echo '[{"id":"a1",' > "$STORE"
start_daemon
expect_eq "$(req '{"cmd":"list"}')" '{"ok":true,"specs":[]}' "corrupt store: starts empty"
expect_contains "$(cat "$DERR")" "is corrupt (invalid JSON at byte" "corrupt store: clear error"
ls "$STORE".corrupt-* > /dev/null 2>&1 && pass "corrupt store kept aside" || fail "no $STORE.corrupt-*"
finish
