# A daemon killed with -9 leaves its patches (a jump and an int3) in a running target; the
# next daemon attaching to it reads the journal and takes them out: the code bytes equal the
# file again, none of the old pages is left, and the target runs on.
source "$(dirname "$0")/lib.sh"
export DIAG_JOURNAL_DIR=$T/journal

anon_exec_pages() { # anonymous executable mappings: slot pages, trampolines, safety handler
	awk '$2 ~ /x/ && NF == 5' "/proc/$1/maps" | wc -l
}

for build in O2-pie O0-nopie; do
	start_fixture fx "$DIAG_FIXTURE_DIR/work-$build" 2 0
	expect_eq "$(anon_exec_pages "$fx_pid")" 0 "$build: no diagnose page before"
	start_daemon --pid "$fx_pid"
	add fast work incr > /dev/null
	add exact twice incr '"condition":"str($rsp) != \"x\""' > /dev/null
	addr_fast=$(first_addr fast "$fx_pid")
	addr_exact=$(first_addr exact "$fx_pid")
	fixture_go fx
	req '{"cmd":"wait","id":"fast","hits":1000,"timeout":60}' > /dev/null
	kill -KILL "$DPID"; wait "$DPID" 2>/dev/null; DPID=
	expect_eq "$(code_bytes_match "$fx_pid" "$addr_fast")" differ "$build: the jump was left behind"
	[ -n "$(ls "$DIAG_JOURNAL_DIR")" ] && pass "$build: journal written" || fail "$build: no journal"
	rm -f "$STORE"                      # the successor knows nothing but the journal
	start_daemon --pid "$fx_pid"
	expect_eq "$(code_bytes_match "$fx_pid" "$addr_fast")" same "$build: jump bytes restored"
	expect_eq "$(code_bytes_match "$fx_pid" "$addr_exact")" same "$build: int3 byte restored"
	expect_eq "$(anon_exec_pages "$fx_pid")" 0 "$build: the predecessor's pages are gone"
	stop_daemon
	kill -0 "$fx_pid" 2>/dev/null && pass "$build: target running" || fail "$build: target died"
	kill -KILL "$fx_pid" 2>/dev/null
done
finish
