"""oha's output, parsed from recorded runs (tests/fixtures/oha)."""

import pytest
from conftest import FIXTURES

from book import load

OHA = FIXTURES / "oha"


def test_closed_loop_figures():
    figures = load.parse_oha_json((OHA / "closed.json").read_text())
    assert figures["status_counts"] == {"200": 2144}
    assert figures["requests"] == 2144
    assert figures["rate_per_s"] == pytest.approx(2143.715, rel=1e-6)
    assert figures["latency_ms"]["p99"] == pytest.approx(4.029072)
    assert figures["latency_ms"]["max"] == pytest.approx(5.359158)


def test_open_loop_reaches_its_rate():
    figures = load.parse_oha_json((OHA / "open.json").read_text())
    load.check_figures(figures, target_rate_per_s=50, what="open")  # no raise


@pytest.mark.parametrize(
    ("fixture", "target", "message"),
    [
        ("notfound.json", None, "non-2xx answers {'404': 20}"),
        ("refused.json", None, "Connection refused"),
        ("open.json", 100, "delivered 50 req/s of the 100 asked"),
        # oha counts requests cut at the deadline as errors; without -w they
        # would make every run fail, which is why the bench passes -w.
        ("closed.json", None, "aborted due to deadline"),
    ],
)
def test_untrustworthy_runs_fail_loudly(fixture, target, message):
    figures = load.parse_oha_json((OHA / fixture).read_text())
    with pytest.raises(load.LoadFailed, match=message) as failure:
        load.check_figures(figures, target, fixture)
    # what was measured travels with the failure, for a caller to show
    assert failure.value.figures is figures


def test_per_request_records_are_latency_corrected():
    rows = load.read_requests(str(OHA / "open.sqlite"))
    assert len(rows) == 20
    due_s, latency_ms, status = rows[0]
    assert status == 200
    # end (0.013199532) minus the time the request was due (0.001327525)
    assert latency_ms == pytest.approx(11.872007, rel=1e-6)
    assert due_s == pytest.approx(0.001327525)


def test_loadgen_share_labels_a_generator_bound_figure():
    result = load.LoadResult(
        url="u", method="GET", mode="closed", concurrency=8,
        target_rate_per_s=None, duration_s=2.0, requests=10, rate_per_s=5.0,
        latency_ms={}, status_counts={"200": 10}, loadgen_cpu_s=1.9,
        loadgen_cores=1,
    )  # fmt: skip
    assert result.bounded_by_loadgen
    load._add_warnings(result)
    assert "bounded by the generator" in result.warnings[0]
