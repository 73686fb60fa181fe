# Three daemons as three hosts (issue 12): web-1, web-2 and db-1, each in a PID namespace of
# its own with its own fixture, socket and journal, all following one redis-server. A spec
# added through the store is applied on every host within seconds and each host writes its
# own applied record HOST:PID with state and hits; a `hosts` glob selects two of the three;
# a removal through the store reaches every host; a host that stops beating is stale in
# `hosts` and `list` after the (shortened) timeout.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/fleet_lib.sh"
trap 'stop_hosts; stop_redis; cleanup' EXIT
start_redis
for h in web-1 web-2 db-1; do start_host "$h"; done

sc add-probe --target handle --type incr --name n --id all1 > /dev/null || fail "add-probe all1"
for h in web-1 web-2 db-1; do
	wait_for 5 "all1 is applied on $h (its own daemon)" is applied local_state "$h" all1
done
for h in web-1 web-2 db-1; do
	wait_for 5 "all1: $h's record in the store is applied" is applied store_state all1 "$h"
done
wait_for 10 "each host's record counts its own hits" \
	list_has "all(a['hits'] > 0 for s in j['specs'] if s['id']=='all1' for a in s['applied'].values()) and len([1 for s in j['specs'] if s['id']=='all1' for a in s['applied']]) == 3"
expect_eq "$(sc --json list | jget "sorted([s for s in j['specs'] if s['id']=='all1'][0]['applied'])")" \
	"['db-1:2', 'web-1:2', 'web-2:2']" "all1: exactly one record per host (each sees only its own fixture)"

sc add-probe --target handle --type incr --name w --id webonly --host 'web-*' > /dev/null || fail "add-probe --host"
expect_eq "$(sc --json list | jget "[s['hosts'] for s in j['specs'] if s['id']=='webonly'][0]")" \
	"['web-*']" "the spec keeps its hosts glob"
for h in web-1 web-2; do
	wait_for 5 "webonly ('web-*') is applied on $h" is applied store_state webonly "$h"
done
expect_eq "$(store_state webonly db-1)" none "webonly is not applied on db-1"
expect_eq "$(local_ids db-1)" "all1" "db-1 does not hold the spec that does not select it"
# a change of hosts: the host it no longer selects removes it, the other keeps it
sc add-probe --target handle --type incr --name w --id webonly --host web-1 > /dev/null
wait_for 5 "webonly changed to --host web-1: removed on web-2" is absent local_state web-2 webonly
expect_eq "$(local_state web-1 webonly)" applied "... still applied on web-1"
sc add-probe --target handle --type incr --name two --id two --host web-2 --host 'db-?' > /dev/null
for h in web-2 db-1; do wait_for 5 "--host may repeat: two on $h" is applied store_state two "$h"; done
expect_eq "$(store_state two web-1)" none "... and not on web-1"
sc add-probe --target handle --type incr --name x --host 'a:b' 2> "$T/err"
expect_contains "$(cat "$T/err")" "hosts" "a bad host glob is refused, naming the field"

expect_eq "$(sc --json hosts | jget "sorted((h, v['stale'], v['processes']) for h, v in j['hosts'].items())")" \
	"[('db-1', False, 1), ('web-1', False, 1), ('web-2', False, 1)]" "hosts: three live daemons, one process each"

sc remove-probe all1 || fail "remove-probe all1"
for h in web-1 web-2 db-1; do
	wait_for 5 "all1 removed through the store is gone on $h" is absent local_state "$h" all1
done
expect_eq "$(rcli EXISTS diagnose:applied:all1)" 0 "no host writes a record back for the removed spec"

# a daemon that dies stops beating: stale after the timeout, in hosts and in list
stop_host db-1 KILL
wait_for 10 "db-1 is stale in hosts after the timeout (--stale-after 2)" \
	sh -c "$(printf '%q ' "$DIAGNOSECTL") --store $(URL) --store-password-file $T/pw --stale-after 2 --json hosts | grep -q '\"db-1\":{[^}]*\"stale\":true'"
expect_eq "$(sc --stale-after 2 --json list | jget "sorted((k, a['stale']) for s in j['specs'] if s['id']=='two' for k, a in s['applied'].items())")" \
	"[('db-1:2', True), ('web-2:2', False)]" "list marks the records of the stale host"
expect_contains "$(sc --stale-after 2 list)" "applied (stale host)" "list (table) says so"
expect_eq "$(sc --stale-after 2 --json hosts | jget "j['hosts']['web-1']['stale']")" False "web-1 still live"
stop_hosts # each exits 0 (checked)
finish
