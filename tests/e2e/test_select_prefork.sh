# A pre-fork server under a selector (issue 11): `--exe` takes the master and its workers; a
# reload (SIGHUP: the master replaces its workers) gives new workers whose hits are counted
# with no new command, the old ones' entries kept as `exited`; a service stopped and started
# again (new PIDs) is probed again by the same spec; a target in its own PID namespace
# (unshare --pid --fork --mount-proc) is taken as well, its entry keyed by the daemon's pid.
source "$(dirname "$0")/lib.sh"
start_daemon
H=$(hostname)
SRV=$T/pf$$
cp "$DIAG_FIXTURE_DIR/prefork-O2-pie" "$SRV"
start_fixture s "$SRV" 2
fixture_go s
read -r _ w1 w2 <<< "$(fixture_line s)"
ctl add-probe --exe "$SRV" --target handle --type incr --name h > /dev/null || fail "add-probe --exe"
keys() { ctl --json list | jget "sorted(int(k.split(':')[1]) for k, a in j['specs'][0]['applied'].items() if a['state'] == '$1')"; }
sorted() { python3 -c "import sys; print(sorted(int(x) for x in sys.argv[1:]))" "$@"; }
expect_eq "$(keys applied)" "$(sorted "$s_pid" "$w1" "$w2")" "master and both workers applied"
ctl wait p1 --hits 50 --timeout 20 || fail "the workers' hits are counted"

# reload: new workers, no new command
kill -HUP "$s_pid"
read -r _ n1 n2 <<< "$(fixture_line s)"
for _ in $(seq 200); do
	[ "$(keys applied)" = "$(sorted "$s_pid" "$n1" "$n2")" ] && break; sleep 0.05
done
expect_eq "$(keys applied)" "$(sorted "$s_pid" "$n1" "$n2")" "after SIGHUP: the new workers are applied"
hits_new() { ctl --json list | jget "min(j['specs'][0]['applied']['$H:%d' % p]['hits'] for p in ($n1, $n2))"; }
for _ in $(seq 200); do [ "$(hits_new)" -gt 10 ] && break; sleep 0.05; done
[ "$(hits_new)" -gt 10 ] && pass "the new workers' hits are counted" || fail "new workers' hits: $(hits_new)"
expect_eq "$(keys exited)" "$(sorted "$w1" "$w2")" "the old workers' entries are kept, exited"

# the service stopped and started again: new pids, same probe
kill -TERM "$s_pid"
for _ in $(seq 200); do [ "$(keys applied)" = "[]" ] && break; sleep 0.05; done
expect_eq "$(keys applied)" "[]" "stopped: nothing applied"
start_fixture r "$SRV" 2
fixture_go r
read -r _ r1 r2 <<< "$(fixture_line r)"
for _ in $(seq 200); do
	[ "$(keys applied)" = "$(sorted "$r_pid" "$r1" "$r2")" ] && break; sleep 0.05
done
expect_eq "$(keys applied)" "$(sorted "$r_pid" "$r1" "$r2")" "started again: the new master and workers are applied"
before=$(hits_of p1)
for _ in $(seq 200); do [ "$(hits_of p1)" -gt $((before + 20)) ] && break; sleep 0.05; done
[ "$(hits_of p1)" -gt $((before + 20)) ] && pass "the restarted service's hits are counted" || fail "no hits after restart"
kill -TERM "$r_pid"

# its own PID namespace: the server is pid 1 there; the selector finds it by its file
start_fixture u unshare --pid --fork --mount-proc "$SRV" 2
fixture_go u
fixture_line u > /dev/null
host_pids=$(pgrep -f "^$SRV 2" | sort -n | tr '\n' ' ')
FIXTURE_PIDS+=($host_pids) # unshare's SIGKILL would leave the namespace's processes
for _ in $(seq 200); do
	[ "$(keys applied)" = "$(sorted $host_pids)" ] && break; sleep 0.05
done
expect_eq "$(keys applied)" "$(sorted $host_pids)" "in its own PID namespace: master and workers applied (the daemon's pids)"
before=$(hits_of p1)
for _ in $(seq 200); do [ "$(hits_of p1)" -gt $((before + 20)) ] && break; sleep 0.05; done
[ "$(hits_of p1)" -gt $((before + 20)) ] && pass "hits counted inside the namespace" || fail "no hits in the namespace"
stop_daemon || fail "daemon exit status"
finish
