"""The cache chapter's parsers and computations, on fixtures and synthetic data."""

import pytest

from book import cache, claims, load
from tests.conftest import FIXTURES

GO_BENCH = (FIXTURES / "gobench" / "stores.txt").read_text()


def test_go_bench_lines_are_parsed_with_and_without_the_procs_suffix():
    rows = cache.parse_go_bench(GO_BENCH)
    assert len(rows) == 16
    first = rows[0]
    assert (first["store"], first["read_percent"], first["procs"]) == (
        "rwmutex",
        100,
        1,
    )
    assert first["ns_per_op"] == 22.06
    assert first["ops_per_s"] == pytest.approx(1e9 / 22.06)
    assert rows[1]["procs"] == 2
    assert {r["store"] for r in rows} == {"rwmutex", "syncmap"}
    assert rows[-1]["allocs_per_op"] == 2


def test_repeats_are_merged_into_their_median():
    rows = cache.parse_go_bench(GO_BENCH + GO_BENCH.replace("22.06 ns", "30.00 ns"))
    merged = cache.median_rows(rows)
    assert len(merged) == 16
    first = next(
        r
        for r in merged
        if (r["store"], r["read_percent"], r["procs"]) == ("rwmutex", 100, 1)
    )
    assert first["repeats"] == 2
    assert first["ns_per_op"] == pytest.approx(26.03)


def test_syncmap_verdict_counts_wins_and_losses():
    bench = {"rows": cache.median_rows(cache.parse_go_bench(GO_BENCH))}
    cases = cache.syncmap_against_rwmutex(bench)
    assert len(cases) == 8
    assert all(c["speedup"] < 1 for c in cases)  # the fixture: it lost them all
    text = cache.syncmap_verdict(bench)
    assert "in 0 of 8 cases and lost 8" in text
    # a synthetic win keeps the sentence's shape
    for row in bench["rows"]:
        if row["store"] == "syncmap" and row["read_percent"] == 100:
            row["ns_per_op"] = 1.0
    text = cache.syncmap_verdict(bench)
    assert "in 2 of 8 cases and lost 6" in text
    assert "Its best case: 100% reads" in text


@pytest.mark.parametrize(
    ("connections", "share", "want"),
    [
        (10_000, 0.9, {"GET": 9000, "PUT": 1000}),
        (100, 1.0, {"GET": 100}),
        (100, 0.0, {"PUT": 100}),
        (10, 0.99, {"GET": 9, "PUT": 1}),  # both kinds when a mix is asked
        (3, 0.5, {"GET": 2, "PUT": 1}),
    ],
)
def test_connections_are_split_by_the_mix(connections, share, want):
    assert cache.split_connections(connections, share) == want


def test_a_mix_out_of_range_is_refused():
    with pytest.raises(ValueError):
        cache.split_connections(100, 1.5)


def test_rates_over_a_window_and_per_second():
    done = [0.1, 0.2, 1.5, 2.0, 2.5, 2.9, 3.1]
    assert cache.rate_between(done, 2.0, 3.0) == 3.0
    assert cache.rate_between(done, None, 3.0) is None
    assert cache.per_second(done) == [(0, 2), (1, 1), (2, 3), (3, 1)]


def test_established_sockets_are_read_from_proc_net_tables(tmp_path, monkeypatch):
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when "
    header += "retrnsmt   uid  timeout inode\n"
    tcp = tmp_path / "tcp"
    tcp.write_text(
        header
        # established to 127.0.0.1:8080 (0x1F90), inode 111
        + "   0: 0100007F:1F90 0100007F:A000 01 00000000:00000000 00:00000000 "
        "00000000     0        0 111 1\n"
        # listening on the same port: not counted
         + "   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 "
        "00000000     0        0 112 1\n"
        # the client's end (local port is ephemeral): not counted
         + "   2: 0100007F:A000 0100007F:1F90 01 00000000:00000000 00:00000000 "
        "00000000     0        0 113 1\n"
    )
    tcp6 = tmp_path / "tcp6"
    tcp6.write_text(
        header
        # a JVM's IPv4-mapped socket
        + "   0: 0000000000000000FFFF00000100007F:1F90 "
        "0000000000000000FFFF00000100007F:A001 01 00000000:00000000 "
        "00:00000000 00000000     0        0 114 1\n"
    )
    monkeypatch.setattr(cache, "PROC_NET_TCP", (tcp, tcp6))
    assert cache.established_inodes(8080) == {"111", "114"}


def _point(target, connections, peak_mib, rate=1000.0, errors=None):
    return {
        "target": target,
        "connections": connections,
        "memory": {"peak_rss_bytes": peak_mib * claims.MIB},
        "rate_per_s": rate,
        "held_rate_per_s": rate,
        "errors": errors or {},
        "non_2xx": 0,
        "requests": 100,
        "runs": {"GET": {"requests": 90}, "PUT": {"requests": 10}},
        "accepted_most": connections,
        "all_accepted_at_s": 1.0,
    }


def _record(java_mib, go_mib, top=10_000):
    return {
        "knobs": {"connections": [100, top], "stores": ["rwmutex", "redis"]},
        "skipped": {},
        "points": {
            "java": [_point("java", 100, 100), _point("java", top, java_mib)],
            "rwmutex": [_point("rwmutex", 100, 20), _point("rwmutex", top, go_mib)],
            "redis": [_point("redis", top, go_mib * 2, rate=500.0, errors={"x": 3})],
        },
    }


@pytest.mark.parametrize(
    ("java_mib", "go_mib", "word"),
    [(2048, 200, "holds"), (820, 300, "holds in part"), (100, 300, "does not hold")],
)
def test_memory_verdict_compares_the_ratios(java_mib, go_mib, word):
    assert cache.memory_verdict(_record(java_mib, go_mib)).word == word


def test_verdict_text_says_when_the_load_was_smaller_than_the_articles():
    assert "not the article's" not in cache.verdict_text(_record(820, 300))
    record = {**_record(820, 300, 1000), "mode": "quick"}
    assert "10,000: the verdict is for this load only (quick mode)" in (
        cache.verdict_text(record)
    )


def test_growth_per_connection_and_the_closing_rows():
    record = _record(1090, 218)
    slope = cache.per_connection_bytes(record, "java")
    assert slope == pytest.approx((1090 - 100) * claims.MIB / 9900)
    assert cache.per_connection_bytes(record, "redis") is None
    rows = cache.closing_rows(record)
    assert len(rows) == 5
    assert rows[-1]["failed"] == 3
    assert "0.50x rwmutex" in cache.stores_text(record)[1]


def test_oha_gets_a_connect_timeout_only_when_asked(tmp_path):
    common = {
        "concurrency": 10,
        "duration_s": 1.0,
        "rate_per_s": None,
        "method": "GET",
        "body_path": None,
        "content_type": None,
        "worker_threads": 1,
        "output": tmp_path / "out.json",
        "db_path": None,
        "rand_regex_url": True,
    }
    url = "http://127.0.0.1:1" + cache.KEY_PATTERN
    assert "--connect-timeout" not in load.oha_argv(url, **common)
    argv = load.oha_argv(url, **common, connect_timeout_s=90.0)
    assert argv[argv.index("--connect-timeout") + 1] == "90.0s"
    assert argv[-1] == url


def test_connection_counts_above_the_file_limit_are_left_out(monkeypatch):
    monkeypatch.setattr(cache.resource, "getrlimit", lambda _: (1024, 4096))
    levels, reason = cache.within_file_limit((100, 1000, 10_000))
    assert levels == (100, 1000)
    assert "hard limit is 4096" in reason and "10,000" in reason
    monkeypatch.setattr(cache.resource, "getrlimit", lambda _: (1024, 1100))
    with pytest.raises(cache.LimitTooLow):
        cache.within_file_limit((100, 1000))


def test_a_failed_run_keeps_its_figures_and_a_crashed_one_says_why(monkeypatch):
    figures = {"requests": 5, "errors": {"connection error": 2}}

    def failing_run(**kwargs):
        if kwargs["method"] == "GET":
            raise load.LoadFailed("GET: request errors", figures)
        raise load.LoadFailed("oha exited with 1")

    monkeypatch.setattr(cache.load, "run", failing_run)
    runs = {}
    cache._run_or_figures({"method": "GET"}, runs, "GET")
    cache._run_or_figures({"method": "PUT"}, runs, "PUT")
    assert runs["GET"]["requests"] == 5 and "request errors" in runs["GET"]["failed"]
    assert runs["PUT"] == {"crashed": "oha exited with 1"}


def test_a_server_that_never_held_every_connection_is_reported_not_hidden():
    record = _record(1500, 300)
    java_top = record["points"]["java"][-1]
    java_top.update(
        errors={"connection error": 1394},
        accepted_most=9_100,
        all_accepted_at_s=None,
        short="java: asked for 10,000 connections, the server held at most 9,100",
    )
    verdict = cache.verdict_text(record)
    assert "never held them all, at most 9,100, and 1,394 requests failed" in verdict
    # the scoreboard shows this sentence alone: it carries the caveat too
    assert "held at most 9,100 of 10,000 connections" in (
        cache.memory_verdict(record).sentence
    )
    assert "4 of 5 points held every connection" in cache.connections_text(record)
    assert any("never held them all" in line for line in cache.load_text(record))
    # the slope counts the connections the server really held
    slope = cache.per_connection_bytes(record, "java")
    assert slope == pytest.approx((1500 - 100) * claims.MIB / (9_100 - 100))


def test_failed_requests_with_every_connection_held_are_not_called_short():
    record = _record(1500, 300)
    record["points"]["rwmutex"][-1]["errors"] = {"connection reset": 3}
    verdict = cache.verdict_text(record)
    assert "held every connection, but 3 requests failed" in verdict
    assert "turning some clients away" not in verdict
    assert "held at most" not in cache.memory_verdict(record).sentence
