#!/usr/bin/env bash
# Build the libFuzzer targets with clang into build-fuzz and run each for a fixed budget.
# usage: scripts/fuzz.sh [TARGET...]     (default: fuzz_spec fuzz_protocol fuzz_expr)
# env:   FUZZ_SECONDS per target (default 20). Long runs: FUZZ_SECONDS=3600 scripts/fuzz.sh,
#        or run build-fuzz/tests/fuzz/fuzz_X directly with any libFuzzer flags (-jobs=N ...).
# New inputs found are kept in build-fuzz/corpus/<target>/ (the seed corpora are read only).
# Exit status: non-zero when a target crashed, leaked or tripped a sanitizer (the reproducer
# is written as build-fuzz/crash-*).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${FUZZ_SECONDS:-20}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_spec fuzz_protocol fuzz_expr)
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target "${targets[@]}" >/dev/null
seed_of() {
	case $1 in
	fuzz_expr) echo tests/fuzz/corpus ;;
	fuzz_spec) echo tests/fuzz/corpus_spec ;;
	fuzz_protocol) echo tests/fuzz/corpus_protocol ;;
	esac
}
# fuzz_expr also compiles against the rich fixture's DWARF at handle's entry (built with gcc,
# as the suite's fixtures are: they use gcc-only attributes).
export DIAG_FUZZ_ELF=$PWD/build-fuzz/rich-O0-nopie
gcc -g -O0 -fno-PIE -no-pie -o "$DIAG_FUZZ_ELF" tests/fixtures/rich.c
DIAG_FUZZ_PC=$(nm "$DIAG_FUZZ_ELF" | awk '$3 == "handle" {print "0x" $1}')
export DIAG_FUZZ_PC
rc=0
for t in "${targets[@]}"; do
	mkdir -p "build-fuzz/corpus/$t"
	echo "== $t: ${SECS}s"
	if ! (cd build-fuzz && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		"tests/fuzz/$t" -max_total_time="$SECS" -max_len=4096 -print_final_stats=1 \
		"corpus/$t" "../$(seed_of "$t")" 2>&1 | tail -12); then
		echo "FAIL: $t" >&2
		rc=1
	fi
done
exit $rc
