# The journal (issue 13): `log` events with custom.journal become journal entries with the
# probe's fields, read back with journalctl; the daemon's own messages are journal entries with
# priorities when its stderr is the journal's stream (JOURNAL_STREAM, as systemd sets it).
# Where no journald runs (a container), the test starts Debian's systemd-journald itself, as
# it starts other servers, and stops it at the end.
source "$(dirname "$0")/lib.sh"

JOURNALD=
journal_alive() {
	python3 - <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
try:
    s.sendto(b"MESSAGE=diagnose test probe of the journal\n", "/run/systemd/journal/socket")
except OSError:
    sys.exit(1)
PY
}
if ! journal_alive; then
	[ -x /lib/systemd/systemd-journald ] || die "no journald and no /lib/systemd/systemd-journald (apt-get install systemd)"
	/lib/systemd/systemd-journald &
	JOURNALD=$!
	for _ in $(seq 100); do journal_alive && break; sleep 0.05; done
	journal_alive || die "systemd-journald did not start"
fi
stop_journald() { [ -n "$JOURNALD" ] && kill "$JOURNALD" 2>/dev/null; wait "$JOURNALD" 2>/dev/null; }
trap 'stop_journald; cleanup' EXIT

TAG=jt$$
start_fixture fx "$DIAG_FIXTURE_DIR/work-O0-pie" 1 50
# stderr a file whose device and inode JOURNAL_STREAM names: the daemon must take it as the
# journal's stream and write its messages as entries
: > "$T/stream"
JOURNAL_STREAM=$(stat -c '%d:%i' "$T/stream") "$DIAGNOSED" --socket "$SOCK" --store "$STORE" \
	--pid "$fx_pid" > "$T/d.out" 2> "$T/stream" &
DPID=$!
for _ in $(seq 200); do [ -S "$SOCK" ] && req '{"cmd":"status"}' > /dev/null 2>&1 && break; sleep 0.05; done
req "{\"cmd\":\"add\",\"spec\":{\"id\":\"$TAG\",\"target\":\"work\",\"instrument\":{\"type\":\"log\",\"name\":\"j\",\"value\":\"\$arg1\",\"event\":\"call\",\"custom\":{\"journal\":true}}}}" > /dev/null
expect_eq "$(state_of "$TAG" "$fx_pid")" applied "the log probe applied"
fixture_go fx
expect_contains "$(fixture_line fx)" "sum" "the fixture ran"
ctl wait "$TAG" --hits 50 --timeout 30 > /dev/null
ctl stats > /dev/null
jq_count() { journalctl -o json "PROBE_ID=$TAG" 2>/dev/null | python3 -c "
import json, sys
rows = [json.loads(l) for l in sys.stdin if l.strip()]
ok = [r for r in rows if r.get('PROBE_NAME') == 'j' and r.get('TARGET_PID') == '$fx_pid'
      and r.get('EVENT') == 'call' and r.get('MESSAGE', '').startswith('Probe (j) = ')
      and 'TARGET_TID' in r and r.get('SYSLOG_IDENTIFIER') == 'diagnosed']
print(len(ok), sorted(int(r['VALUE']) for r in ok) == list(range(50)))"; }
for _ in $(seq 100); do [ "$(jq_count)" = "50 True" ] && break; sleep 0.1; done
expect_eq "$(jq_count)" "50 True" "journalctl reads back every event with its fields"

kill -TERM "$DPID"; wait "$DPID"
expect_eq "$(grep -c 'diagnosed:' "$T/stream")" 0 "messages went to the journal, not to the stream as text"
prio_of() { journalctl -o json SYSLOG_IDENTIFIER=diagnosed "_PID=$DPID" 2>/dev/null | python3 -c "
import json, sys
for l in sys.stdin:
    r = json.loads(l)
    if sys.argv[1] in r.get('MESSAGE', ''): print(r.get('PRIORITY')); break" "$1"; }
for _ in $(seq 100); do [ -n "$(prio_of 'restoring every target')" ] && break; sleep 0.1; done
expect_eq "$(prio_of 'restoring every target')" 6 "the daemon's messages: info at priority 6"
expect_eq "$(prio_of "add spec '$TAG': allowed")" 5 "the audit trail: notice at priority 5"
finish
