# Limits of selectors (issue 11), each with a precise error: processes per spec
# (--max-processes-per-spec: the spec's HOST:select record says how many were not taken) and
# processes traced in total (--max-traced: the process's own record says so); bad values of
# both options are refused at start. A lifespan ends the probe in every process of the spec:
# bytes restored, the processes only the selector held detached.
source "$(dirname "$0")/lib.sh"
H=$(hostname)
out=$("$DIAGNOSED" --max-traced 0 --no-socket 2>&1); rc=$?
expect_eq "$rc" 2 "--max-traced 0: usage error"
expect_contains "$out" "--max-traced 0: must be a whole number in [1, 256]" "--max-traced 0: says the range"
out=$("$DIAGNOSED" --max-processes-per-spec x --no-socket 2>&1)
expect_contains "$out" "--max-processes-per-spec x: must be a whole number in [1, 4096]" "--max-processes-per-spec x"

start_daemon --max-processes-per-spec 2 --max-traced 3
A=$T/lima$$
B=$T/limb$$
cp "$DIAG_FIXTURE_DIR/work-O2-pie" "$A"
cp "$DIAG_FIXTURE_DIR/work-O0-pie" "$B"
for n in a1 a2 a3; do start_fixture $n "$A" 1 0; fixture_go $n; done
for n in b1 b2; do start_fixture $n "$B" 1 0; fixture_go $n; done
ctl add-probe --exe "$A" --target work --type incr --name a --id a > /dev/null 2> "$T/a.err" ||
	fail "add-probe with some processes over the limit still exits 0"
expect_eq "$(ctl --json list | jget "j['specs'][0]['processes']")" 2 "the spec takes 2 processes (its limit)"
expect_eq "$(state_of a select)" error "the selector's record is an error"
expect_contains "$(ctl --json list | jget "j['specs'][0]['applied']['$H:select']['error']")" \
	"1 more matching process not taken: the limit is 2 processes per spec (diagnosed --max-processes-per-spec)" \
	"... saying how many were not taken and which limit"
expect_contains "$(cat "$T/a.err")" "the limit is 2 processes per spec" "add-probe prints it"

ctl add-probe --exe "$B" --target work --type incr --name b --id b > /dev/null 2> "$T/b.err"
expect_eq "$(ctl --json status | jget "len(j['targets'])")" 3 "3 processes traced in total (the limit)"
errs=$(ctl --json list | jget "[a['error'] for s in j['specs'] if s['id']=='b' for a in s['applied'].values() if a['state']=='error']")
expect_contains "$errs" "not attached: the limit of 3 traced processes is reached (diagnosed --max-traced)" \
	"the process over the total limit has its record with the reason"

# a lifespan ends the probe everywhere
ctl remove-probe a && ctl remove-probe b || fail "remove"
expect_eq "$(ctl --json status | jget "len(j['targets'])")" 0 "removed: every process detached"
r=$(ctl --json add-probe --exe "$A" --target work --type incr --name l --id l --lifespan 0.1 2> /dev/null)
addr=$(echo "$r" | jget "j['spec']['applied']['$H:$a1_pid']['addresses'][0]")
expect_eq "$(echo "$r" | jget "' '.join(j['spec']['applied']['$H:%d' % p]['state'] for p in ($a1_pid, $a2_pid))")" \
	"applied applied" "applied in two"
for _ in $(seq 200); do [ "$(state_of l "$a1_pid")" = expired ] && break; sleep 0.1; done
expect_eq "$(state_of l "$a1_pid") $(state_of l "$a2_pid")" "expired expired" "the lifespan ends it in every process"
expect_eq "$(ctl --json status | jget "len(j['targets'])")" 0 "... and detaches them"
expect_eq "$(code_bytes_match "$a1_pid" "$addr")" same "bytes restored"
stop_daemon || fail "daemon exit status"
finish
