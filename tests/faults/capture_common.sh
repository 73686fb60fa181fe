# capture_common.sh: the memory-reading capture probes of issue 10 for the fault suite (sourced
# after lib.sh). The victim (mode reqs or reqs-handler) calls serve(r, i) from 4 threads with
# requests whose path is a string two loads away, or NULL, freed, unmapped, ending in an
# unmapped page, lying across one, and with r itself NULL, 0x10 or unmapped. The probe on serve
# keeps str(r->path) (incr by value) under the condition r->len > 6: both compile into capture
# programs that run inside the target, behind a jump (e9 at serve). Every bad pointer is a fault
# inside a capture program: repaired by the daemon at the signal-delivery stop while it lives,
# by the in-target fault guard (lib/arch/guard.h) once it is dead. The victim's SIGSEGV is the
# default (reqs: an unrepaired fault kills it) or its own handler (reqs-handler: a capture
# fault reaching it exits 97; the victim's own deliberate faults must still reach it).

# cap_add ID: the capture probe on serve; prints the reply.
cap_add() {
	req '{"cmd":"add","spec":{"id":"'"$1"'","target":"serve","condition":"r->len > 6","instrument":{"type":"incr","name":"'"$1"'","value":"str(r->path)","event":"call","custom":{"by_value":true}}}}'
}

# cap_is_jump PID ADDR: "yes" when the probe at ADDR is a jump (e9), else what is there.
cap_is_jump() {
	local b
	b=$(code_byte "$1" "$2")
	[ "$b" = e9 ] && echo yes || echo "byte $b (not a capture jump: an int3 is cc)"
}

# alive PID: "yes" when PID runs (not gone, not a zombie).
alive() {
	[ -e "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat")" != Z ] && echo yes || echo no
}

# ring_ctl PID arm|progress: the ring v2 mapping of PID (found by its magic at the start of an
# anonymous writable mapping or of the shared diag-ring memfd: lib/arch/ring.h, "Ring v2"). arm: sets control.alive_until to the
# far future, as if the dead daemon's last heartbeat lasted for ever (the fault window is as
# long as the test needs, instead of the ~200 ms a real one leaves). progress: prints the sum
# over the sub-rings of head + drops, the records reserved or dropped: each is a capture that
# passed its condition. Prints "none" when PID has no ring.
ring_ctl() {
	python3 - "$1" "$2" <<'PY'
import struct, sys
pid, cmd = int(sys.argv[1]), sys.argv[2]
MAGIC = 0x32676e6972676164
mem = open(f"/proc/{pid}/mem", "r+b", buffering=0)
for line in open(f"/proc/{pid}/maps"):
    p = line.split()
    ring = len(p) == 5 or (len(p) > 5 and p[5] == "/memfd:diag-ring")
    if not ring or not p[1].startswith("rw"):
        continue
    lo = int(p[0].split("-")[0], 16)
    try:
        mem.seek(lo)
        ctl = mem.read(64)
    except OSError:
        continue
    if len(ctl) < 64 or struct.unpack_from("<Q", ctl, 0)[0] != MAGIC:
        continue
    nsubs, _, stride = struct.unpack_from("<QQQ", ctl, 8)
    if cmd == "arm":
        mem.seek(lo + 40)
        mem.write(struct.pack("<Q", (1 << 64) - 1))
        print("armed")
    else:
        total = 0
        for i in range(nsubs):
            mem.seek(lo + 4096 + i * stride)
            h = mem.read(136)
            total += struct.unpack_from("<Q", h, 0)[0] + struct.unpack_from("<Q", h, 128)[0]
        print(total)
    sys.exit(0)
print("none")
PY
}

# maps_of PID: its mappings without the [stack]/[heap] growth lines' sizes mattering: the raw
# /proc/PID/maps (the victim maps nothing once its threads run; every difference is ours).
maps_of() { cat "/proc/$1/maps"; }

# wait_threads PID N: a bounded start-up poll until PID has N tasks.
wait_threads() {
	for _ in $(seq 200); do [ "$(ls "/proc/$1/task" | wc -l)" -ge "$2" ] && return 0; sleep 0.05; done
	return 1
}

# victim_exit NAME: stops the victim; sets VICTIM_RESULT (its result line) and VICTIM_STATUS
# (its exit status). Not in a $(...): only this shell can wait for its child.
victim_exit() {
	local pid_var=${1}_pid
	VICTIM_RESULT=$(victim_result "$1")
	wait "${!pid_var}" 2>/dev/null
	VICTIM_STATUS=$?
}
