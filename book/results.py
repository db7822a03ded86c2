"""One JSON record per measurement, written atomically, read by the plots.

A record holds what ran, every knob, the machine's fingerprint, the raw
figures, and when it started and ended. Plots never measure: they load
records, so a chapter can re-plot without re-running.
"""

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from book import paths


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def record_path(chapter: str, name: str, root: Path | None = None) -> Path:
    return (root or paths.RESULTS_DIR) / chapter / f"{name}.json"


def save(record: dict, chapter: str, name: str, root: Path | None = None) -> Path:
    """Write a record so that a reader never sees half of it."""
    for field in ("started_at", "ended_at", "fingerprint"):
        if field not in record:
            raise ValueError(f"a result record needs {field!r}")
    path = record_path(chapter, name, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"chapter": chapter, "name": name, **record}, indent=1)
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, suffix=".tmp", delete=False, encoding="utf-8"
    ) as tmp:
        tmp.write(body)
    os.replace(tmp.name, path)
    return path


def load(chapter: str, name: str, root: Path | None = None) -> dict | None:
    """The saved record, or None when there is none."""
    path = record_path(chapter, name, root)
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def load_latest_or_reference(chapter: str, name: str) -> tuple[dict | None, str]:
    """This machine's last record, else the committed reference one.

    Returns the record and where it came from ("this machine", "reference"
    or "none"), so a chapter that cannot measure labels what it shows.
    """
    record = load(chapter, name)
    if record is not None:
        return record, "this machine"
    record = load(chapter, name, root=paths.REFERENCE_RESULTS_DIR)
    if record is not None:
        return record, "reference"
    return None, "none"


def measured_or_saved(chapter: str, name: str, measure, *args, **kwargs) -> dict:
    """Measure now; if a tool is missing, the last saved measurement, labelled.

    A reader without php-fpm (say) still gets the chapter, with the figures
    saved on this machine earlier or the committed reference set, and a plain
    statement that they are not from this run and how to install the tool.
    """
    from book import machine, toolchain

    try:
        return measure(*args, **kwargs)
    except (toolchain.ToolMissing, toolchain.BuildFailed) as error:
        record, source = load_latest_or_reference(chapter, name)
        if record is None:
            raise RuntimeError(f"{error}; no saved measurement to show") from error
        print(
            f"NOT MEASURED IN THIS RUN: {error}. Shown instead: the measurement "
            f"saved at {record['ended_at']} ({source}) on "
            f"{machine.label(record['fingerprint'])}."
        )
        return {**record, "not_from_this_run": True}
