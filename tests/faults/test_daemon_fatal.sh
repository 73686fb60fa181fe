# The daemon's own fatal signals (SIGSEGV, SIGBUS, SIGABRT), sent by kill and raised for real
# (DIAG_TEST_CRASH), while 4 threads of the victim call a jump-probed (work) and an
# int3-probed (work2) function. No new daemon is started before the checks: the recovery
# process the dying daemon spawned (`diagnosed --recover-after`) must alone leave the target
# running with correct results, its code byte-identical to the file and its maps exactly as
# before any daemon (no diagnose page left). Each trial then starts the next daemon, which
# re-applies both specs from the store.
source "$(dirname "$0")/lib.sh"
export DIAG_JOURNAL_DIR=$T/journal # ours alone: parallel cases must not see our journals
# Sanitizer builds: the daemon hands a fault to ASan's handler (a report, then exit 1); here it
# must die of the signal itself, as the plain build does.
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}handle_segv=0:handle_sigbus=0:handle_abort=0

start_fixture v "$DIAG_FIXTURE_DIR/victim-O2-pie" 4 ""
fixture_go v
# Its 4 threads (and their stacks) exist once the task count is 5: a bounded start-up poll,
# as for the daemon's socket. After that the victim maps nothing: any mapping that differs
# later is ours.
for _ in $(seq 200); do [ "$(ls /proc/"$v_pid"/task | wc -l)" -ge 5 ] && break; sleep 0.05; done
cp /proc/"$v_pid"/maps "$T/maps.before"
ADDRS=
VICTIM_DEAD=

# check_after_recovery ERRFILE DAEMON_STATUS WANT_STATUS: the checks of one trial once the
# daemon is dead, in one python (each start costs ~0.5 s beside the victim's busy threads).
# Prints "ok", "ok lost" (a spec missing from the store) or the first problem.
check_after_recovery() {
	python3 - "$1" "$2" "$3" "$v_pid" "$T/maps.before" "$DIAG_JOURNAL_DIR" "$STORE" $ADDRS <<'PY'
import json, os, re, select, sys
errf, st, want, pid, maps0, jdir, store = sys.argv[1:8]
addrs = [int(a, 16) for a in sys.argv[8:]]
def out(msg):
    print(msg)
    sys.exit(0)
if st != want:
    out(f"daemon exit status {st}, want {want}")
text = open(errf).read()
m = re.search(r"^diagnosed: fatal signal \d+ \([A-Z]+\); recovery process (\d+) restores the targets$", text, re.M)
if not m:
    out("no recovery process announced: " + " | ".join(text.splitlines()[-3:]))
try:  # its pidfd: readable once it has exited
    if not select.select([os.pidfd_open(int(m.group(1)))], [], [], 30)[0]:
        out(f"recovery process {m.group(1)} still running after 30 s")
except ProcessLookupError:
    pass
text = open(errf).read()
if not re.search(rf"^diagnosed: recover: pid {pid}: 2 patch\(es\) restored", text, re.M):
    out("recovery of the victim: " + " | ".join(l for l in text.splitlines() if "recover" in l))
if not re.search(r"^diagnosed: recover after pid \d+: 1 process\(es\) restored, 0 failed", text, re.M):
    out("recovery summary: " + " | ".join(l for l in text.splitlines() if "recover" in l))
try:
    state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    maps = open(f"/proc/{pid}/maps").read()
except OSError:
    out("victim gone")
if state not in ("R", "S", "D"):
    out(f"victim state {state} (zombie or stopped)")
for a in addrs:  # the live bytes against the file's at the mapped offset
    for line in maps.splitlines():
        p = line.split()
        lo, hi = (int(x, 16) for x in p[0].split("-"))
        if lo <= a < hi and len(p) >= 6:
            with open(f"/proc/{pid}/mem", "rb") as f:
                f.seek(a)
                live = f.read(16)
            with open(p[5], "rb") as f:
                f.seek(int(p[2], 16) + a - lo)
                disk = f.read(16)
            if live != disk:
                out(f"bytes at {a:#x} differ from the file: {live.hex()} vs {disk.hex()}")
if maps != open(maps0).read():
    gone = set(open(maps0).read().splitlines())
    out("maps differ from before the daemon: " + " | ".join(l for l in maps.splitlines() if l not in gone))
if os.listdir(jdir):
    out(f"journal left: {os.listdir(jdir)}")
print("ok" if sorted(s["id"] for s in json.load(open(store))) == ["f", "x"] else "ok lost")
PY
}

# fatal_run SIG HOW TRIALS: HOW kill (kill -SIG) or real (DIAG_TEST_CRASH: the daemon faults
# at its first hit after start).
fatal_run() {
	local sig=$1 how=$2 trials=$3 survived=0 lost=0 ran=0 patched=0 want status res errf
	local label="daemon SIG$sig by kill"
	[ "$how" = kill ] || label="daemon SIG$sig, a real fault"
	label="$label, int3 + jump probes, 4 threads, restored by the recovery process"
	if [ -n "$VICTIM_DEAD" ]; then
		figure "$label" "0 of $trials (the target died in an earlier case)" - - -
		return
	fi
	want=$((128 + $(kill -l "$sig")))
	for i in $(seq "$trials"); do
		if [ "$how" = kill ]; then
			start_daemon --pid "$v_pid" $NOGOV
			if [ -z "$ADDRS" ]; then
				add f work incr > /dev/null
				exact_add x work2 > /dev/null
				ADDRS="$(first_addr f "$v_pid") $(first_addr x "$v_pid")"
			fi
			# hits count from the spec's (re)apply: a fresh daemon starts at 0
			if [ "$(req '{"cmd":"wait","id":"f","hits":50,"timeout":10}' '{"cmd":"wait","id":"x","hits":50,"timeout":10}' | grep -c '"ok":true')" != 2 ]; then
				fail "$sig $how trial $i: probes not counting: f $(state_of f "$v_pid"), x $(state_of x "$v_pid")"
				break
			fi
			errf=$DERR
			kill -"$sig" "$DPID"
		else
			errf=$T/real.err$i
			DIAG_TEST_CRASH=$how "$DIAGNOSED" --no-socket --store "$STORE" --pid "$v_pid" $NOGOV \
				> /dev/null 2> "$errf" &
			DPID=$!
		fi
		wait "$DPID"
		status=$?
		DPID=
		ran=$((ran + 1))
		res=$(check_after_recovery "$errf" "$status" "$want")
		if [ "${res%% *}" != ok ]; then
			fail "$sig $how trial $i: $res"
			echo "--- $errf"; tail -20 "$errf"
			if [ -e /proc/"$v_pid"/maps ]; then
				survived=$((survived + 1))
				patched=$(patched_count "$v_pid" $ADDRS)
			else
				VICTIM_DEAD=1 patched=?
			fi
			break
		fi
		survived=$((survived + 1))
		[ "$res" = ok ] || lost=$((lost + 1))
	done
	expect_eq "$survived" "$trials" "$sig ($how): target survived and was restored by the recovery process $trials times"
	expect_eq "$lost" 0 "$sig ($how): no spec lost from the store"
	figure "$label" "$ran of $trials" "$survived" "$lost" "$patched"
}

# The real faults need the addresses (the kill cases record them through the socket).
# The handler's path is the same for every signal: SIGSEGV gets FAULT_TRIALS, the others half
# (ctest's 600 s at the default 20, on a loaded 2-CPU machine).
fatal_run SEGV kill "$FAULT_TRIALS"
fatal_run BUS kill "$(((FAULT_TRIALS + 1) / 2))"
fatal_run ABRT kill "$(((FAULT_TRIALS + 1) / 2))"
# A real fault takes the same path from the handler on: a fifth of the trials (ctest's 600 s).
REAL_TRIALS=$(((FAULT_TRIALS + 4) / 5))
fatal_run SEGV segv "$REAL_TRIALS"
fatal_run BUS bus "$REAL_TRIALS"
fatal_run ABRT abort "$REAL_TRIALS"

[ -n "$VICTIM_DEAD" ] && finish
r=$(victim_result v)
expect_eq "$(field "$r" bad)" 0 "the target's own results all correct after every crash ($r)"
finish
