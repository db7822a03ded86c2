"""The GIL chapter's bench: parsers, digests and verdicts, on synthetic data.

The equality of the three programs' results is checked by running them in
tests/test_gil_equal.py; here the bench's own digest is checked against the
legacy program's, computed in-process, and every computation a figure or a
verdict rests on is checked on records made up for the purpose.
"""

import hashlib
import json
import sys

import pytest

from book import gil, machine, paths

# --- the bench's own answer --------------------------------------------------


@pytest.mark.parametrize("task", gil.TASKS)
@pytest.mark.parametrize(("batches", "batch_size"), [(7, 20), (103, 5)])
def test_expected_digest_matches_the_legacy_program(task, batches, batch_size):
    work = gil._work_module()
    line = work.run_batches(
        task, "threads", 1, batches, batch_size, str(paths.TWITTER_JSON)
    )
    assert line["digest"] == gil.expected_digest(task, batches, batch_size)


def test_expected_digest_is_sha256_of_the_canonical_list():
    bodies = gil.distinct_batches(3)
    results = [
        {"input_bytes": len(bodies[i % len(bodies)]), "ok": True} for i in range(5)
    ]
    want = hashlib.sha256(gil.canonical(results)).hexdigest()
    assert gil.expected_digest("compress", 5, 3) == want


def test_digest_depends_on_the_batch_count():
    assert gil.expected_digest("summarise", 10, 10) != gil.expected_digest(
        "summarise", 11, 10
    )


def test_canonical_sorts_keys_and_keeps_utf8():
    assert gil.canonical({"b": 1, "a": "hé"}) == '{"a":"hé","b":1}'.encode()


def test_unknown_task_is_refused():
    with pytest.raises(ValueError, match="unknown task"):
        gil.expected_digest("sort", 1, 1)


# --- parsing a program's line ------------------------------------------------

LINE = {
    "lang": "go",
    "task": "summarise",
    "workers": 2,
    "batches": 100,
    "tasks_per_s": 512.5,
    "elapsed_s": 0.195,
    "digest": "ab" * 32,
}


def test_parse_line_reads_the_one_json_line():
    assert gil.parse_line(json.dumps(LINE) + "\n") == LINE


@pytest.mark.parametrize(
    "stdout",
    ["", "warming up\n" + json.dumps(LINE), json.dumps(LINE) * 1 + "\n{}\n", "oops"],
)
def test_parse_line_refuses_anything_else(stdout):
    with pytest.raises(ValueError):
        gil.parse_line(stdout)


def test_parse_line_needs_the_digest():
    line = {k: v for k, v in LINE.items() if k != "digest"}
    with pytest.raises(ValueError, match="digest"):
        gil.parse_line(json.dumps(line))


def test_batch_argv_per_series():
    argv, env = gil.batch_argv("python processes", "compress", 3, 40, 10)
    assert argv[1] == str(gil.WORK_PY)
    assert argv[-2:] == ["--pool", "processes"]
    assert argv[argv.index("--workers") + 1] == "3"
    assert env == {}
    argv, _ = gil.batch_argv("rust", "summarise", 1, 40, 10)
    assert argv[0].endswith("gil-work") and "--pool" not in argv
    with pytest.raises(ValueError, match="unknown series"):
        gil.batch_argv("java", "summarise", 1, 1, 1)


# --- how much to run ------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "seconds", "want"),
    [(300.0, 1.0, 300), (300.2, 1.0, 301), (5.0, 1.0, gil.MIN_BATCHES)],
)
def test_batches_for(rate, seconds, want):
    assert gil.batches_for(rate, seconds) == want


@pytest.mark.parametrize(
    ("cores", "mode", "want"),
    [
        (2, "quick", (1, 2, 3)),
        (2, "default", (1, 2, 3, 4)),
        (1, "quick", (1, 2)),
        (4, "full", (1, 2, 3, 4, 5, 8)),
    ],
)
def test_worker_counts(cores, mode, want):
    assert gil.worker_counts(cores, mode) == want


def test_http_concurrency():
    assert gil.http_concurrency(2, "quick") == (1, 2, 4)
    assert gil.http_concurrency(2, "default") == (1, 2, 4, 8)


@pytest.mark.parametrize(
    ("cpus", "server", "load"),
    [
        ((0, 1), (0, 1), (0, 1)),
        ((0, 1, 2, 3), (0, 1, 2), (3,)),
        (tuple(range(8)), tuple(range(6)), (6, 7)),
    ],
)
def test_http_split(monkeypatch, cpus, server, load):
    monkeypatch.setattr(machine, "available_cpus", lambda: cpus)
    split = gil.http_split()
    assert (split.server, split.load) == (server, load)
    shared = "share all" in gil.describe_split(split)
    assert shared == (server == load)


# --- reading a record ---------------------------------------------------------


def _points(series, task, rates, pss_mib=50):
    return [
        {
            "series": series,
            "task": task,
            "workers": workers,
            "tasks_per_s": rate,
            "memory": {
                "peak_pss_bytes": int(pss_mib * workers * 2**20),
                "peak_rss_bytes": int(2 * pss_mib * workers * 2**20),
                "processes": 1,
            },
        }
        for workers, rate in enumerate(rates, start=1)
    ]


def _record(python, go, rust, compress=(100, 190, 195), cores=2):
    rates = {
        "python threads summarise": python,
        "python processes summarise": (100, 190, 190),
        "go summarise": go,
        "rust summarise": rust,
        "python threads compress": compress,
    }
    points = {}
    for key, values in rates.items():
        series, task = key.rsplit(" ", 1)
        points[key] = _points(series, task, values)
    return {
        "batch": {
            "cores": cores,
            "workers": [1, 2, 3],
            "tasks": ["summarise", "compress"],
            "points": points,
        }
    }


def test_speedups_and_ideal():
    points = _points("go", "summarise", (100, 180, 200))
    assert gil.speedups(points) == [1.0, 1.8, 2.0]
    assert [gil.ideal(w, 2) for w in (1, 2, 3)] == [1.0, 2.0, 2.0]


@pytest.mark.parametrize(
    ("python", "go", "rust", "word"),
    [
        ((100, 100, 98), (100, 190, 195), (100, 199, 200), "holds"),
        ((100, 100, 98), (100, 110, 105), (100, 199, 200), "holds in part"),
        ((100, 180, 190), (100, 190, 195), (100, 199, 200), "holds in part"),
        ((100, 180, 190), (100, 110, 100), (100, 120, 110), "does not hold"),
    ],
)
def test_verdict(python, go, rust, word):
    verdict = gil.verdict(_record(python, go, rust))
    assert verdict.word == word
    assert verdict.workers == 3
    assert f" {word} on this machine" in verdict.sentence
    assert verdict.speedup["go"] == pytest.approx(go[-1] / go[0])


def test_verdict_rule_names_the_thresholds():
    assert "1.25x" in gil.verdict_rule() and "70%" in gil.verdict_rule()


def test_verdict_on_one_core():
    verdict = gil.verdict(_record((1, 1, 1), (1, 1, 1), (1, 1, 1), cores=1))
    assert verdict.word == "not measured"


def test_compress_sentence_compares_the_two_tasks():
    text = gil.compress_sentence(_record((100, 100, 98), (1, 2, 2), (1, 2, 2)))
    assert "1.95x on compress" in text and "0.98x on the summary" in text


def test_processes_sentence_gives_the_memory_ratio():
    record = _record((100, 100, 98), (1, 2, 2), (1, 2, 2))
    procs = record["batch"]["points"]["python processes summarise"]
    for point in procs:
        point["memory"]["peak_pss_bytes"] *= 4
    assert "(4.0x the memory)" in gil.processes_sentence(record)


def test_footprint_prefers_pss():
    assert gil.footprint_bytes({"memory": {"peak_pss_bytes": 5, "peak_rss_bytes": 9}})
    assert gil.footprint_bytes({"memory": {"peak_rss_bytes": 9}}) == 9
    assert gil.footprint_bytes({"memory": {"samples": 0}}) == 0


def test_table_has_a_row_per_run():
    record = _record((100, 100, 98), (100, 190, 195), (100, 199, 200))
    rows = gil.table(record)
    assert len(rows) == 5 * 3
    assert rows[1]["speedup"] == "1.00" and rows[1]["workers"] == 2


def _http_record():
    def point(c, rate, share):
        return {
            "concurrency": c,
            "load": {
                "rate_per_s": rate,
                "latency_ms": {"p50": 1.0, "p99": 2.0},
                "loadgen_cpu_share": share,
            },
            "memory": {"peak_pss_bytes": 2**20},
            "server_cores_busy": share * 10,
        }

    return {
        "http": {
            "server_cpus": [0, 1],
            "shared_cores": True,
            "concurrency": [1, 2, 4],
            "points": {
                "python": [
                    point(1, 100, 0.01),
                    point(2, 105, 0.01),
                    point(4, 98, 0.01),
                ],
                "rust": [point(1, 500, 0.05), point(2, 990, 0.1), point(4, 1000, 0.12)],
            },
        },
        "fingerprint": None,
    }


def test_http_scaling_and_sentences():
    record = _http_record()
    scaling = gil.http_scaling(record["http"])
    assert scaling["python"]["gain"] == pytest.approx(1.05)
    assert scaling["rust"]["best_per_s"] == 1000
    assert scaling["rust"]["most_cores_busy"] == pytest.approx(1.2)
    assert "(2.00x its rate at one connection, 1.20 cores busy at most)" in (
        gil.http_sentence(record)
    )
    assert gil.loadgen_sentence(record) == (
        "oha used at most 12% of the cores it shared with the server."
    )
    assert len(gil.http_table(record)) == 6


def test_figures_draw_the_ideal_line():
    record = _record((100, 100, 98), (100, 190, 195), (100, 199, 200))
    fig = gil.speedup_figure(record["batch"], "summarise", None)
    names = [trace.name for trace in fig.data]
    assert "ideal: min(workers, cores)" in names
    assert list(fig.data[-1].y) == [1.0, 2.0, 2.0]
    assert len(names) == 5  # four series and the ideal
    memory_fig = gil.memory_figure(record["batch"], "summarise", None)
    assert list(memory_fig.data[0].y) == [50.0, 100.0, 150.0]
    assert len(gil.http_figure(_http_record()).data) == 2


def test_more_cores_sentence_names_the_cores():
    assert "2 core(s)" in gil.more_cores_sentence({"batch": {"cores": 2}})
    assert "8 cores" in gil.more_cores_sentence({"batch": {"cores": 8}})


def test_free_threaded_probe_says_why_when_absent(monkeypatch):
    gil.free_threaded_python.cache_clear()
    monkeypatch.setattr(gil.shutil, "which", lambda name: None)
    try:
        found = gil.free_threaded_python()
        assert found["path"] is None
        assert "--disable-gil" in found["why"]
        assert "python free-threaded" not in gil.series_available()
    finally:
        gil.free_threaded_python.cache_clear()


# --- a batch run, with a stand-in program --------------------------------------


def _fake_program(monkeypatch, line: dict, code: int = 0):
    script = f"import json, sys; print(json.dumps({line!r})); sys.exit({code})"

    def argv(series, task, workers, batches, batch_size):
        return [sys.executable, "-c", script], {}

    monkeypatch.setattr(gil, "batch_argv", argv)


def _line(digest: str) -> dict:
    return {**LINE, "workers": 1, "batches": 20, "digest": digest}


def test_run_batch_keeps_a_run_with_the_bench_digest(monkeypatch):
    _fake_program(monkeypatch, _line(gil.expected_digest("summarise", 20, 10)))
    point = gil.run_batch("go", "summarise", 1, 20, 10, machine.available_cpus())
    assert point["tasks_per_s"] == LINE["tasks_per_s"]
    assert "samples" in point["memory"]  # a quick stand-in may give none


def test_run_batch_refuses_another_digest(monkeypatch):
    _fake_program(monkeypatch, _line("00" * 32))
    with pytest.raises(gil.DigestMismatch, match="the bench's is"):
        gil.run_batch("go", "summarise", 1, 20, 10, machine.available_cpus())


def test_run_batch_refuses_a_run_of_other_work(monkeypatch):
    _fake_program(monkeypatch, _line(gil.expected_digest("summarise", 20, 10)))
    with pytest.raises(RuntimeError, match="something else"):
        gil.run_batch("go", "summarise", 2, 20, 10, machine.available_cpus())


def test_run_batch_reports_a_failed_program(monkeypatch):
    _fake_program(monkeypatch, _line("x"), code=3)
    with pytest.raises(RuntimeError, match="exited with 3"):
        gil.run_batch("go", "summarise", 1, 20, 10, machine.available_cpus())
