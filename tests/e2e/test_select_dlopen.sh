# The library gate (issue 11): `--exe LIB.so` takes the processes that load the library after
# the probe, held at their dynamic linker's open of it until the probe waits (pending) for
# the mapping, so nothing runs in the library unprobed:
#  (a) a program started after `add-probe --exe LIB --target LIB:fn`, linked against LIB,
#      whose main calls fn on its first line: that call is counted, run after run (exact);
#  (b) a running process that dlopens LIB later (twice, with a dlclose between): every call
#      after each dlopen is counted (exact);
#  (c) two different programs using the one library, both covered;
#  (d) `cat LIB` while the gate is on: allowed at once, not traced;
#  (e) kill -9 of the daemon while an open is held: the program runs on;
#  (f) the limits as for an executable: over --max-processes-per-spec the open goes on at
#      once and HOST:select says so; over --max-traced the process's own record says so.
source "$(dirname "$0")/lib.sh"
start_daemon
H=$(hostname)
# the library beside the programs (their RUNPATH is $ORIGIN): this test's own inode
cp "$DIAG_FIXTURE_DIR/libgatelib.so" "$T/libgatelib.so"
cp "$DIAG_FIXTURE_DIR/gluser-O2-pie" "$T/glA$$"
cp "$DIAG_FIXTURE_DIR/gluser-O0-nopie" "$T/glB$$"
LIB=$T/libgatelib.so
ctl add-probe --exe "$LIB" --target libgatelib.so:gl_first --type incr --name g > /dev/null 2>&1 ||
	fail "add-probe --exe LIB --target LIB:fn with no process mapping it exits 0 (pending)"
expect_eq "$(state_of p1 select)" pending "pending until a process loads the library"

# (a) a program started later: its first call, exactly, run after run
RUNS=3
pids=()
for i in $(seq $RUNS); do
	out=$("$T/glA$$" & echo "pid $!"; wait $!; echo "rc $?")
	pids+=("$(echo "$out" | awk '/^pid/ {print $2}')")
	expect_eq "$(echo "$out" | grep -c '^ran 1 ')" 1 "(a) run $i: the program called gl_first once"
	expect_contains "$out" "rc 0" "(a) run $i: exit 0"
done
ctl wait p1 --hits $RUNS --timeout 20 || fail "(a) every run's first call counted ($(hits_of p1))"
expect_eq "$(hits_of p1)" $RUNS "(a) exactly one hit per run"
list=$(ctl --json list)
for p in "${pids[@]}"; do
	st=$(echo "$list" | jget "(lambda a: '%s %s' % (a['state'], a['hits']))(j['specs'][0]['applied']['$H:$p'])")
	expect_eq "$st" "exited 1" "(a) pid $p: its own entry, one hit, exited"
done

# (c) another program (-O0, not PIE) using the one library, running: both covered
start_fixture a "$T/glA$$" wait
start_fixture b "$T/glB$$" wait
expect_eq "$(state_of p1 "$a_pid") $(state_of p1 "$b_pid")" "applied applied" \
	"(c) two different programs started later that load the library: both probed"
per() { ctl --json list | jget "' '.join(str(j['specs'][0]['applied']['$H:%d' % p]['hits']) for p in ($a_pid, $b_pid))"; }
expect_eq "$(per)" "1 1" "(c) each program's first call counted in its own entry"
fixture_go a; fixture_go b
expect_contains "$(fixture_line a) $(fixture_line b)" "ran 1" "(c) the programs ran on"

# (d) an unrelated reader of the library: not held, not traced
before=$(ctl --json status | jget "len(j['targets'])")
timeout 10 cat "$LIB" > "$T/copy.so" || fail "(d) cat of the gated library finished (not held)"
cmp -s "$LIB" "$T/copy.so" && pass "(d) cat read the library whole" || fail "(d) cat's copy differs"
expect_eq "$(ctl --json status | jget "len(j['targets'])")" "$before" "(d) cat was not traced"

# (b) a running process that dlopens the library later, twice (a dlclose between): every
# call after each dlopen is counted
DLIB=$T/libdlfxgate$$.so
cp "$DIAG_FIXTURE_DIR/libdlfx.so" "$DLIB"
ctl add-probe --exe "$DLIB" --target dlfx_work --type incr --name d --id d1 > /dev/null 2>&1 ||
	fail "add-probe --exe LIB (dlopen later)"
start_fixture d "$DIAG_FIXTURE_DIR/dl-O2-pie" "$DLIB"
expect_eq "$(state_of d1 "$d_pid")" none "(b) before its dlopen the process is not taken"
fixture_go d
expect_contains "$(fixture_line d)" "round1" "(b) the program dlopened the library and called it"
expect_eq "$(fixture_line d)" closed "(b) and closed it"
ctl wait d1 --hits 100 --timeout 20 || fail "(b) the 100 calls after the dlopen counted ($(hits_of d1))"
expect_eq "$(hits_of d1)" 100 "(b) exactly 100 after the first dlopen"
expect_eq "$(state_of d1 "$d_pid")" pending "(b) after the dlclose its probe waits for the library again"
fixture_go d
expect_contains "$(fixture_line d)" "round2" "(b) a second dlopen, 100 calls"
ctl wait d1 --hits 200 --timeout 20 || fail "(b) the calls after the second dlopen counted ($(hits_of d1))"
expect_eq "$(hits_of d1)" 200 "(b) exactly 200 after the second dlopen"
expect_eq "$(ctl --json list | jget "(lambda a: '%s %s' % (a['state'], a['hits']))([s for s in j['specs'] if s['id'] == 'd1'][0]['applied']['$H:$d_pid'])")" \
	"pending 200" "(b) its own entry counts both rounds (and waits after the second dlclose)"
fixture_go d
stop_daemon || fail "daemon exit status"
grep 'library gate:' "$DERR" | tail -1
held=$(sed -n 's/.*library gate: \([0-9]*\) opens held.*/\1/p' "$DERR" | tail -1)
[ "${held:-0}" -ge $((RUNS + 3)) ] && pass "(a-c) the gate held each program's load ($held)" ||
	fail "(a-c) opens held: ${held:-none}"
other=$(sed -n 's/.*, \([0-9]*\) not by a dynamic linker.*/\1/p' "$DERR" | tail -1)
[ "${other:-0}" -ge 1 ] && pass "(d) cat's open allowed at once ($other)" || fail "(d) opens not by ld.so: ${other:-none}"

# (e) kill -9 of the daemon while a library's open is held: the program runs on
DIAG_TEST_KILL_AT_LIBOPEN=1 start_daemon
ctl add-probe --exe "$LIB" --target gl_first --type incr --name g > /dev/null 2>&1 ||
	fail "(e) add-probe"
out=$(timeout 20 "$T/glA$$"; echo "rc $?")
expect_contains "$out" "ran 1" "(e) the program held at the gate ran on when the daemon died"
expect_contains "$out" "rc 0" "(e) exit 0"
for _ in $(seq 200); do kill -0 "$DPID" 2> /dev/null || break; sleep 0.05; done
if kill -0 "$DPID" 2> /dev/null; then
	fail "(e) the daemon is alive: no open was held at the gate"
	kill -KILL "$DPID"
fi
wait "$DPID" 2> /dev/null; rc=$?
DPID=
expect_eq "$rc" 137 "(e) the daemon was killed (SIGKILL) with the open held"

# (f) limits
rm -f "$STORE"
start_daemon --max-processes-per-spec 1 --max-traced 2
ctl add-probe --exe "$LIB" --target gl_first --type incr --name g --id f1 > /dev/null 2>&1 || fail "(f) add-probe"
start_fixture a "$T/glA$$" wait
start_fixture b "$T/glB$$" wait
expect_eq "$(state_of f1 "$a_pid") $(state_of f1 "$b_pid")" "applied none" \
	"(f) one process per spec: the first taken, the second not"
expect_contains "$(ctl --json list | jget "j['specs'][0]['applied']['$H:select']['error']")" \
	"1 more matching process not taken: the limit is 1 processes per spec" "(f) HOST:select says why"
fixture_go b
expect_contains "$(fixture_line b)" "ran 1" "(f) the one not taken ran on"
DLIB2=$T/libdlfxlim$$.so
cp "$DIAG_FIXTURE_DIR/libdlfx.so" "$DLIB2"
start_fixture w "$DIAG_FIXTURE_DIR/work-O2-pie" 1 0
ctl attach "$w_pid" > /dev/null || fail "(f) attach a second process (the total limit is 2)"
ctl add-probe --exe "$DLIB2" --target dlfx_work --type incr --name d --id f2 > /dev/null 2>&1 || fail "(f) add-probe 2"
start_fixture d "$DIAG_FIXTURE_DIR/dl-O2-pie" "$DLIB2"
fixture_go d
expect_contains "$(fixture_line d)" "round1" "(f) over the total limit: its dlopen went on"
for _ in $(seq 200); do [ "$(state_of f2 "$d_pid")" = error ] && break; sleep 0.05; done
expect_contains "$(ctl --json list | jget "[a['error'] for s in j['specs'] if s['id']=='f2' for k, a in s['applied'].items() if k.endswith(':$d_pid')]")" \
	"not attached: the limit of 2 traced processes is reached (diagnosed --max-traced)" \
	"(f) the process over the total limit has its record with the reason"
fixture_go a
stop_daemon || fail "daemon exit status"
finish
