"""The GC-log parsers, on logs recorded from the chapter's own services."""

from collections import Counter
from pathlib import Path

import pytest

from book.gclog import Pause, parse_gctrace, parse_jvm_gc_log

FIXTURES = Path(__file__).parent / "fixtures" / "gc"


def _read(name: str) -> str:
    return (FIXTURES / name).read_text()


@pytest.mark.parametrize(
    ("fixture", "want_kinds"),
    [
        (
            "g1-512m.log",
            {
                "Pause Young (Normal)": 8,
                "Pause Young (Concurrent Start)": 1,
                "Pause Remark": 1,
                "Pause Cleanup": 1,
                "Pause Young (Prepare Mixed)": 1,
                "Pause Young (Mixed)": 1,
            },
        ),
        (
            "parallel-512m.log",
            {"Pause Young (Allocation Failure)": 8, "Pause Full (Ergonomics)": 1},
        ),
        (
            "zgc-1g.log",
            {"Pause Mark Start": 4, "Pause Mark End": 4, "Pause Relocate Start": 4},
        ),
    ],
)
def test_jvm_log_pause_counts_by_kind(fixture, want_kinds):
    pauses = parse_jvm_gc_log(_read(fixture))
    assert Counter(p.kind for p in pauses) == want_kinds


@pytest.mark.parametrize(
    ("fixture", "index", "want"),
    [
        # [0.552s] GC(0) Pause Young (Normal) (G1 Evacuation Pause) ... 83.783ms
        ("g1-512m.log", 0, Pause(0.468217, 83.783, "Pause Young (Normal)")),
        # [21.920s] GC(109) Pause Remark 258M->219M(512M) 4.956ms
        ("g1-512m.log", 9, Pause(21.915044, 4.956, "Pause Remark")),
        # [41.203s] GC(464) Pause Full (Ergonomics) 510M->179M(511M) 452.284ms
        ("parallel-512m.log", 6, Pause(40.750716, 452.284, "Pause Full (Ergonomics)")),
        # [2.054s] GC(1) Pause Mark Start 0.013ms, under [gc,phases]
        ("zgc-1g.log", 3, Pause(2.053987, 0.013, "Pause Mark Start")),
    ],
)
def test_jvm_log_exact_pauses(fixture, index, want):
    assert parse_jvm_gc_log(_read(fixture))[index] == want


def test_jvm_pauses_are_in_log_order():
    starts = [p.start_s for p in parse_jvm_gc_log(_read("parallel-512m.log"))]
    assert starts == sorted(starts)


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (
            "[0.253s][info][gc,start] GC(0) Pause Young (Normal) (G1 Evacuation Pause)",
            "announces a pause before its duration is known",
        ),
        (
            "[0.330s][info][gc,phases   ] GC(0)   Evacuate Collection Set: 76.2ms",
            "a G1 sub-phase, part of a pause already counted",
        ),
        (
            "[22.074s][info][gc          ] GC(109) Concurrent Mark Cycle 387.415ms",
            "concurrent: the application ran",
        ),
        (
            "[5.132s][info][gc] GC(1) Garbage Collection (Warmup) 208M(20%)->500M(49%)",
            "ZGC's concurrent cycle",
        ),
        (
            "[5.008s][info][gc          ] Allocation Stall (pool-1-thread-1) 571.810ms",
            "one thread waiting for memory, not a collector pause",
        ),
        (
            "[1.000s][info][safepoint] GC(3) Pause Young (Normal) 1M->1M(8M) 1.000ms",
            "not a gc tag this parser reads",
        ),
    ],
)
def test_jvm_lines_that_are_not_pauses(line, why):
    assert parse_jvm_gc_log(line + "\n") == [], why


def test_gctrace_emits_both_stw_phases_of_every_cycle():
    pauses = parse_gctrace(_read("gctrace.txt"))
    assert len(pauses) == 2 * 28
    # gc 1 @0.022s 10%: 3.2+6.2+0.061 ms clock, ...
    assert pauses[0] == Pause(0.022, 3.2, "gc 1 STW sweep termination")
    assert pauses[1] == Pause(0.0314, 0.061, "gc 1 STW mark termination")
    # gc 28 @16.044s 6%: 1.4+322+0.005 ms clock: mark termination after the mark
    assert pauses[-1] == Pause(16.3674, 0.005, "gc 28 STW mark termination")


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("cache filled: entries=200000 heap_alloc_mib=122\nshutting down\n", []),
        (
            "gc 7 @2.500s 1%: 0.010+0.50+0.020 ms clock, 0.020+0/0.1/0+0.040 ms cpu,"
            " 4->4->0 MB, 4 MB goal, 0 MB stacks, 0 MB globals, 2 P (forced)\n",
            [
                Pause(2.5, 0.01, "gc 7 STW sweep termination"),
                Pause(2.50051, 0.02, "gc 7 STW mark termination"),
            ],
        ),
        ("", []),
    ],
)
def test_gctrace_small_cases(text, want):
    assert parse_gctrace(text) == want
