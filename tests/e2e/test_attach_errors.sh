# Attaching what cannot be attached names the field (`pid`) and the known cause, never a
# command-line option the client did not use (`--pid N`) and no list of guesses: the daemon's
# own pid, a kernel thread (kthreadd, pid 2), a process gdb already traces (its pid and comm),
# a zombie, no such process; over the socket (attach) and in a spec's `applied` error. On the
# daemon's command line the same causes name --pid. PID 1 is refused unless the daemon was
# started with --allow-pid1 (checked in a pid namespace of our own, where pid 1 is a shell of
# this test, never the machine's init).
source "$(dirname "$0")/lib.sh"

start_daemon
err_of() { jget "j['error']"; }
dpid=$(req '{"cmd":"status"}' | jget "j['pid']")

expect_eq "$(req "{\"cmd\":\"attach\",\"pid\":$dpid}" | err_of)" \
	"pid $dpid: cannot attach: it is this daemon (pid $dpid) itself" "attach: the daemon's own pid"
expect_eq "$(cat /proc/2/comm)" kthreadd "pid 2 is kthreadd here"
expect_eq "$(req '{"cmd":"attach","pid":2}' | err_of)" \
	"pid 2: cannot attach: it is a kernel thread (PF_KTHREAD in /proc/2/stat, no /proc/2/exe): nothing in user space to probe" \
	"attach: a kernel thread"
expect_eq "$(req '{"cmd":"attach","pid":4000000}' | err_of)" "pid 4000000: no such process" \
	"attach: no such process"

# a process another debugger holds: gdb -p, kept attached until we release it
start_fixture fx "$DIAG_FIXTURE_DIR/work-O0-pie" 1 0
mkfifo "$T/gdb.hold"
gdb -q -nx -batch -p "$fx_pid" -ex "shell read x < $T/gdb.hold" > "$T/gdb.out" 2>&1 &
GDB=$!
for _ in $(seq 400); do
	[ "$(awk '/^TracerPid:/ {print $2}' "/proc/$fx_pid/status")" = "$GDB" ] && break
	sleep 0.05
done
expect_eq "$(awk '/^TracerPid:/ {print $2}' "/proc/$fx_pid/status")" "$GDB" "gdb traces the fixture"
expect_eq "$(req "{\"cmd\":\"attach\",\"pid\":$fx_pid}" | err_of)" \
	"pid $fx_pid: cannot attach: already traced by pid $GDB (gdb)" "attach: traced by gdb"
# the same cause in a spec's applied error (and on the daemon's stderr)
add traced work log "\"pid\":$fx_pid" > /dev/null
expect_eq "$(req '{"cmd":"list"}' | jget "[a['error'] for s in j['specs'] if s['id']=='traced' for a in s['applied'].values()][0]")" \
	"pid $fx_pid: cannot attach: already traced by pid $GDB (gdb)" "spec: applied error names the tracer"
expect_eq "$(grep -c -- '--pid' "$DERR")" 0 "the daemon's log never names --pid"
echo go > "$T/gdb.hold"
wait "$GDB"
# gdb gone: the same spec now applies
add traced work log "\"pid\":$fx_pid" > /dev/null
expect_eq "$(state_of traced "$fx_pid")" applied "after gdb left, the attach works"

# a zombie: its parent never reaps it
python3 -c 'import os, time
p = os.fork()
if p == 0:
    os._exit(0)
print(p, flush=True)
time.sleep(300)' > "$T/z.out" &
FIXTURE_PIDS+=($!)
for _ in $(seq 200); do [ -s "$T/z.out" ] && break; sleep 0.05; done
zpid=$(cat "$T/z.out")
for _ in $(seq 200); do [ "$(awk '{print $3}' "/proc/$zpid/stat")" = Z ] && break; sleep 0.05; done
expect_eq "$(req "{\"cmd\":\"attach\",\"pid\":$zpid}" | err_of)" \
	"pid $zpid: cannot attach: the process has exited (a zombie its parent has not reaped)" "attach: a zombie"
stop_daemon

# the command line names --pid
"$DIAGNOSED" --pid 2 --no-socket > /dev/null 2> "$T/cli.err"
expect_eq "$(head -1 "$T/cli.err")" \
	"diagnosed: --pid 2: cannot attach: it is a kernel thread (PF_KTHREAD in /proc/2/stat, no /proc/2/exe): nothing in user space to probe" \
	"command line: --pid names the option"

# pid 1, in a pid namespace of our own: refused, unless --allow-pid1
ns_attach1() { # DAEMON-ARGS...: the reply to attach pid 1, from inside a new pid namespace
	unshare --pid --fork --mount-proc bash -c '
		"$0" --socket "$1/ns.sock" --store "$1/ns.json" "${@:3}" > "$1/ns.out" 2> "$1/ns.err" &
		d=$!
		for _ in $(seq 200); do [ -S "$1/ns.sock" ] && break; sleep 0.05; done
		$2 "$1/ns.sock" "{\"cmd\":\"attach\",\"pid\":1}" > "$1/ns.reply"
		$2 "$1/ns.sock" "{\"cmd\":\"status\"}" >> "$1/ns.reply"
		kill -TERM $d; wait $d' "$DIAGNOSED" "$T" "$DIAGREQ" "$@"
	head -1 "$T/ns.reply" | jget "j.get('error', 'attached')"
	tail -1 "$T/ns.reply" | jget "1 in [t['pid'] for t in j['targets']]" >&2
}
expect_eq "$(ns_attach1 2> "$T/ns.targets")" \
	"pid 1: refused: tracing init can stall the whole system (start diagnosed with --allow-pid1 to allow it)" \
	"pid 1 refused by default"
expect_eq "$(cat "$T/ns.targets")" False "pid 1 not traced"
expect_eq "$(ns_attach1 --allow-pid1 2> "$T/ns.targets")" attached "--allow-pid1: pid 1 attached"
expect_eq "$(cat "$T/ns.targets")" True "pid 1 traced with --allow-pid1"
expect_contains "$("$DIAGNOSED" --help)" "[--allow-pid1]" "--help documents --allow-pid1"
finish
