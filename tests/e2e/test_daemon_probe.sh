# Control socket: add, list, fire, stats, tail, wait, status, remove; remove and detach
# restore the code bytes; diagnosectl drives the same daemon.
source "$(dirname "$0")/lib.sh"

start_fixture fx "$DIAG_FIXTURE_DIR/work-O2-pie" 1 0
start_daemon --pid "$fx_pid"

r=$(add w1 work incr '"lifespan":10')
expect_eq "$(echo "$r" | jget "j['ok'], j['id']")" "True w1" "add replies ok with the id"
expect_eq "$(echo "$r" | jget "j['spec']['applied']['$(hostname):$fx_pid']['state']")" applied "add reports applied"
expect_contains "$(echo "$r" | jget "j['spec']['lastmodified']")" "Z" "lastmodified is UTC"
addr=$(first_addr w1 "$fx_pid")
expect_eq "$(code_bytes_match "$fx_pid" "$addr")" differ "code patched at $addr"

fixture_go fx
expect_eq "$(req '{"cmd":"wait","id":"w1","hits":200,"timeout":30}' | jget "j['ok'] and j['hits'] >= 200")" True "wait returns once 200 hits"
expect_eq "$(req '{"cmd":"stats","id":"w1"}' | jget "j['stats'][0]['report']['count'] >= 200")" True "stats: incr count"
list=$(req '{"cmd":"list"}')
expect_eq "$(echo "$list" | jget "j['specs'][0]['applied']['$(hostname):$fx_pid']['hits'] >= 200")" True "list: hits per process"
expect_eq "$(echo "$list" | jget "0 < j['specs'][0]['expires_in'] <= 600")" True "list: expires_in"
expect_eq "$(echo "$list" | jget "j['specs'][0]['applied']['$(hostname):$fx_pid']['last_hit'] is not None")" True "list: last_hit"
st=$(req '{"cmd":"status"}')
expect_eq "$(echo "$st" | jget "[t['pid'] for t in j['targets']], j['specs'], j['queue']['capacity']")" "[$fx_pid] 1 33554432" "status"
expect_eq "$(echo "$st" | jget "sorted(j['dropped']), all(type(v) in (int, float) and v >= 0 for v in j['dropped'].values()), 100 <= j['drain']['period_us'] <= 1000, j['queue']['pushed'] >= j['queue']['fired'] > 0")" \
	"['queue', 'ring', 'tail'] True True True" "status: drops by place, the drain period, the queue's counts"

tail2=$($DIAGREQ "$SOCK" --tail 2 '{"cmd":"tail","id":"w1"}' | tail -1)
expect_eq "$(echo "$tail2" | jget "j['event']['id'], j['event']['pid'], j['event']['kind'], type(j['event']['value']).__name__")" \
	"w1 $fx_pid call int" "tail streams events"

# diagnosectl against the same daemon
out=$(ctl add-probe --pid "$fx_pid" --target work --type hist --name h --value '$arg1' --id h1)
expect_eq "$?" 0 "diagnosectl add-probe"
expect_contains "$out" "h1" "diagnosectl prints the id"
ctl wait h1 --hits 100 --timeout 30 > /dev/null
expect_eq "$?" 0 "diagnosectl wait"
expect_contains "$(ctl list)" "h1" "diagnosectl list"
ctl wait h1 --hits 100000000 --timeout 0.2 > /dev/null 2>&1
expect_eq "$?" 1 "diagnosectl wait times out with 1"
expect_contains "$(req '{"cmd":"wait","id":"h1","hits":100000000,"timeout":0.2}')" \
	"timeout: probe 'h1' has " "wait timeout error"

expect_eq "$(req '{"cmd":"remove","id":"w1"}')" '{"ok":true}' "remove"
expect_eq "$(code_bytes_match "$fx_pid" "$addr")" differ "h1 still patches the shared address"
expect_eq "$(req '{"cmd":"remove","id":"w1"}' | jget "j['error']")" "id: no probe 'w1'" "remove unknown id"
ctl remove-probe h1 > /dev/null
expect_eq "$?" 0 "diagnosectl remove-probe"
expect_eq "$(code_bytes_match "$fx_pid" "$addr")" same "bytes restored after remove"
expect_eq "$(req '{"cmd":"list"}')" '{"ok":true,"specs":[]}' "list empty"

add w2 work incr > /dev/null
addr=$(first_addr w2 "$fx_pid")
expect_eq "$(req "{\"cmd\":\"detach\",\"pid\":$fx_pid}")" '{"ok":true}' "detach"
expect_eq "$(state_of w2 "$fx_pid")" removed "detach marks removed"
expect_eq "$(code_bytes_match "$fx_pid" "$addr")" same "bytes restored after detach"
expect_eq "$(req "{\"cmd\":\"attach\",\"pid\":$fx_pid}")" '{"ok":true}' "attach"
expect_eq "$(state_of w2 "$fx_pid")" applied "attach re-applies pid-less specs"
kill -0 "$fx_pid" && pass "fixture alive" || fail "fixture died"
stop_daemon
expect_eq "$?" 0 "SIGTERM exits 0"
expect_eq "$(code_bytes_match "$fx_pid" "$addr")" same "bytes restored after SIGTERM"
kill -0 "$fx_pid" && pass "fixture alive after daemon exit" || fail "fixture died after daemon exit"
finish
