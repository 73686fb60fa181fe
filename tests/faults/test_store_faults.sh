# The store under faults: truncated and corrupted files (clear error, the bad file kept, the
# daemon starts and serves), a full disk (the add fails with a clear error, nothing already
# stored is lost, the failed spec is not left running), two daemons racing for one pid.
source "$(dirname "$0")/lib.sh"

start_fixture v "$DIAG_FIXTURE_DIR/victim-O2-pie" 1 ""
start_daemon --pid "$v_pid"
for i in 1 2 3; do add "s$i" work incr > /dev/null; done
stop_daemon
good=$(cat "$STORE")
lost_total=0
for fault in truncated corrupted; do
	rm -f "$STORE".corrupt-*
	if [ $fault = truncated ]; then head -c $(( ${#good} / 2 )) <<< "$good" > "$STORE"; else
		python3 -c "import sys; b=bytearray(open('$STORE','rb').read()); b[40]=0; b[41]=0xff; open('$STORE','wb').write(b)"; fi
	cp "$STORE" "$T/bad.json"
	start_daemon --pid "$v_pid"
	expect_contains "$(cat "$DERR")" "store $STORE is corrupt (" "$fault store: clear error"
	expect_eq "$(serving)" True "$fault store: daemon serving"
	kept=$(ls "$STORE".corrupt-* 2>/dev/null | head -1)
	[ -n "$kept" ] && cmp -s "$kept" "$T/bad.json" && pass "$fault store: kept byte for byte as $kept" || fail "$fault store: backup missing"
	lost=0; [ -n "$kept" ] || lost=3
	lost_total=$((lost_total + lost))
	stop_daemon
	printf '%s' "$good" > "$STORE"
	figure "store file $fault" 1 1 "$lost" 0
done

# Full disk: the store on a 64 KiB tmpfs.
D=$T/tiny
mkdir -p "$D"
mount -t tmpfs -o size=64k tmpfs "$D" || die "cannot mount a tmpfs (root needed)"
trap 'umount "$D" 2>/dev/null; cleanup' EXIT
STORE=$D/specs.json
start_daemon --pid "$v_pid"
add keep work incr > /dev/null
big=$(python3 -c "print('x'*400)")
n=0; err=
for i in $(seq 200); do
	r=$(add "f$i" work incr "\"condition\":\"\$arg1 != 1 || \\\"$big\\\" == \\\"$big\\\"\"")
	if [ "$(echo "$r" | jget "j['ok']")" != True ]; then err=$(echo "$r" | jget "j['error']"); break; fi
	n=$((n + 1))
done
expect_contains "$err" "No space left on device" "full disk: the add fails with a clear error"
echo "full disk after $n adds: $err"
failed_id="f$((n + 1))"
expect_eq "$(req '{"cmd":"list"}' | jget "'$failed_id' in [s['id'] for s in j['specs']]")" False "full disk: the failed spec is not running"
stop_daemon
rm -f "$D"/*.tmp-* 2>/dev/null
ids=$(python3 -c "import json; print(len(json.load(open('$STORE'))))")
expect_eq "$ids" $((n + 1)) "full disk: every acknowledged spec is in the store"
lost=$(( n + 1 - ids ))
figure "store on a full disk" 1 1 "$lost" 0
umount "$D"

# Two daemons race for one pid: the second fails cleanly and the first keeps serving.
STORE=$T/specs2.json
start_daemon --pid "$v_pid"
add r1 work incr > /dev/null
"$DIAGNOSED" --pid "$v_pid" --no-socket --store "$T/other.json" > /dev/null 2> "$T/second.err"
rc=$?
expect_eq "$rc" 1 "second daemon exits 1"
expect_contains "$(cat "$T/second.err")" "already traced" "second daemon: already traced"
expect_eq "$(state_of r1 "$v_pid")" applied "first daemon unaffected"
fixture_go v
[ "$(wait_more r1 20)" = True ] && pass "first daemon still counting" || fail "first daemon stopped counting"
stop_daemon
r=$(victim_result v)
expect_eq "$(field "$r" bad)" 0 "results right ($r)"
figure "two daemons race for one pid" 1 1 0 0
finish
