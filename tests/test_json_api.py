"""The bench's own answer for POST /statuses, and the payloads."""

import json
import shutil

import pytest

from book import json_api, machine, paths


def test_expected_summary_of_twitter_json():
    summary = json_api.expected_summary(paths.TWITTER_JSON.read_bytes())
    assert summary["statuses"] == 100
    assert summary["retweets"] == 73
    assert summary["languages"] == {"ja": 96, "zh": 4}
    assert summary["top_hashtags"][0] == {"tag": "RTした人にやる", "count": 2}
    assert len(summary["top_hashtags"]) == 7


def test_payload_cuts_the_statuses():
    body = json.loads(json_api.payload(10).read_bytes())
    assert len(body["statuses"]) == 10


@pytest.mark.skipif(shutil.which("cargo") is None, reason="needs cargo")
def test_the_in_process_bench_parses_the_body_the_load_sends():
    # HTTP per core against this rate is only fair on the same bytes: the
    # compact body sent is smaller than the pretty-printed file on disk.
    cpu = machine.available_cpus()[0]
    line = json_api.in_process_rate(cpu, duration_s=0.2, statuses=10)
    assert line["body_bytes"] == json_api.payload(10).stat().st_size
    assert line["iterations"] > 0 and line["rate_per_s"] > 0
