# The target grammar at add time (spec/target.h): a malformed target is refused by the daemon
# when the spec is added, with an error about field "target", before anything is stored; a
# spec with a valid target of each form is still stored and applied as before.
source "$(dirname "$0")/lib.sh"

start_fixture fx "$DIAG_FIXTURE_DIR/work-O0-pie" 1 0
start_daemon --pid "$fx_pid"
add ok1 work log > /dev/null # the store exists before the refused adds
[ -s "$STORE" ] || fail "store written"

for t in 'work+zz' 'wo rk' '1work' ':work' 'libc:' '0xZZ' 'work.c:0' 'ns::f+4'; do
	r=$(req "{\"cmd\":\"add\",\"spec\":$(spec_json bad "$t" log)}")
	expect_eq "$(echo "$r" | jget "j['ok']")" False "'$t': refused"
	expect_contains "$(echo "$r" | jget "j['error']")" "spec 'bad': target '$t': " "'$t': the message names the field and quotes the target"
	expect_eq "$(echo "$r" | jget "j.get('field', 'target')")" target "'$t': no other field named"
	expect_eq "$(req '{"cmd":"list"}' | jget "[s['id'] for s in j['specs'] if s['id'] == 'bad']")" "[]" "'$t': not listed"
	if grep -q '"bad"' "$STORE"; then fail "'$t': stored"; else pass "'$t': not stored"; fi
done

# diagnosectl add-probe: refused, exit status non-zero, the daemon's message on stderr
ctl add-probe --pid "$fx_pid" --target 'work+zz' --type log --name b2 --id b2 > /dev/null 2> "$T/add.err"
expect_eq "$?" 1 "add-probe: refused"
expect_contains "$(cat "$T/add.err")" "target 'work+zz': offset 'zz' is not a decimal or 0x hex number" "add-probe: the grammar's message"
expect_eq "$(req '{"cmd":"list"}' | jget "[s['id'] for s in j['specs'] if s['id'] == 'b2']")" "[]" "add-probe: not listed"
if grep -q '"b2"' "$STORE"; then fail "add-probe: stored"; else pass "add-probe: not stored"; fi

# valid forms still go through the add path; resolution's errors stay apply-time errors
add ok2 'work+0' log > /dev/null
expect_eq "$(state_of ok1 "$fx_pid")" applied "FUNC applied"
expect_eq "$(state_of ok2 "$fx_pid")" applied "FUNC+OFF applied"
r=$(add ok3 'nosuchlib.so:work' log)
expect_eq "$(echo "$r" | jget "j['ok']")" True "MODULE:FUNC with a module not loaded: stored"
expect_eq "$(state_of ok3 "$fx_pid")" pending "MODULE:FUNC with a module not loaded: pending"
fixture_go fx
finish
