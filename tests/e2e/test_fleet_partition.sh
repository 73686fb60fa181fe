# Partitions (issue 12): two hosts (PID namespaces of their own) while the store goes away and
# comes back. Redis stopped (SIGSTOP), then killed, then started again from its last dump:
# the probes keep counting and expiring by their lifespans, the daemons' sockets keep
# answering, status says the store is gone, and at reconnect the records written while away
# land in the store. The store refusing the daemons while a client removes a spec: the removal
# (whose notification they missed) is applied at reconnect. A daemon killed with -9 and
# started again gets its probes back from the store.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fleet_lib.sh"
trap 'stop_hosts; stop_redis; cleanup' EXIT
start_redis
for h in web-1 web-2; do start_host "$h"; done
hits() { lc "$1" --json stats "$2" | jget "j['stats'][0]['hits']"; }
more_hits() { [ "$(hits "$1" "$2")" -gt "$3" ]; }
connected() { lc "$1" --json status | jget "j['store']['connected']"; }
status_has() { lc "$1" --json status | grep -q "$2"; }

sc add-probe --target handle --type incr --name p1 --id p1 > /dev/null
sc add-probe --target handle --type incr --name p2 --id p2 > /dev/null
sc add-probe --target handle --type incr --name p3 --id p3 --lifespan 0.25 > /dev/null # 15 s
for id in p1 p2 p3; do
	for h in web-1 web-2; do wait_for 5 "$id applied on $h" is applied store_state "$id" "$h"; done
done
rcli SAVE > /dev/null # what the server restarts from
expect_eq "$(store_state p3 web-1)" applied "p3 still live in the dump the server restarts from"

# SIGSTOP: the server holds every connection open and answers nothing
h0=$(hits web-1 p1)
kill -STOP "$REDIS"
wait_for 10 "store stopped: web-1's status says it is not connected" is False connected web-1
t0=$(date +%s%N); lc web-1 status > /dev/null; t1=$(date +%s%N)
[ $(( (t1 - t0) / 1000000 )) -lt 2000 ] && pass "the daemon answers its socket at once while the store hangs ($(( (t1 - t0) / 1000000 )) ms)" \
	|| fail "status took $(( (t1 - t0) / 1000000 )) ms while the store hangs"
wait_for 5 "the probes keep counting while the store hangs" more_hits web-1 p1 "$h0"
kill -KILL "$REDIS"; wait "$REDIS" 2> /dev/null; REDIS=
expect_eq "$(local_state web-1 p3)" applied "p3 is still live when the store goes down"
wait_for 10 "store killed: status names it unreachable" status_has web-1 unreachable
h1=$(hits web-2 p1)
wait_for 5 "the probes keep counting while the store is down" more_hits web-2 p1 "$h1"
wait_for 25 "p3 expires by its lifespan while the store is down" is expired local_state web-1 p3
expect_eq "$(local_ids web-1)" "p1 p2 p3" "web-1 keeps every spec while cut off"

start_redis "$PORT" # from the dump: p3's records there still say applied
for h in web-1 web-2; do wait_for 10 "$h reconnects (backoff at most 5 s)" is True connected "$h"; done
for h in web-1 web-2; do
	wait_for 5 "the record written while away lands: p3 expired on $h" is expired store_state p3 "$h"
done
wait_for 10 "the hits counted while away are in the store" \
	list_has "[s for s in j['specs'] if s['id']=='p1'][0]['applied']['web-1:2']['hits'] > $h0"

# refused while a client removes p2: the notification is missed, the reconnect catches up
redis-cli -p "$PORT" -a topsecret --no-auth-warning ACL SETUSER alice off > /dev/null
redis-cli -p "$PORT" -a topsecret --no-auth-warning CLIENT KILL USER alice > /dev/null
for h in web-1 web-2; do wait_for 10 "$h: status says the password is refused" status_has "$h" "password was refused"; done
DIAGNOSE_REDIS_PASSWORD=topsecret "$DIAGNOSECTL" --store "redis://127.0.0.1:$PORT" remove-probe p2 \
	|| fail "remove-probe p2 by another user"
DIAGNOSE_REDIS_PASSWORD=topsecret "$DIAGNOSECTL" --store "redis://127.0.0.1:$PORT" add-probe \
	--target handle --type incr --name p1b --id p1 > /dev/null || fail "p1 changed by another user"
expect_eq "$(local_ids web-1)" "p1 p2 p3" "cut off, web-1 still holds p2"
redis-cli -p "$PORT" -a topsecret --no-auth-warning ACL SETUSER alice on > /dev/null
for h in web-1 web-2; do
	wait_for 15 "$h: the spec removed while it was cut off is removed at reconnect" is "p1 p3" local_ids "$h"
done
expect_eq "$(rcli EXISTS diagnose:applied:p2)" 0 "... and no record of it is written back"
name_of() { lc "$1" --json list | jget "[s['instrument']['name'] for s in j['specs'] if s['id']=='$2'][0]"; }
for h in web-1 web-2; do
	wait_for 5 "$h: the spec changed while it was cut off runs its new version" is p1b name_of "$h" p1
done

# kill -9: the namespace goes with it; a new daemon for the host gets its probes from the store
stop_host web-2 KILL
start_host web-2
wait_for 10 "web-2 restarted: p1 comes back from the store" is applied local_state web-2 p1
wait_for 5 "... and its record in the store says so" is applied store_state p1 web-2
expect_eq "$(local_ids web-2)" "p1 p3" "the new daemon holds every spec of the store"
expect_eq "$(local_state web-2 p3)" none "... and applies p3, whose lifespan is over, nowhere"
stop_hosts # each exits 0 (checked)
finish
