# bench/lib.sh: what the benchmark scripts share (sourced, not run): the build and work
# directories, starting a victim of the bench/victim.h protocol and reading its wall time, and
# the median. Sets globals the callers use: BUILD DIAGNOSED CTL WORK, VPID.

# bench_setup BUILD_DIR NAME: BUILD (absolute), DIAGNOSED, CTL, a fresh WORK directory removed
# (with any background job killed) at exit
bench_setup() {
	BUILD=$(cd "$1" && pwd)
	DIAGNOSED=$BUILD/daemon/diagnosed
	CTL=$BUILD/daemon/diagnosectl
	WORK=$(mktemp -d "/tmp/$2.XXXXXX")
	trap 'kill $(jobs -p) 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# start_victim PROGRAM ARGS...: stdin on fd 3, stdout in $WORK/out; waits for "ready"; sets VPID
start_victim() {
	rm -f "$WORK/in" "$WORK/out"
	mkfifo "$WORK/in"
	"$@" <"$WORK/in" >"$WORK/out" &
	VPID=$!
	exec 3>"$WORK/in"
	until grep -q '^ready' "$WORK/out" 2>/dev/null; do sleep 0.01; done
}

finish_victim() { # prints wall_ns
	echo go >&3
	exec 3>&-
	wait "$VPID" || true
	awk '/^wall_ns/ {print $2}' "$WORK/out"
}
