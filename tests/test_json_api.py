"""The bench's own answer for POST /statuses, and the payloads."""

import json

from book import json_api, paths


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
