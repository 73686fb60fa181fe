# Two target processes served at once: per-pid specs, a pid-less spec on both, per-process
# applied records and counts; one target exiting leaves the other probed.
source "$(dirname "$0")/lib.sh"

start_fixture a "$DIAG_FIXTURE_DIR/work-O0-pie" 2 300
start_fixture b "$DIAG_FIXTURE_DIR/work-O2-nopie" 1 0
start_daemon --pid "$a_pid" --pid "$b_pid"
add onA work incr "\"pid\":$a_pid" > /dev/null
add onB work incr "\"pid\":[$b_pid]" > /dev/null
r=$(add both work incr)
expect_eq "$(echo "$r" | jget "sorted(v['state'] for v in j['spec']['applied'].values())")" "['applied', 'applied']" "pid-less spec applied to both"
fixture_go a
fixture_go b
expect_eq "$(fixture_line a)" "sum $(( (300*299/2*3 + 300*7) * 2 + 300*2 ))" "target A's own result unchanged"
expect_eq "$(hits_of onA)" 600 "A: every call counted"
req '{"cmd":"wait","id":"onB","hits":500,"timeout":30}' > /dev/null
hb=$(hits_of onB)
hboth=$(hits_of both)
[ "$hboth" -ge $((600 + hb - 50)) ] && pass "pid-less spec counts both targets ($hboth)" || fail "both: $hboth hits, want about 600+$hb"
st=$(req '{"cmd":"status"}' | jget "sorted(t['pid'] for t in j['targets'])")
expect_contains "$st" "$b_pid" "status lists target B"
expect_eq "$(req '{"cmd":"list"}' | jget "[s['applied']['$(hostname):$b_pid']['hits'] > 0 for s in j['specs'] if s['id']=='onB'][0]")" True "B: per-process hits"
expect_eq "$(req '{"cmd":"wait","id":"onB","hits":'$((hb + 100))',"timeout":30}' | jget "j['ok']")" True "B keeps counting after A finished"
finish
