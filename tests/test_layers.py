"""The package is a house of floors: core <- methods <- world <- course, and imports only go down.

(world may use core; methods may use core but never world; course may use all.)
"""

import ast
from pathlib import Path

import pytest

import minidiff

ROOT = Path(minidiff.__file__).parent
ALLOWED = {
    "core": {"core"},
    "methods": {"core", "methods"},
    "world": {"core", "world"},
    "course": {"core", "methods", "world", "course"},
}


def minidiff_imports(path: Path) -> set[str]:
    """The minidiff sub-packages a module imports, from its relative and absolute imports."""
    layers = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            parts = (node.module or "").split(".")
            if node.level == 2 and parts[0]:  # from ..core.x import y
                layers.add(parts[0])
            elif node.level == 1:  # from .x import y: same layer
                layers.add(path.parent.name)
            elif parts[0] == "minidiff" and len(parts) > 1:
                layers.add(parts[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "minidiff" and len(parts) > 1:
                    layers.add(parts[1])
    return layers


@pytest.mark.parametrize("layer", sorted(layer for layer in ALLOWED if (ROOT / layer).is_dir()))
def test_imports_only_go_down(layer):
    folder = ROOT / layer
    for path in folder.glob("*.py"):
        bad = minidiff_imports(path) - ALLOWED[layer]
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}, above the {layer} layer"


def test_core_imports_nothing_from_above():
    assert minidiff_imports(ROOT / "core" / "sampling.py") <= {"core"}
