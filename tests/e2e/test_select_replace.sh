# A file replaced on disk is gated again at once (issue 11): after add-probe --exe, a package
# upgrade's way of replacing the file (a new file written beside it, renamed over the path:
# another inode) is seen by the directory watch (inotify), the new inode is marked, and a
# process started from it is held at its exec (or its library's open) like before: its first
# call is counted. `status` shows each gate's marks by identity; the test waits, bounded, for
# the new inode there (the rename and the re-mark are two steps: a process exec'ing the new
# file between them is taken by its exec event, early, not exact).
source "$(dirname "$0")/lib.sh"
start_daemon
H=$(hostname)
PROG=$T/first$$
cp "$DIAG_FIXTURE_DIR/first-O2-pie" "$PROG"
ctl add-probe --exe "$PROG" --target first_call --type incr --name f > /dev/null 2>&1 ||
	fail "add-probe --exe PROG"
gated() { ctl --json status | jget "sorted(g['ino'] for g in j['gates']['$1'] if g['path'] == '$2')"; }
expect_eq "$(gated exec "$PROG")" "[$(stat -c %i "$PROG")]" "the executable is gated by its inode"
expect_contains "$("$PROG")" "ran 1" "a run before the upgrade"
ctl wait p1 --hits 1 --timeout 20 || fail "its first call counted ($(hits_of p1))"

# the upgrade: another build written beside the file, renamed over it
cp "$DIAG_FIXTURE_DIR/first-O0-nopie" "$T/.first.new$$"
mv "$T/.first.new$$" "$PROG"
new=$(stat -c %i "$PROG")
for _ in $(seq 200); do [ "$(gated exec "$PROG")" = "[$new]" ] && break; sleep 0.05; done
expect_eq "$(gated exec "$PROG")" "[$new]" "the new inode is gated, the old one no longer"
out=$("$PROG" & echo "pid $!"; wait $!; echo "rc $?")
pid=$(echo "$out" | awk '/^pid/ {print $2}')
expect_contains "$out" "ran 1" "the new program ran"
ctl wait p1 --hits 2 --timeout 20 || fail "the new program's first call counted ($(hits_of p1))"
expect_eq "$(ctl --json list | jget "(lambda a: '%s %s' % (a['state'], a['hits']))(j['specs'][0]['applied']['$H:$pid'])")" \
	"exited 1" "its own entry: one hit (its first call, on main's first line)"

# a library replaced the same way: the program that loads the new one is held at its open
cp "$DIAG_FIXTURE_DIR/libgatelib.so" "$T/libgatelib.so"
cp "$DIAG_FIXTURE_DIR/gluser-O2-pie" "$T/gl$$"
LIB=$T/libgatelib.so
ctl add-probe --exe "$LIB" --target gl_first --type incr --name g --id g1 > /dev/null 2>&1 ||
	fail "add-probe --exe LIB"
cp "$DIAG_FIXTURE_DIR/libgatelib.so" "$T/.lib.new$$"
mv "$T/.lib.new$$" "$LIB"
new=$(stat -c %i "$LIB")
for _ in $(seq 200); do [ "$(gated library "$LIB")" = "[$new]" ] && break; sleep 0.05; done
expect_eq "$(gated library "$LIB")" "[$new]" "the new library's inode is gated"
expect_contains "$("$T/gl$$")" "ran 1" "a program loading the new library ran"
ctl wait g1 --hits 1 --timeout 20 || fail "its first call into the new library counted ($(hits_of g1))"
expect_eq "$(hits_of g1)" 1 "exactly its one call"
stop_daemon || fail "daemon exit status"
finish
