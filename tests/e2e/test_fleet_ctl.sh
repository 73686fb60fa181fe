# The shared store from diagnosectl with no daemon (issue 12, first part): against a real
# redis-server on a loopback port, with an ACL user and a password from a file. add-probe
# stores one spec on its own (a version per change), list reads every spec, remove-probe drops
# it, hosts shows each daemon's heartbeat (stale ones marked); errors are precise for a store
# that is unreachable, refuses the password or wants one, and a record that does not parse is
# reported and kept.
source "$(dirname "$0")/lib.sh"

command -v redis-server > /dev/null || die "redis-server is not installed (apt-get install redis-server)"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
	--dir "$T" > "$T/redis.log" 2>&1 &
REDIS=$!
for _ in $(seq 100); do redis-cli -p "$PORT" ping > /dev/null 2>&1 && break; sleep 0.05; done
rc() { redis-cli -p "$PORT" --user alice --pass s3cret --no-auth-warning "$@"; }
redis-cli -p "$PORT" ACL SETUSER alice on '>s3cret' '~*' '&*' '+@all' > /dev/null || die "ACL SETUSER"
redis-cli -p "$PORT" CONFIG SET requirepass topsecret > /dev/null || die "requirepass"
trap 'kill $REDIS 2>/dev/null; wait $REDIS 2>/dev/null; cleanup' EXIT
echo s3cret > "$T/pw"
chmod 600 "$T/pw"
URL="redis://alice@127.0.0.1:$PORT"
sc() { "$DIAGNOSECTL" --store "$URL" --store-password-file "$T/pw" "$@"; }

# the issue's contract: a selector through the store, no daemon; the id is printed
sel_id=$(sc add-probe --exe "$DIAG_FIXTURE_DIR/work-O2-pie" --target work --type incr --name n --lifespan 5)
expect_eq "$(rc HGET "diagnose:spec:$sel_id" json | python3 -c 'import json,sys; print(json.load(sys.stdin)["select"]["exe"])')" \
	"$DIAG_FIXTURE_DIR/work-O2-pie" "add-probe --exe through the store: the spec selects the executable"
sc remove-probe "$sel_id" > /dev/null || fail "remove-probe of the --exe spec"
rc SUBSCRIBE diagnose:changes > "$T/sub.out" &
SUB=$!
for _ in $(seq 100); do grep -q subscribe "$T/sub.out" 2>/dev/null && break; sleep 0.05; done
out=$(sc add-probe --pid 1 --target work --type incr --name n --id w1 --lifespan 5)
expect_eq "$?" 0 "add-probe to the store: exit 0"
expect_eq "$out" "w1" "add-probe to the store: the id"
expect_eq "$(sc --json list | jget "[(s['id'], s['version'], s['lifespan']) for s in j['specs']]")" \
	"[('w1', 1, 5)]" "list: the spec, version 1"
sc add-probe --pid 1 --target work --type hist --name n --id w1 > /dev/null
expect_eq "$(sc --json list | jget "[(s['id'], s['version'], s['instrument']['type']) for s in j['specs']]")" \
	"[('w1', 2, 'hist')]" "a change: version 2"
expect_eq "$(rc HGET diagnose:spec:w1 version)" 2 "the spec has its own key and version in Redis"
for _ in $(seq 100); do grep -q "w1 2" "$T/sub.out" && break; sleep 0.05; done
expect_contains "$(cat "$T/sub.out")" "w1 1" "every change is published: the first"
expect_contains "$(cat "$T/sub.out")" "w1 2" "... and the second"
kill "$SUB"

# many clients at once: each spec on its own, none lost
for k in $(seq 20); do sc add-probe --pid 1 --target work --type incr --name "c$k" --id "c$k" > /dev/null & done
wait $(jobs -p | grep -v "^$REDIS$") 2>/dev/null
expect_eq "$(sc --json list | jget "len(j['specs'])")" 21 "20 concurrent adds: all stored"

# applied records from hosts (written by daemons; one here by hand), one that does not parse
rc HSET diagnose:applied:w1 web-1:4242 '{"state":"applied","lm":"2026-12-01T00:00:00Z","hits":7}' > /dev/null
rc HSET diagnose:applied:w1 web-2:99 'not json' > /dev/null
sc --json list > "$T/list.json" 2> "$T/list.err"
expect_eq "$(jget "[s['applied'] for s in j['specs'] if s['id'] == 'w1'][0]['web-1:4242']['hits']" < "$T/list.json")" 7 \
	"list: every host's applied records"
expect_contains "$(cat "$T/list.err")" "applied record 'web-2:99'" "a record that does not parse is reported"
expect_eq "$(rc HEXISTS diagnose:applied:w1 web-2:99)" 1 "... and kept in the store"
sc list > "$T/list.txt" 2> /dev/null
expect_contains "$(cat "$T/list.txt")" "web-1:4242" "list (table): the host:pid of each record"

# hosts: heartbeats, stale after the timeout
now=$(date +%s)
rc HSET diagnose:hosts web-1 "{\"version\":\"0.5.0\",\"last_seen\":$now,\"processes\":3}" > /dev/null
rc HSET diagnose:hosts web-2 "{\"version\":\"0.5.0\",\"last_seen\":$((now - 3600)),\"processes\":1}" > /dev/null
expect_eq "$(sc --json hosts | jget "sorted((h, v['stale'], v['processes']) for h, v in j['hosts'].items())")" \
	"[('web-1', False, 3), ('web-2', True, 1)]" "hosts: live and stale daemons"
expect_contains "$(sc hosts)" "web-2" "hosts (table)"

# remove
sc remove-probe w1
expect_eq "$?" 0 "remove-probe from the store"
expect_eq "$(rc EXISTS diagnose:spec:w1 diagnose:applied:w1)" 0 "its keys are gone"
sc remove-probe w1 2> "$T/err"
expect_eq "$?" 1 "remove-probe of an id not there: exit 1"
expect_contains "$(cat "$T/err")" "no probe 'w1' in the store" "... and why"

# what needs a daemon says so
sc status 2> "$T/err"
expect_contains "$(cat "$T/err")" "status: needs a daemon" "status with --store"

# precise errors
echo wrong > "$T/bad"
"$DIAGNOSECTL" --store "$URL" --store-password-file "$T/bad" list 2> "$T/err"
expect_contains "$(cat "$T/err")" "the password was refused" "a wrong password"
"$DIAGNOSECTL" --store "redis://127.0.0.1:$PORT" list 2> "$T/err"
expect_contains "$(cat "$T/err")" "a password is required" "no password for a store that wants one"
DIAGNOSE_REDIS_PASSWORD=topsecret "$DIAGNOSECTL" --store "redis://127.0.0.1:$PORT" --json list > /dev/null
expect_eq "$?" 0 "the password from the environment (the default user)"
"$DIAGNOSECTL" --store "redis://127.0.0.1:1" list 2> "$T/err"
expect_contains "$(cat "$T/err")" "store 127.0.0.1:1: unreachable" "an unreachable store"
"$DIAGNOSECTL" --store "redis://alice:pw@127.0.0.1:$PORT" list 2> "$T/err"
expect_contains "$(cat "$T/err")" "no password in the URL" "a password on the command line is refused"
"$DIAGNOSECTL" --store "redis://127.0.0.1" list 2> "$T/err"
expect_contains "$(cat "$T/err")" "needs HOST:PORT" "a URL without a port"
finish
