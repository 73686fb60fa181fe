# diagnosed --ring-kib: out-of-range and malformed values are refused at start with the limits
# named (exit 2), and the size given is the size of the ring a jump probe maps in the target:
# the ring's mapping grows by what --ring-kib grew (64 KiB against 4096 KiB), within the
# engine's rounding. The ring is shared with the daemon (a memfd mapping named diag-ring), or
# private (anonymous) with DIAG_RING_SHARED=0 (--private-ring), and `status` says which.
source "$(dirname "$0")/lib.sh"
for bad in 10 63 1048577 abc -64 ""; do
	err=$("$DIAGNOSED" --socket "$SOCK" --store "$STORE" --ring-kib "$bad" 2>&1 >/dev/null)
	rc=$?
	expect_eq "$rc" 2 "--ring-kib '$bad' refused (exit 2)"
	expect_contains "$err" "--ring-kib $bad: must be a whole number of KiB in [64, 1048576] (default " \
		"--ring-kib '$bad': the limits are named"
done

# new_rw_bytes PID BEFORE_FILE: bytes of the anonymous rw-p mappings and shared diag-ring
# mappings not in BEFORE_FILE
new_rw_bytes() {
	python3 - "$1" "$2" <<'PY'
import sys
pid, before = sys.argv[1], set(open(sys.argv[2]).read().split('\n'))
n = 0
for line in open('/proc/%s/maps' % pid):
    f = line.split()
    anon = f[1] == 'rw-p' and len(f) == 5
    ring = f[1] == 'rw-s' and len(f) > 5 and f[5] == '/memfd:diag-ring'
    if line.rstrip('\n') not in before and (anon or ring):
        a, b = (int(x, 16) for x in f[0].split('-'))
        n += b - a
print(n)
PY
}

declare -A got
kind=$([ "${DIAG_RING_SHARED:-}" = 0 ] && echo private || echo shared) # the daemon's env decides
flag=
if [ "$kind" = private ]; then # here the daemon's option asks for it, not the environment
	unset DIAG_RING_SHARED
	flag=--private-ring
fi
for kib in 64 4096; do
	STORE=$T/specs-$kib.json # a fresh store: the last run's spec would map a ring at attach
	start_daemon --ring-kib "$kib" $flag
	rm -f "$T/w.in" "$T/w.out"
	start_fixture w "$DIAG_FIXTURE_DIR/work-O2-pie" 2 0
	req "{\"cmd\":\"attach\",\"pid\":$w_pid}" > /dev/null
	fixture_go w
	# its two workers' stacks are mapped before the snapshot: a bounded poll for the threads
	for _ in $(seq 200); do [ "$(ls "/proc/$w_pid/task" | wc -l)" -ge 3 ] && break; sleep 0.01; done
	cp "/proc/$w_pid/maps" "$T/maps.before"
	r=$(add c work incr)
	path=$(echo "$r" | jget "j['spec']['applied']['$(hostname):$w_pid']['instances'][0]['path']")
	expect_eq "$path" jump "--ring-kib $kib: the probe is a jump (it maps a ring)"
	got[$kib]=$(new_rw_bytes "$w_pid" "$T/maps.before")
	shared=$(grep -c ' rw-s .*/memfd:diag-ring' "/proc/$w_pid/maps")
	expect_eq "$shared" $([ "$kind" = shared ] && echo 1 || echo 0) \
		"--ring-kib $kib: the ring is $([ "$kind" = shared ] && echo "one memfd mapping shared with the daemon" || echo "private")"
	expect_eq "$(req '{"cmd":"status"}' | jget "[t['ring'] for t in j['targets']]")" "['$kind']" \
		"--ring-kib $kib: status says the ring is $kind"
	stop_daemon || fail "--ring-kib $kib: daemon exit status"
	kill "$w_pid"
done
diff=$(( ${got[4096]} - ${got[64]} ))
want=$(( (4096 - 64) * 1024 ))
# the engine rounds to its ring's granule (a power of two per sub-ring) and adds headers and
# counters: within half to one and a half of what was asked
lo=$(( want * 50 / 100 )); hi=$(( want * 150 / 100 ))
if [ "$diff" -ge "$lo" ] && [ "$diff" -le "$hi" ]; then
	pass "the ring grew by $diff bytes for $want more asked (64 KiB: ${got[64]}, 4096 KiB: ${got[4096]})"
else
	fail "the ring grew by $diff bytes for $want more asked (64 KiB: ${got[64]}, 4096 KiB: ${got[4096]})"
fi
finish
