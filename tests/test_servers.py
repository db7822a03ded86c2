"""Servers start on a port the OS picks and never outlive their block."""

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from book import servers


def _gone(pid: int, within_s: float = 5.0) -> bool:
    """Dead (or a zombie) within a few seconds: SIGKILL is not instant."""
    deadline_s = time.monotonic() + within_s
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() > deadline_s:
            return False
        time.sleep(0.05)


def test_free_port_is_on_loopback_and_bindable():
    port = servers.free_port()
    assert 1024 <= port < 65536


def test_port_comes_from_the_listening_line(python_server_argv):
    with servers.Server("t-listen", [python_server_argv]) as server:
        assert server.port and server.url("/").startswith("http://127.0.0.1:")
        conns = psutil.Process(server.pid).net_connections("tcp")
        listening = [c for c in conns if c.status == psutil.CONN_LISTEN]
        assert [c.laddr.ip for c in listening] == ["127.0.0.1"]
    assert _gone(server.procs[0].pid)


def test_whole_group_is_killed_after_an_exception(python_server_argv):
    # the front door has a child of its own, as php-fpm and nginx do
    sleeper = "import time; time.sleep(600)"
    code = (
        "import subprocess, sys, time; "
        f"subprocess.Popen([sys.executable, '-c', {sleeper!r}]); "
        "time.sleep(600)"
    )
    parent = [sys.executable, "-c", code]
    with pytest.raises(RuntimeError, match="boom"):
        with servers.Server("t-exc", [parent, python_server_argv]) as server:
            deadline_s = time.monotonic() + 10
            tree = []
            while not tree and time.monotonic() < deadline_s:
                time.sleep(0.05)  # the parent starts its child after it starts
                tree = psutil.Process(server.pid).children(recursive=True)
            assert tree, "the test needs a grandchild"
            raise RuntimeError("boom")
    for proc in tree:
        assert _gone(proc.pid)


def test_whole_group_is_killed_after_an_interrupt(python_server_argv):
    with pytest.raises(KeyboardInterrupt):
        with servers.Server("t-int", [python_server_argv]) as server:
            pid = server.pid
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
    assert _gone(pid)


def test_a_server_that_dies_at_start_reports_its_log():
    argv = [sys.executable, "-c", "import sys; print('bad config'); sys.exit(3)"]
    with pytest.raises(servers.ServerFailed, match="exited with code 3"):
        with servers.Server("t-dies", [argv], ready_timeout_s=5):
            pass


def test_next_start_sweeps_what_a_killed_run_left_behind(tmp_path):
    # A separate Python starts a server and is SIGKILLed, as a kernel is.
    script = (
        "import time, sys\n"
        "from book import servers\n"
        "argv = [sys.executable, '-c', 'import time; print(\"listening on "
        "127.0.0.1:1\", flush=True); time.sleep(600)']\n"
        "s = servers.Server('t-orphan', [argv], ready_timeout_s=0.5)\n"
        "s.run_dir.mkdir(parents=True, exist_ok=True)\n"
        "s._start_all()\n"
        "print(s.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    runner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    orphan = int(runner.stdout.readline())
    runner.kill()
    runner.wait()
    assert not _gone(orphan, within_s=0), "the orphan should outlive its parent"
    killed = servers.sweep_leftovers()
    assert orphan in killed
    assert _gone(orphan)


def test_limit_too_low_is_said_plainly():
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard open-file limit here")
    with pytest.raises(servers.LimitTooLow, match="hard limit"):
        servers.raise_nofile(hard + 1)


def test_sweep_leaves_a_group_that_reused_the_pid_alone():
    # an unrelated group leader, with a stale record claiming its pid earlier
    bystander = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], process_group=0
    )
    try:
        stale = servers._Started(
            pgid=bystander.pid,
            leader_create_time=psutil.Process(bystander.pid).create_time() - 100,
            argv=["old"],
        )
        servers._record_start(stale)
        assert bystander.pid not in servers.sweep_leftovers()
        assert bystander.poll() is None, "the sweep killed a process not ours"
    finally:
        bystander.kill()
        bystander.wait()


def test_a_plain_kill_of_the_bench_stops_its_servers():
    script = (
        "import sys, time\n"
        "from book import servers\n"
        "argv = [sys.executable, '-c', 'import time; print(\"listening on "
        "127.0.0.1:1\", flush=True); time.sleep(600)']\n"
        "s = servers.Server('t-term', [argv], ready_timeout_s=0.5)\n"
        "servers._install_sigterm_handler()\n"
        "s.run_dir.mkdir(parents=True, exist_ok=True)\n"
        "s._start_all()\n"
        "print(s.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    runner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    server_pid = int(runner.stdout.readline())
    runner.terminate()
    assert runner.wait(15) == -signal.SIGTERM
    assert _gone(server_pid, within_s=10)
