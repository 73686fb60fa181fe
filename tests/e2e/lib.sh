# lib.sh: helpers for the end-to-end daemon tests (sourced). Every test gets a temp dir, its
# own socket and store, and a trap that kills whatever it started. Fixtures are synchronised
# by reading their "ready PID" line through a FIFO, never by sleeping.
# Env (set by ctest): DIAG_BUILD_DIR, DIAG_FIXTURE_DIR, DIAG_SRC_DIR.
set -u
: "${DIAG_BUILD_DIR:?set DIAG_BUILD_DIR}" "${DIAG_FIXTURE_DIR:=$DIAG_BUILD_DIR/fixtures}"
: "${DIAG_SRC_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"

DIAGNOSED=$DIAG_BUILD_DIR/daemon/diagnosed
DIAGNOSECTL=$DIAG_BUILD_DIR/daemon/diagnosectl
DIAGREQ="python3 $DIAG_SRC_DIR/tests/e2e/diagreq.py"
T=$(mktemp -d /tmp/diag-e2e.XXXXXX)
SOCK=$T/d.sock
STORE=$T/specs.json
DPID=
FIXTURE_PIDS=()
FAILS=0

cleanup() {
	[ -n "$DPID" ] && kill -TERM "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
	for p in "${FIXTURE_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
	wait 2>/dev/null
	if [ "$FAILS" -ne 0 ]; then
		echo "--- daemon stderr ---"; cat "$T"/d.err* 2>/dev/null | tail -40
	fi
	rm -rf "$T"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
pass() { echo "ok: $*"; }
die() { echo "FATAL: $*" >&2; FAILS=$((FAILS + 1)); exit 1; }

# expect_eq ACTUAL EXPECTED WHAT
expect_eq() {
	if [ "$1" == "$2" ]; then pass "$3"; else fail "$3: got [$1], want [$2]"; fi
}
# expect_contains HAYSTACK NEEDLE WHAT
expect_contains() {
	case "$1" in *"$2"*) pass "$3" ;; *) fail "$3: [$1] does not contain [$2]" ;; esac
}

finish() {
	if [ "$FAILS" -ne 0 ]; then echo "$FAILS failure(s)"; exit 1; fi
	echo "all passed"; exit 0
}

# start_fixture NAME BINARY ARGS...: runs the fixture with FIFOs for stdin and stdout and
# reads its "ready PID" line. Sets NAME_pid, NAME_in (fd to write "go"), NAME_out (fd).
start_fixture() {
	local name=$1; shift
	# A fixture of the same name started before (a loop) left its FIFOs, whose pipe the shell
	# may still hold open: a read on it could see that pipe's end instead of the new "ready".
	rm -f "$T/$name.in" "$T/$name.out"
	mkfifo "$T/$name.in" "$T/$name.out"
	"$@" < "$T/$name.in" > "$T/$name.out" &
	FIXTURE_PIDS+=($!)
	local fin fout line
	exec {fin}> "$T/$name.in"
	exec {fout}< "$T/$name.out"
	read -r -t 30 -u "$fout" line || die "$name: no ready line"
	[[ "$line" == ready\ * ]] || die "$name: unexpected first line '$line'"
	printf -v "${name}_pid" '%s' "${line#ready }"
	printf -v "${name}_in" '%s' "$fin"
	printf -v "${name}_out" '%s' "$fout"
}

# fixture_line NAME: the fixture's next output line (30 s at most).
fixture_line() {
	local fd_var=${1}_out line
	read -r -t 30 -u "${!fd_var}" line || { echo "<none>"; return 1; }
	echo "$line"
}

fixture_go() {
	local fd_var=${1}_in
	echo go >&"${!fd_var}"
}

# start_daemon ARGS...: diagnosed on this test's socket and store; waits for the socket.
start_daemon() {
	local n=${DAEMON_RUN:-0}
	DAEMON_RUN=$((n + 1))
	DOUT=${DAEMON_STDOUT:-$T/d.out$n} # DAEMON_STDOUT: the events elsewhere (a FIFO)
	"$DIAGNOSED" --socket "$SOCK" --store "$STORE" "$@" > "$DOUT" 2> "$T/d.err$n" &
	DPID=$!
	DERR=$T/d.err$n
	# Startup only: a bounded poll for the socket (the daemon has no other way to tell us).
	for _ in $(seq 200); do
		[ -S "$SOCK" ] && $DIAGREQ "$SOCK" '{"cmd":"status"}' > /dev/null 2>&1 && return 0
		kill -0 "$DPID" 2>/dev/null || die "diagnosed exited at start: $(cat "$DERR")"
		sleep 0.05
	done
	die "diagnosed did not open $SOCK"
}

stop_daemon() {
	kill -TERM "$DPID" && wait "$DPID"
	local rc=$?
	DPID=
	return $rc
}

ctl() { "$DIAGNOSECTL" --socket "$SOCK" "$@"; }
req() { $DIAGREQ "$SOCK" "$@"; }

# jget EXPR: evaluate a Python expression over the JSON document on stdin, bound to `j`.
jget() { python3 -c "import json,sys; j=json.loads(sys.stdin.readline()); print($1)"; }

# spec_json ID TARGET TYPE [extra JSON members]
spec_json() {
	printf '{"id":"%s","target":"%s","instrument":{"type":"%s","name":"%s","value":"$arg1","event":"call","custom":{}}%s}' \
		"$1" "$2" "$3" "$1" "${4:+,$4}"
}

# add ID TARGET TYPE [extra]: add through the raw protocol; prints the reply.
add() { req "{\"cmd\":\"add\",\"spec\":$(spec_json "$@")}"; }

# state_of ID PID: the applied state of spec ID in process PID.
state_of() {
	req '{"cmd":"list"}' | python3 -c "
import json,sys
j=json.loads(sys.stdin.readline())
for s in j['specs']:
    if s['id']=='$1':
        for k,a in s['applied'].items():
            if k.endswith(':$2'): print(a['state']); sys.exit(0)
print('none')"
}

hits_of() {
	req "{\"cmd\":\"stats\",\"id\":\"$1\"}" | jget "j['stats'][0]['hits']"
}

# code_bytes_match PID ADDR: "same" when the process's code bytes at ADDR equal its ELF
# file's bytes at the mapped offset, else "differ".
code_bytes_match() {
	python3 - "$1" "$2" <<'EOF'
import sys
pid, addr = int(sys.argv[1]), int(sys.argv[2], 16)
for line in open(f"/proc/{pid}/maps"):
    parts = line.split()
    lo, hi = (int(x, 16) for x in parts[0].split("-"))
    if lo <= addr < hi and len(parts) >= 6:
        off = int(parts[2], 16) + addr - lo
        with open(f"/proc/{pid}/mem", "rb") as m:
            m.seek(addr); live = m.read(16)
        with open(parts[5], "rb") as f:
            f.seek(off); disk = f.read(16)
        print("same" if live == disk else "differ")
        sys.exit(0)
print("unmapped")
EOF
}

# first_addr ID PID: the first patched address of spec ID in PID.
first_addr() {
	req '{"cmd":"list"}' | python3 -c "
import json,sys
j=json.loads(sys.stdin.readline())
for s in j['specs']:
    if s['id']=='$1':
        for k,a in s['applied'].items():
            if k.endswith(':$2') and a['addresses']: print(a['addresses'][0]); sys.exit(0)
print('none')"
}

[ -x "$DIAGNOSED" ] || die "no $DIAGNOSED (build the diagnosed target)"
