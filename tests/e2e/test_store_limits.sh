# The store can always be read back, and a store that cannot be is never overwritten. One
# add may store at most 64 KiB of instrument.custom (the 900 KB adds that made a pretty-printed
# store of 314 MB are refused, naming the field and both sizes); the store is written compact
# (one line); a store over the read limit (256 MiB, here a sparse file) is set aside as
# PATH.corrupt-<time> at start, said in the log (WARNING) and in `status` until restart, and
# later adds write a new store beside it.
source "$(dirname "$0")/lib.sh"

custom_add() { # ID SIZE: add a spec whose custom holds one string of SIZE bytes
	python3 - "$SOCK" "$1" "$2" <<'EOF'
import json, socket, sys
path, sid, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
spec = {"id": sid, "target": "work",
        "instrument": {"type": "incr", "name": sid, "custom": {"pad": "x" * size}}}
s = socket.socket(socket.AF_UNIX)
s.connect(path)
s.sendall(json.dumps({"cmd": "add", "spec": spec}).encode() + b"\n")
r = json.loads(s.makefile("rb").readline())
print(r["error"] if not r["ok"] else "ok")
EOF
}

start_daemon
for i in 1 2 3 4; do
	expect_eq "$(custom_add "big$i" 900000)" \
		"spec 'big$i': instrument.custom: too large (900010 bytes as stored, max 65536)" \
		"a 900 KB custom is refused ($i)"
done
expect_eq "$(custom_add fits 65526)" ok "a custom of exactly 65536 bytes fits"
expect_eq "$(custom_add over 65527)" \
	"spec 'over': instrument.custom: too large (65537 bytes as stored, max 65536)" "one byte over"
expect_eq "$(wc -l < "$STORE")" 1 "the store is one compact line"
expect_eq "$(python3 -c "import json,sys; print([s['id'] for s in json.load(open(sys.argv[1]))])" "$STORE")" \
	"['fits']" "a strict JSON reader reads the store"
stop_daemon

# a store over the read limit: set aside, loudly, never overwritten
rm -f "$STORE"
truncate -s 300M "$STORE"
start_daemon
bad=$(ls "$STORE".corrupt-* 2>/dev/null)
[ -n "$bad" ] && pass "the oversized store was set aside" || fail "the oversized store was not set aside"
want="store $STORE is unreadable (314572800 bytes, larger than the read limit of 268435456); kept as $bad, starting empty"
expect_eq "$(grep WARNING "$DERR")" "diagnosed: WARNING: $want" "the log says so"
expect_eq "$(req '{"cmd":"status"}' | jget "j['store']['error']")" "$want" "status says so"
expect_contains "$(ctl status)" "WARNING: $want" "diagnosectl status says so"
expect_eq "$(add after work log | jget "j['ok']")" True "an add after it works"
expect_eq "$(stat -c %s "$bad")" 314572800 "the set-aside store is untouched"
expect_eq "$(python3 -c "import json,sys; print([s['id'] for s in json.load(open(sys.argv[1]))])" "$STORE")" \
	"['after']" "a new store beside it"
stop_daemon
start_daemon
expect_eq "$(req '{"cmd":"status"}' | jget "j['store']['error']")" None "a good store at restart: no error"
expect_eq "$(req '{"cmd":"list"}' | jget "[s['id'] for s in j['specs']]")" "['after']" "the new store is loaded"
finish
