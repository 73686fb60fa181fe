# Bad plugins (missing file, missing descriptor, ABI mismatch, create error), bad specs and
# malformed socket messages each get their precise error while another probe keeps counting.
source "$(dirname "$0")/lib.sh"

P=$T/plugins
mkdir -p "$P"
cp "$DIAG_BUILD_DIR/plugins/incr.so" "$DIAG_BUILD_DIR/plugins/log.so" "$P/"
cat > "$T/bad.c" <<'C'
#include <diagnose/instrument.h>
#include <stdio.h>
static void *cr(const char *n, const char *c, const struct diag_host *h, char *e, size_t l)
{ (void)n; (void)c; (void)h; snprintf(e, l, "custom.level: must be 1-3"); return NULL; }
static void fi(void *s, const struct diag_event *ev) { (void)s; (void)ev; }
static void de(void *s) { (void)s; }
__attribute__((visibility("default"))) const struct diag_instrument_ops SYM = { ABI, TYPE, cr, fi, 0, de };
C
cc -shared -fPIC -I"$DIAG_SRC_DIR/include" -DSYM=diag_instrument -DABI=4 -DTYPE='"abi4"' -o "$P/abi4.so" "$T/bad.c" || die "cc"
cc -shared -fPIC -I"$DIAG_SRC_DIR/include" -DSYM=other -DABI=1 -DTYPE='"nosym"' -o "$P/nosym.so" "$T/bad.c" || die "cc"
cc -shared -fPIC -I"$DIAG_SRC_DIR/include" -DSYM=diag_instrument -DABI=1 -DTYPE='"refuse"' -o "$P/refuse.so" "$T/bad.c" || die "cc"

start_fixture fx "$DIAG_FIXTURE_DIR/work-O2-nopie" 1 0
start_daemon --pid "$fx_pid" --plugin-dir "$P"
add good work incr > /dev/null
fixture_go fx
req '{"cmd":"wait","id":"good","hits":10,"timeout":30}' > /dev/null

# still_counting WHAT: the good probe gains hits after an error.
still_counting() {
	local h
	h=$(hits_of good)
	expect_eq "$(req '{"cmd":"wait","id":"good","hits":'$((h + 20))',"timeout":30}' | jget "j['ok']")" True "good probe still counting after $1"
}

applied_error() { echo "$1" | jget "j['spec']['applied']['$(hostname):$fx_pid']['error']"; }

r=$(add p1 work nothere)
expect_eq "$(applied_error "$r")" "instrument.type: no plugin 'nothere' in $P (looked for $P/nothere.so)" "missing plugin file"
r=$(add p2 work nosym)
expect_eq "$(applied_error "$r")" "instrument.type: plugin 'nosym' ($P/nosym.so) has no symbol 'diag_instrument'" "missing descriptor"
r=$(add p3 work abi4)
expect_eq "$(applied_error "$r")" "instrument.type: plugin 'abi4' has ABI 4, daemon supports 1 to 3" "ABI mismatch"
r=$(add p4 work refuse)
expect_eq "$(applied_error "$r")" "instrument: custom.level: must be 1-3" "create error"
expect_eq "$(echo "$r" | jget "j['spec']['applied']['$(hostname):$fx_pid']['state']")" error "state error"
r=$(add p5 work log '"lifespan":"10"')
expect_eq "$(echo "$r" | jget "j['error']")" "spec 'p5': lifespan: must be a number of minutes or null (got string)" "bad spec: wrong type"
r=$(req '{"cmd":"add","spec":{"id":"p6","tagret":"work","instrument":{"type":"log","name":"x"}}}')
expect_eq "$(echo "$r" | jget "j['error']")" "spec 'p6': unknown field 'tagret'" "bad spec: unknown field"
r=$(add p7 nosuch_function incr)
expect_contains "$(applied_error "$r")" "target: " "missing symbol names the field"
expect_contains "$(applied_error "$r")" "nosuch_function" "missing symbol names the symbol"
still_counting "plugin and spec errors"

expect_eq "$(req '{"cmd":' | jget "j['ok'], j['error'].startswith('malformed request: invalid JSON at byte ')")" "False True" "malformed JSON"
expect_eq "$(req '{"cmd":"frobnicate"}' | jget "j['error']")" \
	"unknown cmd 'frobnicate' (expected add, remove, list, stats, tail, attach, detach, status, wait, symbols, vars)" "unknown cmd"
expect_eq "$(req '[1,2]' | jget "j['error']")" "malformed request: must be a JSON object" "not an object"
# The connection stays usable after a malformed line.
expect_eq "$(req 'nonsense' '{"cmd":"status"}' | tail -1 | jget "j['ok']")" True "connection usable after error"
python3 -c "import sys; sys.stdout.write('{\"cmd\":\"list\",\"x\":\"' + 'a'*1100000 + '\"}\n')" > "$T/big"
expect_eq "$($DIAGREQ "$SOCK" --raw "$T/big" | jget "j['error']")" "request too long (max 1048576 bytes)" "oversized line"
still_counting "malformed messages"
expect_eq "$(state_of good "$fx_pid")" applied "good probe unaffected"
expect_eq "$(req '{"cmd":"list"}' | jget "len(j['specs'])")" 6 "failed adds listed, bad specs not"
finish
