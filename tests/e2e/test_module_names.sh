# Module names match what users type (issue 16, item 1): the executable as invoked through a
# symlink (Debian's /usr/bin/redis-server is a symlink to redis-check-rdb) and its comm name a
# MODULE:FUNC target; an unknown module's error lists the mapped ones; `symbols` agrees.
source "$(dirname "$0")/lib.sh"

ln -s "$DIAG_FIXTURE_DIR/work-O0-pie" "$T/myserver"
start_fixture fx "$T/myserver" 1 0
start_daemon --pid "$fx_pid"

add viasym 'myserver:work' incr > /dev/null
expect_eq "$(state_of viasym "$fx_pid")" applied "MODULE:FUNC with the symlink's name applied"
add viafile 'work-O0-pie:work' incr > /dev/null
expect_eq "$(state_of viafile "$fx_pid")" applied "MODULE:FUNC with the file's name still applied"

ctl add-probe --pid "$fx_pid" --target 'nosuch:work' --type incr --name u --id unk > /dev/null 2> "$T/err"
expect_eq "$?" 0 "a module not loaded: pending, exit 0"
expect_contains "$(cat "$T/err")" "note: unk pending in " "a module not loaded: a note"
expect_contains "$(cat "$T/err")" "waiting for its module to be loaded; mapped now: work-O0-pie (myserver)" \
	"the note lists the mapped modules (a typo shows)"
expect_contains "$(cat "$T/err")" "libc.so.6" "the list names the libraries too"
fixture_go fx
finish
