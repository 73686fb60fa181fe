# ret_common.sh: helpers of the return-probe fault cases (sourced after lib.sh).

# funcs_unpatched PID FILE FUNC...: "same" when every byte of each function (its ELF symbol's
# whole range: the entry, the epilogues and whatever lies between) reads in PID as in FILE.
funcs_unpatched() {
	python3 - "$@" <<'PY'
import subprocess, sys
pid, path, funcs = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
syms = {}
for l in subprocess.run(["nm", "-S", "--defined-only", path], capture_output=True, text=True).stdout.splitlines():
    p = l.split()
    if len(p) == 4:
        syms[p[3]] = (int(p[0], 16), int(p[1], 16))
maps = [l.split() for l in open(f"/proc/{pid}/maps")]
import os
real = os.path.realpath(path)
base = None
for m in maps:
    if len(m) >= 6 and os.path.realpath(m[5]) == real and int(m[2], 16) == 0:
        base = int(m[0].split("-")[0], 16)
        break
pie = open(path, "rb").read(18)[16] == 3  # e_type ET_DYN
out = "same"
elf = open(path, "rb").read()
import struct
# file offset of a virtual address through the program headers
phoff, = struct.unpack_from("<Q", elf, 0x20)
phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
def file_off(va):
    for i in range(phnum):
        t, fl, off, vaddr, pa, fsz, msz, al = struct.unpack_from("<IIQQQQQQ", elf, phoff + i * phentsize)
        if t == 1 and vaddr <= va < vaddr + fsz:
            return off + va - vaddr
    return None
mem = open(f"/proc/{pid}/mem", "rb")
for f in funcs:
    va, size = syms[f]
    mem.seek((base if pie else 0) + va)
    live = mem.read(size)
    o = file_off(va)
    if live != elf[o:o + size]:
        out = "differ " + f
print(out)
PY
}

# paths_of ID PID: the path of every instance of spec ID in PID, space-separated.
paths_of() {
	req '{"cmd":"list"}' | python3 -c "
import json,sys
j=json.loads(sys.stdin.readline())
for s in j['specs']:
    if s['id'] == '$1':
        for k, a in s['applied'].items():
            if k.endswith(':$2'):
                print(' '.join(i.get('path', '?') for i in a.get('instances', [])))"
}

# instances_of ID PID: "WHAT=PATH" of every instance of spec ID in PID, one a line.
instances_of() {
	req '{"cmd":"list"}' | python3 -c "
import json,sys
j=json.loads(sys.stdin.readline())
for s in j['specs']:
    if s['id'] == '$1':
        for k, a in s['applied'].items():
            if k.endswith(':$2'):
                for i in a.get('instances', []):
                    print(i.get('what', '?') + '=' + i.get('path', 'skipped') + ('' if i.get('path') == 'jump' else ' (' + str(i.get('reason')) + ')'))"
}

# wait_return_site ID PID: wait (up to 10 s) until spec ID has a return site on a jump in PID
# (placed once a drain has seen an entry name its return address); prints True or False.
wait_return_site() {
	for _ in $(seq 100); do
		if instances_of "$1" "$2" | grep -q '^return site at .*=jump$'; then echo True; return; fi
		sleep 0.1
	done
	echo False
}
