# `--socket PATH` never deletes anything but a stale socket: a regular file, a directory, a
# symbolic link or a live socket at PATH is an error naming the path and what is there, and
# it is left exactly as it was. A socket directory writable by its group or by everyone
# (sticky or not) or owned by another user is refused. At exit the daemon removes its own
# socket only: a file that replaced it stays.
source "$(dirname "$0")/lib.sh"

# run_sock PATH: "STATUS:first stderr line" of a daemon that must refuse PATH at start.
run_sock() {
	timeout 30 "$DIAGNOSED" --socket "$1" --store "$STORE" > /dev/null 2> "$T/err"
	echo "$?:$(head -1 "$T/err")"
}
refused() { # PATH WHAT: the message for something at PATH that is not ours to remove
	echo "1:diagnosed: socket $1: $2 is there; not removed (only a stale socket is)"
}

echo precious > "$T/file"
expect_eq "$(run_sock "$T/file")" "$(refused "$T/file" "a regular file")" "regular file refused"
expect_eq "$(cat "$T/file")" precious "the regular file is intact"

mkdir "$T/dir"
touch "$T/dir/inside"
expect_eq "$(run_sock "$T/dir")" "$(refused "$T/dir" "a directory")" "directory refused"
[ -f "$T/dir/inside" ] && pass "the directory is intact" || fail "the directory was touched"

ln -s "$T/file" "$T/link"
expect_eq "$(run_sock "$T/link")" "$(refused "$T/link" "a symbolic link")" "symbolic link refused"
[ -L "$T/link" ] && [ "$(cat "$T/file")" = precious ] && pass "link and its target intact" ||
	fail "the link or its target was touched"

mkfifo "$T/fifo"
expect_eq "$(run_sock "$T/fifo")" "$(refused "$T/fifo" "a FIFO")" "FIFO refused"

# a live socket: another daemon's
start_daemon
expect_eq "$(run_sock "$SOCK")" "1:diagnosed: socket $SOCK: another diagnosed is serving it" \
	"live socket refused"
expect_eq "$(req '{"cmd":"status"}' | jget "j['ok']")" True "the first daemon still serves"
stop_daemon
[ -e "$SOCK" ] && fail "the daemon left its socket at exit" || pass "its own socket removed at exit"

# a stale socket (bound, never served: a crashed daemon's) is replaced
python3 -c "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])" "$SOCK"
[ -S "$SOCK" ] || die "no stale socket"
start_daemon
pass "a stale socket is taken over"

# at exit only what we bound is removed: the socket was replaced by a regular file
mv "$SOCK" "$T/moved.sock"
echo replaced > "$SOCK"
stop_daemon
expect_eq "$(cat "$SOCK" 2>&1)" replaced "a file that replaced the socket is kept at exit"
rm -f "$SOCK" "$T/moved.sock"

# directories others can write to, or owned by someone else
for mode in 1777 0777 0770 0720; do
	d=$T/d$mode
	mkdir "$d"
	chmod "$mode" "$d"
	who="every user"
	[ $((8#$mode & 2)) -eq 0 ] && who="its group"
	expect_eq "$(run_sock "$d/s.sock")" \
		"1:diagnosed: socket $d/s.sock: directory $d is writable by $who (mode $mode): refused" \
		"directory mode $mode refused"
done
mkdir "$T/other"
chown 65534 "$T/other"
chmod 0700 "$T/other"
expect_eq "$(run_sock "$T/other/s.sock")" \
	"1:diagnosed: socket $T/other/s.sock: directory $T/other is owned by uid 65534, not root: refused" \
	"directory of another user refused"
# a missing directory is created 0700 by the daemon, as before
SOCK=$T/new/sub/d.sock
start_daemon
expect_eq "$(stat -c %a "$T/new/sub")" 700 "a missing directory is created 0700"
expect_eq "$(stat -c %a "$SOCK")" 600 "the socket is 0600"
stop_daemon
finish
