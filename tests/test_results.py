"""Records are written whole and read back."""

import pytest

from book import results


def test_save_and_load(tmp_path):
    record = {"started_at": "a", "ended_at": "b", "fingerprint": {}, "x": 1}
    path = results.save(record, "ch", "r", root=tmp_path)
    assert path == tmp_path / "ch" / "r.json"
    assert results.load("ch", "r", root=tmp_path)["x"] == 1
    assert not list(path.parent.glob("*.tmp"))


def test_a_record_without_its_metadata_is_refused(tmp_path):
    with pytest.raises(ValueError, match="fingerprint"):
        results.save({"started_at": "a", "ended_at": "b"}, "ch", "r", root=tmp_path)
