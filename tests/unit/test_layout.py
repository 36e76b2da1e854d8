"""The package reads in the data's order: stage folders, imports only downward, no import circle,
and the Stash side on the standard library alone. Computed from the source (every import, also
those inside functions), so a new module cannot quietly break the layering.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "tagger"

LAYERS = ("", "stashside", "media", "decide", "analyzers", "engine", "writeback", "faces", "run", "apps")
"""Stage folders from the bottom up ("" = the flat modules: errors, config, detections, redact).
A module may import from its own folder and from the folders below it."""

STASH_SIDE_MAY_USE = {"tagger.errors", "tagger.redact", "tagger.config", "tagger.families"}
"""Flat modules the Stash side uses; they import only the standard library at load time
(``tagger.families``: the analyzer registry ``tagger.config`` checks names against)."""


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports_of(path: Path, *, top_level_only: bool = False) -> set[str]:
    """Every module ``path`` imports (a ``from package import module`` names the module)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names
                         if f"{node.module}.{alias.name}" in MODULES)
    return found


def graph() -> dict[str, set[str]]:
    return {name: {m for m in imports_of(path) if m in MODULES and m != name}
            for name, path in MODULES.items()}


def layer(module: str) -> int:
    parts = module.split(".")
    folder = parts[1] if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()) else ""
    return LAYERS.index(folder)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(edges[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_every_module_lives_in_a_stage_folder_the_layering_knows() -> None:
    unknown = sorted(m for m in MODULES if m != "tagger" and m.split(".")[1] not in LAYERS
                     and not (PACKAGE / f"{m.split('.')[1]}.py").is_file())
    assert unknown == []


def test_there_is_no_import_circle() -> None:
    assert cycles(graph()) == []


def test_the_cycle_finder_sees_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_from_a_later_stage() -> None:
    upward = sorted(f"{source} -> {target}" for source, targets in graph().items() for target in targets
                    if layer(target) > layer(source))
    assert upward == []


def test_the_stash_side_imports_only_the_standard_library() -> None:
    """Stash's Docker image runs the hook and the relay with a bare Python: nothing else may load."""
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    side = {name: path for name, path in MODULES.items() if name.startswith("tagger.stashside")}
    assert side, "the Stash side has modules"
    outside = sorted(f"{name}: {imported}" for name, path in side.items() for imported in imports_of(path)
                     if imported.split(".")[0] not in stdlib and not imported.startswith("tagger.stashside")
                     and imported not in STASH_SIDE_MAY_USE and imported != "tagger")
    assert outside == []
    flat = sorted(f"{name}: {imported}" for name in STASH_SIDE_MAY_USE
                  for imported in imports_of(MODULES[name], top_level_only=True)
                  if imported.split(".")[0] not in stdlib and imported not in STASH_SIDE_MAY_USE)
    assert flat == []


MAX_FUNCTION_LINES = 80
"""Longest function or method in the package, decorators excluded: a longer one is steps waiting
for names of their own."""


def functions_over(limit: int, paths: dict[str, Path]) -> list[str]:
    """``module.function (lines)`` for every function in ``paths`` longer than ``limit`` lines."""
    found = []
    for name, path in sorted(paths.items()):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > limit:
                    found.append(f"{name}.{node.name} ({lines} lines, line {node.lineno})")
    return found


def test_no_function_is_longer_than_the_limit() -> None:
    assert functions_over(MAX_FUNCTION_LINES, MODULES) == []


def test_the_length_check_sees_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    path = tmp_path / "long.py"
    path.write_text(f"def short() -> None:\n    pass\n\n\ndef long() -> None:\n{body}\n")
    assert functions_over(MAX_FUNCTION_LINES, {"long": path}) == [
        f"long.long ({MAX_FUNCTION_LINES + 1} lines, line 5)"
    ]


def figures() -> str:
    """The package's shape in numbers: modules, import edges, import levels, circles, upward imports."""
    edges = graph()
    levels: dict[str, int] = {}

    def level(module: str) -> int:  # the longest chain of imports below a module (no circles here)
        if module not in levels:
            levels[module] = 1 + max((level(t) for t in edges[module]), default=0)
        return levels[module]

    upward = sum(layer(t) > layer(s) for s, targets in edges.items() for t in targets)
    circles = cycles(edges)
    deepest = max(level(m) for m in edges) if not circles else "n/a (circles)"
    imports = sum(map(len, edges.values()))
    return (f"{len(edges)} modules in {len(LAYERS)} stage folders, {imports} import edges, "
            f"{deepest} levels, {len(circles)} circles, {upward} upward imports")


if __name__ == "__main__":  # python -m tests.unit.test_layout
    print(figures())
