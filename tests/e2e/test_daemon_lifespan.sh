# Lifespan: at lastmodified + lifespan the probe is removed (bytes restored, not merely
# silenced) and `list` shows expired; re-adding the same id re-applies with a new lastmodified.
source "$(dirname "$0")/lib.sh"

start_fixture fx "$DIAG_FIXTURE_DIR/work-O0-nopie" 1 0
start_daemon --pid "$fx_pid"
add keep work incr > /dev/null
# the address from the reply itself: under load the 1.2 s can be over before a later `list`
r=$(add short work incr '"lifespan":0.02')
addr=$(echo "$r" | jget "j['spec']['applied']['$(hostname):$fx_pid']['addresses'][0]")
lm1=$(echo "$r" | jget "j['spec']['lastmodified']")
fixture_go fx
req '{"cmd":"wait","id":"short","hits":10,"timeout":30}' > /dev/null
# 1.2 s lifespan: poll the state with a deadline (the daemon's timer does the work).
for _ in $(seq 100); do [ "$(state_of short "$fx_pid")" = expired ] && break; sleep 0.1; done
expect_eq "$(state_of short "$fx_pid")" expired "state expired after the lifespan"
expect_eq "$(req '{"cmd":"list"}' | jget "[s for s in j['specs'] if s['id']=='short'][0]['expires_in']")" 0 "expires_in 0"
h1=$(hits_of short)
keep1=$(hits_of keep)
req '{"cmd":"wait","id":"keep","hits":'$((keep1 + 100))',"timeout":30}' > /dev/null
expect_eq "$(hits_of short)" "$h1" "expired probe no longer counts"
expect_eq "$(state_of keep "$fx_pid")" applied "the other probe is still applied"

# Remove the other probe too: with no breakpoint left the bytes must equal the file's.
req '{"cmd":"remove","id":"keep"}' > /dev/null
expect_eq "$(code_bytes_match "$fx_pid" "$addr")" same "bytes restored at $addr after expiry"

sleep 1.1 # lastmodified has one-second resolution; make the new one visibly later
r=$(add short work incr '"lifespan":10')
expect_eq "$(echo "$r" | jget "j['spec']['applied']['$(hostname):$fx_pid']['state']")" applied "re-add re-applies"
lm2=$(echo "$r" | jget "j['spec']['lastmodified']")
[ "$lm2" \> "$lm1" ] && pass "new lastmodified ($lm1 -> $lm2)" || fail "lastmodified not updated: $lm1 -> $lm2"
expect_eq "$(req '{"cmd":"wait","id":"short","hits":5,"timeout":30}' | jget "j['ok']")" True "re-added probe counts"
finish
