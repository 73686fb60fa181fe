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
	local n=$((secs * 10))
	for _ in $(seq "$n"); do
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
