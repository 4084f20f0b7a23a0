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
