"""The built HTML in a real browser: figures drawn, no errors, no network.

Opens each page of the quick-mode build (`python -m book build --quick`)
in Debian's headless Chromium, driven by playwright-core from npm.
"""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from book import paths

HTML_DIR = paths.ROOT / "_build" / "quick" / "_build" / "html"
CHECKER = Path(__file__).parent / "browser" / "check_page.mjs"
CHAPTER_PAGES = sorted((HTML_DIR / "chapters").glob("*.html"))


def check_page(page: Path) -> dict:
    node = shutil.which("node")
    if node is None or not (CHECKER.parent / "node_modules").exists():
        pytest.fail("node and tests/browser/node_modules are needed: run make test")
    done = subprocess.run(
        [node, str(CHECKER), page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.browser
def test_the_quick_build_exists():
    assert (HTML_DIR / "index.html").exists(), "run `python -m book build --quick`"
    assert CHAPTER_PAGES, "no chapter pages were built"


@pytest.mark.browser
@pytest.mark.parametrize("page", CHAPTER_PAGES, ids=lambda p: p.stem)
def test_chapter_page_draws_every_figure_offline(page: Path):
    report = check_page(page)
    assert report["figures"] >= 1, "a chapter shows at least one measured figure"
    assert report["drawn"] == report["figures"], f"undrawn figures: {report}"
    assert report["panelNotes"] >= 1, "the panel's note stands in for the widget"
    assert report["consoleErrors"] == [], report["consoleErrors"]
    assert report["pageErrors"] == [], report["pageErrors"]
    assert report["externalRequests"] == [], report["externalRequests"]


@pytest.mark.browser
@pytest.mark.parametrize("name", ["intro", "status"])
def test_other_pages_have_no_errors(name: str):
    report = check_page(HTML_DIR / f"{name}.html")
    assert report["consoleErrors"] == [] and report["pageErrors"] == [], report
    assert report["externalRequests"] == [], report["externalRequests"]
