#!/usr/bin/env python3
"""p50 of the first histogram in a bpftrace output (hist or lhist: "[lo, hi)  count |@@|"
lines, with K/M suffixes), interpolated inside its bucket; prints nothing when there is none.
usage: hist_p50.py FILE"""
import re
import sys

MULT = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}
LINE = re.compile(r"^\s*[\[(]\s*([-\d.]+)([KMG]?),\s*([-\d.]*)([KMG]?)[\])]?\s+(\d+)\s*\|")


def num(v, s):
    return float(v) * MULT[s] if v not in ("", "...") else None


def main():
    rows = []
    for line in open(sys.argv[1], errors="replace"):
        m = LINE.match(line)
        if m:
            lo, hi = num(m.group(1), m.group(2)), num(m.group(3), m.group(4))
            rows.append((lo, hi if hi is not None else lo, int(m.group(5))))
        elif rows:
            break
    total = sum(c for _, _, c in rows)
    if not total:
        return
    half, acc = total / 2, 0
    for lo, hi, c in rows:
        if acc + c >= half:
            print(f"{lo + (hi - lo) * (half - acc) / c:.0f}")
            return
        acc += c


main()
