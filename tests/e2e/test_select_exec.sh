# Processes started after the probe (issue 11): with `--exe PROG` and no process running it,
# the spec is pending; then each run of PROG is held at its exec gate, probed before its first
# instruction and let go, so the call on the first line of its main is counted, run after run;
# each run has its own applied entry (hits 1, then `exited`), and `--json list` shows them.
# The same through --comm (the connector's exec event: early, not exact) on a long-running
# program started after the probe.
source "$(dirname "$0")/lib.sh"
start_daemon
H=$(hostname)
PROG=$T/first$$
cp "$DIAG_FIXTURE_DIR/first-O2-pie" "$PROG"
id=$(ctl add-probe --exe "$PROG" --target first_call --type log --name f --value x --lifespan 10 2> "$T/add.err") ||
	fail "add-probe --exe with no process running it exits 0 (pending)"
expect_eq "$id" p1 "prints the spec id"
expect_eq "$(state_of p1 select)" pending "pending until a process appears"
expect_contains "$(cat "$T/add.err")" "no process matches yet" "add-probe says so"
RUNS=5
pids=()
for i in $(seq $RUNS); do
	out=$("$PROG" & echo "pid $!"; wait $!; echo "rc $?")
	pids+=("$(echo "$out" | awk '/^pid/ {print $2}')")
	expect_eq "$(echo "$out" | grep -c '^ran 1 ')" 1 "run $i: the program ran its first call once"
	expect_contains "$out" "rc 0" "run $i: exit 0"
done
ctl wait p1 --hits $RUNS --timeout 20 || fail "every run's first call counted ($(hits_of p1))"
expect_eq "$(hits_of p1)" $RUNS "exactly one hit per run"
list=$(ctl --json list)
for p in "${pids[@]}"; do
	st=$(echo "$list" | jget "(lambda a: '%s %s' % (a['state'], a['hits']))(j['specs'][0]['applied']['$H:$p'])")
	expect_eq "$st" "exited 1" "pid $p: its own entry, one hit, exited"
done
expect_eq "$(echo "$list" | jget "'$H:select' in j['specs'][0]['applied']")" True \
	"the selector says it waits again once every process exited"
expect_eq "$(ctl --json status | jget "len(j['targets'])")" 0 "nothing left traced"

# --comm: the connector's exec event; a long-running program started after the probe
W=$T/wc$$
cp "$DIAG_FIXTURE_DIR/work-O2-pie" "$W"
ctl add-probe --comm "wc$$" --target work --type incr --name w --id c1 2> /dev/null > /dev/null ||
	fail "add-probe --comm (pending) exits 0"
start_fixture w "$W" 1 0
for _ in $(seq 200); do [ "$(state_of c1 "$w_pid")" = applied ] && break; sleep 0.05; done
expect_eq "$(state_of c1 "$w_pid")" applied "a process named by --comm, started later, is probed"
fixture_go w
ctl wait c1 --hits 100 --timeout 20 || fail "its hits are counted"

# an exec into another program: the spec that took the old image lets it go, the one whose
# selector takes the new image probes it
SH=$T/shsel$$
cp "$(readlink -f /bin/sh)" "$SH"
ctl add-probe --exe "$SH" --target libc.so.6:read --type incr --name s --id s1 > /dev/null 2>&1 ||
	fail "add-probe --exe SHELL"
start_fixture x "$SH" -c "echo ready \$\$; read x; exec $W 1 0"
for _ in $(seq 200); do [ "$(state_of s1 "$x_pid")" = applied ] && break; sleep 0.05; done
expect_eq "$(state_of s1 "$x_pid")" applied "the shell, started later, is probed"
fixture_go x
expect_eq "$(fixture_line x)" "ready $x_pid" "it exec'd the other program"
for _ in $(seq 200); do [ "$(state_of s1 "$x_pid") $(state_of c1 "$x_pid")" = "removed applied" ] && break; sleep 0.05; done
expect_eq "$(state_of s1 "$x_pid") $(state_of c1 "$x_pid")" "removed applied" \
	"after the exec: the shell's spec is removed from it, the new program's spec applied"
# an exec into a program no spec takes: detached
NOT=$T/nosel$$
cp "$DIAG_FIXTURE_DIR/work-O2-pie" "$NOT"
start_fixture y "$SH" -c "echo ready \$\$; read x; exec $NOT 1 0"
for _ in $(seq 200); do [ "$(state_of s1 "$y_pid")" = applied ] && break; sleep 0.05; done
fixture_go y
expect_eq "$(fixture_line y)" "ready $y_pid" "the second shell exec'd a program no spec takes"
traced() { ctl --json status | jget "$y_pid in [t['pid'] for t in j['targets']]"; }
for _ in $(seq 200); do [ "$(traced)" = False ] && break; sleep 0.05; done
expect_eq "$(traced)" False "a process no spec takes any more is detached"
stop_daemon || fail "daemon exit status"
finish
