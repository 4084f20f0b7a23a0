"""JupyterLab, where the course says you drag sliders to explore: an explorer answers a slider in a real browser.

JupyterLab runs headless on localhost (a free port, a token; stopped at the end) with the same launcher as
`bash scripts/course.sh`, on a folder holding one small notebook that uses `minidiff.course.widgets.explore`.
Its Python is MINIDIFF_LAB_PYTHON where set (scripts/test.sh points it at the course environment), else this one.
The test runs all its cells from the Run menu, moves the slider with the keyboard, and compares screenshots of
the figure before and after; it also checks the figure is shown at its own pixel size, not stretched.
"""

from __future__ import annotations

import importlib.util
import io
import os
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
from matplotlib import pyplot as plt
from playwright.sync_api import TimeoutError as PlaywrightTimeout

REPO = Path(__file__).resolve().parents[2]
EXPLORER = '''\
import matplotlib.pyplot as plt
from minidiff.course.widgets import explore

def render(level):
    fig, ax = plt.subplots(figsize=(3, 2), dpi=80)
    ax.bar([0, 1, 2], [level, 3 - level, 1.5], color=["C0", "C1", "C2"])
    ax.set_ylim(0, 3)
    ax.set_title(f"level {level}")
    return fig

explore(render, level=[0, 1, 2, 3])'''


def load_launcher():
    spec = importlib.util.spec_from_file_location("course_lab", REPO / "scripts" / "lab.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def lab(tmp_path):
    """(base URL, token) of a JupyterLab serving tmp_path, which holds explorer.ipynb."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(EXPLORER)]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, tmp_path / "explorer.ipynb")
    launcher = load_launcher()
    python = os.environ.get("MINIDIFF_LAB_PYTHON") or sys.executable
    lab = launcher.start_lab(root=tmp_path, log=tmp_path / "lab.log", python=python, first="explorer.ipynb")
    try:
        launcher.wait_until_ready(lab, timeout=120)
        yield lab.base, lab.token
    finally:
        launcher.stop(lab)


def pixels(png: bytes) -> np.ndarray:
    return plt.imread(io.BytesIO(png), format="png")[..., :3]


def test_an_explorer_answers_its_slider_in_jupyterlab_at_its_own_pixel_size(watched_page, lab):
    base, token = lab
    page = watched_page.page
    page.goto(f"{base}/lab/tree/explorer.ipynb?token={token}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.wait_for_selector("#jp-main-statusbar >> text=Idle", timeout=60_000)  # the kernel has started
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    image = page.locator(".jp-OutputArea img.widget-image")
    image.wait_for(state="visible", timeout=60_000)
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    before = image.screenshot()
    natural, shown = image.evaluate("img => [img.naturalWidth, img.getBoundingClientRect().width]")
    assert abs(natural - shown) <= 1, f"the figure is {natural} px wide but shown {shown:.0f} px wide"

    source = image.get_attribute("src")
    handle = page.locator(".widget-slider .noUi-handle").first
    handle.focus()
    handle.press("ArrowRight")
    try:
        page.wait_for_function("([img, old]) => img.src !== old", arg=[image.element_handle(), source])
    except PlaywrightTimeout:
        pytest.fail("the slider moved but the explorer showed no new figure within 30 s")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    after = image.screenshot()
    a, b = pixels(before), pixels(after)
    changed = a.shape != b.shape or np.abs(a - b).max(axis=-1).mean() > 0.005
    assert changed, "the slider moved but the figure did not change"
    assert page.locator(".widget-readout").first.inner_text().strip() == "3"  # started in the middle (2 of 0-3), moved once

    errors = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    assert not [text for text in errors.all_inner_texts() if "Error" in text or "Traceback" in text]
    assert not watched_page.problems()
