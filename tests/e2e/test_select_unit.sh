# --unit NAME.service (issue 11), through the real daemon and libsystemd's sd_pid_get_unit, on
# the cgroup layout systemd builds for a unit: system.slice/NAME.service in the name=systemd
# (v1) hierarchy and in the unified (v2) one (this machine's hybrid mode; libsystemd 252 reads
# the unified one's "0::" line). No systemd runs here as PID 1, and none is started: a real
# one in PID+mount+cgroup namespaces did start and own units, but it runs the machine's boot
# units against the shared file system (systemd-tmpfiles --remove --boot empties /tmp), so it
# is not safe on a shared machine. What is exercised: the selector, the daemon's scan at add
# (a process already in the unit), the exec event of a process started in the unit later, a
# process outside left alone, the hits. What is not: systemd itself creating the cgroup and
# starting the process (`systemctl start`, `systemctl restart`). Fails loudly when the
# hierarchies are missing or not writable.
source "$(dirname "$0")/lib.sh"
V1=/sys/fs/cgroup/systemd
V2=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)
[ -w "$V1/cgroup.procs" ] || die "no writable name=systemd hierarchy at $V1 (as root, hybrid cgroups)"
[ -n "$V2" ] && [ -w "$V2/cgroup.procs" ] || die "no writable cgroup v2 hierarchy"
UNIT=diagsel$$.service
made=()
for h in "$V1" "$V2"; do
	[ -d "$h/system.slice" ] || { mkdir "$h/system.slice" && made+=("$h/system.slice"); } ||
		die "cannot create $h/system.slice"
	mkdir "$h/system.slice/$UNIT" || die "cannot create $h/system.slice/$UNIT"
	made+=("$h/system.slice/$UNIT")
done
# made in order (a slice before its unit): removed in reverse, each empty by then
untree() { local i; for ((i = ${#made[@]} - 1; i >= 0; i--)); do rmdir "${made[i]}"; done; }
trap 'cleanup; untree' EXIT
# into the unit as systemd puts a service's process: both hierarchies
into_unit() { echo "$1" > "$V1/system.slice/$UNIT/cgroup.procs" && echo "$1" > "$V2/system.slice/$UNIT/cgroup.procs"; }
start_daemon
W=$T/unitw$$
cp "$DIAG_FIXTURE_DIR/work-O2-pie" "$W"
start_fixture a "$W" 1 0
start_fixture o "$W" 1 0
into_unit "$a_pid" || die "cannot move pid $a_pid into the unit's cgroups"
fixture_go a; fixture_go o
ctl add-probe --unit "$UNIT" --target work --type incr --name u > /dev/null 2>&1 || fail "add-probe --unit"
expect_eq "$(state_of p1 "$a_pid")" applied "a process of the unit, running at add, is probed"
expect_eq "$(state_of p1 "$o_pid")" none "a process outside the unit is left alone"
# started later in the unit: a shell moves itself there (as systemd does before the exec),
# then execs the program: taken at its exec event
start_fixture b sh -c "echo \$\$ > $V1/system.slice/$UNIT/cgroup.procs && echo \$\$ > $V2/system.slice/$UNIT/cgroup.procs && exec $W 1 0"
for _ in $(seq 200); do [ "$(state_of p1 "$b_pid")" = applied ] && break; sleep 0.05; done
expect_eq "$(state_of p1 "$b_pid")" applied "a process started in the unit later is probed"
# started later outside it: not taken
start_fixture c "$W" 1 0
expect_eq "$(state_of p1 "$c_pid")" none "a process started later outside the unit is not"
fixture_go b; fixture_go c
per() { ctl --json list | jget "min(j['specs'][0]['applied']['$(hostname):%d' % p]['hits'] for p in ($a_pid, $b_pid))"; }
for _ in $(seq 200); do [ "$(per)" -gt 10 ] && break; sleep 0.05; done
[ "$(per)" -gt 10 ] && pass "hits counted in both processes of the unit" || fail "hits: $(per)"
expect_contains "$(ctl --json status | jget "[t['why'] for t in j['targets'] if t['pid'] == $b_pid]")" \
	"unit=$UNIT" "status says why: the unit"
stop_daemon || fail "daemon exit status"
for p in "$a_pid" "$b_pid" "$c_pid" "$o_pid"; do kill -KILL "$p" 2> /dev/null; wait "$p" 2> /dev/null; done
finish
