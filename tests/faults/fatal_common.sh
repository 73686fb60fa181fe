# fatal_common.sh: the daemon's own fatal signals against a victim (sourced after lib.sh, by
# test_daemon_fatal.sh and test_daemon_fatal_capture.sh). No new daemon is started before the
# checks: the recovery process the dying daemon spawned (`diagnosed --recover-after`) must alone
# leave the target running with correct results, its code byte-identical to the file and its
# maps exactly as before any daemon (no diagnose page left). Each trial then starts the next
# daemon, which re-applies the specs from the store. The case defines, before fatal_run:
#   fatal_specs      adds its specs (first kill trial) and sets ADDRS, the patched addresses;
#   fatal_counting   succeeds once every probe counts again, else prints why;
#   FATAL_NPATCH     the patches the recovery restores; FATAL_IDS the spec ids, sorted;
#   FATAL_WHAT       the probes, for the figure's label.
# The victim v runs, its maps are in $T/maps.before.
ADDRS=
VICTIM_DEAD=

# check_after_recovery ERRFILE DAEMON_STATUS WANT_STATUS: the checks of one trial once the
# daemon is dead, in one python (each start costs ~0.5 s beside the victim's busy threads).
# Prints "ok", "ok lost" (a spec missing from the store) or the first problem.
check_after_recovery() {
	python3 - "$1" "$2" "$3" "$v_pid" "$T/maps.before" "$DIAG_JOURNAL_DIR" "$STORE" "$FATAL_NPATCH" "$FATAL_IDS" $ADDRS <<'PY'
import json, os, re, select, sys
errf, st, want, pid, maps0, jdir, store, npatch, ids = sys.argv[1:10]
addrs = [int(a, 16) for a in sys.argv[10:]]
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
if not re.search(rf"^diagnosed: recover: pid {pid}: {npatch} patch\(es\) restored", text, re.M):
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
print("ok" if sorted(s["id"] for s in json.load(open(store))) == ids.split() else "ok lost")
PY
}

# fatal_run SIG HOW TRIALS: HOW kill (kill -SIG) or real (DIAG_TEST_CRASH: the daemon faults
# at its first hit after start).
fatal_run() {
	local sig=$1 how=$2 trials=$3 survived=0 lost=0 ran=0 patched=0 want status res errf
	local label="daemon SIG$sig by kill"
	[ "$how" = kill ] || label="daemon SIG$sig, a real fault"
	label="$label, $FATAL_WHAT, 4 threads, restored by the recovery process"
	if [ -n "$VICTIM_DEAD" ]; then
		figure "$label" "0 of $trials (the target died in an earlier case)" - - -
		return
	fi
	want=$((128 + $(kill -l "$sig")))
	for i in $(seq "$trials"); do
		if [ "$how" = kill ]; then
			start_daemon --pid "$v_pid" $NOGOV
			[ -z "$ADDRS" ] && fatal_specs
			# hits count from the spec's (re)apply: a fresh daemon starts at 0
			local why
			if ! why=$(fatal_counting); then
				fail "$sig $how trial $i: $why"
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

