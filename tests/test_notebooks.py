"""The chapters as stored: valid notebooks, every cell with an id, no outputs (the book and CI execute them)."""

import json
from pathlib import Path

import nbformat
import pytest

CHAPTERS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_each_chapter_is_stored_valid_with_cell_ids_and_without_outputs(path):
    raw = json.loads(path.read_text())
    missing = [i for i, cell in enumerate(raw["cells"]) if "id" not in cell]
    assert not missing, f"cells without an id (nbformat will refuse them): {missing}"
    nbformat.validate(nbformat.reads(path.read_text(), as_version=4))
    with_outputs = [i for i, cell in enumerate(raw["cells"]) if cell["cell_type"] == "code" and cell["outputs"]]
    assert not with_outputs, f"cells stored with outputs: {with_outputs}"
