# Selectors (issue 11): a probe added with --exe or --comm and no --pid takes every running
# process of that executable or name (attached and probed at add), `list` counts them, `status`
# says why each is traced, a selector that matches nothing is pending with its reason, a
# process under strace gets its reason while the others are probed, and remove-probe detaches
# what only the selector held, bytes restored.
source "$(dirname "$0")/lib.sh"
start_daemon
# copies of their own: other tests on this machine run the same fixtures, and a selector takes
# every process of a file or a name
EXE=$T/sela$$
OTHER=$T/selc$$
cp "$DIAG_FIXTURE_DIR/work-O2-pie" "$EXE"
cp "$DIAG_FIXTURE_DIR/work-O0-pie" "$OTHER"
H=$(hostname)
start_fixture a "$EXE" 1 0
start_fixture b "$EXE" 1 0
start_fixture c "$OTHER" 1 0
start_fixture d "$EXE" 1 0
fixture_go a; fixture_go b; fixture_go c; fixture_go d
# d is under strace already: a process has one tracer
strace -q -p "$d_pid" -e trace=none -o /dev/null &
FIXTURE_PIDS+=($!)
for _ in $(seq 100); do
	[ "$(awk '/^TracerPid/ {print $2}' "/proc/$d_pid/status")" != 0 ] && break; sleep 0.05
done

id=$(ctl add-probe --exe "$EXE" --target work --type incr --name w --lifespan 10) ||
	fail "add-probe --exe exits 0"
expect_eq "$id" p1 "add-probe --exe prints the spec id"
list=$(ctl --json list)
expect_eq "$(echo "$list" | jget "sorted(k for k in j['specs'][0]['applied'])")" \
	"$(python3 -c "print(sorted(['$H:$a_pid','$H:$b_pid','$H:$d_pid']))")" "one applied entry per running process of the executable"
expect_eq "$(state_of p1 "$a_pid") $(state_of p1 "$b_pid") $(state_of p1 "$d_pid")" \
	"applied applied error" "applied in both, an error in the one under strace"
expect_contains "$(echo "$list" | jget "j['specs'][0]['applied']['$H:$d_pid']['error']")" \
	"pid $d_pid: not traced: already traced by pid" "the reason names the other tracer"
expect_contains "$(echo "$list" | jget "j['specs'][0]['applied']['$H:$d_pid']['error']")" \
	"(strace)" "... by its name"
expect_eq "$(echo "$list" | jget "j['specs'][0]['select']")" "{'exe': '$EXE'}" "list shows the selector"
expect_eq "$(echo "$list" | jget "j['specs'][0]['processes']")" 2 "list counts the processes covered"
ctl wait p1 --hits 200 --timeout 20 || fail "hits counted"
hits=$(ctl --json list | jget "min(a['hits'] for a in j['specs'][0]['applied'].values() if a['state'] == 'applied')")
[ "$hits" -gt 0 ] && pass "each process has hits of its own" || fail "per-process hits: $hits"
why=$(ctl --json status | jget "{t['pid']: t['why'] for t in j['targets']}[$a_pid]")
expect_eq "$why" "['spec p1: select exe=$EXE']" "status says which spec's selector took it"
echo "$(ctl status)" | grep -q "select exe=" && pass "status prints why" || fail "status prints why: $(ctl status)"

# detached by hand: no selector takes it again (the next spec's scan below) until an attach
ctl detach "$b_pid" || fail "detach"
# --comm: only the other program's process
ctl add-probe --comm "selc$$" --target work --type incr --name c --id c1 > /dev/null ||
	fail "add-probe --comm"
expect_eq "$(ctl --json list | jget "[k for s in j['specs'] if s['id']=='c1' for k in s['applied']]")" \
	"['$H:$c_pid']" "--comm takes the process of that name only"

expect_eq "$(state_of p1 "$b_pid")" removed "a process detached by hand stays detached at the next scan"
expect_contains "$(ctl --json list | jget "j['specs'][0]['applied']['$H:$b_pid']['error']")" \
	"detached by hand" "... and says why"
ctl attach "$b_pid" || fail "attach"
expect_eq "$(state_of p1 "$b_pid")" applied "attached again: the selector's spec applies at once"

# nothing matches yet: pending, with the reason; add-probe still exits 0 (it is live)
out=$(ctl add-probe --comm "nosuch$$" --target work --type incr --name n --id n1 2>&1) ||
	fail "a pending selector exits 0"
expect_contains "$out" "no process matches yet" "add-probe says the selector waits"
expect_eq "$(state_of n1 select)" pending "a selector that matches nothing is pending"

# the limits
ctl add-probe --exe /nonexistent/prog --target work --type incr --name x --id x1 > "$T/x.out" 2>&1 &&
	fail "a missing executable is not a working probe"
expect_contains "$(cat "$T/x.out")" "select.exe: /nonexistent/prog: No such file or directory" \
	"a missing executable: the reason names select.exe"
out=$(ctl add-probe --comm 0123456789abcdefg --target work --type incr --name x 2>&1)
expect_contains "$out" "--comm: '0123456789abcdefg': a process name is 1 to 15 bytes" "--comm too long"
out=$(req '{"cmd":"add","spec":{"target":"work","select":{"unit":"nginx"},"instrument":{"type":"incr","name":"u"}}}')
expect_contains "$out" "select.unit: must be a systemd unit name like NAME.service (got 'nginx')" "a bad unit names select.unit"

# remove: the processes only the selector held are detached, bytes restored
addr=$(first_addr p1 "$a_pid")
ctl remove-probe p1 || fail "remove-probe"
pids=$(ctl --json status | jget "sorted(t['pid'] for t in j['targets'])")
expect_eq "$pids" "$(python3 -c "print(sorted([$b_pid, $c_pid]))")" \
	"remove-probe detaches what only its selector held (b was attached by hand, c is c1's)"
expect_eq "$(code_bytes_match "$a_pid" "$addr")" same "bytes restored in a process the selector took"
kill -0 "$a_pid" && pass "the process lives on" || fail "the process died"
stop_daemon || fail "daemon exit status"
finish
