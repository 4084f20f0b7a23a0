"""Every third-party module the package or a chapter imports is declared where the course command installs it.

`bash scripts/course.sh` installs `minidiff[course]`: the core dependencies plus the `course` extra. A module that
`minidiff/` or a notebook imports but that only `dev` declares works in the test environment and fails for every
student (this test was written after the text encoder's `transformers` was declared in `dev` alone). The test reads
the imports (including those inside functions), maps each module to the distribution that installs it, and requires
that distribution to be named directly in `[project] dependencies` or the `course` extra.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from importlib import metadata
from pathlib import Path

import yaml

try:
    import tomllib
except ImportError:  # Python 3.10: pytest itself depends on tomli there
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]


def normalise(name: str) -> str:
    """PEP 503 project-name normalisation: 'scikit_image' and 'Scikit-Image' are the same project."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return normalise(re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1))


def requirements(extra: str | None) -> set[str]:
    """The projects `pip install -e .[extra]` (or `.` for None) is told to install directly, self-references followed."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {})
    names, todo = set(), list(project["dependencies"]) + (list(extras[extra]) if extra else [])
    while todo:
        requirement = todo.pop()
        self_reference = re.match(r"\s*minidiff\[([^\]]+)\]", requirement)
        if self_reference:
            for extra in self_reference.group(1).split(","):
                todo.extend(extras[extra.strip()])
        else:
            names.add(requirement_name(requirement))
    return names


def top_level_imports(source: str, filename: str = "<source>") -> set[str]:
    """Top-level names of every absolute import in `source`, wherever it stands (function bodies included)."""
    names = set()
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def notebook_source(path: Path) -> str:
    """A notebook's code cells as one Python source, IPython magics and shell lines left out."""
    cells = json.loads(path.read_text())["cells"]
    lines = [
        line
        for cell in cells
        if cell["cell_type"] == "code"
        for line in "".join(cell["source"]).splitlines()
        if not line.lstrip().startswith(("%", "!"))
    ]
    if any(cell["cell_type"] == "code" and "".join(cell["source"]).startswith("%%") for cell in cells):
        raise ValueError(f"{path}: a cell magic (%%...) hides its cell from this test; read that cell another way")
    return "\n".join(lines)


def third_party_imports(*folders: str) -> dict[str, set[str]]:
    """{module: files importing it} over the folders' .py files and notebooks, standard library and minidiff left out."""
    sources = {}
    for folder in folders:
        sources.update({path: path.read_text() for path in sorted((REPO / folder).rglob("*.py"))})
        sources.update({path: notebook_source(path) for path in sorted((REPO / folder).rglob("*.ipynb"))})
    found: dict[str, set[str]] = {}
    for path, source in sources.items():
        for name in top_level_imports(source, str(path)):
            if name not in sys.stdlib_module_names and name not in {"minidiff", "__future__"}:
                found.setdefault(name, set()).add(str(path.relative_to(REPO)))
    return found


def undeclared(imports: dict[str, set[str]], extra: str) -> list[str]:
    """One line per imported module whose distribution `pip install -e .[extra]` does not name directly."""
    declared = requirements(extra)
    providers = metadata.packages_distributions()
    missing = []
    for module, files in sorted(imports.items()):
        projects = {normalise(name) for name in providers.get(module, [])}
        if not projects:
            missing.append(f"{module} (imported by {sorted(files)}) is provided by no installed distribution")
        elif not projects & declared:
            where = f"neither [project] dependencies nor the {extra} extra" if extra else "[project] dependencies do not"
            missing.append(f"{module} (imported by {sorted(files)}) comes from {sorted(projects)}, which {where} "
                           f"of pyproject.toml declare{'s' if extra else ''}")
    return missing


def test_the_import_reader_sees_imports_inside_functions_and_ignores_relative_ones():
    source = "import torch.nn\nfrom .x import y\ndef f():\n    from transformers import CLIPTextModel\n"
    assert top_level_imports(source) == {"torch", "transformers"}


def test_a_module_declared_only_in_dev_is_reported_for_the_course():
    # the bug this file guards against: the text encoder's transformers declared in dev alone
    assert "diffusers" in requirements("dev") and "diffusers" not in requirements("course")
    (line,) = undeclared({"diffusers": {"minidiff/core/text_encoder.py"}}, "course")
    assert "diffusers" in line and "course extra" in line


def test_every_module_the_package_a_chapter_or_the_course_command_imports_is_installed_by_it():
    missing = undeclared(third_party_imports("minidiff", "notebooks", "scripts"), "course")
    assert not missing, "\n".join(missing)


def test_the_package_below_the_course_layer_needs_only_the_core_dependencies():
    # `pip install minidiff` (no extra) must be enough for core, methods and world; the course layer may use `course`
    folders = [f"minidiff/{layer}" for layer in ("core", "methods", "world")]
    missing = undeclared(third_party_imports(*folders), None)
    assert not missing, "\n".join(missing)


def test_the_books_sphinx_extensions_are_installed_by_the_course_command():
    config = yaml.safe_load((REPO / "book" / "_config.yml").read_text())
    local = set(config["sphinx"].get("local_extensions", {}))
    extensions = {name: {"book/_config.yml"} for name in config["sphinx"].get("extra_extensions", []) if name not in local}
    missing = undeclared(extensions, "course")
    assert not missing, "\n".join(missing)


def test_every_module_the_tests_and_benchmarks_import_is_installed_by_the_test_command():
    imports = third_party_imports("tests", "benchmarks")
    imports.pop("conftest", None)  # pytest's own conftest modules, not a distribution
    imports.pop("tomli", None)  # this file's fallback on Python 3.10, where pytest requires it
    missing = undeclared(imports, "dev")
    assert not missing, "\n".join(missing)
