# Counting in the target (issue 10): an `incr` with no value and no condition, on a jump, is
# its site's counters. No record per hit, so the count is exact at any rate: 4 threads calling
# `work` without pause (~10-30 M calls/s here, far past what records can carry: 95% of a
# string probe's events were ring drops at 8 M/s) count every call, with nothing dropped.
# A probe with a value joining the same address turns the trampoline back into a recording
# one and leaving turns it into a counting one again: across both switches the counting
# probe's count plus its drops equals its hits exactly, and the target's results are unchanged.
# `applied` gives each jump's record size: none for the counter, one 64-byte slim record for
# the `$arg1` value.
source "$(dirname "$0")/lib.sh"
start_daemon --max-stopped-ms-per-sec 0 --max-total-stopped-ms-per-sec 0 --max-stopped-percent 0
FIX=$DIAG_FIXTURE_DIR/work-O2-pie
count_spec() { # ID: an incr with no value (the seed's plain counter)
	printf '{"id":"%s","target":"work","instrument":{"type":"incr","name":"%s","event":"call","custom":{}}}' "$1" "$1"
}
# numbers ID PID: incr count, applied hits, applied dropped
numbers() {
	local st li
	st=$(req "{\"cmd\":\"stats\",\"id\":\"$1\"}")
	li=$(req '{"cmd":"list"}')
	python3 - "$1" "$2" "$st" "$li" <<'PY'
import json, sys
sid, pid, st, li = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
rep = (st["stats"][0].get("report") or {}) if st.get("ok") else {}
a = [a for s in li["specs"] if s["id"] == sid for k, a in s["applied"].items() if k.endswith(":" + pid)]
a = a[0] if a else {}
print(rep.get("count", -1), a.get("hits", -1), a.get("dropped", -1))
PY
}
# settle ID PID WANT: wait (bounded) until count + dropped reaches WANT; prints the numbers
settle() {
	local c h d end=$((SECONDS + 30))
	while :; do
		read -r c h d < <(numbers "$1" "$2")
		[ $((c + d)) -ge "$3" ] || [ $SECONDS -ge $end ] && break
		sleep 0.05
	done
	echo "$c $h $d"
}

# the program's own result without any probe
start_fixture u "$FIX" 4 2000000
fixture_go u
want_sum=$(fixture_line u)

# 1. 4 threads x 2,000,000 calls at full speed: every call counted, nothing dropped
N=2000000
start_fixture w "$FIX" 4 $N
req "{\"cmd\":\"attach\",\"pid\":$w_pid}" > /dev/null
r=$(req "{\"cmd\":\"add\",\"spec\":$(count_spec c)}")
expect_eq "$(echo "$r" | jget "j['spec']['applied']['$(hostname):$w_pid']['instances'][0]['path']")" jump "the counter is on a jump"
expect_eq "$(echo "$r" | jget "j['spec']['applied']['$(hostname):$w_pid']['instances'][0].get('record_bytes')")" None \
	"a counter records nothing"
fixture_go w
expect_eq "$(fixture_line w)" "$want_sum" "the target's result is unchanged"
read -r c h d < <(settle c "$w_pid" $((4 * N)))
echo "calls $((4 * N)) count $c hits $h dropped $d"
expect_eq "$c" $((4 * N)) "the incr counted every call"
expect_eq "$h" $((4 * N)) "applied.hits is every call"
expect_eq "$d" 0 "nothing dropped"
req '{"cmd":"remove","id":"c"}' > /dev/null

# 2. a recording probe joins the counting site and leaves again while the threads call (for
# ever: the target is stopped with SIGSTOP at the end, so that its hits hold still)
start_fixture s "$FIX" 2 0
req "{\"cmd\":\"attach\",\"pid\":$s_pid}" > /dev/null
req "{\"cmd\":\"add\",\"spec\":$(count_spec k)}" > /dev/null
fixture_go s
hits_above() { # ID PID N: bounded wait for more than N hits
	local end=$((SECONDS + 30)) h
	while [ $SECONDS -lt $end ]; do
		read -r _ h _ < <(numbers "$1" "$2")
		[ "$h" -gt "$3" ] && return 0
		sleep 0.02
	done
	return 1
}
hits_above k "$s_pid" 100000 || fail "the counting probe does not count"
read -r _ h1 _ < <(numbers k "$s_pid")
r=$(add v work incr) # with a value: its site records
expect_eq "$(echo "$r" | jget "j['spec']['applied']['$(hostname):$s_pid']['instances'][0]['path']")" jump "the recording probe joined the jump"
# the value is $arg1: a slim record of rdi and rsp, one 64-byte unit per hit (arch/ring.h); the
# counting probe alone recorded nothing
expect_eq "$(echo "$r" | jget "j['spec']['applied']['$(hostname):$s_pid']['instances'][0].get('record_bytes')")" 64 \
	"a value of one register takes one 64-byte record"
hits_above k "$s_pid" $((h1 + 100000)) || fail "no hits after the recording probe joined"
req '{"cmd":"remove","id":"v"}' > /dev/null
read -r _ h2 _ < <(numbers k "$s_pid")
hits_above k "$s_pid" $((h2 + 100000)) || fail "no hits after the recording probe left"
kill -STOP "$s_pid"
# stopped: the hits hold still once every thread is in its group stop and the last records
# and counts are drained (a drain every <= 1 ms)
end=$((SECONDS + 30)) prev=
while [ $SECONDS -lt $end ]; do
	cur=$(numbers k "$s_pid")
	read -r c h d <<< "$cur"
	[ "$cur" == "$prev" ] && [ $((c + d)) -eq "$h" ] && break
	prev=$cur
	sleep 0.2
done
echo "count $c hits $h dropped $d (the recording probe joined at ~$h1 hits, left at ~$h2)"
[ "$h" -gt $((h2 + 100000)) ] && pass "hits after both switches" || fail "too few hits ($h)"
expect_eq "$((c + d))" "$h" "count + dropped is every hit, across both switches"
kill -CONT "$s_pid"
stop_daemon || fail "daemon exit status"
finish
