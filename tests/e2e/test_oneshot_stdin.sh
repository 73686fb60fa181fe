# `diagnosed --pid P --spec F` in a pipeline: it prints one line per hit and, when its input
# ends, restores every byte and exits 0 (issue 2's "end of input").
source "$(dirname "$0")/lib.sh"

for build in O0-pie O2-nopie; do
	# a fixture (and FIFOs) of its own per build: reusing one name reopened the first
	# iteration's FIFOs, still held open by this shell
	fx=fx_${build/-/_}
	start_fixture "$fx" "$DIAG_FIXTURE_DIR/work-$build" 1 0
	pid_var=${fx}_pid
	fx_pid=${!pid_var}
	cat > "$T/w.json" <<JSON
{"id":"w1","target":"work","instrument":{"type":"log","name":"w","value":"\$arg1","event":"call","custom":{}},"lifespan":10}
JSON
	mkfifo "$T/din.$build"
	"$DIAGNOSED" --pid "$fx_pid" --spec "$T/w.json" --no-socket < "$T/din.$build" \
		> "$T/d.out.$build" 2> "$T/d.err.$build" &
	dpid=$!
	exec {dws}> "$T/din.$build"
	fixture_go "$fx"
	# the log lines arrive: read three of them as they come (no sleeping)
	timeout 30 tail -n +1 -f "$T/d.out.$build" | grep -q -m3 '^Probe (w) = '
	expect_contains "$(head -1 "$T/d.out.$build")" "Probe (w) = " "$build: log lines on stdout"
	addr=$(python3 -c "
import subprocess,sys
out=subprocess.run(['nm','$DIAG_FIXTURE_DIR/work-$build'],capture_output=True,text=True).stdout
a=[int(l.split()[0],16) for l in out.splitlines() if l.endswith(' work')][0]
for line in open('/proc/$fx_pid/maps'):
    p=line.split()
    if len(p)>=6 and p[5].endswith('work-$build') and int(p[2],16)==0:
        base=int(p[0].split('-')[0],16); break
pie='nopie' not in '$build'
print(hex(a+(base if pie else 0)))")
	exec {dws}>&-            # end of input
	wait "$dpid"
	expect_eq "$?" 0 "$build: exits 0 at end of input"
	expect_contains "$(cat "$T/d.err.$build")" "end of input" "$build: says why it stopped"
	expect_eq "$(code_bytes_match "$fx_pid" "$addr")" same "$build: bytes restored"
	kill -0 "$fx_pid" 2>/dev/null && pass "$build: target still running" || fail "$build: target died"
	kill -KILL "$fx_pid"
done
finish
