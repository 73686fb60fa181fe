#!/usr/bin/env bash
# Configure and build into DIR (default build). usage: scripts/build.sh [DIR] [cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-build}
shift || true
cmake -S . -B "$DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$DIR" -j"$(nproc)"
