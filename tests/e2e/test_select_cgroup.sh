# --cgroup (issue 11): the processes of a cgroup v2 subtree, one running at add and one started
# in it later (moved there, then exec'ing: taken at its exec event, early), each probed; a
# process outside it is left alone. Needs a writable cgroup v2 hierarchy: fails loudly without.
source "$(dirname "$0")/lib.sh"
CG2=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)
[ -n "$CG2" ] && [ -w "$CG2" ] || die "no writable cgroup v2 hierarchy (mount one, as root)"
CG=/diagsel$$
mkdir "$CG2$CG" || die "cannot create the cgroup $CG2$CG"
mkdir "$CG2$CG/sub"
trap 'cleanup; rmdir "$CG2$CG/sub" "$CG2$CG" 2>/dev/null' EXIT
start_daemon
W=$T/cgw$$
cp "$DIAG_FIXTURE_DIR/work-O2-pie" "$W"
start_fixture a "$W" 1 0
start_fixture o "$W" 1 0
echo "$a_pid" > "$CG2$CG/sub/cgroup.procs"
fixture_go a; fixture_go o
ctl add-probe --cgroup "$CG" --target work --type incr --name g > /dev/null || fail "add-probe --cgroup"
expect_eq "$(state_of p1 "$a_pid")" applied "a process of the cgroup's subtree is probed"
expect_eq "$(state_of p1 "$o_pid")" none "a process outside it is left alone"
# started later inside the cgroup: a shell moves itself there, then execs the program
start_fixture b sh -c "echo \$\$ > $CG2$CG/cgroup.procs && exec $W 1 0"
for _ in $(seq 200); do [ "$(state_of p1 "$b_pid")" = applied ] && break; sleep 0.05; done
expect_eq "$(state_of p1 "$b_pid")" applied "a process started in the cgroup later is probed"
fixture_go b
ctl wait p1 --hits 200 --timeout 20 || fail "hits counted"
stop_daemon || fail "daemon exit status"
for p in "$a_pid" "$b_pid"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
finish
