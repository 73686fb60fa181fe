# Journals nobody can recover are removed (issue 15): a daemon killed with -9 leaves the
# journal of a probed target; once that target is gone, the next daemon removes it at its
# start. A journal with nothing left in its (live, untraced) process (a daemon killed before
# its first patch) goes too; the journal of a live target with patches stays until an attach
# recovers it, and a file that is not a journal is left alone.
source "$(dirname "$0")/lib.sh"
export DIAG_JOURNAL_DIR=$T/journal
jfile() { ls "$DIAG_JOURNAL_DIR" | grep "^$1-" ; }

# left_behind NAME PROBE: a work fixture attached by a daemon (with an int3 probe when PROBE is
# "probe") that is then killed with -9, leaving NAME's journal behind.
left_behind() {
	rm -f "$STORE"
	start_fixture "$1" "$DIAG_FIXTURE_DIR/work-O2-pie" 1 0
	local pid_var=${1}_pid
	start_daemon --pid "${!pid_var}"
	if [ "$2" = probe ]; then
		add "e$1" work incr '"condition":"str($rsp) != \"x\""' > /dev/null
		fixture_go "$1"
	fi
	kill -KILL "$DPID"; wait "$DPID" 2>/dev/null; DPID=
}
left_behind g probe # gone: the target is killed below
left_behind l probe # live, with patches
left_behind c none  # clean, last (a daemon's start sweeps it): attached with no probe
kill -KILL "$g_pid"; wait "$g_pid" 2>/dev/null
echo "not a journal" > "$DIAG_JOURNAL_DIR/notes.txt"
[ -n "$(jfile "$g_pid")" ] && [ -n "$(jfile "$c_pid")" ] && [ -n "$(jfile "$l_pid")" ] \
	&& pass "three journals left behind" || fail "journals left: $(ls "$DIAG_JOURNAL_DIR")"

rm -f "$STORE"
start_daemon
expect_eq "$(jfile "$g_pid")" "" "the journal of a process that is gone is removed at start"
expect_eq "$(jfile "$c_pid")" "" "a clean journal of an untraced process is removed"
[ -n "$(jfile "$l_pid")" ] && pass "a live target's journal with patches is kept" || fail "live journal removed"
[ -f "$DIAG_JOURNAL_DIR/notes.txt" ] && pass "other files left alone" || fail "notes.txt removed"
# the kept one: recovered and removed at attach; the target then exits: nothing is left
req "{\"cmd\":\"attach\",\"pid\":$l_pid}" > /dev/null
req "{\"cmd\":\"detach\",\"pid\":$l_pid}" > /dev/null
expect_eq "$(jfile "$l_pid")" "" "recovered at attach, removed at detach"
expect_eq "$(ls "$DIAG_JOURNAL_DIR")" "notes.txt" "no journal left"
finish
