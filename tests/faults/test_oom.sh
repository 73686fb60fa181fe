# The kernel's OOM killer kills the daemon FAULT_TRIALS times while 4 threads call a probed
# function (fast path, exact path, then a capture probe reading memory through bad pointers),
# with the same assertions as kill -9 (kill9_common.sh):
# the target survives and computes correct results, a new daemon re-applies the store and
# serves, no byte is left patched. The kill is the kernel's, not ours: each daemon is moved
# into a memory cgroup of its own (limit 64 MiB, oom_score_adj 1000), a hog in the same cgroup
# allocates until the cgroup's OOM killer fires and must pick the daemon; the case checks the
# daemon died of SIGKILL and the cgroup counted an OOM kill. No memory cgroup (v2 memory
# controller, or the v1 memory hierarchy) is a failure, not a skip.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/capture_common.sh"
source "$(dirname "$0")/kill9_common.sh"

OOM_LIMIT=$((64 << 20))
OOM_CG=
HOG=

# oom_cgroup_setup: creates OOM_CG, a memory cgroup with OOM_LIMIT, the OOM killer on, no
# swap, and (v2) memory.oom.group off so that only the chosen victim dies.
oom_cgroup_setup() {
	local root=
	for root in /sys/fs/cgroup /sys/fs/cgroup/unified; do
		[ "$(stat -fc %T "$root" 2>/dev/null)" = cgroup2fs ] || continue
		grep -qw memory "$root/cgroup.controllers" || continue
		grep -qw memory "$root/cgroup.subtree_control" ||
			echo +memory > "$root/cgroup.subtree_control" || continue
		OOM_CG=$root/diag-oom-$$
		mkdir "$OOM_CG" || die "cannot create $OOM_CG"
		echo 0 > "$OOM_CG/memory.oom.group" || die "cannot clear $OOM_CG/memory.oom.group"
		[ -e "$OOM_CG/memory.swap.max" ] && echo 0 > "$OOM_CG/memory.swap.max"
		echo "$OOM_LIMIT" > "$OOM_CG/memory.max" || die "cannot set $OOM_CG/memory.max"
		OOM_EVENTS=$OOM_CG/memory.events
		echo "memory cgroup (v2): $OOM_CG"
		return 0
	done
	# cgroup v1 (hybrid hosts): a child of our own memory cgroup, so that its limits still hold.
	root=/sys/fs/cgroup/memory
	if [ "$(stat -fc %T "$root" 2>/dev/null)" = cgroupfs ] && [ -e "$root/memory.limit_in_bytes" ]; then
		local own
		own=$(awk -F: '$2 == "memory" {print $3}' /proc/self/cgroup)
		[ -d "$root$own" ] || own=
		OOM_CG=$root$own/diag-oom-$$
		mkdir "$OOM_CG" || die "cannot create $OOM_CG"
		grep -q '^oom_kill_disable 0' "$OOM_CG/memory.oom_control" || echo 0 > "$OOM_CG/memory.oom_control"
		echo "$OOM_LIMIT" > "$OOM_CG/memory.limit_in_bytes" || die "cannot set $OOM_CG/memory.limit_in_bytes"
		# memory + swap at the same limit: swap, when there is some, must not defer the kill
		[ -e "$OOM_CG/memory.memsw.limit_in_bytes" ] && echo "$OOM_LIMIT" > "$OOM_CG/memory.memsw.limit_in_bytes"
		OOM_EVENTS=$OOM_CG/memory.oom_control
		echo "memory cgroup (v1): $OOM_CG"
		return 0
	fi
	die "no memory cgroup on this machine (cgroup2 at /sys/fs/cgroup or /sys/fs/cgroup/unified with the memory controller, or a v1 memory hierarchy): the OOM killer cannot be aimed at the daemon"
}

# oom_kills: the cgroup's count of OOM kills (v2 memory.events and v1 memory.oom_control both
# carry an "oom_kill N" line).
oom_kills() { awk '$1 == "oom_kill" {print $2}' "$OOM_EVENTS"; }

# kill9_die (replaces kill -9): the daemon joins the cgroup as the OOM killer's favourite
# victim, the hog (one process, dd) fills the cgroup until the kernel kills.
kill9_die() {
	local before who st
	before=$(oom_kills)
	echo "$DPID" > "$OOM_CG/cgroup.procs" || { oom_abort "cannot move the daemon into $OOM_CG"; return 1; }
	echo 1000 > "/proc/$DPID/oom_score_adj" || { oom_abort "cannot set the daemon's oom_score_adj"; return 1; }
	# dd's one buffer of 1 GiB is filled by read(2): all of dd's anonymous memory is charged
	# to the cgroup and its resident set stays below the daemon's score (the sandbox may refuse
	# a negative oom_score_adj, so the hog cannot simply be protected).
	( echo "$BASHPID" > "$OOM_CG/cgroup.procs" && exec dd if=/dev/zero of=/dev/null bs=1G count=1 status=none ) 2>/dev/null &
	HOG=$!
	wait -n -p who "$DPID" "$HOG" 2>/dev/null
	st=$?
	if [ "$who" != "$DPID" ]; then
		# The killer may have picked the daemon and then, while the daemon's exit was still
		# detaching its tracees and the hog kept allocating, the hog too: the daemon is then
		# already dying (SIGKILL pending), so its exit is waited for, bounded.
		HOG=
		if oom_dying "$DPID"; then
			wait "$DPID" 2>/dev/null
			st=$?
		else
			oom_abort "the hog ended first (status $st) and the daemon still runs ($(oom_state "$DPID")): the cgroup's OOM killer did not pick the daemon"
			return 1
		fi
	fi
	[ -n "$HOG" ] && { kill -KILL "$HOG" 2>/dev/null; wait "$HOG" 2>/dev/null; HOG=; }
	[ "$st" = 137 ] || { fail "the daemon exited with status $st, not of SIGKILL (137)"; return 1; }
	[ "$(oom_kills)" -gt "$before" ] || { fail "the daemon died of SIGKILL but $OOM_EVENTS counted no OOM kill ($(oom_kills))"; return 1; }
	return 0
}

# oom_state PID: the process's state and pending fatal signal, for the failure message.
oom_state() { awk '/^State:|^ShdPnd:|^SigPnd:/ {printf "%s %s ", $1, $2}' "/proc/$1/status" 2>/dev/null; }

# oom_dying PID: true once PID has exited, is exiting, or has SIGKILL pending (bit 9 of its
# shared or own pending set), waiting up to 20 s for that (a fatal signal is queued before its victim can
# run again, so a daemon the killer picked shows it at once; the bound is only for a daemon
# that was not picked).
oom_dying() {
	local i pend
	for ((i = 0; i < 200; i++)); do
		[ -e "/proc/$1/status" ] || return 0
		[ "$(awk '$1 == "State:" {print $2}' "/proc/$1/status" 2>/dev/null)" = Z ] && return 0
		# PF_EXITING (0x4) in the leader's flags: do_exit has begun
		local flags
		flags=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $7}')
		[ -n "$flags" ] && (( flags & 4 )) && return 0
		for pend in $(awk '$1 == "ShdPnd:" || $1 == "SigPnd:" {print $2}' "/proc/$1/status" 2>/dev/null); do
			(( (16#$pend >> 8) & 1 )) && return 0
		done
		sleep 0.1
	done
	return 1
}

# oom_abort WHY: a trial that could not produce an OOM kill: says why, ends the daemon and the
# hog (so that the case stops instead of hanging) and returns.
oom_abort() {
	fail "$1"
	[ -n "$HOG" ] && { kill -KILL "$HOG" 2>/dev/null; wait "$HOG" 2>/dev/null; HOG=; }
	kill -KILL "$DPID" 2>/dev/null; wait "$DPID" 2>/dev/null
}

oom_cleanup() {
	[ -n "$HOG" ] && { kill -KILL "$HOG" 2>/dev/null; wait "$HOG" 2>/dev/null; }
	fault_cleanup
	[ -n "$OOM_CG" ] && rmdir "$OOM_CG"
}
trap oom_cleanup EXIT

oom_cgroup_setup
kill9_run fast "OOM kill" "$FAULT_TRIALS"
kill9_run exact "OOM kill" "$FAULT_TRIALS"
kill9_run capture "OOM kill" "$FAULT_TRIALS"
echo "OOM kills counted by the cgroup: $(oom_kills)"
finish
