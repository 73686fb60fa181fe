# A sandboxed target (victim "seccomp": a seccomp filter that kills the process at
# memfd_create, the system call a shared ring needs): the daemon must not make that call in
# it. Its jump probes take the private ring (status says so) and count every hit; the target
# survives the probes and a kill -9 of the daemon, its results unchanged, no byte left patched.
source "$(dirname "$0")/lib.sh"
export DIAG_RING_SHARED=1 # shared rings (the default, said again)
start_fixture v "$DIAG_FIXTURE_DIR/victim-O2-pie" 2 seccomp
start_daemon --pid "$v_pid" $NOGOV
r=$(add f work incr)
expect_eq "$(echo "$r" | jget "j['spec']['applied']['$(hostname):$v_pid']['instances'][0]['path']")" jump \
	"the probe is a jump"
expect_eq "$(req '{"cmd":"status"}' | jget "[t['ring'] for t in j['targets']]")" "['private']" \
	"status: the sandboxed target's ring is private"
addr=$(first_addr f "$v_pid")
fixture_go v
[ "$(wait_more f 50)" = True ] || fail "the probe is not counting"
kill -KILL "$DPID"; wait "$DPID" 2>/dev/null; DPID=
alive=0
kill -0 "$v_pid" 2>/dev/null && alive=1
start_daemon --pid "$v_pid" $NOGOV # recovers the journal: every byte back
stop_daemon
p=$(patched_count "$v_pid" "$addr")
memfds=$(grep -c memfd "/proc/$v_pid/maps")
r=$(victim_result v)
expect_eq "$alive" 1 "the target survives the probe and kill -9 of the daemon"
expect_eq "$(field "$r" bad)" 0 "its results are unchanged ($r)"
expect_eq "$p" 0 "no byte left patched"
expect_eq "$memfds" 0 "no memfd mapping in it"
figure "sandboxed target (seccomp kills memfd_create), jump probe, kill -9 of the daemon" 1 "$alive" 0 "$p"
finish
