#!/usr/bin/env python3
"""Fails when two modules of a crate import each other, directly or through others.

For every crate under crates/, each source file is a module (`src/a/b.rs` and `src/a/b/mod.rs` are
`a::b`; `lib.rs`/`main.rs` is the root). A module depends on another when its code (comments,
strings and `#[cfg(test)]` code left out) names `crate::x::y`, in a `use` (braces included) or a path,
or `super::y`. Names re-exported by the crate root, and a child's use of its own ancestors, are not
followed. Prints every cycle found and exits 1, else a summary."""
import re, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent / "crates"

def module_of(src: Path, f: Path):
    rel = f.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("lib", "main", "mod"):
        parts = parts[:-1]
    return tuple(parts)

def strip(text):
    text = re.sub(r"//[^\n]*", "", text)                      # comments and doc comments
    text = re.sub(r'"(\\.|[^"\\])*"', '""', text)               # string literals
    i = text.find("#[cfg(test)]")
    return text if i < 0 else text[:i]                        # tests may use anything

def deps(mod, text, modules):
    out = set()
    names = []
    for m in re.finditer(r"\bcrate((?:::\w+)+)", text):
        names.append(tuple(m.group(1).strip(":").split("::")))
    for m in re.finditer(r"\bsuper((?:::\w+)+)", text):
        names.append(mod[:-1] + tuple(m.group(1).strip(":").split("::")))
    # `use crate::x::{a, b::c}`: the braces name modules too.
    for m in re.finditer(r"\bcrate((?:::\w+)*)::\{([^}]*)\}", text):
        base = tuple(m.group(1).strip(":").split("::")) if m.group(1) else ()
        for item in m.group(2).split(","):
            item = item.strip()
            if item:
                names.append(base + tuple(item.split("::")))
    for path in names:
        # The longest prefix that is a module.
        for n in range(len(path), 0, -1):
            if path[:n] in modules:
                if path[:n] != mod and mod[:len(path[:n])] != path[:n]:
                    out.add(path[:n])
                break
    return out

cycles = []
total = 0
for crate in sorted(p for p in root.iterdir() if (p / "src").is_dir()):
    src = crate / "src"
    files = {module_of(src, f): f for f in src.rglob("*.rs")}
    modules = set(files)
    graph = {m: deps(m, strip(f.read_text()), modules) for m, f in files.items()}
    total += len(graph)
    # Tarjan's strongly connected components.
    index, low, stack, on, counter = {}, {}, [], set(), [0]
    def visit(v):
        index[v] = low[v] = counter[0]; counter[0] += 1
        stack.append(v); on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1:
                cycles.append((crate.name, sorted("::".join(c) or "(root)" for c in comp)))
    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)

for crate, comp in cycles:
    print(f"{crate}: modules that depend on each other: {', '.join(comp)}")
if cycles:
    sys.exit(1)
print(f"no module cycles among {total} modules")
