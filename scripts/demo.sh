#!/usr/bin/env bash
# The demo: installs what is missing, builds, starts a sample service, attaches diagnosed to it,
# adds probes with diagnosectl, shows live events and a histogram, then lets the probes go and
# shows the service untouched. Needs root (ptrace). usage: scripts/demo.sh
# With DIAG_INSTALLED=1 it runs the installed programs (the Debian package: /usr/bin/diagnosed,
# /usr/bin/diagnosectl, the packaged plugins) and builds only the sample service.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
	echo "scripts/demo.sh: must run as root (diagnosed uses ptrace)" >&2
	exit 1
fi
scripts/deps.sh
B=$PWD/build
if [ "${DIAG_INSTALLED:-0}" = 1 ]; then
	cmake -S . -B build >/dev/null && cmake --build build --target sample_service >/dev/null
	DIAGNOSED=$(command -v diagnosed) CTL=$(command -v diagnosectl) PLUGINS=()
else
	scripts/build.sh build >/dev/null
	DIAGNOSED=$B/daemon/diagnosed CTL=$B/daemon/diagnosectl PLUGINS=(--plugin-dir "$B/plugins")
fi
D=$(mktemp -d /tmp/diagnose-demo.XXXXXX)
SVC= DAEMON=
cleanup() {
	[ -n "$DAEMON" ] && kill -TERM "$DAEMON" 2>/dev/null && wait "$DAEMON" 2>/dev/null
	[ -n "$SVC" ] && kill "$SVC" 2>/dev/null
	rm -rf "$D"
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
ctl() { echo "\$ diagnosectl $*" >&2; "$CTL" --socket "$D/sock" "$@"; }

step "a running service (it knows nothing about diagnose)"
"$B/examples/sample_service" 300 >"$D/service.out" &
SVC=$!
until grep -q serving "$D/service.out" 2>/dev/null; do sleep 0.01; done
cat "$D/service.out"

step "attach diagnosed to pid $SVC (no restart, no rebuild)"
"$DIAGNOSED" --pid "$SVC" --socket "$D/sock" --store "$D/specs.json" \
	"${PLUGINS[@]}" >"$D/daemon.out" 2>"$D/daemon.err" &
DAEMON=$!
for _ in $(seq 500); do [ -S "$D/sock" ] && break; sleep 0.01; done
ctl status

step "log every request's path (DWARF: req->path) for 6 seconds"
ctl add-probe --target handle_request --type log --name path --value 'req->path' \
	--lifespan 0.1 --id paths
timeout 2 "$CTL" --socket "$D/sock" tail paths | head -8 || true

step "a histogram of payload sizes (\$arg2 of compute_checksum, fast path: no trap per hit)"
ctl add-probe --target compute_checksum --type hist --name payload --value '$arg2' \
	--custom '{"unit":"bytes"}' --id sizes
ctl wait sizes --hits 500 --timeout 30
ctl stats sizes

step "count only large requests (a condition on a struct field)"
ctl add-probe --target handle_request --type incr --name large --value 'req->len' \
	--condition 'req->len > 4096' --id big
ctl wait big --hits 20 --timeout 30
ctl list

step "remove the probes; the 'paths' log expires by itself (lifespan 6 s)"
ctl remove-probe sizes
ctl remove-probe big
for _ in $(seq 300); do
	"$CTL" --socket "$D/sock" list | grep -q 'paths.*expired' && break
	sleep 0.05
done
ctl list

step "stop the daemon: every probe removed, the service never noticed"
kill -TERM "$DAEMON"; wait "$DAEMON" || true
DAEMON=
kill -0 "$SVC" && echo "service $SVC is still running"
