#!/usr/bin/env bash
# The Debian package, tested as a user gets it: builds it (scripts/package.sh: lintian errors
# fail), installs it with apt-get, checks what it installed (programs, plugins, unit, manual
# pages, completion, pkg-config file: a plugin compiles against the installed header), runs
# the demo against the installed programs, and removes the package again unless it was
# installed before. Needs root. usage: scripts/test_package.sh
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "test_package: FAIL: $*" >&2; exit 1; }
was_installed=0
dpkg-query -W -f='${Status}' diagnose 2>/dev/null | grep -q "install ok installed" && was_installed=1
deb=$(scripts/package.sh build-deb | tail -1)
[ -f "$deb" ] || fail "no package built"
T=$(mktemp -d /tmp/diagnose-pkg.XXXXXX)
cleanup() {
	rm -rf "$T"
	[ $was_installed = 1 ] || dpkg -r diagnose >/dev/null 2>&1 || true
}
trap cleanup EXIT
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$deb" >"$T/apt.log" 2>&1 ||
	{ cat "$T/apt.log" >&2; fail "apt-get install $deb"; }
for f in /usr/bin/diagnosed /usr/bin/diagnosectl /usr/bin/diagnose-indexer \
	/usr/lib/diagnose/plugins/log.so /usr/lib/diagnose/plugins/incr.so \
	/usr/lib/diagnose/plugins/hist.so /usr/lib/systemd/system/diagnosed.service \
	/usr/include/diagnose/instrument.h /usr/share/doc/diagnose/copyright; do
	[ -e "$f" ] || fail "the package did not install $f"
done
for page in diagnosed.8 diagnosectl.8 diagnose-indexer.8 diagnose-spec.5 diagnose-values.7; do
	man -w "${page%.*}" "${page##*.}" >/dev/null 2>&1 ||
		man -w "${page##*.}" "${page%.*}" >/dev/null || fail "no manual page $page"
done
grep -q '^ExecStart=/usr/bin/diagnosed ' /usr/lib/systemd/system/diagnosed.service ||
	fail "the installed unit does not start /usr/bin/diagnosed"
systemd-analyze verify /usr/lib/systemd/system/diagnosed.service >"$T/verify" 2>&1 ||
	{ cat "$T/verify" >&2; fail "systemd-analyze verify of the installed unit"; }
bash -c '. /usr/share/bash-completion/completions/diagnosectl && complete -p diagnosectl && complete -p diagnosed' \
	>/dev/null || fail "bash completion does not register diagnosectl and diagnosed"
# A plugin author's build: the header and pkg-config file of the package are enough.
cat >"$T/p.c" <<'C'
#include <diagnose/instrument.h>
static void *mk(const char *n, const char *c, const struct diag_host *h, char *e, size_t l)
{ (void)n; (void)c; (void)h; (void)e; (void)l; return (void *)1; }
static void fire(void *s, const struct diag_event *ev) { (void)s; (void)ev; }
static void destroy(void *s) { (void)s; }
__attribute__((visibility("default"))) const struct diag_instrument_ops diag_instrument = {
	.abi_version = DIAG_INSTRUMENT_ABI, .type = "p", .create = mk, .fire = fire, .destroy = destroy };
C
# shellcheck disable=SC2046
cc -Wall -Werror -shared -fPIC $(pkg-config --cflags diagnose-plugin) -o "$T/p.so" "$T/p.c" ||
	fail "a plugin does not compile against the installed header"
[ "$(pkg-config --variable=plugindir diagnose-plugin)" = /usr/lib/diagnose/plugins ] ||
	fail "pkg-config plugindir is not /usr/lib/diagnose/plugins"
DIAG_INSTALLED=1 scripts/demo.sh >"$T/demo.out" 2>&1 || { cat "$T/demo.out" >&2; fail "the demo with the installed programs"; }
grep -q 'is still running' "$T/demo.out" || { cat "$T/demo.out" >&2; fail "the demo did not finish"; }
grep -q 'Probe (path) = ' "$T/demo.out" || { cat "$T/demo.out" >&2; fail "the demo showed no event"; }
echo "test_package: PASS: $(basename "$deb") builds lintian-clean, installs, and runs the demo"
