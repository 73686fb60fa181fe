# The overhead governor: a probe over its budget (hits per second from the spec's limits, or
# stopped time from the daemon's --max-stopped-ms-per-sec) is removed from its process within
# about a second: bytes restored, applied state `disabled` with the reason; the target's own
# result is unchanged; a probe within budget keeps counting; re-adding the spec re-enables it.
source "$(dirname "$0")/lib.sh"

N=600000000
want_sum=$(python3 -c "n=$N; print(3*n*(n-1)//2 + 7*n)")
start_fixture fast "$DIAG_FIXTURE_DIR/work-O2-nopie" 1 $N linger # alive for the byte checks even when done
start_fixture slow "$DIAG_FIXTURE_DIR/work-O0-pie" 1 0
start_daemon --pid "$fast_pid" --pid "$slow_pid" --max-stopped-ms-per-sec 5

r=$(add g1 work incr "\"pid\":$fast_pid,\"limits\":{\"max_hits_per_sec\":1000}")
expect_eq "$(echo "$r" | jget "j['spec']['limits']")" "{'max_hits_per_sec': 1000}" "limits echoed in the spec"
addr1=$(first_addr g1 "$fast_pid")
# An exact-path probe (reads the stack): its stops are what --max-stopped-ms-per-sec bounds.
r=$(req "{\"cmd\":\"add\",\"spec\":{\"id\":\"g2\",\"target\":\"work\",\"pid\":$slow_pid,\"instrument\":{\"type\":\"incr\",\"name\":\"g2\",\"value\":\"stack(1)\"}}}")
expect_eq "$(echo "$r" | jget "j['ok']")" True "exact probe added"
addr2=$(first_addr g2 "$slow_pid")
# A probe within every budget (a function never called) stays applied.
add g3 twice incr "\"pid\":$slow_pid" > /dev/null
fixture_go fast
fixture_go slow

# wait_state ID PID STATE: poll (10 s at most) - the governor acts on its own timer.
wait_state() {
	for _ in $(seq 100); do [ "$(state_of "$1" "$2")" = "$3" ] && return 0; sleep 0.1; done
	return 1
}
error_of() {
	req '{"cmd":"list"}' | jget "[a.get('error','') for s in j['specs'] if s['id']=='$1' for k,a in s['applied'].items() if k.endswith(':$2')][0]"
}
wait_state g1 "$fast_pid" disabled && pass "hits/s over limits.max_hits_per_sec: disabled" || fail "g1 not disabled: $(state_of g1 "$fast_pid")"
e=$(error_of g1 "$fast_pid")
[[ "$e" =~ ^disabled\ by\ the\ governor:\ [0-9]+\ hits/s\ over\ the\ limit\ 1000\ \(limits\.max_hits_per_sec\)$ ]] \
	&& pass "g1 reason: $e" || fail "g1 reason: [$e]"
expect_eq "$(code_bytes_match "$fast_pid" "$addr1")" same "g1: bytes restored at $addr1"
wait_state g2 "$slow_pid" disabled && pass "stopped ms/s over --max-stopped-ms-per-sec: disabled" || fail "g2 not disabled: $(state_of g2 "$slow_pid")"
e=$(error_of g2 "$slow_pid")
[[ "$e" =~ ^disabled\ by\ the\ governor:\ [0-9.]+\ ms/s\ stopped\ over\ the\ limit\ 5\.0\ \(--max-stopped-ms-per-sec\)$ ]] \
	&& pass "g2 reason: $e" || fail "g2 reason: [$e]"
expect_eq "$(code_bytes_match "$slow_pid" "$addr2")" same "g2: bytes restored at $addr2"
expect_eq "$(state_of g3 "$slow_pid")" applied "a probe within budget stays applied"
expect_contains "$(cat "$DERR")" "spec 'g1': pid $fast_pid: disabled by the governor" "logged on stderr"
expect_eq "$(fixture_line fast)" "sum $want_sum" "the target's own result is unchanged"

# Disabled stays disabled across a restart; re-adding the spec re-enables it.
stop_daemon
start_daemon --pid "$slow_pid" --max-stopped-ms-per-sec 5
expect_eq "$(state_of g2 "$slow_pid")" disabled "disabled survives a restart"
h=$(hits_of g2)
r=$(req "{\"cmd\":\"add\",\"spec\":{\"id\":\"g2\",\"target\":\"work\",\"pid\":$slow_pid,\"limits\":{\"max_stopped_ms_per_sec\":100000},\"instrument\":{\"type\":\"incr\",\"name\":\"g2\",\"value\":\"stack(1)\"}}}")
expect_eq "$(echo "$r" | jget "j['spec']['applied']['$(hostname):$slow_pid']['state']")" applied "re-add re-enables"
expect_eq "$(req '{"cmd":"wait","id":"g2","hits":100,"timeout":30}' | jget "j['ok']")" True "re-enabled probe counts"

# Option and spec errors.
"$DIAGNOSED" --max-hits-per-sec -3 --no-socket 2> "$T/opt.err"
expect_eq "$?" 2 "bad --max-hits-per-sec: exit 2"
expect_eq "$(cat "$T/opt.err")" "diagnosed: --max-hits-per-sec -3: must be a number >= 0 (0: no limit)" "bad option message"
expect_eq "$(add g4 work incr '"limits":{"max_hits_per_sec":0}' | jget "j['error']")" \
	"spec 'g4': limits.max_hits_per_sec: must be > 0 and <= 1000000000 (got 0)" "bad limits value"
expect_eq "$(add g4 work incr '"limits":{"hits":1}' | jget "j['error']")" \
	"spec 'g4': unknown field 'limits.hits'" "unknown limits member"
kill -0 "$slow_pid" && pass "slow target alive" || fail "slow target died"
finish
