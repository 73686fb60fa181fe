#!/usr/bin/env python3
# A hostile diagnose-indexer for test_indexer: says hello on fd 3, then answers every request
# with what $DIAG_FAKE_MODE names: "cycle" (OPEN ok, then a scope whose type is a typedef of itself),
# "hang" (reads requests, never answers), "badsyms" (a symbol table whose by_name index is out
# of range).
import os, socket, struct, sys
mode = os.environ.get('DIAG_FAKE_MODE', '')
s = socket.socket(fileno=3)
def send(b): s.sendall(struct.pack('<I', len(b)) + b)
def recv():
    h = b''
    while len(h) < 4:
        c = s.recv(4 - len(h))
        if not c: sys.exit(0)
        h += c
    n, = struct.unpack('<I', h); b = b''
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c: sys.exit(0)
        b += c
    return b
def sstr(x): return struct.pack('<I', len(x)) + x
send(struct.pack('<I', 1))
while True:
    req = recv()
    op = req[0]
    if mode == 'hang':
        continue
    if op == 2:  # OPEN
        send(struct.pack('<II', 0, 0xffffffff))
    elif op == 4 and mode == 'cycle':  # SCOPE: one typedef whose target is itself
        node = struct.pack('<IB', 1, 9) + sstr(b't') + struct.pack('<QBIQII', 8, 0, 1, 0, 0, 0)
        loc = struct.pack('<IBQ', 0, 0, 0)
        var = sstr(b'v') + struct.pack('<IB', 1, 1) + loc + sstr(b'reg rdi')
        body = (struct.pack('<III', 0, 1, 1) + node + sstr(b'f') + struct.pack('<QBI', 0, 0, 0) +
                loc + struct.pack('<BIQI', 0, 0, 0, 1) + var)
        send(body)
    elif op == 10 and mode == 'badsyms':  # SYMS: one symbol, by_name[0] = 7
        send(struct.pack('<II', 0, 1) + struct.pack('<QQBBI', 0x1000, 16, 1, 0, 0) +
             struct.pack('<I', 7) + sstr(b'f\0'))
    else:
        send(struct.pack('<i', -4005) + sstr(b'unexpected'))
