# fleet_lib.sh: helpers for the shared-store tests (sourced after lib.sh). A real redis-server
# on a free loopback port in this test's temp dir, with an ACL user (alice) whose password is
# in a file; every wait is a bounded poll for a condition.
command -v redis-server > /dev/null || die "redis-server is not installed (apt-get install redis-server)"
REDIS=
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# start_redis [PORT]: (re)start the server (a restart keeps the port: the daemons reconnect)
start_redis() {
	PORT=${1:-${PORT:-$(free_port)}}
	redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
		--dir "$T" >> "$T/redis.log" 2>&1 &
	REDIS=$!
	for _ in $(seq 100); do redis-cli -p "$PORT" ping > /dev/null 2>&1 && break; sleep 0.05; done
	redis-cli -p "$PORT" ping > /dev/null 2>&1 || die "redis-server did not start: $(tail -5 "$T/redis.log")"
	redis-cli -p "$PORT" ACL SETUSER alice on '>s3cret' '~*' '&*' '+@all' > /dev/null || die "ACL SETUSER"
	redis-cli -p "$PORT" CONFIG SET requirepass topsecret > /dev/null || die "requirepass"
}
stop_redis() {
	[ -n "$REDIS" ] && kill -CONT "$REDIS" 2>/dev/null
	[ -n "$REDIS" ] && kill "$REDIS" 2>/dev/null && wait "$REDIS" 2>/dev/null
	REDIS=
}
echo s3cret > "$T/pw"
chmod 600 "$T/pw"
rcli() { redis-cli -p "$PORT" --user alice --pass s3cret --no-auth-warning "$@"; }
URL() { echo "redis://alice@127.0.0.1:$PORT"; }
sc() { "$DIAGNOSECTL" --store "$(URL)" --store-password-file "$T/pw" "$@"; }

# wait_for SECONDS WHAT CMD...: poll CMD (every 0.1 s) until it succeeds; fail after SECONDS.
wait_for() {
	local secs=$1 what=$2; shift 2
	local end=$((SECONDS + secs))
	while [ "$SECONDS" -le "$end" ]; do
		if "$@" > /dev/null 2>&1; then pass "$what"; return 0; fi
		sleep 0.1
	done
	fail "$what (not within ${secs} s)"
	return 1
}
# list_has EXPR: the store's --json list satisfies the Python expression EXPR (over j).
list_has() { sc --json list 2>/dev/null | python3 -c "import json,sys; j=json.loads(sys.stdin.readline()); sys.exit(0 if ($1) else 1)"; }
# applied_of ID: {HOST:PID: (state, hits)} of spec ID in the store.
applied_of() {
	sc --json list 2>/dev/null | python3 -c "
import json,sys
j=json.loads(sys.stdin.readline())
for s in j['specs']:
    if s['id']=='$1': print(sorted((k, a['state']) for k, a in s['applied'].items()))"
}

# Hosts: a fixture and a daemon named NAME in a PID namespace of their own (unshare --pid
# --fork --mount-proc), as on a machine of its own: the daemon is the namespace's init and
# sees only its fixture (pid 2 there). Its socket $T/NAME.sock, journal $T/NAME.journal.
declare -A HOST_U HOST_D
FX=$DIAG_FIXTURE_DIR/paced-O0-pie
STORE_ARGS=() # extra daemon options for every host (set by a test)
start_host() {
	local name=$1; shift
	rm -f "$T/$name.in" "$T/$name.fx" "$T/$name.sock"
	mkfifo "$T/$name.in"
	local fd
	exec {fd}<> "$T/$name.in" # held open: the fixture's stdin never ends, "go" goes in
	echo go >&"$fd"
	unshare --pid --fork --mount-proc bash -c '
		"$1" 1 0 < "$2" > "$3" & fx=$!
		for _ in $(seq 200); do grep -q ready "$3" && break; sleep 0.05; done
		export DIAG_JOURNAL_DIR=$4
		shift 4
		exec "$@" --pid "$fx"' host "$FX" "$T/$name.in" "$T/$name.fx" "$T/$name.journal" \
		"$DIAGNOSED" --socket "$T/$name.sock" --store "$(URL)" --store-password-file "$T/pw" \
		--host-name "$name" --store-heartbeat 1 "${STORE_ARGS[@]}" "$@" \
		>> "$T/$name.out" 2>> "$T/d.err.$name" &
	HOST_U[$name]=$!
	for _ in $(seq 200); do
		[ -S "$T/$name.sock" ] && $DIAGREQ "$T/$name.sock" '{"cmd":"status"}' > /dev/null 2>&1 && break
		kill -0 "${HOST_U[$name]}" 2> /dev/null || die "host $name: exited at start: $(cat "$T/d.err.$name")"
		sleep 0.05
	done
	HOST_D[$name]=$(cat "/proc/${HOST_U[$name]}/task/${HOST_U[$name]}/children" 2>/dev/null | awk '{print $1}')
	[ -n "${HOST_D[$name]}" ] || die "host $name: no daemon"
}
# stop_host NAME [SIGNAL]: the daemon (and with it its namespace) ends
# (stopped with TERM, it must exit 0: under the sanitizers a leak or an error is a failure)
stop_host() {
	[ -n "${HOST_U[$1]:-}" ] || return 0
	kill -"${2:-TERM}" "${HOST_D[$1]}" 2> /dev/null
	wait "${HOST_U[$1]}" 2> /dev/null
	local rc=$?
	[ "${2:-TERM}" != TERM ] || [ "$rc" -eq 0 ] ||
		fail "host $1: the daemon exited $rc at SIGTERM: $(tail -5 "$T/d.err.$1")"
	unset "HOST_U[$1]" "HOST_D[$1]"
}
stop_hosts() { for h in "${!HOST_U[@]}"; do stop_host "$h"; done; }
# lc NAME ARGS...: diagnosectl against host NAME's own daemon
lc() { local n=$1; shift; "$DIAGNOSECTL" --socket "$T/$n.sock" "$@"; }
# local_ids NAME: the spec ids host NAME's daemon holds, sorted, space-separated
local_ids() { lc "$1" --json list | python3 -c "import json,sys; print(' '.join(sorted(s['id'] for s in json.loads(sys.stdin.readline())['specs'])))"; }
# local_state NAME ID: the state of spec ID in the host's one fixture (pid 2 in its namespace)
local_state() { lc "$1" --json list | python3 -c "
import json,sys
for s in json.loads(sys.stdin.readline())['specs']:
    if s['id']=='$2': print(s['applied'].get('$1:2',{}).get('state','none')); sys.exit(0)
print('absent')"; }
# store_state ID HOST: the state of spec ID's record HOST:2 in the store ("none" when absent)
store_state() { sc --json list 2>/dev/null | python3 -c "
import json,sys
for s in json.loads(sys.stdin.readline())['specs']:
    if s['id']=='$1': print(s['applied'].get('$2:2',{}).get('state','none')); sys.exit(0)
print('absent')"; }
is() { [ "$("${@:2}")" == "$1" ]; } # is WANT CMD...: CMD prints WANT
