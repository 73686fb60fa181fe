# A fork storm (issue 15, item 10): the forkstorm fixture forks FORK_CHILDREN (3000) children at
# 400 a second while a probe sits on the function every child (and only the children) calls,
# once on the jump path and once with DIAG_NO_FASTPATH=1 (int3). Bounded: the daemon's RSS
# grows by less than 24 MB (48 under ASan), `list` stays under 64 KB (the records of exited children are
# folded into one summary record per spec, the last 16 kept), and the engine keeps no state
# for the children that exited (status lists the parent alone). Attributed right: every event
# comes with the child's own pid (the {pid} of the event and its `$pid` value), every pid is
# one the fixture forked, each child gives its 3 events, and the summary counts them all.
source "$(dirname "$0")/lib.sh"
export DIAG_RING_SHARED=1 # shared rings (the default, said again): fork and exec with them
N=${FORK_CHILDREN:-3000}
rss() { awk '/^VmRSS/ {print $2}' "/proc/$DPID/status"; }
# Under ASan freed memory waits in the quarantine (256 MB by default) and every block carries
# redzones: a small quarantine, and twice the bound.
RSS_MAX=24576
if ldd "$DIAGNOSED" | grep -q libasan; then
	export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=4
	RSS_MAX=49152
fi
ok=0
for path in jump int3; do
	if [ $path = int3 ]; then DIAG_NO_FASTPATH=1 start_daemon --foreground $NOGOV; else start_daemon --foreground $NOGOV; fi
	rm -f "$T/f.in" "$T/f.out"
	start_fixture f "$DIAG_FIXTURE_DIR/forkstorm-O2-pie" "$N" 400 "$T/pids.$path"
	req "{\"cmd\":\"attach\",\"pid\":$f_pid}" > /dev/null
	r=$(req '{"cmd":"add","spec":{"id":"fs","target":"child_hit","instrument":{"type":"log","name":"fs","value":"$pid","custom":{"format":"fs {pid} {value}"}}}}')
	expect_eq "$(echo "$r" | jget "j['spec']['applied']['$(hostname):$f_pid']['instances'][0]['path']")" $path "$path: placed on the $path path"
	rss0=$(rss)
	fixture_go f
	line=
	read -r -t 300 -u "$f_out" line
	expect_eq "$line" "forked $N failed 0" "$path: $N children forked, every child's results right"
	expect_eq "$(serving)" True "$path: daemon serving"
	req '{"cmd":"stats","id":"fs"}' > /dev/null # every accepted event written out
	grow=$(( $(rss) - rss0 ))
	[ "$grow" -lt $RSS_MAX ] && pass "$path: RSS grew ${grow} kB (< $RSS_MAX kB)" || fail "$path: RSS grew ${grow} kB (limit $RSS_MAX kB)"
	req '{"cmd":"list"}' > "$T/list.$path"
	size=$(stat -c %s "$T/list.$path")
	[ "$size" -lt 65536 ] && pass "$path: list is $size bytes (< 64 KB)" || fail "$path: list is $size bytes"
	expect_eq "$(req '{"cmd":"status"}' | jget "[t['pid'] for t in j['targets']]")" "[$f_pid]" "$path: no state left for exited children"
	res=$(python3 - "$T/pids.$path" "$DOUT" "$T/list.$path" "$N" <<'PY'
import collections, json, sys
pids = set(int(l) for l in open(sys.argv[1]))
n = int(sys.argv[4])
seen = collections.Counter()
bad = []
for line in open(sys.argv[2]):
    if not line.startswith("fs "):
        continue
    _, pid, value = line.split()
    seen[int(pid)] += 1
    if pid != value or int(pid) not in pids:
        bad.append(line.strip())
spec = json.loads(open(sys.argv[3]).readline())["specs"][0]
records = len(spec["applied"])
summary = [a for k, a in spec["applied"].items() if k.endswith(":exited")]
folded = summary[0].get("processes", 0) if summary else 0
hits = sum(a["hits"] for a in spec["applied"].values())
short = [p for p in pids if seen[p] != 3]
print("pids=%d bad=%d short=%d records<=18:%s folded+kept>=%d:%s hits=%d" % (
    len(pids), len(bad), len(short), records <= 18, n, folded + records - 1 >= n, hits), bad[:3], short[:3])
PY
)
	expect_contains "$res" "pids=$N bad=0 short=0 records<=18:True folded+kept>=$N:True hits=$((3 * N)) " "$path: every event the child's own, all counted ($res)"
	case $res in "pids=$N bad=0 short=0 records<=18:True folded+kept>=$N:True hits=$((3 * N)) "*) ok=$((ok + 1)) ;; esac
	fixture_go f # the parent exits
	stop_daemon || fail "$path: daemon exit status"
done
figure "fork storm ($N children at 400/s, jump and int3)" 2 "$ok" 0 0
finish
