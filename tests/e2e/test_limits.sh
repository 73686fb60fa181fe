# Resource limits a client hits directly (docs/reliability.md, "Limits"): too many specs, too
# many clients, an oversized request, over-long fields, too many pids in a spec. Each gets its
# exact error and the daemon keeps serving.
source "$(dirname "$0")/lib.sh"
start_daemon

# 1024 specs (no process attached: nothing to apply), then the 1025th fails.
python3 - "$T/many" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(1025):
        f.write('{"cmd":"add","spec":{"id":"s%d","target":"work","instrument":{"type":"incr","name":"n"}}}\n' % i)
PY
last=$(python3 - "$SOCK" "$T/many" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rb")
last = None
for line in open(sys.argv[2], "rb"):
    s.sendall(line); last = f.readline()
print(last.decode().strip())
PY
)
expect_eq "$(echo "$last" | jget "j['error']")" "spec 's1024': limit of 1024 specs reached" "too many specs"
expect_eq "$(req '{"cmd":"status"}' | jget "j['specs']")" 1024 "1024 specs kept"
expect_eq "$(req '{"cmd":"remove","id":"s0"}')" '{"ok":true}' "remove one"
expect_eq "$(add s1024 work incr | jget "j['ok']")" True "then the next add fits"

# 64 clients; the 65th is refused with a reply, and the daemon keeps serving the others.
r=$(python3 - "$SOCK" <<'PY'
import socket, sys
held = []
for i in range(64):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); held.append(s)
    s.sendall(b'{"cmd":"status"}\n'); s.makefile("rb").readline()
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(10)
print(s.makefile("rb").readline().decode().strip())
PY
)
expect_eq "$(echo "$r" | jget "j['error']")" "too many clients (max 64)" "too many clients"
expect_eq "$(req '{"cmd":"status"}' | jget "j['ok']")" True "serving once they are gone"

# A request line over 1 MiB: error reply, then the connection is closed.
python3 -c "import sys; sys.stdout.write('{\"cmd\":\"list\",\"x\":\"' + 'a'*1100000 + '\"}\n')" > "$T/big"
expect_eq "$($DIAGREQ "$SOCK" --raw "$T/big" 2>/dev/null | jget "j['error']")" "request too long (max 1048576 bytes)" "oversized request"

# Field bounds.
long=$(python3 -c "print('f'*1025)")
expect_eq "$(add x1 "$long" incr | jget "j['error']")" "spec 'x1': target: too long (1025 bytes, max 1024)" "target too long"
pids=$(python3 -c "print(list(range(1, 258)))")
expect_eq "$(add x2 work incr "\"pid\":$pids" | jget "j['error']")" "spec 'x2': pid: too many processes (257, max 256)" "too many pids"
expect_eq "$(req '{"cmd":"status"}' | jget "j['ok']")" True "daemon serving at the end"
finish
