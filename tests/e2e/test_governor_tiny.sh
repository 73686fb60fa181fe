# The governor's stopped-time budget on a tiny hot function (issue 15, item 8): `tiny` (5 bytes
# at -O2) called in a loop by 1 and 4 threads, probed on the int3 path (the value reads
# memory). Its threads then spend nearly all their time stopped for our hits; the daemon's
# default budget (--max-stopped-percent 10) must disable the probe in that process within 3 s
# (bytes restored, the precise reason in `applied`), the fixture's own call rate must recover,
# and another probe in the same process keeps counting.
source "$(dirname "$0")/lib.sh"

# rate_line NAME: the fixture's next "rate N FROM TO" line, as "N FROM TO" (ns, realtime).
rate_line() {
	local l
	l=$(fixture_line "$1") || { echo "0 0 0"; return; }
	echo "${l#rate }"
}
now_ns() { date +%s%N; }
error_of() {
	req '{"cmd":"list"}' | jget "[a.get('error','') for s in j['specs'] if s['id']=='$1' for k,a in s['applied'].items() if k.endswith(':$2')][0]"
}

start_daemon
for opt in ${TINY_OPTS:-O0 O2}; do
	for threads in ${TINY_THREADS:-1 4}; do
		c=$opt-t$threads
		start_fixture f "$DIAG_FIXTURE_DIR/tiny-$opt-nopie" "$threads"
		pid=$f_pid
		expect_eq "$(req "{\"cmd\":\"attach\",\"pid\":$pid}" | jget "j['ok']")" True "$c: attached"
		fixture_go f
		base=0
		for _ in 1 2 3 4 5; do
			read -r r _ _ <<< "$(rate_line f)"
			[ "$r" -gt "$base" ] && base=$r
		done
		# the cold probe first: it must keep working after the hot one is disabled
		r=$(req "{\"cmd\":\"add\",\"spec\":{\"id\":\"cold-$c\",\"target\":\"report\",\"pid\":$pid,\"instrument\":{\"type\":\"incr\",\"name\":\"cold-$c\",\"value\":\"stack(1)\"}}}")
		expect_eq "$(echo "$r" | jget "j['ok']")" True "$c: cold probe added"
		t_req=$(now_ns)
		r=$(req "{\"cmd\":\"add\",\"spec\":{\"id\":\"hot-$c\",\"target\":\"tiny\",\"pid\":$pid,\"instrument\":{\"type\":\"incr\",\"name\":\"hot-$c\",\"value\":\"stack(1)\"}}}")
		expect_eq "$(echo "$r" | jget "j['spec']['applied']['$(hostname):$pid']['state']")" applied "$c: hot probe applied"
		addr=$(echo "$r" | jget "j['spec']['applied']['$(hostname):$pid']['addresses'][0]")
		# bounded poll: disabled within 3 s of the add's reply
		st=none
		for _ in $(seq 30); do
			st=$(state_of "hot-$c" "$pid")
			[ "$st" = disabled ] && break
			sleep 0.1
		done
		t_off=$(now_ns)
		expect_eq "$st" disabled "$c: the hot int3 probe is disabled within 3 s"
		e=$(error_of "hot-$c" "$pid")
		[[ "$e" =~ ^disabled\ by\ the\ governor:\ threads\ of\ $pid\ stopped\ [0-9]+%\ of\ the\ last\ [0-9.]+\ s\ by\ this\ probe\ \(budget\ 10%\)$ ]] \
			&& pass "$c: reason: $e" || fail "$c: reason: [$e]"
		expect_eq "$(code_bytes_match "$pid" "$addr")" same "$c: bytes restored at $addr"
		# The fixture's own rate (each line says over which interval; they queue in the FIFO):
		# some interval overlapping the probe's life (from the add's request to the poll that
		# saw it disabled) below a twentieth of the base - the harm -, then an interval after
		# it back above that, within 10 s (of the fixture's clock) after.
		thr=$((base / 20)) low=-1 rec=0
		for _ in $(seq 3000); do
			read -r r from to <<< "$(rate_line f)"
			echo "$r $from $to" >> "$T/rates"
			[ "$to" = 0 ] && break
			if [ "$to" -gt "$t_req" ] && [ "$from" -lt "$t_off" ]; then
				[ "$r" -lt "$thr" ] && { [ "$low" -lt 0 ] || [ "$r" -lt "$low" ]; } && low=$r
			elif [ "$from" -ge "$t_off" ] && [ "$r" -ge "$thr" ]; then
				rec=$r
				break
			fi
			[ "$from" -gt $((t_off + 10000000000)) ] && break
		done
		[ "$low" -ge 0 ] && pass "$c: the probe slowed the target ($low/s, $base/s before)" \
			|| fail "$c: no rate under the probe below $thr/s"
		[ "$rec" -gt 0 ] && pass "$c: call rate recovered ($rec/s, $base/s before)" \
			|| fail "$c: call rate did not recover to $thr/s (was $base/s): $(tr '\n' ' ' < "$T/rates")"
		rm -f "$T/rates"
		expect_eq "$(state_of "cold-$c" "$pid")" applied "$c: the other probe stays applied"
		h=$(hits_of "cold-$c")
		expect_eq "$(req "{\"cmd\":\"wait\",\"id\":\"cold-$c\",\"hits\":$((h + 3)),\"timeout\":10}" | jget "j['ok']")" True "$c: the other probe keeps counting"
		kill -0 "$pid" && pass "$c: target alive" || fail "$c: target died"
		req "{\"cmd\":\"detach\",\"pid\":$pid}" > /dev/null
		kill -KILL "$pid"
		exec {f_in}>&- {f_out}<&-
		rm -f "$T/f.in" "$T/f.out"
	done
done

# Two probes that each stay within the budget but together stop the process over it: the
# heaviest goes, with the reason naming both shares.
stop_daemon
start_daemon --max-stopped-percent 50
start_fixture p "$DIAG_FIXTURE_DIR/tiny-O2-nopie" 4 pair
expect_eq "$(req "{\"cmd\":\"attach\",\"pid\":$p_pid}" | jget "j['ok']")" True "pair: attached"
for fn in tiny tiny2; do # both before the threads start: they share every second from the first
	r=$(req "{\"cmd\":\"add\",\"spec\":{\"id\":\"pair-$fn\",\"target\":\"$fn\",\"pid\":$p_pid,\"instrument\":{\"type\":\"incr\",\"name\":\"pair-$fn\",\"value\":\"stack(1)\"}}}")
	expect_eq "$(echo "$r" | jget "j['ok']")" True "pair: $fn probe added"
done
fixture_go p
why=
for _ in $(seq 30); do
	for fn in tiny tiny2; do
		[ "$(state_of "pair-$fn" "$p_pid")" = disabled ] && why="$why$(error_of "pair-$fn" "$p_pid")|"
	done
	[ -n "$why" ] && break
	sleep 0.1
done
[[ "$why" =~ disabled\ by\ the\ governor:\ threads\ of\ $p_pid\ stopped\ [0-9]+%\ of\ the\ last\ [0-9.]+\ s\ by\ all\ probes\ \(budget\ 50%\)\;\ this\ probe\ [0-9]+% ]] \
	&& pass "pair: the heaviest probe disabled for the process's total: $why" || fail "pair: reason(s): [$why]"
kill -0 "$p_pid" && pass "pair: target alive" || fail "pair: target died"

"$DIAGNOSED" --max-stopped-percent -1 --no-socket 2> "$T/opt.err"
expect_eq "$?" 2 "bad --max-stopped-percent: exit 2"
expect_eq "$(cat "$T/opt.err")" "diagnosed: --max-stopped-percent -1: must be a number >= 0 (0: no limit)" "bad option message"
finish
