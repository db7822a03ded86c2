"""Stop-the-world pauses read from a JVM GC log and from Go's gctrace.

The GC chapter draws every pause on its latency timeline. The JVM writes
them with unified logging (``-Xlog:gc*:file=...:uptime,level,tags``); a Go
program run with ``GODEBUG=gctrace=1`` writes one line per cycle to stderr.
Both parsers return the same record, in the order the log has them, with the
pause's start in seconds since the process started so a timeline can place
it beside the latency samples.
"""

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Pause:
    """One stop-the-world pause: when it began, how long, and what it was."""

    start_s: float  # seconds since the process started
    duration_ms: float
    kind: str  # "Pause Young (Normal)", "gc 12 STW mark termination", ...


# A unified-logging line with uptime, level and tags decorations. The JVM pads
# the tags inside their brackets ("[gc,phases   ]"), hence the \s*.
_JVM_LINE = re.compile(
    r"^\[(?P<uptime_s>\d+(?:\.\d+)?)s\]"
    r"\[\w+\s*\]"
    r"\[(?P<tags>[\w,]+)\s*\]\s*"
    r"GC\(\d+\)\s+"
    r"(?P<event>(?:[A-Za-z]+: )?Pause\b.*?)\s+"
    r"(?P<duration_ms>\d+(?:\.\d+)?)ms\s*$",
    re.MULTILINE,
)

# The pause's name and its first parenthesis, which says which pause it was
# ("Pause Young (Normal)", "Pause Full (Ergonomics)"). A second parenthesis is
# only the trigger ("(G1 Evacuation Pause)") and is dropped, as are the heap
# sizes that follow.
_JVM_KIND = re.compile(r"^(?:[A-Za-z]+: )?Pause(?: [A-Z][\w-]*)+(?: \([^)]*\))?")

# Where each collector logs its whole pauses. G1 and Parallel write them
# under [gc], with their sub-phases (which are not pauses of their own) under
# [gc,phases]. ZGC writes its three short pauses under [gc,phases] and its
# concurrent cycle, "Garbage Collection (...)", under [gc]; that line does
# not start with "Pause", so the pattern above never takes it.
_JVM_PAUSE_TAGS = frozenset({"gc", "gc,phases"})


def parse_jvm_gc_log(text: str) -> list[Pause]:
    """The pauses in a JVM unified GC log (G1, Parallel, ZGC on JDK 17).

    A line's uptime is when the pause ended, so ``start_s`` is the uptime
    less the duration. Lines of other tags, the ``[gc,start]`` lines that
    announce a pause before its duration is known, and concurrent phases are
    ignored.
    """
    pauses = []
    for match in _JVM_LINE.finditer(text):
        if match["tags"] not in _JVM_PAUSE_TAGS:
            continue
        kind = _JVM_KIND.match(match["event"])
        if kind is None:
            continue
        duration_ms = float(match["duration_ms"])
        # Rounded to the microsecond, the finest digit either figure has, so
        # 0.330 s - 76.983 ms is 0.253017 and not 0.25301700000000004.
        pauses.append(
            Pause(
                start_s=round(float(match["uptime_s"]) - duration_ms / 1000, 6),
                duration_ms=duration_ms,
                kind=kind.group(0),
            )
        )
    return pauses


# gc 12 @3.456s 4%: 0.021+2.3+0.045 ms clock, 0.084+0.5/1.9/0+0.18 ms cpu, ...
_GCTRACE_LINE = re.compile(
    r"^gc (?P<cycle>\d+) @(?P<at_s>\d+(?:\.\d+)?)s \d+%: "
    r"(?P<sweep_ms>\d+(?:\.\d+)?)\+"
    r"(?P<mark_ms>\d+(?:\.\d+)?)\+"
    r"(?P<mark_term_ms>\d+(?:\.\d+)?) ms clock",
    re.MULTILINE,
)


def parse_gctrace(text: str) -> list[Pause]:
    """The pauses in Go's ``GODEBUG=gctrace=1`` output; other lines are ignored.

    Each cycle has two stop-the-world phases, sweep termination (A) and mark
    termination (C), with the concurrent mark (B) between them. One Pause is
    emitted per phase rather than one per cycle with A and C summed: the mark
    between them can last longer than both, so a summed pause would sit on
    the timeline where the program was in fact running. The cycle starts at
    ``@T s`` (seconds since the program started) with sweep termination;
    mark termination starts at T + A + B.
    """
    pauses = []
    for match in _GCTRACE_LINE.finditer(text):
        cycle = match["cycle"]
        at_s = float(match["at_s"])
        sweep_ms = float(match["sweep_ms"])
        mark_ms = float(match["mark_ms"])
        pauses.append(Pause(at_s, sweep_ms, f"gc {cycle} STW sweep termination"))
        pauses.append(
            Pause(
                start_s=round(at_s + (sweep_ms + mark_ms) / 1000, 6),
                duration_ms=float(match["mark_term_ms"]),
                kind=f"gc {cycle} STW mark termination",
            )
        )
    return pauses
