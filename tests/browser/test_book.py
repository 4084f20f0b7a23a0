"""The built book: what a student sees in a browser with no network, and what the HTML itself must hold."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from bs4 import BeautifulSoup

REPO = Path(__file__).resolve().parents[2]

SCREENS = REPO / "_build" / "screens"
TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*\|", re.MULTILINE)  # the |---| line under a Markdown table's header
RAW_MATH = re.compile(r"\$\$|\$[^$\s][^$\n]*\$|\\\(|\\\[|\\begin\{")


def toc_pages() -> list[str]:
    """Every page of the book's table of contents, in reading order ('book/intro', 'notebooks/00_foundations', ...)."""
    toc = yaml.safe_load((REPO / "book" / "_toc.yml").read_text())
    pages = [toc["root"]]
    for part in toc.get("parts", []):
        pages += [chapter["file"] for chapter in part["chapters"]]
    return pages


CHAPTERS = [page for page in toc_pages() if page.startswith("notebooks/")]
# Figures each chapter's page showed when this test was written (counted in the built HTML). A chapter that stops
# producing one (a plot closed before it is shown, a kernel without the inline backend) fails; when a chapter gains
# figures, raise its number here.
FIGURES = {
    "00_foundations": 15, "01_world_and_models": 13, "02_sr3": 9, "03_cdm": 4, "04_sdedit": 7,
    "05_ilvr": 5, "06_inversion": 8, "07_attention_editing": 16, "08_optimisation_editing": 7,
}


def prose(soup: BeautifulSoup) -> str:
    """The article's text as a reader sees it: code, typeset or marked-up math, and scripts left out."""
    article = soup.select_one("article") or soup
    for tag in article.select("pre, code, script, style, .highlight, .math, mjx-container"):
        tag.decompose()
    return article.get_text(" ")


def computed_tables(executed: Path) -> int:
    """How many Markdown tables a chapter shows: in its markdown cells and in the Markdown its code computes."""
    count = 0
    for cell in json.loads(executed.read_text())["cells"]:
        texts = ["".join(cell["source"])] if cell["cell_type"] == "markdown" else [
            "".join(output["data"]["text/markdown"])
            for output in cell.get("outputs", [])
            if "text/markdown" in output.get("data", {})
        ]
        count += sum(len(TABLE_RULE.findall(text)) for text in texts)
    return count


@pytest.mark.parametrize("name", toc_pages())
def test_every_computed_table_is_an_html_table_and_no_raw_markdown_or_math_is_left(book_html, name):
    html = (book_html / f"{name}.html").read_text()
    soup = BeautifulSoup(html, "html.parser")
    if name in CHAPTERS:
        chapter = Path(name).name
        figures = len(soup.select("article img"))
        assert figures >= FIGURES[chapter], f"{name}: {figures} figures, {FIGURES[chapter]} expected"
        executed = book_html.parent / "jupyter_execute" / f"{name}.ipynb"
        assert executed.is_file(), f"{executed} missing: was the book built with execution?"
        tables, expected = len(soup.select("article table")), computed_tables(executed)
        assert tables >= expected, f"{name}: {expected} Markdown tables in the chapter, {tables} HTML tables on its page"
    text = prose(soup)
    assert not TABLE_RULE.search(text.replace(" | ", "|")), f"{name}: a table left as raw pipes"
    leftover = RAW_MATH.findall(text)
    assert not leftover, f"{name}: math left as raw text, not marked up for MathJax: {leftover[:5]}"


def test_the_chapters_figures_are_counted_in_the_table_above():
    assert sorted(FIGURES) == sorted(Path(chapter).name for chapter in CHAPTERS)


def test_no_page_loads_anything_from_outside(book_html):
    """No page's script, stylesheet or image tag, and no stylesheet's url() or @import, points off this machine: a
    script, stylesheet or font from a CDN would leave an offline student with raw LaTeX or no widgets. (The browser
    tests below also refuse every outside request the pages they open make.)"""
    tags = re.compile(r"<(?:script|link|img)\b[^>]*(?:src|href)=[\"']?(https?://[^\"' >]+)")
    css = re.compile(r"(?:url\(\s*[\"']?|@import\s+[\"'])(https?://[^\"')]+)")
    found = {str(page.relative_to(book_html)): tags.findall(page.read_text()) for page in book_html.rglob("*.html")}
    found.update({str(sheet.relative_to(book_html)): css.findall(sheet.read_text(errors="replace"))
                  for sheet in book_html.rglob("*.css")})
    assert not {page: urls for page, urls in found.items() if urls}


def untypeset_formulas(page) -> list[str]:
    """The marked-up formulas (.math) MathJax did not typeset, and those it typeset as an error: a TeX error
    becomes mjx-merror, an undefined macro red text (MathJax's noundefined)."""
    return page.evaluate(
        "() => { const missing = Array.from(document.querySelectorAll('.math'))"
        ".filter(e => !e.querySelector('mjx-container')).map(e => e.textContent);"
        " const wrong = window.MathJax && MathJax.startup.document ? Array.from(MathJax.startup.document.math)"
        ".filter(m => m.typesetRoot && m.typesetRoot.querySelector(\"mjx-merror, mjx-mtext[style*='color: red']\"))"
        ".map(m => m.math) : []; return missing.concat(wrong); }"
    )


def settle(page) -> None:
    """Wait until MathJax has typeset the page and every image has loaded (or failed)."""
    page.wait_for_load_state("load")
    page.evaluate(
        "async () => { if (window.MathJax && MathJax.startup) await MathJax.startup.promise;"
        " await Promise.all(Array.from(document.images).map(i => { i.loading = 'eager';"
        " return i.decode().catch(() => null); })); }"
    )


@pytest.mark.parametrize("name", toc_pages())
def test_every_page_renders_offline_with_its_figures_and_formulas(watched_page, book_url, name):
    page = watched_page.page
    page.goto(f"{book_url}/{name}.html")
    settle(page)
    broken = page.evaluate("Array.from(document.images).filter(i => !i.naturalWidth).map(i => i.src)")
    assert not broken, f"images that did not load: {broken}"
    soup = BeautifulSoup(page.content(), "html.parser")
    leftover = RAW_MATH.findall(prose(soup))
    assert not leftover, f"formulas MathJax did not typeset: {leftover[:5]}"
    bad = untypeset_formulas(page)
    assert not bad, f"formulas MathJax did not typeset, or could not read: {bad[:5]}"
    if name.startswith("notebooks/"):
        SCREENS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENS / f"{Path(name).name}.png"))
    assert not watched_page.problems()


def test_a_chapter_with_many_formulas_has_them_all_typeset(watched_page, book_url):
    """The check above passes vacuously on a page without math; this chapter has many formulas."""
    page = watched_page.page
    page.goto(f"{book_url}/notebooks/00_foundations.html")
    settle(page)
    marked = page.evaluate("document.querySelectorAll('.math').length")
    assert marked > 10, f"only {marked} formulas marked up in chapter 0"
    assert not untypeset_formulas(page)
    assert not watched_page.problems()


@pytest.mark.parametrize("term", ["null-text", "SDEdit"])
def test_search_finds_the_chapters_words(watched_page, book_url, term):
    page = watched_page.page
    page.goto(f"{book_url}/search.html?q={term}")
    page.wait_for_selector("#search-results li")
    hits = page.eval_on_selector_all("#search-results li a", "links => links.map(a => a.getAttribute('href'))")
    assert any("notebooks/" in hit for hit in hits), f"search for {term!r} found no chapter: {hits}"
    assert not watched_page.problems()


def test_the_navigation_reaches_every_page_in_order(watched_page, book_url):
    """From the front page, 'next' links walk the whole table of contents; the sidebar links every chapter."""
    page = watched_page.page
    page.goto(f"{book_url}/index.html")
    page.wait_for_url("**/book/intro.html")
    sidebar = page.eval_on_selector_all("nav.bd-docs-nav a", "links => links.map(a => a.href)")
    missing = [chapter for chapter in CHAPTERS if not any(link.endswith(f"/{chapter}.html") for link in sidebar)]
    assert not missing, f"chapters not in the sidebar: {missing}"
    visited = [page.url.split(book_url + "/")[1].removesuffix(".html")]
    while page.locator("a.right-next").count():
        with page.expect_navigation(wait_until="load"):
            page.locator("a.right-next").first.click()
        visited.append(page.url.split(book_url + "/")[1].removesuffix(".html"))
        assert len(visited) <= len(toc_pages()) + 1, f"the 'next' links loop: {visited}"
    assert visited == toc_pages()
    assert not watched_page.problems()
