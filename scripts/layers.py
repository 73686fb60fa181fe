#!/usr/bin/env python3
"""layers: checks the shape of the tree that docs/architecture.md describes.

usage: scripts/layers.py [BUILD_DIR]

1. The folder map. docs/architecture.md has a table "| folder | owns | never | may include |";
   every quoted #include in a folder's files must name a folder its row allows (or itself).
2. No include circle between files (quoted includes, resolved as the compiler does).
3. No call circle between the files of one folder: from the object files in BUILD_DIR, a file
   that calls a function defined in another file of its folder depends on it; those
   dependencies must form no cycle (a folder's files call down in one order). Enforced for the
   folders in CALLS_ACYCLIC; the circles of the others are printed as notes (known, see
   docs/architecture.md).
4. The arch seam: nothing outside lib/arch/ includes lib/arch/<arch>/ or names an x86-64
   register field.
Prints every violation and exits 1 when there is one. Reads only; never builds."""
import os
import re
import subprocess
import sys

CALLS_ACYCLIC = {"lib/engine", "daemon", "lib/sym", "lib/util", "lib/ptrace", "lib/spec"}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC_DIRS = ["lib", "daemon", "plugins", "include"]
INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
X86_FIELD_RE = re.compile(
    r"(\.|->)(rip|rsp|rbp|rax|rbx|rcx|rdx|rsi|rdi|eflags|orig_rax|fs_base)\b|"
    r"user_regs_struct|user_fpregs_struct")


def sources():
    for top in SRC_DIRS:
        for d, _, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                if f.endswith((".c", ".h")):
                    yield os.path.relpath(os.path.join(d, f), ROOT)


def folder_of(path):
    parts = path.split("/")
    if parts[0] == "lib" and len(parts) > 2:
        if parts[1] == "arch":
            return "lib/arch"
        return "lib/" + parts[1]
    return parts[0]


def resolve(src, inc):
    """The file a quoted include names, as -I include -I lib and the includer's folder find it."""
    for base in (os.path.dirname(src), "lib", "include"):
        cand = os.path.normpath(os.path.join(base, inc))
        if os.path.isfile(os.path.join(ROOT, cand)):
            return cand
    return None


def read_map():
    """{folder: set of folders it may include} from docs/architecture.md's map table."""
    text = open(os.path.join(ROOT, "docs/architecture.md"), encoding="utf-8").read()
    allowed = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not cells[0].startswith("`"):
            continue
        folder = cells[0].strip("`").rstrip("/")
        may = set(re.findall(r"`([^`]+)`", cells[3]))
        allowed[folder] = {m.rstrip("/") for m in may}
    return allowed


def find_cycles(graph):
    """Every elementary cycle found by a depth-first walk (one representative per back edge)."""
    cycles, state, stack = [], {}, []

    def walk(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                cycles.append(stack[stack.index(m):] + [m])
            elif m not in state:
                walk(m)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            walk(n)
    return cycles


def check_includes(errors):
    allowed = read_map()
    if not allowed:
        errors.append("docs/architecture.md: no folder map table (| `folder` | owns | never | may include |)")
    graph = {}
    for src in sources():
        text = open(os.path.join(ROOT, src), encoding="utf-8", errors="replace").read()
        folder = folder_of(src)
        for inc in INCLUDE_RE.findall(text):
            dst = resolve(src, inc)
            if not dst:
                continue
            graph.setdefault(src, set()).add(dst)
            to = folder_of(dst)
            if allowed and to != folder and to not in allowed.get(folder, set()):
                errors.append(f"{src}: includes {dst}, but {folder} may not include {to} "
                              f"(docs/architecture.md's map)")
            if dst.startswith("lib/arch/") and dst.count("/") > 2 and not src.startswith("lib/arch/"):
                errors.append(f"{src}: includes {dst} (architecture-specific) from outside lib/arch/")
        if not src.startswith("lib/arch/"):
            for n, line in enumerate(text.splitlines(), 1):
                if X86_FIELD_RE.search(line) and not line.lstrip().startswith(("*", "/*", "//")):
                    errors.append(f"{src}:{n}: names an x86-64 register outside lib/arch/: {line.strip()}")
    for c in find_cycles(graph):
        errors.append("include circle: " + " -> ".join(c))


def object_files(build):
    for d, _, files in os.walk(build):
        for f in files:
            if f.endswith(".c.o") and "CMakeFiles" in d:
                rel = os.path.relpath(os.path.join(d, f), build)
                m = re.search(r"\.dir/(.*)\.o$", rel)
                if not m:
                    continue
                prefix = rel.split("/CMakeFiles/")[0] if "/CMakeFiles/" in rel else ""
                src = os.path.join(prefix, m.group(1)) if prefix else m.group(1)
                if src.split("/")[0] in ("lib", "daemon", "plugins"):
                    yield src, os.path.join(d, f)


def symbols(obj):
    out = subprocess.run(["nm", obj], capture_output=True, text=True, check=True).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "U":
            undefined.add(parts[1])
        elif len(parts) == 3 and parts[1] in "TDBR":
            defined.add(parts[2])
    return defined, undefined


def check_calls(build, errors, notes):
    objs = {}
    for src, obj in object_files(build):
        objs.setdefault(src, obj)  # one build of each file is enough
    if not objs:
        errors.append(f"{build}: no object files (build first)")
        return
    syms = {src: symbols(obj) for src, obj in objs.items()}
    by_folder = {}
    for src in syms:
        by_folder.setdefault(os.path.dirname(src), []).append(src)
    for folder, files in sorted(by_folder.items()):
        owner = {}
        for f in files:
            for s in syms[f][0]:
                owner[s] = f
        graph = {f: {owner[s] for s in syms[f][1] if s in owner and owner[s] != f} for f in files}
        for c in find_cycles(graph):
            line = f"call circle in {folder}/: " + " -> ".join(os.path.basename(x) for x in c)
            (errors if folder in CALLS_ACYCLIC else notes).append(line)


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build")
    errors, notes = [], []
    check_includes(errors)
    check_calls(build, errors, notes)
    for n in notes:
        print("layers: note: " + n)
    for e in errors:
        print("layers: " + e)
    if not errors:
        print("layers: folder map, include graph, call graph and arch seam are clean")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
