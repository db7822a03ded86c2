"""Finding tools, build stamps, and streamed builds inside a real kernel."""

import sys

import pytest
from jupyter_client.manager import start_new_kernel

from book import toolchain


def test_missing_tool_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(
        toolchain.TOOLS,
        "nginx",
        toolchain.Tool("nginx", ("no-such-nginx",), ("-v",), "apt-get install x"),
    )
    with pytest.raises(toolchain.ToolMissing, match="`apt-get install x`"):
        toolchain.require("nginx")


def test_sources_hash_changes_with_content(tmp_path, monkeypatch):
    monkeypatch.setattr(toolchain.paths, "ROOT", tmp_path)
    (tmp_path / "a.rs").write_text("fn main() {}")
    first = toolchain.sources_hash([tmp_path])
    assert toolchain.sources_hash([tmp_path]) == first
    (tmp_path / "a.rs").write_text("fn main() { }")
    assert toolchain.sources_hash([tmp_path]) != first


def test_streamed_run_works_inside_a_jupyter_kernel():
    """subprocess-tee calls asyncio.run; a kernel already runs a loop."""
    manager, client = start_new_kernel(kernel_name="python3")
    code = (
        "from book import toolchain\n"
        f"toolchain.run_streamed([{sys.executable!r}, '-c', "
        "'print(\"compiled ok\")'], 'kernel-check', toolchain.paths.ROOT)\n"
        "print('after build')\n"
    )
    try:
        outputs = []
        reply = client.execute_interactive(code, timeout=60, output_hook=outputs.append)
        assert reply["content"]["status"] == "ok", reply["content"]
        texts = [
            str(msg["content"].get("text", msg["content"].get("data", "")))
            for msg in outputs
        ]
        assert any("after build" in text for text in texts)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    log = toolchain.paths.RUN_DIR / "build-logs" / "kernel-check.log"
    assert "compiled ok" in log.read_text()


def test_failed_build_names_the_command_and_log():
    argv = [sys.executable, "-c", "import sys; print('error[E0001]'); sys.exit(2)"]
    with pytest.raises(toolchain.BuildFailed, match="exit code 2"):
        toolchain.run_streamed(argv, "fails", toolchain.paths.ROOT)


def test_a_build_without_echo_writes_only_its_log(capfd):
    argv = [sys.executable, "-c", "print('quiet build output')"]
    toolchain.run_streamed(argv, "quiet-check", toolchain.paths.ROOT, echo=False)
    assert "quiet build output" not in capfd.readouterr().out
    log = toolchain.paths.RUN_DIR / "build-logs" / "quiet-check.log"
    assert "quiet build output" in log.read_text()
