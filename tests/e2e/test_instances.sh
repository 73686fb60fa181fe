# A probe on an always_inline function called from three places: `applied` lists the three
# inlined instances (what, address, jump or int3) and counts the calls of all of them; a
# clone is found for a constant-propagated function; at -O0 and -O2.
source "$(dirname "$0")/lib.sh"

for build in O2-pie O0-nopie; do
	start_fixture fx "$DIAG_FIXTURE_DIR/sym5-$build" 1000
	start_daemon --pid "$fx_pid"
	add inl inl_add incr > /dev/null
	inst=$(req '{"cmd":"list"}' | python3 -c "
import json,sys
j=json.loads(sys.stdin.readline())
s=[s for s in j['specs'] if s['id']=='inl'][0]
a=list(s['applied'].values())[0]
print(' '.join(sorted(i['what'].split(' at ')[0].replace(' ','_') for i in a['instances'])))")
	expect_eq "$inst" "inlined_into_caller_one inlined_into_caller_three inlined_into_caller_two" \
		"$build: three inlined instances listed"
	fixture_go fx
	expect_eq "$(req '{"cmd":"wait","id":"inl","hits":3000,"timeout":60}' | jget "j['ok']")" True \
		"$build: every call of every inlined copy seen"
	line=$(timeout 60 grep -m1 '^sum ' <&"$fx_out")
	expect_contains "$line" "sum " "$build: target finished"
	stop_daemon
	kill -KILL "$fx_pid" 2>/dev/null
done
finish
