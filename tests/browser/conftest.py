"""The course as a student sees it: the built book and JupyterLab, opened in a real Chromium, offline.

These tests run after the book is built (`bash scripts/test.sh` runs them last); `pytest tests` leaves them out
(the repository's root conftest.py collects them only when named). They drive Debian's Chromium through Playwright's Python API, with the browser found on
the machine (`executable_path`): nothing is downloaded. Every request that leaves 127.0.0.1 is refused and counted
as a failure, so a page that needs the network fails here as it would for a student without one.

    pytest tests/browser                       # the book in _build/html (MINIDIFF_BOOK_HTML to point elsewhere)
    MINIDIFF_CHROMIUM=/path/to/chrome pytest tests/browser
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pytest

REPO = Path(__file__).resolve().parents[2]
WAIT_MS = 30_000  # the longest any single wait may take: a hang fails instead of stalling CI


def chromium_path() -> str | None:
    """MINIDIFF_CHROMIUM if set (it must run), else the first Chromium on PATH, else None."""
    chosen = os.environ.get("MINIDIFF_CHROMIUM")
    if chosen:
        found = shutil.which(chosen)
        if not found:
            pytest.fail(f"MINIDIFF_CHROMIUM={chosen!r} is not an executable Chromium")
        return found
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


@pytest.fixture(scope="session")
def book_html() -> Path:
    folder = Path(os.environ.get("MINIDIFF_BOOK_HTML", REPO / "_build" / "html"))
    if not (folder / "index.html").is_file():
        pytest.fail(f"no built book in {folder}: build it first (bash scripts/course.sh book), or set MINIDIFF_BOOK_HTML")
    return folder


@pytest.fixture(scope="session")
def browser():
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium found: apt-get install chromium (or set MINIDIFF_CHROMIUM) to run the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # --no-sandbox: CI and containers run as root, where Chromium's sandbox cannot start
        chromium = playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield chromium
        chromium.close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def book_url(book_html):
    """The built book served on a free localhost port, as `python -m http.server` would."""
    handler = functools.partial(_QuietHandler, directory=str(book_html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@dataclass
class Watched:
    """A page and everything that went wrong on it."""

    page: object
    console_errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return (
            [f"console error: {text}" for text in self.console_errors]
            + [f"failed request: {url}" for url in self.failed]
            + [f"request outside this machine (refused): {url}" for url in self.outside]
        )


@pytest.fixture
def watched_page(browser):
    """A fresh page (new profile) that records console errors and failed requests and refuses the network."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    watched = Watched(page)

    def route(route):
        host = urlparse(route.request.url).hostname
        if route.request.url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            watched.outside.append(route.request.url)
            route.abort()

    page.route("**/*", route)
    page.on("console", lambda message: message.type == "error" and watched.console_errors.append(message.text))
    page.on("pageerror", lambda error: watched.console_errors.append(f"uncaught: {error}"))
    page.on("requestfailed", lambda request: request.url not in watched.outside and watched.failed.append(request.url))
    page.on("response", lambda response: response.status >= 400 and watched.failed.append(f"{response.url} ({response.status})"))
    yield watched
    context.close()
