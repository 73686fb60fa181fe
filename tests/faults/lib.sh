# lib.sh: helpers for the fault suite (sourced): the e2e helpers plus the victim fixture and
# the figures line each case prints for scripts/reliability.sh:
#   FIGURE|<fault>|<trials>|<target survivals>|<specs lost>|<bytes left patched>
# FAULT_TRIALS sets the repetitions of the repeated faults (CI default 20; the doc uses 100).
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"
FAULT_TRIALS=${FAULT_TRIALS:-20}

# victim_send NAME LINE
victim_send() {
	local fd_var=${1}_in
	echo "$2" >&"${!fd_var}"
}

# victim_result NAME: stops the victim and prints its "result ..." line.
victim_result() {
	victim_send "$1" stop
	local line
	while line=$(fixture_line "$1"); do
		case $line in result\ *) echo "$line"; return 0 ;; esac
	done
	echo "<no result>"
	return 1
}

# field LINE KEY: the value of KEY=V in a result line.
field() { local v=${1##* $2=}; echo "${v%% *}"; }

figure() { echo "FIGURE|$1|$2|$3|$4|$5"; }

# patched_count PID ADDR...: how many of the addresses differ from the file's bytes.
patched_count() {
	local pid=$1 n=0; shift
	for a in "$@"; do [ "$(code_bytes_match "$pid" "$a")" = same ] || n=$((n + 1)); done
	echo $n
}

# code_byte PID ADDR: the first byte at ADDR in PID, hex (e9: a jump probe, cc: an int3).
code_byte() {
	python3 -c "
f = open('/proc/$1/mem', 'rb'); f.seek(int('$2', 16)); print(f.read(1).hex())"
}

# serving: the daemon answers status.
serving() { req '{"cmd":"status"}' 2>/dev/null | jget "j['ok']" 2>/dev/null; }

# exact_spec ID TARGET [extra]: a probe whose value needs the thread stopped (int3, exact
# path): `stack` (a value reading memory takes a jump since issue 10).
exact_add() {
	req "{\"cmd\":\"add\",\"spec\":{\"id\":\"$1\",\"target\":\"$2\",\"instrument\":{\"type\":\"incr\",\"name\":\"$1\",\"value\":\"stack(1)\"}${3:+,$3}}}"
}

# wait_more ID N: wait until spec ID has N more hits than now.
wait_more() {
	local h
	h=$(hits_of "$1")
	req "{\"cmd\":\"wait\",\"id\":\"$1\",\"hits\":$((h + $2)),\"timeout\":10}" | jget "j['ok']"
}

# The fault cases test survival, not the governor: no stopped-time budget under their load.
NOGOV="--max-stopped-percent 0 --max-stopped-ms-per-sec 0 --max-total-stopped-ms-per-sec 0"

# A daemon stuck on a dead target must not hang the case: SIGTERM, 10 s, then SIGKILL. A case
# that dies half-way still prints its figure (FIGURE_PENDING) so the table shows how far it got.
FIGURE_PENDING=
fault_cleanup() {
	if [ -n "$DPID" ] && kill -TERM "$DPID" 2>/dev/null; then
		for _ in $(seq 100); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$DPID" 2>/dev/null && { echo "FAIL: daemon $DPID ignored SIGTERM for 10 s (stuck): killed" >&2; kill -KILL "$DPID"; FAILS=$((FAILS + 1)); }
		wait "$DPID" 2>/dev/null
		DPID=
	fi
	[ -n "$FIGURE_PENDING" ] && echo "$FIGURE_PENDING"
	cleanup
}
trap fault_cleanup EXIT
