# Where a patch may go, through the daemon (issue 15 items 4, 5, 7, 12): an address in data is
# refused with the mapping named and the target unharmed; code the target rewrote while probed
# is left as the target wrote it at detach, and `applied` and the daemon log say so; strlen (an
# IFUNC) is probed at the implementation the process uses and counts its calls; journal
# recovery after kill -9 writes back only the bytes the dead daemon wrote; a second probe on a
# busy function reports its own hits and no drops.
source "$(dirname "$0")/lib.sh"
export DIAG_JOURNAL_DIR=$T/journal

# start_patch BUILD: the patch fixture as fx, its addresses in at[konst|data|jit|rodata]
start_patch() {
	rm -f "$T/fx.in" "$T/fx.out" # a previous run's FIFOs
	start_fixture fx "$DIAG_FIXTURE_DIR/patch-$1"
	for _ in 1 2 3 4; do
		read -r k v <<< "$(fixture_line fx)"
		at[$k]=$v
	done
}
declare -A at=()

for build in O2-pie O0-nopie; do
	start_patch "$build"
	rm -f "$STORE" # specs of the previous run would apply here too
	start_daemon --pid "$fx_pid"
	key="$(hostname):$fx_pid"

	r=$(add data "${at[data]}" incr)
	expect_eq "$(echo "$r" | jget "j['spec']['applied']['$key']['error']")" \
		"target: ${at[data]} is in a non-executable mapping ($DIAG_FIXTURE_DIR/patch-$build, rw-p)" \
		"$build: a data address is refused, naming the mapping"
	r=$(add inside konst+2 incr)
	expect_contains "$(echo "$r" | jget "j['spec']['applied']['$key']['error']")" \
		"konst+2 is inside the instruction at konst+0 (10 bytes: mov rax, 0x01); nearest boundaries: konst+0, konst+10" \
		"$build: FUNC+OFF inside an instruction is refused"
	echo call >&"$fx_in"
	expect_eq "$(fixture_line fx)" "konst 1" "$build: the target is unharmed"

	add strlen libc.so.6:strlen incr > /dev/null
	what=$(req '{"cmd":"list"}' | python3 -c "
import json,sys
j=json.loads(sys.stdin.readline())
s=[s for s in j['specs'] if s['id']=='strlen'][0]
print(s['applied']['$key']['instances'][0]['what'])")
	expect_contains "$what" "strlen -> " "$build: the IFUNC's implementation is named"
	echo "strlen 1000" >&"$fx_in"
	expect_eq "$(fixture_line fx)" "strlen 5000" "$build: strlen calls done"
	expect_eq "$(req '{"cmd":"wait","id":"strlen","hits":1000,"timeout":30}' | jget "j['ok']")" True \
		"$build: strlen probe counts the calls"

	add k konst incr > /dev/null
	echo rewrite >&"$fx_in"
	expect_eq "$(fixture_line fx)" "rewritten" "$build: the target rewrote konst"
	req "{\"cmd\":\"detach\",\"pid\":$fx_pid}" > /dev/null
	expect_contains "$(state_json=$(req '{"cmd":"list"}'); echo "$state_json" | python3 -c "
import json,sys
j=json.loads(sys.stdin.readline())
print([s for s in j['specs'] if s['id']=='k'][0]['applied']['$key']['error'])")" \
		"instance at function konst+0x0: left in place: the target rewrote the patched bytes" \
		"$build: applied says the rewritten bytes were left"
	expect_contains "$(cat "$DERR")" "spec 'k': pid $fx_pid: instance at function konst+0x0: left in place" \
		"$build: the daemon log says so"
	echo call >&"$fx_in"
	expect_eq "$(fixture_line fx)" "konst 2" "$build: konst runs the target's new code"
	stop_daemon
	kill -KILL "$fx_pid" 2>/dev/null
done

# Journal recovery writes back only what the dead daemon wrote (the jmp), not the bytes the
# jump displaced past it, which the target changed meanwhile.
for build in O2-pie O0-nopie; do
	start_patch "$build"
	rm -f "$STORE" # specs of the previous run would apply here too
	start_daemon --pid "$fx_pid"
	key="$(hostname):$fx_pid"
	# a second probe where one already counts reports its own hits, not the first one's
	add pa konst incr > /dev/null
	echo "paced 200000" >&"$fx_in"
	req '{"cmd":"wait","id":"pa","hits":50000,"timeout":30}' > /dev/null
	r=$(add pb konst incr)
	pb_hits=$(echo "$r" | jget "j['spec']['applied']['$key']['hits']")
	pb_dropped=$(echo "$r" | jget "j['spec']['applied']['$key']['dropped']")
	[ "$pb_hits" -lt 50000 ] && pass "$build: the second probe's hits are its own ($pb_hits)" ||
		fail "$build: the second probe reports $pb_hits hits right after its add"
	# paced: the ring refuses nothing, so nothing is dropped, even a hit still in the ring
	expect_eq "$pb_dropped" 0 "$build: the second probe dropped none of the first's hits"
	# every list while hits wait in the ring brings the counts up to date: none counted twice
	for _ in 1 2 3 4 5; do req '{"cmd":"list"}' > /dev/null; done
	expect_eq "$(fixture_line fx)" "paced 200000" "$build: paced calls done"
	# pa saw every call: its record counts each one once, delivered or refused by the ring
	# (a refusal is real only under load: the daemon not draining for 80 ms), and so does pb
	counts() {
		req '{"cmd":"list"}' | python3 -c "
import json,sys
j=json.loads(sys.stdin.readline())
a={s['id']:s['applied']['$key'] for s in j['specs']}
print(a['pa']['hits'], a['pa']['dropped'], a['pb']['hits'], a['pb']['dropped'])"
	}
	for _ in $(seq 100); do c=($(counts)); [ "${c[0]}" -ge 200000 ] && break; sleep 0.1; done
	# the events the instruments received (`stats`' hits add what the ring refused to them)
	delivered() { req "{\"cmd\":\"stats\",\"id\":\"$1\"}" | jget "j['stats'][0]['report']['count']"; }
	pa_events=$(delivered pa); pb_events=$(delivered pb)
	expect_eq "${c[*]}" "200000 $((200000 - pa_events)) $((pb_events + c[3])) ${c[3]}" \
		"$build: applied hits counted once, dropped only what the ring refused (pa, pb)"
	[ "${c[3]}" -le "${c[1]}" ] && pass "$build: pb refused no more than pa" || fail "$build: pb dropped ${c[3]} > pa ${c[1]}"
	req '{"cmd":"remove","id":"pa"}' > /dev/null
	req '{"cmd":"remove","id":"pb"}' > /dev/null

	add jk konst incr > /dev/null
	path=$(req '{"cmd":"list"}' | python3 -c "
import json,sys
j=json.loads(sys.stdin.readline())
print([s for s in j['specs'] if s['id']=='jk'][0]['applied']['$(hostname):$fx_pid']['instances'][0]['path'])")
	expect_eq "$path" jump "$build: konst takes a jump"
	kill -KILL "$DPID"; wait "$DPID" 2>/dev/null; DPID=
	echo rewrite-tail >&"$fx_in"
	expect_eq "$(fixture_line fx)" "rewritten" "$build: the target changed byte 5 of konst"
	echo call >&"$fx_in"
	expect_eq "$(fixture_line fx)" "konst 1" "$build: the dead daemon's jump still runs the old copy"
	rm -f "$STORE"
	start_daemon --pid "$fx_pid"
	echo call >&"$fx_in"
	expect_eq "$(fixture_line fx)" "konst 16777217" "$build: recovery kept the target's byte"
	stop_daemon
	kill -KILL "$fx_pid" 2>/dev/null
done
finish
