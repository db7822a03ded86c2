"""The consistency chapter's bench: its computations on made-up records, and
the failover on real clusters.

The computations (percentiles, failover time, outage, catch-up, stale
reads, verdicts, figures) are checked on synthetic writes and records. Then
each Raft engine is started as three processes, its leader is killed while
the writer runs, and every acknowledged write must be read back.
"""

import shutil

import pytest

from book import consistency as c
from book import machine, modes

# --- small computations ----------------------------------------------------------


def test_percentile_by_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert c.percentile(values, 50) == 50.0
    assert c.percentile(values, 99) == 99.0
    assert c.percentile(values, 100) == 100.0
    assert c.percentile([3.0], 1) == 3.0
    assert c.percentile([], 50) is None


def writes(*acks):
    """Writes scheduled every 10 ms, with (acked_s, node) or None each."""
    made = []
    for index, ack in enumerate(acks):
        write = c.Write(index, f"k{index}", scheduled_s=index * 0.01)
        if ack is not None:
            write.acked_s, write.node = ack
        made.append(write)
    return made


def test_summary_counts_refused_writes_and_measures_from_the_schedule():
    made = writes((0.002, 0), None, (0.03, 1))
    summary = c.summarise_writes(made, run_s=1.0)
    assert summary["acknowledged"] == 2
    assert summary["refused"] == 1
    assert summary["rate_per_s"] == 2.0
    # the third write was scheduled at 20 ms and acknowledged at 30 ms
    assert summary["latency_ms"]["max"] == pytest.approx(10.0)


def test_failover_ignores_late_answers_from_the_killed_node():
    # node 0 is killed at 1.0 s; its answer read at 1.01 s is not a new leader
    made = writes((0.9, 0), (1.01, 0), (1.6, 2), (1.7, 2))
    assert c.failover_s(made, failed_at_s=1.0, killed=0) == pytest.approx(0.6)
    assert c.failover_s(made[:2], failed_at_s=1.0, killed=0) is None


def test_longest_gap_is_the_outage():
    made = writes((0.1, 0), (0.2, 0), (1.5, 1), (1.6, 1))
    assert c.longest_gap_s(made) == pytest.approx(1.3)
    assert c.longest_gap_s([]) == 0.0


def test_catch_up_waits_for_every_write_made_before_the_resume():
    probes = [
        c.Probe("a", acked_s=1.0, converged_s=1.1),
        c.Probe("b", acked_s=2.5, converged_s=4.2),  # made while paused
        c.Probe("c", acked_s=4.5, converged_s=4.6),  # after the resume
    ]
    assert c.catch_up_s(probes, resumed_at_s=3.0) == pytest.approx(1.2)
    probes[1].converged_s = None
    assert c.catch_up_s(probes, resumed_at_s=3.0) is None


def test_stale_share_counts_a_window():
    reads = [(0.5, True), (1.0, False), (2.0, True), (3.5, True)]
    assert c.stale_share(reads, 0.0, 2.0) == (1, 2)
    assert c.stale_share(reads, 2.0, float("inf")) == (2, 2)


def test_schedule_fails_the_node_inside_the_run():
    for mode in modes.MODES.values():
        schedule = c.Schedule.for_mode(mode)
        assert 0 < schedule.fail_at_s < schedule.run_s
        assert schedule.fail_at_s + schedule.pause_s < schedule.run_s


# --- verdicts and figures on a made-up record ----------------------------------


def beats(p99_ms, elections, gaps=(45.0, 46.0, 50.0)):
    return {
        "gaps_ms": list(gaps),
        "beats": len(gaps),
        "p50_ms": 46.0,
        "p99_ms": p99_ms,
        "max_ms": p99_ms,
        "late_beats": 0,
        "elections": elections,
    }


def raft_figures(lost=0, pressure_p99=60.0, elections=0):
    made = writes((0.01, 0), (0.5, 0), (1.4, 1))
    return {
        "throughput": {"rate_per_s": 1000.0},
        "heartbeats": beats(55.0, 0),
        "heartbeats_pressure": beats(pressure_p99, elections),
        "gc": {"cycles": 12, "max_pause_ms": 0.4, "p99_pause_ms": 0.3},
        "failover": {
            "victim": "leader",
            "failover_s": 0.9,
            "outage_s": 0.9,
            "summary": c.summarise_writes(made, 2.0),
            "timeline": c.timeline(made),
            "check": {"checked": 3, "lost": lost, "read_from": "2"},
        },
    }


def record(go=None, rust=None):
    gossip_run = {
        "paused": "3",
        "paused_at_s": 1.0,
        "resumed_at_s": 2.0,
        "summary": c.summarise_writes(writes((0.01, 0), (0.02, 1)), 2.0),
        "timeline": [[0.0, 0.5], [0.01, 0.6]],
        "reads": [(0.5, True), (0.6, False), (2.5, True)],
        "convergence": [[0.01, 80.0], [1.5, 900.0]],
        "catch_up_s": 0.4,
    }
    return {
        "knobs": {
            "victim": "leader",
            "alloc_mb_per_s": 128,
            "fail_at_s": 1.0,
            "pause_s": 1.0,
        },
        "fingerprint": machine.fingerprint(machine.core_split()),
        "systems": {
            "go-raft": go or raft_figures(),
            "rust-raft": rust or raft_figures(),
            "gossip": {"throughput": {"rate_per_s": 2000.0}, "run": gossip_run},
        },
    }


def test_safety_verdict_fails_on_one_lost_write():
    assert c.safety_verdict(record()).word == "holds"
    assert c.safety_verdict(record(rust=raft_figures(lost=1))).word == "does not hold"


@pytest.mark.parametrize(
    ("go", "word"),
    [
        (raft_figures(), "does not hold"),  # same timing as Rust: no GC effect
        (raft_figures(elections=2), "holds"),  # spurious elections in Go only
        (raft_figures(pressure_p99=200.0), "holds"),  # a stretched heartbeat tail
        (raft_figures(pressure_p99=60.0 + c.HEARTBEAT_MARGIN_MS / 2), "does not hold"),
    ],
)
def test_gc_verdict_is_computed_from_elections_and_heartbeat_tails(go, word):
    assert c.gc_verdict(record(go=go)).word == word


def test_gossip_verdict_needs_every_write_converged():
    done = record()
    assert c.gossip_verdict(done).word == "holds"
    assert "1 in 1 from the pause on" in c.gossip_verdict(done).sentence
    done["systems"]["gossip"]["run"]["convergence"][1][1] = None
    assert c.gossip_verdict(done).word == "does not hold"


def test_table_and_closing_note_read_every_system():
    rows = c.table(record())
    assert [row["system"] for row in rows] == list(c.SYSTEMS.values())
    assert rows[0]["lost"] == 0
    note = c.closing_note(record())
    assert note.count("\n") == 2
    assert "0.9 s after the leader was killed" in note


def test_figures_draw_from_a_record():
    done = record()
    assert len(c.latency_figure(done).data) == 3
    assert len(c.convergence_figure(done).data) == 1
    assert len(c.heartbeat_figure(done).data) == 4


# --- the real thing: kill the leader while writing -----------------------------


@pytest.mark.parametrize("system", c.RAFT_SYSTEMS)
def test_no_acknowledged_write_is_lost_when_the_leader_is_killed(system):
    needed = "cargo" if system == "rust-raft" else "go"
    if shutil.which(needed) is None:
        pytest.skip(f"{needed} is not installed")
    split = machine.core_split()
    schedule = c.Schedule(
        heartbeat_s=0.5, throughput_s=0.0, run_s=4.0, fail_at_s=1.5, pause_s=1.0
    )
    with c.cluster(system, 3, split.server) as the_cluster:
        run = c.failover_run(the_cluster, 100.0, schedule, "leader")
    assert run["killed"] != run["new_leader"]
    assert run["check"]["checked"] > 100
    assert run["check"]["lost"] == 0
    assert run["failover_s"] is not None
