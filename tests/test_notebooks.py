"""Each chapter executes in quick mode and keeps the shape of its outputs.

The committed notebook holds the outputs of a quick run. Measured numbers,
verdict words and build timings change from run to run and are masked;
figures, panels and widget state are ignored (the browser test checks the
figures are drawn). What is left is the shape: which cells print, what
they say, in what order, so a chapter whose output changes shape fails.
Regenerate the committed outputs with `make notebooks-regen`.
"""

from pathlib import Path

import pytest

from book import paths

CHAPTERS = [
    *sorted(paths.CHAPTERS_DIR.glob("*.ipynb")),
    paths.ROOT / "scoreboard.ipynb",
]
TEXT_OUTPUTS = ("/cells/*/outputs/*/text", "/cells/*/outputs/*/data/text/plain")
MASKS = (
    # a verdict is measured: its word may change between runs
    (r"holds in part|does not hold|holds", "VERDICT"),
    (r"built in [\d.]+ s|reused the previous build: sources unchanged", "BUILD"),
    (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", "TIME"),
    # which points the load generator limited depends on the run
    (r"bounded by the load generator[^\n]*", "LOADGEN"),
    (r"\bTrue\b|\bFalse\b", "BOOL"),
    (r"[-+]?\d[\d,]*(\.\d+)?(e[+-]?\d+)?", "N"),
    # table columns are padded to the widest figure
    (r"[ \t]+", " "),
)
IGNORED = (
    "/cells/*/outputs/*/data/application/vnd.plotly.v1+json",
    "/cells/*/outputs/*/data/text/html",
    "/cells/*/outputs/*/data/application/vnd.jupyter.widget-view+json",
    "/cells/*/execution_count",
    "/cells/*/metadata",
    "/metadata/widgets",
    "/metadata/language_info",
)


@pytest.mark.notebook
@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_runs_in_quick_mode(nb_regression, notebook: Path):
    nb_regression.exec_env = {"BOOK_MODE": "quick"}
    nb_regression.exec_cwd = str(paths.CHAPTERS_DIR)
    nb_regression.exec_timeout = 900
    nb_regression.diff_ignore = IGNORED
    nb_regression.diff_replace = tuple(
        (path, pattern, mask) for path in TEXT_OUTPUTS for pattern, mask in MASKS
    )
    nb_regression.check(str(notebook))
