#!/usr/bin/env bash
# Every test: installs what is missing, builds, runs the suite, then again under
# AddressSanitizer + UndefinedBehaviorSanitizer. Needs root (ptrace of other processes).
# Then each libFuzzer target for a short fixed budget (scripts/fuzz.sh: clang, build-fuzz/,
# FUZZ_SECONDS each, default 15 here; a crash fails the run and prints the reproducer's path).
# Last, the Debian package (scripts/test_package.sh: built, lintian-clean, installed with
# apt-get, the demo run against the installed programs, removed again).
# usage: scripts/test.sh [--no-sanitize] [--no-fuzz] [--no-package] [ctest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
	echo "scripts/test.sh: must run as root (the tests ptrace real processes)" >&2
	exit 1
fi
sanitize=1
fuzz=1
package=1
while :; do
	case ${1:-} in
	--no-sanitize) sanitize=0 ;;
	--no-fuzz) fuzz=0 ;;
	--no-package) package=0 ;;
	--fuzz) fuzz=1 ;; # the default now; kept for old command lines
	*) break ;;
	esac
	shift
done
scripts/deps.sh
scripts/build.sh build
# The fault suite repeats each fault FAULT_TRIALS times (scripts/reliability.sh runs 100 for
# docs/reliability.md): 6 here, 2 under the sanitizers (correctness, not statistics). The OOM
# case is left out under ASan: its shadow memory changes which process the OOM killer picks.
(cd build && FAULT_TRIALS=${FAULT_TRIALS:-6} ctest -j2 --output-on-failure --timeout 600 "$@")
if [ $sanitize = 1 ]; then
	scripts/build.sh build-asan -DDIAG_SANITIZE=ON
	(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 FAULT_TRIALS=2 \
		ctest -j2 -E '^faults[.]test_oom$' --output-on-failure --timeout 900 "$@")
fi
if [ $fuzz = 1 ]; then
	FUZZ_SECONDS=${FUZZ_SECONDS:-15} scripts/fuzz.sh
fi
if [ $package = 1 ]; then
	scripts/test_package.sh
fi
