"""The README a newcomer reads first: its chapter table is one table with a row per notebook."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_chapter_table_is_one_table_with_a_row_per_notebook():
    lines = (REPO / "README.md").read_text().splitlines()
    header = lines.index("| notebook | you will learn |")
    table = []
    for line in lines[header:]:
        if not line.startswith("|"):
            break  # a blank line ends a Markdown table: rows after it would render as a second one
        table.append(line)
    rows = [line.split("|")[1].strip().strip("`") for line in table[2:]]
    chapters = sorted(path.stem for path in (REPO / "notebooks").glob("*.ipynb"))
    assert rows == chapters, f"the table's rows {rows} are not the chapters {chapters}"


def resolve(path: str):
    """The module or object a dotted name ``minidiff.a.b.c`` names."""
    import importlib

    parts = path.split(".")
    for k in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:k]))
        except ModuleNotFoundError:
            continue
        for name in parts[k:]:
            obj = getattr(obj, name)
        return obj
    raise ModuleNotFoundError(path)


def test_the_api_table_names_what_the_package_has():
    """Every name in the README's API table exists: the modules and objects of its first column, and the functions
    and classes its second column says a module row holds."""
    import importlib.util
    import re
    import sys

    import minidiff

    lines = (REPO / "README.md").read_text().splitlines()
    start = lines.index("| name | what it is |")
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    assert len(rows) > 20
    for row in rows:
        cells = row.split("|")
        name, what = cells[1], "|".join(cells[2:])
        owners = [resolve(m) for m in re.findall(r"`(minidiff(?:\.\w+)+)", name)]
        paths = re.findall(r"`(minidiff(?:\.\w+)+)", name)
        owners += [resolve(paths[0].rsplit(".", 1)[0] + "." + sib) for sib in re.findall(r"`\.(\w+)`", name)]  # `.captions`
        owners += [sys.modules[o.__module__] for o in owners if not hasattr(o, "__file__")]  # a function's module
        for word in re.findall(r"`(\w+)[(`,]", name):
            if word != "minidiff":
                assert hasattr(minidiff, word) or any(hasattr(o, word) for o in owners), f"{word}: {row[:70]}"
        modules = [o for o in owners if hasattr(o, "__file__")]
        if not modules:
            continue
        for word in re.findall(r"`(\w+)\(", what):  # functions the row says its modules have: `name(...)`
            found = any(hasattr(m, word) for m in modules) or any(
                importlib.util.find_spec(f"{m.__name__}.{word}") for m in modules if hasattr(m, "__path__"))
            assert found, f"{word} is not in {[m.__name__ for m in modules]}"
