"""The trade-offs chapter's verdicts and balancer config, on synthetic data."""

import pytest

from book import scoreboard, tradeoffs


def _point(rate_per_s: float) -> dict:
    return {"load": {"rate_per_s": rate_per_s}}


RECORD = {
    "builds": {
        "rust": {"clean_s": 90.0, "incremental_s": 60.0},
        "go": {"clean_s": 30.0, "incremental_s": 1.0},
        "java": {"clean_s": 2.0, "incremental_s": 2.0},
    },
    "start_up": {
        "go": {"first_answer_s": 0.04},
        "rust": {"first_answer_s": 0.02},
        "java": {"first_answer_s": 0.3},
    },
    "join_s": {"go": 0.08},
    "scale_out": {
        "rust": [_point(20000.0), _point(19000.0)],
        "go": [_point(8000.0), _point(9000.0)],
        "java": [_point(5000.0), _point(4000.0)],
    },
}


def test_compile_verdict_compares_clean_builds():
    verdict = tradeoffs.compile_verdict(RECORD)
    assert verdict.word == "holds"
    assert "3.0x" in verdict.sentence


def test_compile_verdict_can_fail():
    faster_rust = {**RECORD, "builds": {**RECORD["builds"], "rust": {
        "clean_s": 10.0, "incremental_s": 1.0}}}  # fmt: skip
    assert tradeoffs.compile_verdict(faster_rust).word == "does not hold"


def test_deploy_verdict_times_a_change_to_its_first_answer():
    verdict = tradeoffs.deploy_verdict(RECORD)
    assert verdict.word == "holds"
    assert "1.0 s in Go, 60.0 s in Rust and 2.3 s on the JVM" in verdict.sentence


def test_deploy_verdict_fails_past_the_bound():
    slow = {**RECORD, "start_up": {**RECORD["start_up"], "go": {"first_answer_s": 20}}}
    assert tradeoffs.deploy_verdict(slow).word == "does not hold"


def test_vertical_verdict_counts_instances_needed():
    verdict = tradeoffs.vertical_verdict(RECORD)
    assert verdict.word == "holds"
    assert "1/3" in verdict.sentence  # 20,000 / 8,000 rounded up
    assert "1/4" in verdict.sentence  # 20,000 / 5,000


def test_balancer_lists_every_instance(tmp_path):
    conf = tradeoffs._render_balancer(tmp_path, 8080, [4001, 4002], 1).read_text()
    assert "server 127.0.0.1:4001;" in conf and "server 127.0.0.1:4002;" in conf
    assert "listen 127.0.0.1:8080;" in conf
    assert "{{" not in conf


@pytest.mark.parametrize("missing", [True, False])
def test_scoreboard_html_links_each_claim_to_its_chapter(missing):
    verdict = tradeoffs.compile_verdict(RECORD)
    row = {"claim": tradeoffs.claims.claim("compile_time"), "chapter": "tradeoffs",
           "source": "reference"}  # fmt: skip
    if not missing:
        row.update(verdict=verdict, measured_at="2026-12-04T09:00:00+00:00",
                   machine="a machine")  # fmt: skip
    page = scoreboard.to_html([row])
    assert 'href="chapters/tradeoffs.html"' in page
    assert ("not measured" in page) == missing
    assert ("(reference set)" in page) != missing


def test_every_claim_is_on_the_scoreboard():
    listed = {entry.claim_key for entry in scoreboard.ENTRIES}
    assert listed == {claim.key for claim in tradeoffs.claims.CLAIMS}


def test_every_scoreboard_entry_names_a_real_verdict():
    import importlib

    for entry in scoreboard.ENTRIES:
        module = importlib.import_module(f"book.{entry.module}")
        assert callable(getattr(module, entry.verdict)), entry
        assert module.CHAPTER == tradeoffs.claims.claim(entry.claim_key).chapter
