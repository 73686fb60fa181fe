#!/usr/bin/env python3
# first_value.py BUILD_DIR BINARY FUNC REPS (root; docs/performance.md, "The indexer worker"): attach-to-first-value time of a `req->name` log probe
# through a fresh daemon each rep (cold caches): from sending add-probe (attach, resolve, index
# the ELF symbols and DWARF, compile, patch) to the wait for its first hit returning.
import json, os, socket, subprocess, sys, tempfile, time
build, binary, func, reps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def request(path, obj):
    s = socket.socket(socket.AF_UNIX); s.connect(path)
    s.sendall((json.dumps(obj) + '\n').encode()); f = s.makefile()
    line = f.readline(); s.close(); return json.loads(line)
times = []
for r in range(reps):
    w = tempfile.mkdtemp(); sock = w + '/s'
    d = subprocess.Popen([build + '/daemon/diagnosed', '--socket', sock, '--store', w + '/st.json',
                          '--plugin-dir', build + '/plugins'], stdout=subprocess.DEVNULL, stderr=open(w + '/err', 'w'))
    while not os.path.exists(sock): time.sleep(0.01)
    time.sleep(0.2)  # the worker's start is not on the probe's path (both builds get the same)
    t = subprocess.Popen([binary], stdout=subprocess.PIPE)
    pid = int(t.stdout.readline().split()[1])
    spec = {"id": "p", "target": func, "instrument": {"type": "log", "name": "p", "value": "req->name",
            "event": "call", "custom": {}}, "pid": [pid]}
    t0 = time.monotonic()
    a = request(sock, {"cmd": "add", "spec": spec})
    wres = request(sock, {"cmd": "wait", "id": "p", "hits": 1, "timeout": 60})
    t1 = time.monotonic()
    st = list(a['spec']['applied'].values())[0]['state']
    if st != 'applied' or not wres.get('ok'):
        print('FAILED', a, wres, file=sys.stderr)
    times.append((t1 - t0) * 1000)
    d.terminate(); d.wait(); t.kill(); t.wait()
times.sort()
print(' '.join('%.0f' % x for x in times), ' median %.0f ms' % times[len(times) // 2])
