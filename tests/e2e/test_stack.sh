# `stack` values through the daemon: incr with custom {"by_value":true} keyed by the folded
# stack, and `diagnosectl stats --folded` printing flamegraph.pl input ("root;...;leaf N"),
# at -O2 PIE (no frame pointers) and -O0 non-PIE; the depth bound; errors.
source "$(dirname "$0")/lib.sh"

rec_chain() { # N: "rec;" N times
	local s="" i
	for ((i = 0; i < $1; i++)); do s+="rec;"; done
	echo "$s"
}

start_daemon

for build in O2-pie O0-nopie; do
	id=${build/-/_}
	start_fixture "fx$id" "$DIAG_FIXTURE_DIR/deep-$build"
	pid_var=fx${id}_pid
	fx_pid=${!pid_var}
	out=$(ctl add-probe --pid "$fx_pid" --target leaf --type incr --name stacks --value stack \
		--custom '{"by_value":true}' --id "s$id" 2>&1)
	expect_eq "$?" 0 "$build: add-probe stack"
	ctl add-probe --pid "$fx_pid" --target leaf --type incr --name full --value 'stack(128)' \
		--custom '{"by_value":true}' --id "f$id" > /dev/null
	ctl add-probe --pid "$fx_pid" --target leaf --type incr --name plain --value stack \
		--id "p$id" > /dev/null
	fixture_go "fx$id"
	expect_contains "$(fixture_line "fx$id")" "done " "$build: the fixture ran to the end"
	ctl wait "f$id" --hits 4 --timeout 30 > /dev/null
	expect_eq "$?" 0 "$build: 4 hits"

	want="main;a;b;c;leaf 3
...;$(rec_chain 31)leaf 1"
	expect_eq "$(ctl stats --folded "s$id")" "$want" "$build: stats --folded, default depth 32"
	full="main;a;b;c;leaf 3
main;$(rec_chain 51)leaf 1"
	expect_eq "$(ctl stats --folded "f$id")" "$full" "$build: stats --folded, stack(128): 53 frames to main"
	expect_contains "$(ctl stats "s$id")" "           3  main;a;b;c;leaf" "$build: stats lists the stacks"
	expect_eq "$(ctl --json stats --folded "s$id" | jget "j['stats'][0]['report']['folded'].count(chr(10))")" 2 \
		"$build: --json gives the raw reply"
	err=$(ctl stats --folded "p$id" 2>&1)
	expect_eq "$?" 1 "$build: --folded without by_value fails"
	expect_contains "$err" 'no probe counts by value' "$build: --folded error text"
done

# all probes at once: every folded report, one after the other
expect_eq "$(ctl stats --folded | grep -c '^main;a;b;c;leaf 3$')" 4 "stats --folded without ID"
start_fixture idle "$DIAG_FIXTURE_DIR/deep-O2-pie"
expect_contains "$(ctl add-probe --pid "$idle_pid" --target leaf --type incr --name bad --value 'stack(500)' 2>&1)" \
	"the depth of stack() must be a constant 1..128" "depth bound is checked"
expect_contains "$(ctl stats --folded --bogus 2>&1)" "unknown option '--bogus'" "stats: other options refused"
finish
