# Hostile requests at the protocol edge, against a real daemon: a NUL inside a string (it
# used to end the C string, so removing "keep\u0000anything" removed "keep"), invalid UTF-8
# (inside a field: named; outside: the byte offset), data after the JSON object, nesting
# deeper than 64 levels, control characters in every string field of a spec, `"pid": []`,
# and lifespans whose error hid the value. Each error is exact; the daemon keeps serving and
# the specs that were there are untouched.
source "$(dirname "$0")/lib.sh"

start_daemon
err_of() { jget "j['error']"; }

expect_eq "$(add keep work log | jget "j['ok']")" True "add keep"

# NUL: the old code removed 'keep' here.
expect_eq "$(req '{"cmd":"remove","id":"keep\u0000anything"}' | err_of)" \
	'malformed request: id: NUL character (\u0000) at byte 26' "NUL in an id refused"
expect_eq "$(req --pct '{"cmd":"remove","id":"keep%00anything"}' | err_of)" \
	"malformed request: id: NUL byte at byte 26" "raw NUL byte refused"
expect_eq "$(req '{"cmd":"list"}' | jget "[s['id'] for s in j['specs']]")" "['keep']" \
	"keep is still there"

# invalid UTF-8: in a field, and between tokens
expect_eq "$(req --pct '{"cmd":"add","spec":{"id":"u1","target":"work","instrument":{"type":"log","name":"a%FF"}}}' | err_of)" \
	"malformed request: spec.instrument.name: invalid UTF-8 at byte 83" "invalid UTF-8 in a field names it"
expect_eq "$(req --pct '{"cmd":"add","spec":{"id":"u2","target":"w%C0%AFk","instrument":{"type":"log","name":"a"}}}' | err_of)" \
	"malformed request: spec.target: invalid UTF-8 at byte 42" "overlong UTF-8 refused"
expect_eq "$(req --pct '{"cmd":%FF"list"}' | err_of)" \
	"malformed request: invalid UTF-8 at byte 7" "invalid UTF-8 outside a string: the offset"
expect_eq "$(req --pct '{"cmd":"add","spec":{"id":"u3","target":"work","instrument":{"type":"log","name":"%C3%A9t%C3%A9"}}}' | jget "j['ok'], j['spec']['instrument']['name']")" \
	"True été" "valid UTF-8 is accepted"

# data after the object
expect_eq "$(req '{"cmd":"list"} {"cmd":"remove","id":"keep"}' | err_of)" \
	"malformed request: trailing data after the JSON value at byte 15" "trailing data refused"

# nesting: 64 levels pass the edge, 65 do not (and not "invalid JSON at byte 1000")
deep() { python3 -c "import sys; n=int(sys.argv[1]); print('{\"cmd\":\"add\",\"spec\":{\"id\":\"d1\",\"target\":\"work\",\"instrument\":{\"type\":\"log\",\"name\":\"d\",\"custom\":{\"a\":' + '['*n + ']'*n + '}}}}')" "$1"; }
expect_eq "$(req "$(deep 60)" | jget "j['ok']")" True "64 levels pass"
req '{"cmd":"remove","id":"d1"}' > /dev/null
expect_eq "$(req "$(deep 61)" | err_of)" "malformed request: nested deeper than 64 levels at byte 159" \
	"65 levels: nested too deep, with the offset"
expect_eq "$(req "$(python3 -c "print('['*1001 + ']'*1001)")" | err_of)" \
	"malformed request: nested deeper than 64 levels at byte 64" "1001 levels: nested too deep"

# control characters in every string field of a spec
spec_err() { # ID MEMBERS(JSON without braces)
	req "{\"cmd\":\"add\",\"spec\":{\"id\":\"$1\",$2}}" | err_of
}
I='"instrument":{"type":"log","name":"n"}'
expect_eq "$(spec_err c1 '"target":"work",'"$I"',"condition":"$arg1 > 0\n"')" \
	"spec 'c1': condition: control character U+000A at byte 9 (not allowed)" "condition"
expect_eq "$(spec_err c2 '"target":"\u001b[2Jwork",'"$I")" \
	"spec 'c2': target: control character U+001B at byte 0 (not allowed)" "target"
expect_eq "$(spec_err c3 '"target":"work","instrument":{"type":"log","name":"a\nFAKE Probe (x) = 1\n\u001b[31m"}')" \
	"spec 'c3': instrument.name: control character U+000A at byte 1 (not allowed)" "name"
expect_eq "$(spec_err c4 '"target":"work","instrument":{"type":"log","name":"n","value":"$arg1\t"}')" \
	"spec 'c4': instrument.value: control character U+0009 at byte 5 (not allowed)" "value"
expect_eq "$(spec_err c5 '"target":"work","instrument":{"type":"log","name":"\u009b31m"}')" \
	"spec 'c5': instrument.name: control character U+009B at byte 0 (not allowed)" "a C1 control (CSI)"
expect_eq "$(spec_err c6 '"target":"work","instrument":{"type":"log","name":"n","custom":{"format":"{name}\r\n"}}')" \
	"spec 'c6': instrument.custom.format: control character U+000D at byte 6 (not allowed)" "custom.format"
expect_eq "$(spec_err c7 '"target":"work","instrument":{"type":"log","name":"n","custom":{"a\u0007":1}}')" \
	"spec 'c7': instrument.custom.a?: control character U+0007 at byte 1 (not allowed)" "a custom member name"
expect_eq "$(spec_err c8 '"target":"work","instrument":{"type":"log","name":"n","custom":{"x":[{"y":"\u007f"}]}}')" \
	"spec 'c8': instrument.custom.x[0].y: control character U+007F at byte 0 (not allowed)" "a nested custom string"

# "pid": [] is not "every process"
expect_eq "$(spec_err e1 '"target":"work",'"$I"',"pid":[]')" \
	"spec 'e1': pid: empty list (omit pid to mean every attached process)" "empty pid list refused"

# lifespans: the limit and the value as given
expect_eq "$(spec_err l1 '"target":"work",'"$I"',"lifespan":1e308')" \
	"spec 'l1': lifespan: must be at most 100000000 minutes (about 190 years; got 1e+308)" "lifespan 1e308"
expect_eq "$(spec_err l2 '"target":"work",'"$I"',"lifespan":123456789.5')" \
	"spec 'l2': lifespan: must be at most 100000000 minutes (about 190 years; got 123456789.5)" \
	"a huge lifespan is not rounded"
expect_eq "$(spec_err l3 '"target":"work",'"$I"',"lifespan":-0.001')" \
	"spec 'l3': lifespan: must be > 0 minutes (got -0.001)" "negative lifespan"

# the same through diagnosectl: one escaped line, exit 1
out=$(ctl add-probe --target work --type log --name "$(printf 'a\n\033[31m')" 2>&1)
expect_eq "$?:$out" "1:diagnosectl: spec: instrument.name: control character U+000A at byte 1 (not allowed)" \
	"diagnosectl: refused, one line"

# diagnosectl reads --spec files as strictly (it used to cut "keep\u0000x" to "keep")
printf '{"id":"keep\\u0000x","target":"w","instrument":{"type":"log","name":"n"}}' > "$T/nul.json"
out=$(ctl add-probe --spec "$T/nul.json" 2>&1)
expect_eq "$?:$(head -1 <<< "$out")" "2:diagnosectl: --spec: $T/nul.json: id: NUL character (\u0000) at byte 11" \
	"diagnosectl --spec: NUL refused"

expect_eq "$(req '{"cmd":"list"}' | jget "sorted(s['id'] for s in j['specs'])")" "['keep', 'u3']" \
	"only the valid specs were added; keep untouched"
expect_eq "$(req '{"cmd":"status"}' | jget "j['ok']")" True "the daemon still serves"
finish
