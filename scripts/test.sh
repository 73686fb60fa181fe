#!/usr/bin/env bash
# Every test: installs what is missing, builds, runs the suite, then again under
# AddressSanitizer + UndefinedBehaviorSanitizer. Needs root (ptrace of other processes).
# usage: scripts/test.sh [--no-sanitize] [--fuzz] [ctest args...]
#   --fuzz: then the libFuzzer targets (clang, build-fuzz/), FUZZ_SECONDS each (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
	echo "scripts/test.sh: must run as root (the tests ptrace real processes)" >&2
	exit 1
fi
sanitize=1
fuzz=0
while [ "${1:-}" = "--no-sanitize" ] || [ "${1:-}" = "--fuzz" ]; do
	if [ "$1" = "--fuzz" ]; then fuzz=1; else sanitize=0; fi
	shift
done
scripts/deps.sh
scripts/build.sh build
# The fault suite repeats each fault FAULT_TRIALS times (scripts/reliability.sh runs 100 for
# docs/reliability.md); it runs in the plain build only: under the sanitizers it measures the
# sanitizers' timing, not ours.
(cd build && FAULT_TRIALS=${FAULT_TRIALS:-10} ctest -j2 --output-on-failure --timeout 600 "$@")
if [ $sanitize = 1 ]; then
	scripts/build.sh build-asan -DDIAG_SANITIZE=ON
	(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest -j2 -LE faults --output-on-failure --timeout 900 "$@")
fi
if [ $fuzz = 1 ]; then
	scripts/fuzz.sh
fi
