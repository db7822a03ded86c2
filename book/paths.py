"""Where things live in a checkout."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHAPTERS_DIR = ROOT / "chapters"
SNIPPETS_DIR = ROOT / "snippets"
RUST_DIR = ROOT / "rust"
GO_DIR = ROOT / "go"
DATA_DIR = ROOT / "data"

# Built tools (oha, compiled Java classes, Go binaries): reused across runs.
TOOLS_DIR = ROOT / ".tools"
# Runtime state: one folder per running server, and the record of what was
# started, so the next start can sweep what an interrupted run left behind.
RUN_DIR = ROOT / ".run"
RESULTS_DIR = ROOT / "results"
# A committed set of measurements, shown (and labelled as such) when this
# machine cannot run a chapter.
REFERENCE_RESULTS_DIR = RESULTS_DIR / "reference"

TWITTER_JSON = DATA_DIR / "twitter.json"


def server_run_dir(name: str) -> Path:
    """A server's own folder: per process, so two notebooks never share one."""
    import os

    return RUN_DIR / "servers" / f"{name}-{os.getpid()}"
