# Log and terminal injection: strings that come from a target are escaped on every text
# output. The fixture is a copy of work-O0-nopie whose hot function `work` is renamed
# "ev\nFAKE Probe (x) = 1\n\e[31mil" (probed as 'ev*') and whose file name holds a newline and an
# escape sequence too. Those names reach the daemon's stdout (a log line of `stack`), its
# stderr and `list` (an error that suggests names), `diagnosectl tail`, `stats`,
# `stats --folded`, `symbols` and --json: each must show the escaped text, and no output may
# hold an ESC byte or a line that starts with the forged "FAKE". (Names, formats and targets
# with control characters are refused at add time: test_strict_input.sh.)
source "$(dirname "$0")/lib.sh"

EVIL=$(printf 'ev\nFAKE Probe (x) = 1\n\033[31mil')
SAFE='ev\nFAKE Probe (x) = 1\n\x1b[31mil'
BIN="$T/work$(printf '\n\033[2J')bin"
cp "$DIAG_FIXTURE_DIR/work-O0-nopie" "$BIN" || die "copy"
objcopy --redefine-sym "work=$EVIL" "$BIN" || die "objcopy"

# clean OUT WHAT: no ESC byte, no forged line
clean() {
	if grep -q $'\033' "$1"; then fail "$2: an ESC byte in the output"; else pass "$2: no ESC byte"; fi
	if grep -q '^FAKE' "$1"; then fail "$2: a forged line"; else pass "$2: no forged line"; fi
}

start_daemon --foreground # its stdout carries the log lines checked below
start_fixture fx "$BIN" 1 0
fx=$fx_pid
ctl attach "$fx" || die "attach"

# symbols: the module (the file name) and the function name
ctl symbols --pid "$fx" 'ev?FAKE*' > "$T/sym.out"
expect_eq "$(wc -l < "$T/sym.out")" 2 "symbols: header and one row"
expect_contains "$(cat "$T/sym.out")" "$SAFE" "symbols: the name escaped"
# (the kernel writes a newline of a mapped file's name as \012 in /proc/PID/maps)
expect_contains "$(cat "$T/sym.out")" 'work\012\x1b[2Jbin' "symbols: the module escaped"
clean "$T/sym.out" "symbols"
ctl --json symbols --pid "$fx" 'ev?FAKE*' > "$T/symj.out"
expect_eq "$(jget "j['symbols'][0]['name']" < "$T/symj.out")" "$SAFE" "--json symbols: escaped in the reply"
clean "$T/symj.out" "--json symbols"

# an error that suggests the evil name: list, the daemon's stderr, add-probe's warning
ctl add-probe --pid "$fx" --target 'FAKE' --type log --name sugg --id sugg 2> "$T/add.err" > /dev/null
clean "$T/add.err" "add-probe warning"
ctl list > "$T/list.out"
expect_contains "$(grep 'error:' "$T/list.out")" "$SAFE" "list: the suggestion escaped"
clean "$T/list.out" "list"
expect_contains "$(grep "spec 'sugg'" "$DERR")" "$SAFE" "daemon stderr: the suggestion escaped"

# the stack names the evil function: the daemon's stdout (log), tail, stats, stats --folded
ctl add-probe --pid "$fx" --target 'ev*' --type log --name st --value stack --id st > /dev/null
ctl add-probe --pid "$fx" --target 'ev*' --type incr --name bystack --value stack \
	--custom '{"by_value":true}' --id bystack > /dev/null
timeout 60 "$DIAGNOSECTL" --socket "$SOCK" tail st > "$T/tail.out" &
TAILPID=$!
fixture_go fx
ctl wait st --hits 20 --timeout 60 > /dev/null || fail "20 hits"
for _ in $(seq 200); do [ "$(wc -l < "$T/tail.out")" -ge 3 ] && break; sleep 0.05; done
ctl remove-probe st
kill "$TAILPID" 2>/dev/null
wait "$TAILPID" 2>/dev/null
expect_contains "$(head -1 "$T/tail.out")" "Probe (st) = " "tail: a line per event"
expect_contains "$(head -1 "$T/tail.out")" ";$SAFE" "tail: the stack escaped"
clean "$T/tail.out" "tail"
for _ in $(seq 200); do grep -q "^Probe (st)" "$DOUT" && break; sleep 0.05; done
expect_contains "$(grep -m1 '^Probe (st)' "$DOUT")" ";$SAFE" "daemon stdout: the log line escaped"
clean "$DOUT" "daemon stdout"
clean "$DERR" "daemon stderr"
ctl stats bystack > "$T/stats.out"
expect_contains "$(cat "$T/stats.out")" ";$SAFE" "stats: the key escaped"
clean "$T/stats.out" "stats"
ctl stats --folded bystack > "$T/folded.out"
# (folded keys are one line each: incr writes a newline of a key as ';')
expect_contains "$(cat "$T/folded.out")" ';ev;FAKE Probe (x) = 1;\x1b[31mil ' "stats --folded: escaped"
clean "$T/folded.out" "stats --folded"
finish
