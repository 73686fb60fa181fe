#!/usr/bin/env bash
# Run the fault suite (tests/faults/test_*.sh) with FAULT_TRIALS repetitions (default 100) and
# rewrite the figures table in docs/reliability.md between its markers from the FIGURE lines
# the cases print (fault, trials, target survivals, specs lost, bytes left patched).
# usage: scripts/reliability.sh [BUILD_DIR]   (default build; needs root; builds what it needs)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
export FAULT_TRIALS=${FAULT_TRIALS:-100}
scripts/build.sh "$B" >/dev/null
export DIAG_BUILD_DIR=$PWD/$B DIAG_FIXTURE_DIR=$PWD/$B/fixtures DIAG_SRC_DIR=$PWD
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
for t in tests/faults/test_*.sh; do
	echo "== $t (FAULT_TRIALS=$FAULT_TRIALS)" >&2
	if ! bash "$t" > "$out.one" 2>&1; then
		status=1
		echo "FAILED: $t" >&2
		grep '^FAIL' "$out.one" >&2 || true
	fi
	# a case that failed before printing its figure still gets a row
	if grep -q '^FIGURE|' "$out.one"; then grep '^FIGURE|' "$out.one" >> "$out"; else
		echo "FIGURE|$(basename "$t" .sh) (did not complete)|-|-|-|-" >> "$out"; fi
	if grep -q '^FAIL' "$out.one"; then
		echo "NOTE|$(basename "$t" .sh): $(grep -c '^FAIL' "$out.one") failed assertion(s)" >> "$out"; fi
done
rm -f "$out.one"
python3 - "$out" docs/reliability.md <<'PY'
import sys, datetime, subprocess
rows, notes = [], []
for line in open(sys.argv[1]):
    p = line.rstrip("\n").split("|")
    if p[0] == "FIGURE":
        rows.append(p[1:6])
    elif p[0] == "NOTE":
        notes.append(p[1])
rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
table = ["<!-- figures:begin (scripts/reliability.sh rewrites this block) -->",
         f"Run {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC at {rev}, FAULT_TRIALS={__import__('os').environ.get('FAULT_TRIALS')}.",
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
