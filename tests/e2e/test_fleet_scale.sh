# Scale and concurrency of the shared store (issue 12): two clients adding and removing specs
# at the same time while a daemon follows (each spec on its own key: none lost, none mixed;
# the daemon ends holding exactly the store's set), then 1,000 specs: a daemon holds them all
# (the engine applies 32 probes per address, the rest carry that precise error in their
# records), a daemon started afterwards reads the whole set at start, specs beyond the
# daemon's limit (1,024) are reported, and removals of all of them reach every daemon.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fleet_lib.sh"
trap 'stop_hosts; stop_redis; cleanup' EXIT
start_redis
start_host web-1
count() { lc "$1" --json list | jget "len(j['specs'])"; }
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# two clients at once: A adds a1..a10; B adds b1..b10 and removes b1..b5 as it goes
( for k in $(seq 10); do sc add-probe --target handle --type incr --name "a$k" --id "a$k" > /dev/null || echo "A $k" >> "$T/clients.err"; done ) &
A=$!
( for k in $(seq 10); do
	sc add-probe --target handle --type incr --name "b$k" --id "b$k" > /dev/null || echo "B $k" >> "$T/clients.err"
	if [ "$k" -le 5 ]; then sc remove-probe "b$k" || echo "B rm $k" >> "$T/clients.err"; fi
done ) &
B=$!
wait "$A" "$B"
expect_eq "$(cat "$T/clients.err" 2> /dev/null)" "" "two clients at once: every add and remove succeeded"
want=$(python3 -c "print(' '.join(sorted(['a%d' % k for k in range(1, 11)] + ['b%d' % k for k in range(6, 11)])))")
expect_eq "$(rcli SMEMBERS diagnose:specs | sort | tr '\n' ' ' | sed 's/ $//')" "$(tr ' ' '\n' <<< "$want" | sort | tr '\n' ' ' | sed 's/ $//')" \
	"the store holds exactly a1..a10 and b6..b10"
wait_for 15 "the daemon converges to exactly that set" is "$want" local_ids web-1
for id in a1 a10 b10; do expect_eq "$(local_state web-1 "$id")" applied "$id applied"; done

# 1,000 specs in all: one file, one client
python3 -c "
import json
print(json.dumps([{'id': 'm%d' % k, 'target': 'handle', 'instrument': {'type': 'incr', 'name': 'm%d' % k}} for k in range(985)]))" > "$T/many.json"
t0=$(date +%s%N)
sc add-probe --spec "$T/many.json" > /dev/null || fail "add-probe --spec of 985 specs"
pass "985 specs stored by one client in $(ms "$t0") ms"
expect_eq "$(rcli SCARD diagnose:specs)" 1000 "the store holds 1,000 specs"
wait_for 60 "web-1 holds all 1,000" is 1000 count web-1
pass "web-1 held them $(ms "$t0") ms after the first add"
wait_for 30 "web-1's 1,000 records are in the store" \
	list_has "sum(1 for s in j['specs'] if 'web-1:2' in s['applied']) == 1000"
expect_eq "$(sc --json list | jget "sorted(set((a['state'], 'DIAG_PROBE_MAX_PER_ADDR 32' in a.get('error','')) for s in j['specs'] for a in s['applied'].values()))")" \
	"[('applied', False), ('error', True)]" "each record: applied, or the engine's limit per address named"
expect_eq "$(sc --json list | jget "sum(1 for s in j['specs'] for a in s['applied'].values() if a['state']=='applied')")" 32 \
	"32 applied (the limit per address), the others with the error"
t0=$(date +%s%N)
start_host web-2 # reads the whole set at start
wait_for 60 "web-2, started afterwards, holds all 1,000 from the set read at its start" is 1000 count web-2
pass "web-2 held them $(ms "$t0") ms after its start"

# a reconnect reads the versions of all 1,000 and the json of none (nothing changed)
redis-cli -p "$PORT" -a topsecret --no-auth-warning MONITOR > "$T/mon" &
MON=$!
for _ in $(seq 50); do [ -s "$T/mon" ] && break; sleep 0.05; done
redis-cli -p "$PORT" -a topsecret --no-auth-warning CLIENT KILL USER alice > /dev/null
reread() { addr=$(rcli CLIENT LIST | grep 'name=diagnosed:web-1 ' | sed 's/.* addr=\([^ ]*\) .*/\1/'); [ -n "$addr" ] && [ "$(grep -c "$addr\] \"HMGET\" \"diagnose:spec:[^\"]*\" \"version\"" "$T/mon")" -ge 1000 ]; }
wait_for 15 "web-1 reconnected and read the version of every spec" reread
expect_eq "$(grep -c "$addr\] \"HMGET\" \"diagnose:spec:[^\"]*\" \"json\"" "$T/mon")" 0 "... and the json of none (unchanged)"
kill "$MON"; wait "$MON" 2> /dev/null
expect_eq "$(count web-1)" 1000 "web-1 still holds all 1,000"

# past the daemon's limit: the store takes them, the daemon says which it does not run
for k in $(seq 30); do echo "{\"id\":\"x$k\",\"target\":\"handle\",\"instrument\":{\"type\":\"incr\",\"name\":\"x\"},\"hosts\":\"web-1\"}"; done |
	python3 -c "import sys, json; print(json.dumps([json.loads(l) for l in sys.stdin]))" > "$T/x.json"
sc add-probe --spec "$T/x.json" > /dev/null
wait_for 20 "web-1 holds 1,024 (its limit)" is 1024 count web-1
wait_for 10 "web-1's status names the specs past its limit" \
	sh -c "$(printf '%q ' "$DIAGNOSECTL") --socket $T/web-1.sock --json status | grep -q 'limit of 1024 specs reached'"
expect_eq "$(count web-2)" 1000 "web-2 does not hold the 30 that select web-1 only"

# every removal reaches every daemon: four clients at once
t0=$(date +%s%N)
{ for k in $(seq 0 984); do echo "m$k"; done; for k in $(seq 30); do echo "x$k"; done; } |
	xargs -P 4 -n 100 sh -c 'c=$0 u=$1 p=$2; shift 2; for id; do "$c" --store "$u" --store-password-file "$p" remove-probe "$id" || echo "rm $id"; done' \
	"$DIAGNOSECTL" "$(URL)" "$T/pw" > "$T/rm.err" 2>&1
expect_eq "$(cat "$T/rm.err")" "" "1,015 removals by four clients at once"
for h in web-1 web-2; do wait_for 30 "$h is back to the 15 specs" is 15 count "$h"; done
pass "removed everywhere $(ms "$t0") ms after the first removal"
stop_hosts # each exits 0 (checked)
finish
