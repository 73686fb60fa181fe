#!/usr/bin/env bash
# Run the fault suite (tests/faults/test_*.sh) with FAULT_TRIALS repetitions (default 100) and
# rewrite the figures table in docs/reliability.md between its markers from the FIGURE lines
# the cases print (fault, trials, target survivals, specs lost, bytes left patched).
# usage: scripts/reliability.sh [BUILD_DIR]   (default build; needs root; builds what it needs)
#   FAULT_TRIALS (default 100): trials of the daemon-death cases (kill -9, OOM, fatal signals);
#   FAULT_TRIALS_OTHER (default FAULT_TRIALS): trials of the other repeated faults;
#   FAULT_JOBS (default 2): cases run side by side (each keeps its own daemon and fixtures).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
export FAULT_TRIALS=${FAULT_TRIALS:-100}
export DIAG_REL_REV=$(git rev-parse --short HEAD) # what was built, not what HEAD is at the end
export FAULT_TRIALS_OTHER=${FAULT_TRIALS_OTHER:-$FAULT_TRIALS}
other=$FAULT_TRIALS_OTHER
scripts/build.sh "$B" >/dev/null
export DIAG_BUILD_DIR=$PWD/$B DIAG_FIXTURE_DIR=$PWD/$B/fixtures DIAG_SRC_DIR=$PWD
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
run_case() { # CASE OUTDIR OTHER_TRIALS
	local n
	n=$(basename "$1" .sh)
	case $n in test_kill9_* | test_oom | test_daemon_fatal | test_daemon_fatal_capture | test_daemon_segv | test_capture_dead) ;; *) export FAULT_TRIALS=$3 ;; esac
	echo "== $1 (FAULT_TRIALS=$FAULT_TRIALS)" >&2
	local t0=$SECONDS
	bash "$1" > "$2/$n.out" 2>&1 || echo "FAILED: $1" >&2
	echo "$((SECONDS - t0))" > "$2/$n.secs"
}
export -f run_case
ls tests/faults/test_*.sh | xargs -P "${FAULT_JOBS:-2}" -I{} bash -c 'run_case "$@"' _ {} "$out" "$other"
status=0
for t in tests/faults/test_*.sh; do
	n=$(basename "$t" .sh) one="$out/$(basename "$t" .sh).out"
	grep -q '^all passed' "$one" || status=1
	grep '^FAIL' "$one" >&2 || true
	# a case that failed before printing its figure still gets a row
	if grep -q '^FIGURE|' "$one"; then grep '^FIGURE|' "$one" >> "$out/rows"; else
		echo "FIGURE|$n (did not complete)|-|-|-|-" >> "$out/rows"; fi
	if grep -q '^FAIL' "$one"; then
		echo "NOTE|$n: $(grep -c '^FAIL' "$one") failed assertion(s)" >> "$out/rows"; fi
	echo "NOTE|$n took $(cat "$out/$n.secs") s" >> "$out/times"
done
out_rows=$out/rows
sed 's/^NOTE|//' "$out/times" >&2
python3 - "$out_rows" docs/reliability.md <<'PY'
import sys, datetime, subprocess
rows, notes = [], []
for line in open(sys.argv[1]):
    p = line.rstrip("\n").split("|")
    if p[0] == "FIGURE":
        rows.append(p[1:6])
    elif p[0] == "NOTE":
        notes.append(p[1])
rev = __import__("os").environ["DIAG_REL_REV"]
table = ["<!-- figures:begin (scripts/reliability.sh rewrites this block) -->",
         f"Run {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC at {rev}: daemon-death cases {__import__('os').environ.get('FAULT_TRIALS')} trials each, other repeated faults {__import__('os').environ.get('FAULT_TRIALS_OTHER') or __import__('os').environ.get('FAULT_TRIALS')}.",
         "",
         "| fault | trials | target survivals | specs lost | bytes left patched |",
         "|---|---|---|---|---|"]
table += ["| " + " | ".join(r) + " |" for r in rows]
if notes:
    table += ["", "Failed assertions in this run (see the cases' output):"] + [f"- {n}" for n in notes]
table.append("<!-- figures:end -->")
path = sys.argv[2]
doc = open(path).read()
b, e = "<!-- figures:begin", "<!-- figures:end -->"
if b in doc and e in doc:
    start = doc.index(b); end = doc.index(e) + len(e)
    doc = doc[:start] + "\n".join(table) + doc[end:]
else:
    doc = doc.rstrip("\n") + "\n\n## Figures\n\n" + "\n".join(table) + "\n"
open(path, "w").write(doc)
PY
echo "docs/reliability.md: figures table rewritten" >&2
exit $status
