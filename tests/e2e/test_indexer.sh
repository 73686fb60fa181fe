# The indexer worker: target files are parsed by an unprivileged, sandboxed diagnose-indexer,
# never by the root daemon. (1) The reported reproducer: a -g shared object whose
# .debug_rnglists header is corrupted (version 5 -> 255: libdwarf 20210528 double-frees in
# dwarf_load_rnglists, which aborted the daemon), mapped by a process running as nobody; `vars`
# and an add-probe on it fail with the precise error (the header is checked before libdwarf
# sees it), the daemon survives, a probe on another function of the same process applies and
# counts. (2) The worker runs as nobody with
# NoNewPrivs 1, Seccomp 2 and no capabilities. (3) A worker killed with SIGKILL is restarted and
# the next probe applies.
source "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || die "needs root (the daemon starts its indexer as root and drops to nobody)"

lib=$T/lib/librng.so
mkdir -p "$T/lib"
chmod 755 "$T" "$T/lib"
cp "$DIAG_FIXTURE_DIR/librng.so" "$lib"
# Corrupt the version of the first .debug_rnglists unit (the bytes the reporter changed).
python3 - "$lib" <<'PY' || die "cannot corrupt $lib"
import struct, sys
p = sys.argv[1]
d = bytearray(open(p, 'rb').read())
shoff, = struct.unpack_from('<Q', d, 0x28)
shentsize, shnum, shstrndx = struct.unpack_from('<HHH', d, 0x3a)
sh = lambda i: struct.unpack_from('<IIQQQQIIQQ', d, shoff + i * shentsize)
strtab = sh(shstrndx)[4]
for i in range(shnum):
    s = sh(i)
    if d[strtab + s[0]:d.index(0, strtab + s[0])] == b'.debug_rnglists':
        d[s[4] + 4] = 0xff
        open(p, 'wb').write(d)
        sys.exit(0)
sys.exit('no .debug_rnglists in ' + p)
PY
chmod 644 "$lib"

start_fixture r setpriv --reuid=65534 --regid=65534 --clear-groups "$DIAG_FIXTURE_DIR/rnguser-O2-pie" "$lib"
expect_eq "$(stat -c %u "/proc/$r_pid")" 65534 "target runs as nobody"
start_daemon
fixture_go r

out=$(ctl vars --pid "$r_pid" librng.so:rng_work 2>&1)
expect_contains "$out" "librng.so has a malformed .debug_rnglists or .debug_loclists header" "vars: the precise error"
kill -0 "$DPID" 2>/dev/null && pass "daemon survived the corrupt DWARF" || fail "daemon died: $(tail -5 "$DERR")"

spec='{"id":"bad","target":"librng.so:rng_work","instrument":{"type":"log","name":"bad","value":"req->id","event":"call","custom":{}},"pid":['$r_pid']}'
reply=$(req "{\"cmd\":\"add\",\"spec\":$spec}")
err=$(echo "$reply" | jget "[a.get('error','') for a in j['spec']['applied'].values()][0]")
expect_contains "$err" "librng.so has a malformed .debug_rnglists or .debug_loclists header" "add-probe: applied carries the error"
expect_eq "$(state_of bad "$r_pid")" error "the probe on the corrupt library is in error"

spec='{"id":"ok","target":"tick","instrument":{"type":"incr","name":"ok","value":"n","event":"call","custom":{}},"pid":['$r_pid']}'
req "{\"cmd\":\"add\",\"spec\":$spec}" > /dev/null
expect_eq "$(state_of ok "$r_pid")" applied "a DWARF probe on another function of the same process applies"
expect_eq "$(req '{"cmd":"wait","id":"ok","hits":20,"timeout":30}' | jget "j['ok']")" True "and counts"

# (2) the sandbox is real
ix=$(pgrep -P "$DPID" -f diagnose-indexer | head -1)
[ -n "$ix" ] || die "no diagnose-indexer child of the daemon"
st=$(cat "/proc/$ix/status")
expect_eq "$(echo "$st" | awk '/^Uid:/ {print $2 $3 $4 $5}')" 65534655346553465534 "worker uid nobody (real, effective, saved, fs)"
expect_eq "$(echo "$st" | awk '/^NoNewPrivs:/ {print $2}')" 1 "worker NoNewPrivs"
expect_eq "$(echo "$st" | awk '/^Seccomp:/ {print $2}')" 2 "worker seccomp filter"
expect_eq "$(echo "$st" | awk '/^CapEff:/ {print $2}')" 0000000000000000 "worker has no capabilities"
expect_eq "$(echo "$st" | awk '/^CapBnd:/ {print $2}')" 0000000000000000 "worker's bounding set is empty"
expect_eq "$(awk '/^Max core file size/ {print $5}' "/proc/$ix/limits")" 0 "worker RLIMIT_CORE 0"

# (3) killed mid-run: restarted, the next probe applies (the fixture's main executable again,
# as a fresh file index needs the worker: a second process of another binary)
kill -KILL "$ix"
start_fixture w "$DIAG_FIXTURE_DIR/work-O2-pie" 1 0
spec='{"id":"after","target":"work","instrument":{"type":"incr","name":"after","value":"a","event":"call","custom":{}},"pid":['$w_pid']}'
req "{\"cmd\":\"add\",\"spec\":$spec}" > /dev/null
expect_eq "$(state_of after "$w_pid")" applied "after SIGKILL of the worker, the next probe applies"
fixture_go w
expect_eq "$(req '{"cmd":"wait","id":"after","hits":20,"timeout":30}' | jget "j['ok']")" True "and counts"
ix2=$(pgrep -P "$DPID" -f diagnose-indexer | head -1)
[ -n "$ix2" ] && [ "$ix2" != "$ix" ] && pass "a new worker ($ix2) replaced the killed one ($ix)" || fail "worker not restarted: '$ix2'"
out=$(ctl vars --pid "$r_pid" tick 2>&1)
expect_contains "$out" "param  n" "the files indexed before the kill are read again by the new worker"
kill -0 "$DPID" 2>/dev/null && pass "daemon alive at the end" || fail "daemon died"

# (4) under the systemd unit's capability bounding set the worker still drops to nobody
stop_daemon
caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$DIAG_SRC_DIR/daemon/diagnosed.service" | tr 'A-Z' 'a-z' | sed 's/cap_/+/g; s/ /,/g')
printf '#!/bin/sh\nexec setpriv --bounding-set=-all,%s %s "$@"\n' "$caps" "$DIAGNOSED" > "$T/unitcaps.sh"
chmod +x "$T/unitcaps.sh"
real=$DIAGNOSED
DIAGNOSED=$T/unitcaps.sh start_daemon
DIAGNOSED=$real
out=$(ctl vars --pid "$r_pid" tick 2>&1)
expect_contains "$out" "param  n" "with the unit's capabilities ($caps) the worker starts and answers"
ix3=$(pgrep -P "$DPID" -f diagnose-indexer | head -1)
expect_eq "$(awk '/^Uid:/ {print $2}' "/proc/$ix3/status" 2>/dev/null)" 65534 "and runs as nobody"
finish
