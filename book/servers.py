"""Starts a server as a context manager, and makes sure it stops.

Every server gets a free loopback port, its own process group, CPU pinning,
a raised open-file limit and a readiness probe. On the way out (normal end,
exception, KeyboardInterrupt) the whole group is killed. A kernel restart
gives no such chance, so each start is recorded in .run/started and the next
start sweeps whatever an earlier run left behind.
"""

import atexit
import json
import os
import re
import resource
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil

from book import paths

LOOPBACK = "127.0.0.1"
# What every service of this book prints once it accepts connections.
LISTENING_LINE = re.compile(rb"listening on 127\.0\.0\.1:(\d+)")
STOP_GRACE_S = 5.0
READY_TIMEOUT_S = 60.0
STARTED_DIR = paths.RUN_DIR / "started"

_live_servers: set["Server"] = set()


def render_config(template: Path, out: Path, values: dict) -> Path:
    """Fill a config template's `{{name}}` placeholders; refuse any left over."""
    text = template.read_text(encoding="utf-8")
    for name, value in values.items():
        text = text.replace("{{" + name + "}}", str(value))
    if "{{" in text:
        raise ValueError(f"{template.name}: a placeholder was left unfilled")
    out.write_text(text, encoding="utf-8")
    return out


def nginx_command(nginx: str, run_dir: Path, conf: Path) -> list[str]:
    """nginx in the foreground with every path of its own under run_dir."""
    return [
        nginx,
        "-e",
        str(run_dir / "error.log"),
        "-p",
        str(run_dir),
        "-c",
        str(conf),
    ]


class ServerFailed(RuntimeError):
    """A server did not start, or died; the message carries its log's tail."""


class LimitTooLow(RuntimeError):
    """The open-file limit cannot be raised to what a run needs."""


def free_port() -> int:
    """A port the OS picked on loopback, for servers that cannot report one.

    nginx must be given a port in its config; the OS chooses it here and the
    socket is closed just before nginx binds it.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def raise_nofile(wanted: int) -> int:
    """Raise this process's soft open-file limit; returns the limit now set."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and wanted > hard:
        raise LimitTooLow(
            f"{wanted} open files are needed but the hard limit is {hard}: "
            f"lower the connections, or raise the limit (ulimit -Hn) as root"
        )
    if wanted > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        return wanted
    return soft


def _preexec(cpus, nofile, pgid):
    """Runs in the child between fork and exec: pin, raise limits, group."""

    def setup() -> None:
        os.setpgid(0, pgid)
        if cpus:
            os.sched_setaffinity(0, cpus)
        if nofile:
            raise_nofile(nofile)

    return setup


@dataclass
class _Started:
    pgid: int
    leader_create_time: float
    argv: list[str]
    # The Python process that started the group. While it lives, the group
    # is its to stop: another notebook's sweep must not kill it.
    owner_pid: int | None = None
    owner_create_time: float | None = None


def _record_start(started: _Started) -> Path:
    STARTED_DIR.mkdir(parents=True, exist_ok=True)
    path = STARTED_DIR / f"{started.pgid}.json"
    path.write_text(json.dumps(started.__dict__))
    return path


def _owner_alive(started: _Started) -> bool:
    if started.owner_pid is None:
        return False
    try:
        owner = psutil.Process(started.owner_pid)
        return owner.create_time() == started.owner_create_time
    except psutil.NoSuchProcess:
        return False


def sweep_leftovers() -> list[int]:
    """Kill process groups an earlier, interrupted run left behind.

    A group is only killed if it is still the group that run started (see
    `_group_is_ours`), so a reused pid is never touched, and only if the
    Python process that started it is gone: a notebook running beside this
    one keeps its servers.
    """
    killed = []
    if not STARTED_DIR.exists():
        return killed
    for path in STARTED_DIR.glob("*.json"):
        try:
            started = _Started(**json.loads(path.read_text()))
        except (ValueError, TypeError):
            path.unlink(missing_ok=True)
            continue
        if _owner_alive(started):
            continue  # a live run (another kernel, say) still owns it
        if _group_is_ours(started):
            for proc in psutil.process_iter(["pid"]):
                try:
                    if os.getpgid(proc.pid) == started.pgid:
                        proc.kill()
                        killed.append(proc.pid)
                except (ProcessLookupError, PermissionError, psutil.NoSuchProcess):
                    continue
        path.unlink(missing_ok=True)
    return killed


def _group_is_ours(started: _Started) -> bool:
    """Whether the process group `started.pgid` is still the one we started.

    A group id is its leader's pid. While our leader lives, it has the start
    time we recorded; a leader with another start time is a new group that
    reused the pid: not ours. With no leader, the id cannot have been reused
    while members of our group live, so they are ours, unless the machine
    rebooted since (every pid is new then).
    """
    if psutil.boot_time() > started.leader_create_time:
        return False
    try:
        leader = psutil.Process(started.pgid)
        return abs(leader.create_time() - started.leader_create_time) < 0.01
    except psutil.NoSuchProcess:
        return True


class Server:
    """One service (one or more processes in one group) for one measurement.

    `commands` are started in order in one process group; the last is the
    front door. If `port` is None, the front door must print the book's
    `listening on 127.0.0.1:PORT` line, which gives the port the OS chose.
    """

    def __init__(
        self,
        name: str,
        commands: list[list[str]],
        *,
        port: int | None = None,
        cpus: tuple[int, ...] | None = None,
        env: dict | None = None,
        cwd: Path | None = None,
        nofile: int | None = 4096,
        ready_path: str = "/",
        ready_status: int | None = None,
        ready_timeout_s: float = READY_TIMEOUT_S,
        run_dir: Path | None = None,
        ready_check=None,
    ):
        """`ready_check(port) -> bool`, if given, replaces the HTTP probe of
        `ready_path`, for servers that do not speak HTTP (redis-server)."""
        self.name = name
        self.commands = commands
        self.port = port
        self.cpus = cpus
        self.env = env
        self.cwd = cwd
        self.nofile = nofile
        self.ready_path = ready_path
        # None: any HTTP answer means ready. A status: only that one does (a
        # proxy answers 502 until the service behind it is up).
        self.ready_status = ready_status
        self.ready_timeout_s = ready_timeout_s
        self.ready_check = ready_check
        self.run_dir = run_dir or paths.server_run_dir(name)
        self.procs: list[subprocess.Popen] = []
        self.pgid: int | None = None
        self.started_at_s: float | None = None  # time.time() of the first start
        self._record: Path | None = None
        self._port_found = threading.Event()

    # --- start -------------------------------------------------------------

    def __enter__(self) -> "Server":
        _install_sigterm_handler()
        sweep_leftovers()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.nofile:
            raise_nofile(self.nofile)  # fail here, before forking, if too low
        try:
            self._start_all()
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_path(self, index: int, stream: str) -> Path:
        return self.run_dir / f"{index}.{stream}.log"

    def _start_all(self) -> None:
        self.started_at_s = time.time()
        env = {**os.environ, **(self.env or {})}
        for index, argv in enumerate(self.commands):
            stderr_log = open(self.log_path(index, "stderr"), "wb")
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr_log,
                cwd=self.cwd,
                env=env,
                # The first process leads a new group; the rest join it.
                preexec_fn=_preexec(self.cpus, self.nofile, self.pgid or 0),
            )
            stderr_log.close()
            if self.pgid is None:
                self.pgid = proc.pid
                create_time = psutil.Process(proc.pid).create_time()
                self._record = _record_start(
                    _Started(
                        proc.pid,
                        create_time,
                        argv,
                        os.getpid(),
                        psutil.Process().create_time(),
                    )
                )
                _live_servers.add(self)
            self.procs.append(proc)
            is_front = index == len(self.commands) - 1
            threading.Thread(
                target=self._drain_stdout,
                args=(proc, self.log_path(index, "stdout"), is_front),
                daemon=True,
            ).start()

    def _drain_stdout(self, proc, log_path: Path, is_front: bool) -> None:
        """Keep the pipe empty (a full pipe blocks the server) and find the port."""
        with open(log_path, "wb") as log:
            for line in proc.stdout:
                log.write(line)
                log.flush()
                if is_front and self.port is None:
                    match = LISTENING_LINE.search(line)
                    if match:
                        self.port = int(match.group(1))
                        self._port_found.set()

    def _wait_ready(self) -> None:
        deadline_s = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline_s:
            self._check_alive()
            if self.port is not None and self._answers():
                return
            # a fine probe interval: start-up times of a few ms are measured
            self._port_found.wait(0.005)
        raise ServerFailed(
            f"{self.name} was not ready within {self.ready_timeout_s:.0f} s\n"
            + self.log_tail()
        )

    def _answers(self) -> bool:
        if self.ready_check is not None:
            return self.ready_check(self.port)
        try:
            with urllib.request.urlopen(self.url(self.ready_path), timeout=2) as got:
                return self.ready_status in (None, got.status)
        except urllib.error.HTTPError as error:
            # it answered; unless a status is asked for, verification judges it
            return self.ready_status in (None, error.code)
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False

    def _check_alive(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                raise ServerFailed(
                    f"{self.name}: `{' '.join(map(str, proc.args))}` exited with "
                    f"code {proc.returncode}\n" + self.log_tail()
                )

    # --- while running -----------------------------------------------------

    def url(self, path: str = "/") -> str:
        return f"http://{LOOPBACK}:{self.port}{path}"

    @property
    def pid(self) -> int:
        """The first process's id: the root of the tree to measure."""
        return self.procs[0].pid

    @property
    def pids(self) -> list[int]:
        """Every process this server started: the roots of what to measure."""
        return [proc.pid for proc in self.procs]

    def exited(self) -> bool:
        return any(proc.poll() is not None for proc in self.procs)

    def stderr_text(self, index: int = -1) -> str:
        index = index % len(self.commands)
        return self.log_path(index, "stderr").read_text(errors="replace")

    def log_tail(self, lines: int = 20) -> str:
        parts = []
        for index in range(len(self.commands)):
            for stream in ("stdout", "stderr"):
                path = self.log_path(index, stream)
                if path.exists():
                    text = path.read_text(errors="replace").splitlines()[-lines:]
                    if text:
                        parts.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(parts) or "(no output)"

    # --- stop --------------------------------------------------------------

    def stop(self) -> None:
        """Stop the whole group: SIGTERM, a grace period, then SIGKILL."""
        if self.pgid is None:
            return
        try:
            os.killpg(self.pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline_s = time.monotonic() + STOP_GRACE_S
        for proc in self.procs:
            try:
                proc.wait(max(0.0, deadline_s - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        # Workers (php-fpm's, nginx's) are not our children: kill the group.
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for proc in self.procs:
            try:
                proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                pass
        if self._record is not None:
            self._record.unlink(missing_ok=True)
        _live_servers.discard(self)
        self.pgid = None


@atexit.register
def _stop_all() -> None:
    for server in list(_live_servers):
        server.stop()


def _on_sigterm(signum, frame) -> None:
    """A plain `kill` of the bench: stop every server, then die as asked.

    atexit handlers do not run when a signal ends the process, so without
    this a SIGTERM would leave the servers running (the next start sweeps
    them, but only then).
    """
    _stop_all()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _install_sigterm_handler() -> None:
    # Only from the main thread, and never over a handler someone else set.
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
