"""The package is a house of floors: core <- methods <- world <- course, and imports only go down.

(world may use core; methods may use core but never world; course may use all.) Within the floors: no module
imports another that imports it back (no cycle), imports sit at the top of a module (an import inside a function
hides a dependency and, often, a cycle), no module reaches into another's ``_private`` names, and no file of the
course layer grows past what a reader takes in at once.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import minidiff

ROOT = Path(minidiff.__file__).parent
REPO = ROOT.parent
ALLOWED = {
    "core": {"core"},
    "methods": {"core", "methods"},
    "world": {"core", "world"},
    "course": {"core", "methods", "world", "course"},
}
#: imports that may stay inside a function, and why: each pulls a heavy library that most callers never need
DEFERRED = {
    ("core/checkpoint.py", "minidiff.core.text_encoder"): "transformers takes seconds to import; `import minidiff` should not",
    ("world/photos.py", "skimage.data"): "scikit-image loads only when a photograph is first drawn",
}
#: the longest a file of the course layer may be
COURSE_LINES = 330


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(path: Path, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` reads from."""
    if node.level == 0:
        return node.module or ""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(path: Path, top_level_only: bool = True) -> list[tuple[str, ast.AST]]:
    """``(module, node)`` for every import of a file; ``from .x import y`` counts ``.x.y`` too when ``y`` is a module."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out = []
    for node in nodes:
        if isinstance(node, ast.Import):
            out += [(alias.name, node) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = resolve(path, node)
            out.append((mod, node))
            for alias in node.names:  # `from . import detail_edits` imports a module
                sub = f"{mod}.{alias.name}"
                if (REPO / Path(*sub.split("."))).with_suffix(".py").exists() or (REPO / Path(*sub.split(".")) / "__init__.py").exists():
                    out.append((sub, node))
    return out


FILES = sorted(ROOT.rglob("*.py"))


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "minidiff" else None


@pytest.mark.parametrize("floor", sorted(ALLOWED))
def test_imports_only_go_down(floor):
    for path in (ROOT / floor).rglob("*.py"):
        bad = {layer(m) for m, _ in imports(path, top_level_only=False)} - ALLOWED[floor] - {None}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}, above the {floor} layer"


def test_no_import_cycle():
    graph = {module_name(p): {m for m, _ in imports(p) if m.startswith("minidiff")} for p in FILES}
    # a package's __init__ runs before any of its modules: importing minidiff.a.b imports minidiff.a first
    for mod in list(graph):
        graph[mod] = {dep for dep in graph[mod] if dep in graph and dep != mod}
    done, stack = set(), []

    def visit(mod: str) -> None:
        if mod in stack:
            cycle = stack[stack.index(mod):] + [mod]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if mod in done:
            return
        stack.append(mod)
        for dep in sorted(graph[mod]):
            if not mod.startswith(dep + "."):  # a module importing its own package's names is no cycle
                visit(dep)
        stack.pop()
        done.add(mod)

    for mod in sorted(graph):
        visit(mod)


def test_imports_sit_at_the_top_of_each_module():
    inner = []
    for path in FILES:
        top = {node.lineno for _, node in imports(path)}
        for mod, node in imports(path, top_level_only=False):
            if node.lineno not in top:
                key = (str(path.relative_to(ROOT)), mod)
                if key not in DEFERRED and not any(key[0] == f and mod.startswith(m + ".") for f, m in DEFERRED):
                    inner.append(f"{key[0]}:{node.lineno} imports {mod} inside a function")
    assert not inner, "\n".join(sorted(set(inner)))


def test_no_module_imports_another_modules_private_names():
    leaks = []
    for path in [*FILES, *sorted((REPO / "benchmarks").glob("*.py")), *sorted((REPO / "tests").rglob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("minidiff", ""):
                leaks += [f"{path.relative_to(REPO)}:{node.lineno} imports {a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
    assert not leaks, "\n".join(leaks)


def test_course_files_stay_short():
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "course").rglob("*.py") if (n := len(p.read_text().splitlines())) > COURSE_LINES}
    assert not long, f"course files over {COURSE_LINES} lines: {long}"


def test_core_imports_nothing_from_above():
    assert {layer(m) for m, _ in imports(ROOT / "core" / "sampling.py")} <= {"core", None}
