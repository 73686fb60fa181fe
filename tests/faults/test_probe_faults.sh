# Probes that must fail or fault cleanly: functions starting with an instruction that cannot
# be relocated (an int3 already there, xbegin) get a precise applied error and no byte
# changes; values read through NULL, freed and unmapped pointers become error values while
# the target runs on.
source "$(dirname "$0")/lib.sh"
start_fixture v "$DIAG_FIXTURE_DIR/victim-O2-nopie" 2 ptrs
start_daemon --pid "$v_pid" $NOGOV
applied_error() { echo "$1" | jget "j['spec']['applied']['$(hostname):$v_pid'].get('error','')"; }
for fn in with_int3 with_xbegin; do
	r=$(add "$fn" "$fn" incr)
	expect_eq "$(echo "$r" | jget "j['spec']['applied']['$(hostname):$v_pid']['state']")" error "$fn: state error"
	e=$(applied_error "$r")
	expect_contains "$e" "cannot relocate" "$fn: precise error ($e)"
	a=$(nm "$DIAG_FIXTURE_DIR/victim-O2-nopie" | awk -v f=$fn '$3 == f {print "0x" $1}')
	expect_eq "$(code_bytes_match "$v_pid" "$a")" same "$fn: no byte changed"
done
req '{"cmd":"add","spec":{"id":"p","target":"take","instrument":{"type":"log","name":"p","value":"str($arg1)"}}}' > /dev/null
req '{"cmd":"add","spec":{"id":"q","target":"take","instrument":{"type":"log","name":"q","value":"*(long *)$arg1"}}}' > /dev/null
fixture_go v
ev=$($DIAGREQ "$SOCK" --tail 40 '{"cmd":"tail"}' | tail -40)
expect_contains "$ev" '"text":"<null pointer>"' "NULL string: error value"
expect_contains "$ev" '"text":"<fault at 0x0>"' "NULL dereference: error value"
expect_contains "$ev" '"text":"<fault at 0x' "freed or unmapped pointer: error value"
expect_contains "$ev" '"text":"\"ok\""' "valid string still read"
expect_eq "$(serving)" True "daemon serving"
r=$(victim_result v)
expect_eq "$(field "$r" bad)" 0 "results right ($r)"
figure "values through NULL, freed and unmapped pointers" 1 1 0 0
finish
