"""The leak chapter's computations, and its watchdog on a real leaking run."""

import pytest

from book import leak, load, machine, memory, toolchain
from book.servers import Server

MIB = leak.MIB


# --- time bins ---------------------------------------------------------------


def test_timeline_bins_answers_and_latency_by_when_requests_were_due():
    requests = [
        (0.1, 10.0, 200),  # due in bin 0, answered in bin 0
        (0.2, 400.0, 200),  # due in bin 0, answered in bin 1 (0.6 s)
        (0.7, 5.0, 200),
        (0.8, 1.0, 500),  # not 2xx: neither answered nor timed
    ]
    rows = leak.timeline(requests, bin_s=0.5, end_s=1.0)
    assert [r["t_s"] for r in rows] == [0.25, 0.75]
    assert [r["due"] for r in rows] == [2, 1]
    assert [r["answered_per_s"] for r in rows] == [2.0, 4.0]
    assert rows[0]["p50_ms"] == 10.0
    assert rows[0]["p99_ms"] == 400.0
    assert rows[1]["p99_ms"] == 5.0


def test_timeline_last_bin_is_cut_at_the_end_of_the_run():
    # the server died at 0.75 s: the last bin is 0.25 s wide, not 0.5 s
    requests = [(0.6, 1.0, 200), (0.65, 1.0, 200)]
    rows = leak.timeline(requests, bin_s=0.5, end_s=0.75)
    assert len(rows) == 2
    assert rows[1]["t_s"] == pytest.approx(0.625)
    assert rows[1]["answered_per_s"] == pytest.approx(8.0)
    assert rows[0]["p99_ms"] is None


def test_phase_takes_the_requests_due_in_its_window():
    requests = [(t / 10, float(t), 200) for t in range(20)]
    first = leak.phase(requests, 0.0, 1.0)
    assert first["answered_per_s"] == pytest.approx(10.0)
    assert first["p50_ms"] == 4.0
    assert first["p99_ms"] == 9.0
    assert leak.phase([], 0.0, 1.0)["p99_ms"] is None


def test_gc_share_splits_a_pause_across_bins():
    pauses = [[0.4, 200.0], [1.1, 50.0]]  # 0.4-0.6 s, 1.1-1.15 s
    rows = leak.gc_share(pauses, bin_s=0.5, end_s=1.25)
    shares = [r["share"] for r in rows]
    assert shares[0] == pytest.approx(0.2)  # 0.1 s of 0.5 s
    assert shares[1] == pytest.approx(0.2)
    assert shares[2] == pytest.approx(0.2)  # 0.05 s of a 0.25 s last bin


def test_gc_share_ignores_pauses_before_the_load_started():
    rows = leak.gc_share([[-1.0, 100.0]], bin_s=0.5, end_s=1.0)
    assert all(r["share"] == 0 for r in rows)


# --- how a run ended ---------------------------------------------------------

OOM_STDOUT = (
    "listening on 127.0.0.1:4000\n"
    "Terminating due to java.lang.OutOfMemoryError: Java heap space\n"
)


@pytest.mark.parametrize(
    ("kwargs", "kind"),
    [
        ({"capped_s": 2.0, "exited_s": 2.1, "exit_code": -9}, "watchdog"),
        ({"capped_s": None, "exited_s": 3.0, "exit_code": 3}, "oom"),
        ({"capped_s": None, "exited_s": 3.0, "exit_code": 1}, "exited"),
        ({"capped_s": None, "exited_s": 14.5, "exit_code": -9}, "hung"),
        ({"capped_s": None, "exited_s": None, "exit_code": None}, "time bound"),
    ],
)
def test_end_event(kwargs, kind):
    end = leak.end_event(stdout=OOM_STDOUT, duration_s=10.0, **kwargs)
    assert end["kind"] == kind


def test_end_event_needs_the_oom_line_to_call_it_oom():
    end = leak.end_event(
        capped_s=None, exited_s=3.0, exit_code=3, stdout="", duration_s=10.0
    )
    assert end["kind"] == "exited"
    oom = leak.end_event(
        capped_s=None, exited_s=3.0, exit_code=3, stdout=OOM_STDOUT, duration_s=10
    )
    assert oom["line"].endswith("Java heap space")


# --- memory growth and the bounds --------------------------------------------


def test_slope_and_second_half_growth():
    growing = [[t / 10, 100 * MIB + t * MIB] for t in range(100)]  # 10 MiB/s
    assert leak.slope_bytes_per_s(growing) == pytest.approx(10 * MIB)
    assert leak.second_half_growth_bytes(growing) == pytest.approx(45 * MIB, rel=0.1)
    flat = [[t / 10, 20 * MIB + (t % 3) * 1000] for t in range(100)]
    assert abs(leak.second_half_growth_bytes(flat)) < 0.01 * MIB
    assert leak.slope_bytes_per_s([[0, 1]]) == 0.0


def test_watchdog_cap_gives_the_jvm_its_non_heap_allowance():
    rust = leak.watchdog_cap_bytes("rust-unbounded", 5 * MIB, 64)
    java = leak.watchdog_cap_bytes("java", 50 * MIB, 64)
    assert rust == 69 * MIB
    assert java == 114 * MIB + leak.JVM_NON_HEAP_ALLOWANCE_BYTES


def test_time_bound_follows_the_expected_time_to_oom_and_is_capped():
    expected = leak.expected_oom_s(64, 200, 16 * 1024)
    assert expected == pytest.approx(64 * MIB / (200 * 20 * 1024))
    assert leak.time_bound_s(64, 200, 16 * 1024, 120) == round(1.25 * expected + 4, 1)
    assert leak.time_bound_s(512, 50, 1024, 30) == 30


def test_cache_capacity_is_a_quarter_of_the_cap():
    capacity = leak.cache_capacity(64, 16 * 1024)
    assert capacity * (16 + 4) * 1024 <= 0.25 * 64 * MIB
    assert leak.cache_capacity(16, 1024 * 1024) == leak.MIN_CAPACITY_SESSIONS


def test_knobs_past_the_machine_share_are_refused():
    with pytest.raises(ValueError, match="heap cap"):
        leak.check_knobs(10**7, 100, 1024)
    with pytest.raises(ValueError, match="rate"):
        leak.check_knobs(32, 0, 1024)


def test_same_answers():
    answers = {"created": {"session": 1, "items": 40}, "refusals": {"x": [400, "a"]}}
    assert leak.same_answers({"java": answers, "rust-bounded": dict(answers)})
    other = {**answers, "refusals": {"x": [422, "a"]}}
    assert not leak.same_answers({"java": answers, "rust-bounded": other})


# --- the verdict, on synthetic runs ------------------------------------------


def _run(kind, end_s, slope_mib_per_s, gc=None):
    memory_points = [
        [t / 10, 10 * MIB + slope_mib_per_s * MIB * t / 10]
        for t in range(int(end_s * 10))
    ]
    phase = {"answered_per_s": 100.0, "p50_ms": 1.0, "p99_ms": 5.0}
    return {
        "end": {"kind": kind, "t_s": end_s},
        "memory": memory_points,
        "peak_rss_bytes": memory_points[-1][1],
        "idle_rss_bytes": 10 * MIB,
        "cap_bytes": 42 * MIB,
        "requests_ok": 1000,
        "requests_failed": 5,
        "phases": {"first_half": phase, "last_2s": phase},
        "gc_share": gc,
        "duration_s": end_s,
    }


def _record(java_kind, unbounded_kind, unbounded_slope):
    gc = [{"t_s": t / 2 + 0.25, "share": t / 40} for t in range(12)]
    return {
        "mode": "quick",
        "knobs": {
            "heap_cap_mib": 32,
            "capacity": 409,
            "rate_per_s": 250,
            "leak_bytes": 16384,
        },
        "runs": {
            "java": _run(java_kind, 6.0, 6.0, gc),
            "rust-unbounded": _run(unbounded_kind, 6.5, unbounded_slope),
            "rust-bounded": _run("time bound", 7.0, 0.0),
        },
    }


def test_verdict_holds_in_part_when_the_rust_twin_leaks_too():
    verdict = leak.verdict(_record("oom", "watchdog", 5.0))
    assert (verdict.word, verdict.java_word, verdict.ownership_word) == (
        "holds in part",
        "holds",
        "does not hold",
    )
    assert "stayed flat" in verdict.sentence


def test_verdict_holds_only_if_the_unbounded_rust_did_not_grow():
    verdict = leak.verdict(_record("oom", "time bound", 0.0))
    assert verdict.word == "holds"


def test_verdict_does_not_hold_without_an_oom_or_with_a_rust_leak():
    verdict = leak.verdict(_record("time bound", "watchdog", 5.0))
    assert verdict.word == "does not hold"


def test_closing_note_and_reports_name_time_to_oom_and_peaks():
    record = _record("oom", "watchdog", 5.0)
    note = leak.closing_note(record)
    assert "ran out of heap after 6.0 s" in note
    assert note.count("MiB") == 4  # the heap cap and three peaks
    lines = leak.watchdog_report(record)
    assert len(lines) == 3
    assert "crossed after 6.5 s" in lines[1]
    rows = [leak.run_summary(s, r) for s, r in record["runs"].items()]
    assert rows[2]["growth, 2nd half MiB/s"] == 0.0


# --- the watchdog, on a real leaking service ---------------------------------


def test_watchdog_stops_the_unbounded_rust_service_at_its_bound():
    """leak-service --mode unbounded under load, through the chapter's path."""
    try:
        toolchain.build_oha()
        toolchain.build_cargo("leak-service")
    except toolchain.ToolMissing as missing:
        pytest.skip(str(missing))
    split = machine.core_split()
    leak_bytes = 64 * 1024  # 300 req/s keep about 20 MiB/s
    with leak.rust_service("unbounded", leak_bytes, split.server, 16) as server:
        idle_rss_bytes = memory.sample_tree(server.pids)[0]
        cap_bytes = idle_rss_bytes + 16 * MIB
        run = leak.run_watched(
            server,
            rate_per_s=300,
            duration_s=4.0,
            cap_bytes=cap_bytes,
            body_path=leak.payload(),
            load_cpus=split.load,
            label="test-leak-watchdog",
        )
        assert server.exited(), "the watchdog should have killed the server"
    assert run["end"]["kind"] == "watchdog"
    assert run["end"]["t_s"] < 4.0
    assert run["peak_rss_bytes"] > cap_bytes
    # killed within a few samples' growth of the cap, far below what 4 s keep
    assert run["peak_rss_bytes"] < cap_bytes + 8 * MIB
    assert run["requests_ok"] > 0
    assert run["requests_failed"] > 0  # the requests sent after the kill


def test_a_refused_run_on_a_live_server_fails_unless_it_may_fall_behind(
    python_server_argv,
):
    """The stdlib server answers POST with 501: load.run refuses the run."""
    try:
        toolchain.build_oha()
    except toolchain.ToolMissing as missing:
        pytest.skip(str(missing))
    split = machine.core_split()
    kwargs = {
        "rate_per_s": 20,
        "duration_s": 1.0,
        "cap_bytes": 10**10,
        "body_path": leak.payload(),
        "load_cpus": split.load,
        "label": "test-leak-refused",
    }
    with Server("t-leak-501", [python_server_argv], cpus=split.server) as server:
        with pytest.raises(load.LoadFailed, match="non-2xx"):
            leak.run_watched(server, **kwargs)
        run = leak.run_watched(server, must_keep_up=False, **kwargs)
        assert not server.exited()
    assert run["end"]["kind"] == "time bound"
    assert "non-2xx" in run["fell_behind"]
    assert run["requests_ok"] == 0
    assert run["requests_not_2xx"] > 0
