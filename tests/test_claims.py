"""Verdicts are computed from the ratio measured, table-driven."""

import pytest

from book import claims


@pytest.mark.parametrize(
    ("key", "measured", "word"),
    [
        ("php_throughput", 12.0, "holds"),
        ("php_throughput", 10.0, "holds"),
        ("php_throughput", 3.0, "holds in part"),
        ("php_throughput", 0.9, "does not hold"),
        ("php_memory", 5.0, "holds"),
        ("php_memory", 2.0, "holds in part"),
        ("cache_memory", 11.0, "holds"),
    ],
)
def test_ratio_verdict(key, measured, word):
    verdict = claims.ratio_verdict(claims.claim(key), measured)
    assert verdict.word == word
    assert f"{measured:.1f}x" in verdict.sentence


def test_claimed_ratios_follow_the_article():
    assert claims.claim("php_throughput").claimed_ratio == 10.0
    assert claims.claim("php_memory").claimed_ratio == 5.0
    assert claims.claim("cache_memory").claimed_ratio == pytest.approx(10.24)


def test_a_claim_without_figures_has_no_ratio_verdict():
    with pytest.raises(ValueError, match="gives no figures"):
        claims.ratio_verdict(claims.claim("gc_latency"), 2.0)


def test_unknown_claim_names_the_known_ones():
    with pytest.raises(KeyError, match="php_throughput"):
        claims.claim("nope")
