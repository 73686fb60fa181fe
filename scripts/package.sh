#!/usr/bin/env bash
# The Debian package: configures a release build for /usr in BUILD_DIR (default build-deb),
# builds, runs `cpack -G DEB` there and `lintian` on the result (errors fail), and prints the
# .deb's path last. Install it with `apt-get install ./diagnose_*.deb`.
# usage: scripts/package.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build-deb}
scripts/deps.sh >&2
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
	-DCMAKE_SKIP_INSTALL_ALL_DEPENDENCY=ON >&2
cmake --build "$B" -j"$(nproc)" --target diagnosed diagnosectl diagnose-indexer plugins man changelog_gz >&2
(cd "$B" && rm -f ./*.deb && cpack -G DEB >&2)
deb=$(ls "$PWD/$B"/diagnose_*.deb)
# lintian: errors fail the package; warnings are printed for the record.
lintian --fail-on error "$deb" >&2
echo "$deb"
