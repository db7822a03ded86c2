"""How long each measurement runs: quick (CI), default (a reader), full.

Chapters read the mode and nothing else changes between modes, so a quick
run exercises exactly the code a full run does.
"""

import os
from dataclasses import dataclass

MODE_ENV = "BOOK_MODE"


@dataclass(frozen=True)
class Mode:
    name: str
    duration_s: float  # counted time per measurement point
    warmup_s: float  # load before counting, discarded
    trials: int  # repeats per point; the median is reported
    concurrency: tuple[int, ...]  # closed-loop connection counts to sweep


MODES = {
    "quick": Mode("quick", duration_s=2.0, warmup_s=0.5, trials=1, concurrency=(4, 32)),
    # Sized so that the whole book, set-up included, builds in about 20
    # minutes on 2 cores; "full" is for figures to quote.
    "default": Mode(
        "default", duration_s=4.0, warmup_s=1.5, trials=1, concurrency=(1, 8, 32, 128)
    ),
    "full": Mode(
        "full",
        duration_s=15.0,
        warmup_s=3.0,
        trials=3,
        concurrency=(1, 8, 32, 128, 512),
    ),
}


def current() -> Mode:
    """The mode named by BOOK_MODE (default: "default")."""
    name = os.environ.get(MODE_ENV, "default")
    if name not in MODES:
        known = ", ".join(MODES)
        raise ValueError(f"{MODE_ENV}={name!r} is not a mode; use one of {known}")
    return MODES[name]
