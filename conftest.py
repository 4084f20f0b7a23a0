"""Repository-wide pytest hooks: print each notebook's wall time at the end of a run; collect tests/browser only
when it is named (it needs the built book and a Chromium)."""

from collections import defaultdict
from pathlib import Path

_notebook_seconds: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::")[0]
    if path.endswith(".ipynb"):
        _notebook_seconds[path] += report.duration


def pytest_terminal_summary(terminalreporter):
    if not _notebook_seconds:
        return
    terminalreporter.section("notebook wall time")
    for path, seconds in sorted(_notebook_seconds.items()):
        terminalreporter.write_line(f"{seconds:7.1f} s  {path}")


BROWSER_TESTS = Path(__file__).parent / "tests" / "browser"


def pytest_ignore_collect(collection_path, config):
    """tests/browser needs the built book and a Chromium: collected only when named (pytest tests/browser)."""
    if collection_path == BROWSER_TESTS:
        named = [Path(arg.split("::")[0]).resolve() for arg in config.args]
        return not any(path == BROWSER_TESTS or BROWSER_TESTS in path.parents for path in named)
    return None
