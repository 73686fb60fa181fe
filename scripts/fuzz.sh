#!/usr/bin/env bash
# Build the libFuzzer targets with clang and run each for a fixed budget (scripts/test.sh runs
# this by default with FUZZ_SECONDS=15: CI fuzzes every change).
# usage: scripts/fuzz.sh [TARGET...]     (default: fuzz_spec fuzz_protocol fuzz_expr fuzz_dwarf)
#        scripts/fuzz.sh --merge [TARGET...]: no fuzzing; merge the inputs a run kept in
#        $FUZZ_BUILD_DIR/corpus/<target>/ that add coverage into the seed corpus under
#        tests/fuzz/ (libFuzzer -merge=1: the seeds already there all stay), for a commit.
# env:   FUZZ_SECONDS per target (default 20). Long runs: FUZZ_SECONDS=3600 scripts/fuzz.sh,
#        or run build-fuzz/tests/fuzz/fuzz_X directly with any libFuzzer flags (-jobs=N ...).
#        FUZZ_BUILD_DIR: the build directory (default build-fuzz).
# New inputs found are kept in $FUZZ_BUILD_DIR/corpus/<target>/ (a fuzzing run never writes
# the seed corpora: --merge does; copy a reproducer there by hand, named ub-* or crash-*, once
# its bug is fixed, with a unit test asserting the defined result). The targets are built
# with -fno-sanitize-recover=all: any sanitizer report, undefined behaviour included, fails.
# Exit status: non-zero when a target crashed, leaked, timed out or tripped a sanitizer; the
# reproducer's path is printed (it is written under $FUZZ_BUILD_DIR/artifacts/<target>/).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${FUZZ_SECONDS:-20}
B=${FUZZ_BUILD_DIR:-build-fuzz}
merge=0
if [ "${1:-}" = --merge ]; then
	merge=1
	shift
fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_spec fuzz_protocol fuzz_expr fuzz_dwarf)
CC=clang CXX=clang++ cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$B" -j"$(nproc)" --target "${targets[@]}" >/dev/null
seed_of() {
	case $1 in
	fuzz_expr) echo tests/fuzz/corpus ;;
	fuzz_spec) echo tests/fuzz/corpus_spec ;;
	fuzz_protocol) echo tests/fuzz/corpus_protocol ;;
	fuzz_dwarf) echo tests/fuzz/corpus_dwarf ;;
	*) echo "scripts/fuzz.sh: unknown target $1" >&2; exit 2 ;;
	esac
}
# fuzz_expr also compiles against the rich fixture's DWARF at handle's entry (built with gcc,
# as the suite's fixtures are: they use gcc-only attributes).
export DIAG_FUZZ_ELF=$PWD/$B/rich-O0-nopie
gcc -g -O0 -fno-PIE -no-pie -o "$DIAG_FUZZ_ELF" tests/fixtures/rich.c
DIAG_FUZZ_PC=$(nm "$DIAG_FUZZ_ELF" | awk '$3 == "handle" {print "0x" $1}')
export DIAG_FUZZ_PC
if [ $merge = 1 ]; then
	for t in "${targets[@]}"; do
		seed=$PWD/$(seed_of "$t")
		before=$(ls "$seed" | wc -l)
		(cd "$B" && "tests/fuzz/$t" -merge=1 -use_counters=0 -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
			"$seed" "corpus/$t" >"$t.merge.log" 2>&1) || { tail -20 "$B/$t.merge.log" >&2; exit 1; }
		echo "== $t: $before -> $(ls "$seed" | wc -l) seeds ($(du -sh "$seed" | cut -f1))"
	done
	exit 0
fi
rc=0
for t in "${targets[@]}"; do
	seed=$PWD/$(seed_of "$t")
	art=$PWD/$B/artifacts/$t
	log=$PWD/$B/$t.log
	rm -rf "$art"
	mkdir -p "$B/corpus/$t" "$art"
	echo "== $t: ${SECS}s (seeds $(ls "$seed" | wc -l), log $log)"
	st=0
	maxlen=4096
	[ "$t" = fuzz_dwarf ] && maxlen=131072 # whole ELF files
	(cd "$B" && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		"tests/fuzz/$t" -max_total_time="$SECS" -max_len=$maxlen -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$art/" "corpus/$t" "$seed" >"$log" 2>&1) || st=$?
	grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)|^Done ' "$log" || true
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	if [ $st != 0 ] || [ -n "$(ls -A "$art")" ]; then
		tail -40 "$log" >&2
		echo "FAIL: $t (exit $st); reproducer(s):" >&2
		for f in "$art"/*; do [ -e "$f" ] && echo "  $f   (replay: $B/tests/fuzz/$t $f)" >&2; done
		rc=1
	elif [ "${runs:-0}" -le 0 ]; then
		tail -20 "$log" >&2
		echo "FAIL: $t executed no input" >&2
		rc=1
	fi
done
exit $rc
