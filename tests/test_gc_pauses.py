"""The GC chapter's computations, on recorded logs and synthetic records."""

from pathlib import Path

import pytest

from book import gc_pauses, gclog
from book.gclog import Pause

FIXTURES = Path(__file__).parent / "fixtures" / "gc"


def _read(name: str) -> str:
    return (FIXTURES / name).read_text()


# --- the logs ------------------------------------------------------------------


def test_allocation_stalls_from_a_recorded_zgc_log():
    stalls = gc_pauses.parse_allocation_stalls(_read("zgc-1g.log"))
    # 20 lines name an allocation stall; two are a GC cycle it triggered
    assert len(stalls) == 18
    # [8.535s][info][gc          ] Allocation Stall (pool-1-thread-4) 16.990ms
    assert stalls[0] == Pause(8.51801, 16.99, "Allocation Stall (pool-1-thread-4)")
    assert "Allocation Stall (HTTP-Dispatcher)" in {s.kind for s in stalls}


@pytest.mark.parametrize(
    "line",
    [
        "[8.587s][info][gc,start    ] GC(3) Garbage Collection (Allocation Stall)",
        "[9.178s][info][gc          ] GC(3) Garbage Collection (Allocation Stall) "
        "1024M(100%)->258M(25%)",
        "[2.054s][info][gc,phases   ] GC(1) Pause Mark Start 0.013ms",
    ],
)
def test_lines_that_are_not_stalls(line):
    assert gc_pauses.parse_allocation_stalls(line + "\n") == []


def test_go_cycles_span_both_stop_the_world_phases():
    cycles = gc_pauses.go_cycles(gclog.parse_gctrace(_read("gctrace.txt")))
    assert len(cycles) == 28
    # gc 1 @0.022s 10%: 3.2+6.2+0.061 ms clock
    assert cycles[0] == Pause(0.022, 9.461, "gc 1 cycle")
    # gc 28 @16.044s 6%: 1.4+322+0.005 ms clock
    assert cycles[-1] == Pause(16.044, 323.405, "gc 28 cycle")


def test_go_cycle_without_its_second_phase_is_dropped():
    pauses = [Pause(1.0, 0.1, "gc 3 STW sweep termination")]
    assert gc_pauses.go_cycles(pauses) == []


def test_pauses_move_onto_the_run_axis():
    pauses = [Pause(12.5, 3.0, "Pause Young (Normal)")]
    assert gc_pauses._pause_dicts(pauses, -10.0) == [
        {"t_s": 2.5, "duration_ms": 3.0, "kind": "Pause Young (Normal)"}
    ]


# --- the answer ----------------------------------------------------------------


def test_the_bench_computes_the_answer_the_services_give():
    body = gc_pauses.payload(5).read_bytes()
    assert gc_pauses.expected_answer(body) == {
        "statuses": 5,
        "words": 25,
        "hashtags": 1,
        "followers": 3285,
    }


def test_words_split_on_unicode_white_space_only():
    body = b'{"statuses": [{"text": "a\\u3000b\\u001fc  d", "user": '
    body += b'{"followers_count": 1}, "entities": {"hashtags": []}}]}'
    # U+3000 separates; U+001F (which Python's str.split takes) does not
    assert gc_pauses.expected_answer(body)["words"] == 3


# --- percentiles and alignment -------------------------------------------------


@pytest.mark.parametrize(
    ("values", "q", "want"),
    [
        ([], 50, None),
        ([7.0], 99.9, 7.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.0),
        (list(map(float, range(1, 1001))), 99.9, 999.0),
        (list(map(float, range(1, 1001))), 100, 1000.0),
        (list(map(float, range(1, 101))), 99, 99.0),
    ],
)
def test_nearest_rank_percentile(values, q, want):
    assert gc_pauses.percentile(values, q) == want


def test_spikes_in_flight_during_a_pause_are_counted():
    pause = {"t_s": 1.0, "duration_ms": 50.0, "kind": "Pause Young (Normal)"}
    t_s = [0.5, 0.98, 1.02, 1.5, 2.0]
    latency_ms = [1.0, 70.0, 30.0, 40.0, 1.0]
    got = gc_pauses.spikes_in_windows(t_s, latency_ms, [pause], spike_ms=10.0)
    # three spikes; the one due at 1.5 s started long after the pause ended
    assert (got["spikes"], got["in_window"]) == (3, 2)
    assert got["share"] == pytest.approx(2 / 3)
    # the pause, its backlog (as long again) and 10 ms margins: 120 ms of 1.501 s
    assert got["time_share"] == pytest.approx(0.120 / 1.501)


def test_a_request_due_while_the_backlog_drains_counts_with_the_shadow():
    pause = {"t_s": 1.0, "duration_ms": 50.0, "kind": "x"}
    args = ([1.08], [25.0], [pause], 10.0)
    assert gc_pauses.spikes_in_windows(*args, slack_s=0.0)["in_window"] == 1
    no_shadow = gc_pauses.spikes_in_windows(*args, slack_s=0.0, shadow=0.0)
    assert no_shadow["in_window"] == 0


def test_the_slack_catches_a_request_that_ended_just_before_a_pause():
    pause = {"t_s": 1.0, "duration_ms": 5.0, "kind": "x"}
    got = gc_pauses.spikes_in_windows([0.9], [95.0], [pause], 10.0, slack_s=0.010)
    assert got["in_window"] == 1
    got = gc_pauses.spikes_in_windows([0.9], [95.0], [pause], 10.0, slack_s=0.0)
    assert got["in_window"] == 0


def test_no_spikes_gives_no_share():
    got = gc_pauses.spikes_in_windows([0.0, 1.0], [1.0, 2.0], [], spike_ms=10.0)
    assert got["spikes"] == 0 and got["share"] is None


def test_window_max_keeps_the_slowest_request_of_each_window():
    xs, ys = gc_pauses.window_max([0.001, 0.002, 0.015, 0.031], [1.0, 9.0, 2.0, 3.0])
    assert xs == [0.002, 0.015, 0.031] and ys == [9.0, 2.0, 3.0]


# --- the verdict, on synthetic records -----------------------------------------


def _entry(stack, latencies_by_phase, pauses=(), kept_up=True, stalls=()):
    """A stack's record: requests 1 ms apart, 1 s per phase."""
    t_s, latency_ms, phase_of = [], [], []
    phases = []
    for index, (phase, latencies) in enumerate(latencies_by_phase.items()):
        phases.append(
            {"name": phase, "rate_per_s": 1000.0, "start_s": index, "end_s": index + 1}
        )
        for i, latency in enumerate(latencies):
            t_s.append(index + i / 1000)
            latency_ms.append(latency)
            phase_of.append(phase)
    if not kept_up:
        phases[-1]["failure"] = "delivered 500 req/s of the 1000 asked"
    return {
        "label": gc_pauses.STACKS[stack],
        "kept_up": kept_up,
        "failure": None if kept_up else "peak: fell behind",
        "phases": phases,
        "requests": {"t_s": t_s, "latency_ms": latency_ms, "phase": phase_of},
        "pauses": [
            {"t_s": t, "duration_ms": d, "kind": "Pause Young (Normal)"}
            for t, d in pauses
        ],
        "stalls": [
            {"t_s": t, "duration_ms": d, "kind": "Allocation Stall (t)"}
            for t, d in stalls
        ],
        "cycles": [],
    }


def _flat(ms):
    return {phase: [ms] * 1000 for phase in gc_pauses.PHASES}


def _java_with_pauses():
    """Java: fast, except requests in flight during two 40 ms pauses."""
    peak = [0.5] * 1000
    for i in range(300, 340):
        peak[i] = 40.0 - (i - 300) + 0.5  # waited out the rest of the pause
    steady = [0.5] * 1000
    return _entry(
        "java-g1",
        {"steady": steady, "peak": peak, "steady again": steady},
        pauses=[(1.300, 40.0), (2.500, 0.8)],
    )


def _record(stacks, knobs=None):
    return {
        "knobs": {
            "peak_rate_per_s": 1000.0,
            "heap": "512m",
            "gogc": 100,
            "server_cores": 1,
        }
        | (knobs or {}),
        "stacks": stacks,
    }


def test_the_claim_holds_when_java_spikes_sit_on_its_pauses():
    go = _entry("go", _flat(2.0), pauses=[(1.2, 0.2)])
    rust = _entry("rust", _flat(1.0))
    result = gc_pauses.verdict(
        _record({"java-g1": _java_with_pauses(), "go": go, "rust": rust})
    )
    assert result.word == "holds"
    assert result.parts == {"aligned": True, "larger": True, "go_far_shorter": True}
    assert "100% of its 31 requests over 10 ms" in result.sentence
    assert result.lines[-1] == "The claim holds on this machine."
    assert result.zgc_sentence is None


def test_the_claim_fails_in_part_when_go_has_the_worse_tail():
    go = _entry("go", {p: [2.0] * 990 + [90.0] * 10 for p in gc_pauses.PHASES})
    go["pauses"] = [{"t_s": 1.2, "duration_ms": 0.2, "kind": "gc 1 STW"}]
    rust = _entry("rust", _flat(1.0))
    result = gc_pauses.verdict(
        _record({"java-g1": _java_with_pauses(), "go": go, "rust": rust})
    )
    assert result.word == "holds in part"
    assert result.parts["larger"] is False
    assert "larger than Go's and Rust's: does not hold." in result.sentence


def test_the_claim_does_not_hold_when_java_is_flat():
    java = _entry("java-g1", _flat(0.5), pauses=[(1.3, 0.5)])
    go = _entry("go", _flat(2.0), pauses=[(1.2, 0.2)])
    rust = _entry("rust", _flat(1.0))
    result = gc_pauses.verdict(_record({"java-g1": java, "go": go, "rust": rust}))
    assert result.word == "does not hold"
    assert "0% of its 0 requests over 10 ms" in result.sentence


def test_zgc_that_fell_behind_is_reported_not_judged_as_java():
    zgc = _entry("java-zgc", _flat(300.0), kept_up=False, stalls=[(1.0, 572.0)])
    go = _entry("go", _flat(2.0), pauses=[(1.2, 0.2)])
    rust = _entry("rust", _flat(1.0))
    stacks = {"java-g1": _java_with_pauses(), "java-zgc": zgc, "go": go, "rust": rust}
    result = gc_pauses.verdict(_record(stacks))
    assert result.word == "holds"  # ZGC is judged apart from G1 and Parallel
    assert result.zgc_sentence.startswith("ZGC could not keep up")
    assert "up to 572 ms" in result.zgc_sentence


def test_zgc_that_keeps_up_with_a_flat_tail_removes_the_spikes():
    zgc = _entry("java-zgc", _flat(1.5), pauses=[(1.2, 0.05)])
    rust = _entry("rust", _flat(1.0))
    result = gc_pauses.verdict(
        _record({"java-g1": _java_with_pauses(), "java-zgc": zgc, "rust": rust})
    )
    assert "it removes the spikes" in result.zgc_sentence


def test_without_java_the_claim_cannot_be_judged():
    result = gc_pauses.verdict(_record({"rust": _entry("rust", _flat(1.0))}))
    assert result.word == "cannot be judged here"


def test_a_java_that_fell_behind_is_judged_on_what_it_answered():
    java = _entry("java-g1", _flat(300.0), pauses=[(1.3, 5.0)], kept_up=False)
    go = _entry("go", _flat(2.0), pauses=[(1.2, 0.2)])
    rust = _entry("rust", _flat(1.0))
    result = gc_pauses.verdict(_record({"java-g1": java, "go": go, "rust": rust}))
    # every request was a spike, and few were near the one pause
    assert result.parts == {"aligned": False, "larger": True, "go_far_shorter": True}
    assert "kept up: False." in result.lines[1]
    # the lines keep one shape: a header, one per stack, three parts, the word
    assert len(result.lines) == 1 + 3 + 3 + 1


def test_the_table_has_three_rows_per_stack_even_when_a_stack_fell_behind():
    java = _entry("java-g1", {"steady": [0.5] * 1000}, kept_up=False)
    rust = _entry("rust", _flat(1.0))
    rows = gc_pauses.table(_record({"java-g1": java, "rust": rust}))
    assert len(rows) == 6
    assert [r["kept up"] for r in rows[:3]] == [False, "not run", "not run"]
    assert rows[3]["p99.9 ms"] == 1.0


def test_closing_note_names_the_longest_pause_of_each_collector():
    rust = _entry("rust", _flat(1.0))
    note = gc_pauses.closing_note(
        _record({"java-g1": _java_with_pauses(), "rust": rust})
    )
    assert len(note) == 2
    assert "longest of its 2 pauses 40.00 ms; kept up: True" in note[0]
    assert "no collector" in note[1]


def test_figures_draw_from_a_record():
    rust = _entry("rust", _flat(1.0))
    record = _record({"java-g1": _java_with_pauses(), "rust": rust})
    record["knobs"] |= {"rate_per_s": 300.0}
    record["fingerprint"] = None
    timeline = gc_pauses.timeline_figure(record)
    assert len(timeline.layout.shapes) >= 2  # a pause band and the peak
    tails = gc_pauses.tails_figure(record)
    assert len(tails.data) == 4
