"""A chapter whose tool is missing shows the saved measurement, labelled."""

import pytest

from book import results, toolchain


def _missing_tool():
    raise toolchain.ToolMissing("nginx")


def test_saved_record_stands_in_with_a_label(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(results.paths, "RESULTS_DIR", tmp_path / "none")
    monkeypatch.setattr(results.paths, "REFERENCE_RESULTS_DIR", tmp_path)
    fingerprint = {"cpu_model": "x", "cpus_available": 2, "memory_bytes": 2**30,
                   "os": "y"}  # fmt: skip
    saved = {"started_at": "a", "ended_at": "b", "fingerprint": fingerprint}
    results.save(saved, "ch", "sweep", root=tmp_path)
    record = results.measured_or_saved("ch", "sweep", _missing_tool)
    assert record["not_from_this_run"] is True
    said = capsys.readouterr().out
    assert "NOT MEASURED IN THIS RUN" in said and "apt-get install" in said
    assert "(reference)" in said


def test_without_a_saved_record_the_error_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(results.paths, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr(results.paths, "REFERENCE_RESULTS_DIR", tmp_path)
    with pytest.raises(RuntimeError, match="no saved measurement"):
        results.measured_or_saved("ch", "sweep", _missing_tool)


def test_build_report_names_the_install_command(capsys, monkeypatch):
    # the load generator comes first; here it is present, the chapter's tool not
    monkeypatch.setattr(toolchain, "build_oha", lambda: None)
    toolchain.build_and_report(lambda: _missing_tool())
    assert "NOT BUILT: nginx is not installed" in capsys.readouterr().out
