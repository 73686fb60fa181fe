# A library under a selector (issue 11): `--exe LIB.so` takes every process that maps it, here
# two different programs, and the target is looked up in that library; `--exe LIB.so` with
# `--comm` takes the named process before it loads the library, the probe pending until its
# dlopen, then counted.
source "$(dirname "$0")/lib.sh"
start_daemon
H=$(hostname)
LIB=$T/librngsel$$.so
cp "$DIAG_FIXTURE_DIR/librng.so" "$LIB"
start_fixture a "$DIAG_FIXTURE_DIR/rnguser-O2-pie" "$LIB"
start_fixture b "$DIAG_FIXTURE_DIR/rnguser-O0-nopie" "$LIB"
fixture_go a; fixture_go b
ctl add-probe --exe "$LIB" --target rng_work --type incr --name r > /dev/null || fail "add-probe --exe LIB"
expect_eq "$(state_of p1 "$a_pid") $(state_of p1 "$b_pid")" "applied applied" \
	"the library is probed in both programs that map it"
expect_eq "$(ctl --json list | jget "j['specs'][0]['applied']['$H:$a_pid']['instances'][0]['what']")" \
	"function rng_work+0x0" "the target is the library's function"
per() { ctl --json list | jget "min(j['specs'][0]['applied']['$H:%d' % p]['hits'] for p in ($a_pid, $b_pid))"; }
for _ in $(seq 200); do [ "$(per)" -gt 5 ] && break; sleep 0.05; done
[ "$(per)" -gt 5 ] && pass "hits counted in each program" || fail "hits per program: $(per)"

# --exe LIB --comm NAME: taken before the dlopen, pending, then applied
DLIB=$T/libdlfxsel$$.so
DL=$T/dlsel$$
cp "$DIAG_FIXTURE_DIR/libdlfx.so" "$DLIB"
cp "$DIAG_FIXTURE_DIR/dl-O2-pie" "$DL"
start_fixture d "$DL" "$DLIB"
ctl add-probe --exe "$DLIB" --comm "dlsel$$" --target dlfx_work --type incr --name d --id d1 \
	> /dev/null 2>&1 || fail "add-probe --exe LIB --comm"
expect_eq "$(state_of d1 "$d_pid")" pending "before its dlopen: pending in the process named"
fixture_go d
expect_contains "$(fixture_line d)" "round1" "the program loaded the library and called it"
ctl wait d1 --hits 100 --timeout 20 || fail "the calls after the dlopen are counted ($(hits_of d1))"
stop_daemon || fail "daemon exit status"
finish
