"""Drives oha, an established HTTP load generator, and reads its JSON.

Two modes: closed loop (a fixed number of connections, each sending its
next request as soon as the last is answered: peak throughput) and open
loop (a constant arrival rate with oha's latency correction, so a stalled
server is charged for the requests it delayed: coordinated omission).

A run fails loudly when any request failed, any answer was not 2xx, or an
open-loop run did not reach its rate: a figure from a broken run is worse
than no figure. oha's own CPU time is recorded, and a figure the generator
(not the server) limited is labelled so.
"""

import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from book import paths, toolchain
from book.servers import raise_nofile

# Above this share of its cores, the generator is the bottleneck.
LOADGEN_BUSY_SHARE = 0.90
# An open-loop run must deliver at least this share of the asked rate.
RATE_REACHED_SHARE = 0.95
# Seconds a run may overrun its duration before it is killed.
OVERRUN_S = 30.0
# Open-file headroom beyond one per connection (stdio, runtime, files).
FD_HEADROOM = 256


class LoadFailed(RuntimeError):
    """The run had errors or did not reach its target; nothing is reported.

    `figures` holds what oha measured when it finished at all, for a caller
    whose finding is the failure itself (a server that drops connections).
    """

    def __init__(self, message: str, figures: dict | None = None):
        super().__init__(message)
        self.figures = figures


@dataclass
class LoadResult:
    url: str
    method: str
    mode: str  # "closed" or "open"
    concurrency: int
    target_rate_per_s: float | None
    duration_s: float
    requests: int
    rate_per_s: float
    latency_ms: dict[str, float]  # p50, p90, p99, p99.9, max, mean
    status_counts: dict[str, int]
    loadgen_cpu_s: float
    loadgen_cores: int
    connections_seen: int | None = None  # established, counted on the server
    db_path: str | None = None  # per-request records (sqlite), when asked
    warnings: list[str] = field(default_factory=list)

    @property
    def loadgen_cpu_share(self) -> float:
        return self.loadgen_cpu_s / (self.duration_s * self.loadgen_cores)

    @property
    def bounded_by_loadgen(self) -> bool:
        return self.loadgen_cpu_share >= LOADGEN_BUSY_SHARE

    def as_dict(self) -> dict:
        return {
            **asdict(self),
            "loadgen_cpu_share": self.loadgen_cpu_share,
            "bounded_by_loadgen": self.bounded_by_loadgen,
        }


def parse_oha_json(text: str) -> dict:
    """The figures this bench uses from oha's --output-format json."""
    raw = json.loads(text)
    summary = raw["summary"]
    percentiles = raw.get("latencyPercentiles") or {}
    codes = raw.get("statusCodeDistribution", {})
    statuses = {str(code): int(count) for code, count in codes.items()}

    def ms(seconds):
        return None if seconds is None else seconds * 1000.0

    return {
        "duration_s": summary["total"],
        "rate_per_s": summary["requestsPerSec"],
        "success_rate": summary["successRate"],
        "requests": sum(statuses.values()),
        "status_counts": statuses,
        "errors": dict(raw.get("errorDistribution") or {}),
        "latency_ms": {
            "p50": ms(percentiles.get("p50")),
            "p90": ms(percentiles.get("p90")),
            "p99": ms(percentiles.get("p99")),
            "p99.9": ms(percentiles.get("p99.9")),
            "max": ms(summary.get("slowest")),
            "mean": ms(summary.get("average")),
        },
    }


def check_figures(figures: dict, target_rate_per_s: float | None, what: str) -> None:
    """Raise LoadFailed when the run cannot be trusted."""
    faults = []
    if figures["errors"]:
        faults.append(f"request errors {figures['errors']}")
    bad = {code: n for code, n in figures["status_counts"].items() if code[0] != "2"}
    if bad:
        faults.append(f"non-2xx answers {bad}")
    if figures["requests"] == 0:
        faults.append("no request was answered")
    if target_rate_per_s and figures["rate_per_s"] < RATE_REACHED_SHARE * (
        target_rate_per_s
    ):
        faults.append(
            f"delivered {figures['rate_per_s']:.0f} req/s of the "
            f"{target_rate_per_s:.0f} asked: the server (or the generator) cannot "
            "keep up; lower the rate"
        )
    if faults:
        raise LoadFailed(f"{what}: " + "; ".join(faults), figures)


def count_established(port: int) -> int:
    """TCP connections established to a local port (seen from the server)."""
    return sum(
        1
        for conn in psutil.net_connections("tcp4")
        if conn.status == psutil.CONN_ESTABLISHED and conn.laddr.port == port
    )


def oha_argv(
    url: str,
    *,
    concurrency: int,
    duration_s: float,
    rate_per_s: float | None,
    method: str,
    body_path: Path | None,
    content_type: str | None,
    worker_threads: int,
    output: Path,
    db_path: Path | None,
    rand_regex_url: bool,
    connect_timeout_s: float | None = None,
) -> list[str]:
    argv = [
        toolchain.require("oha"),
        "--no-tui",
        "--output-format",
        "json",
        "-o",
        str(output),
        "-z",
        f"{duration_s}s",
        "-c",
        str(concurrency),
        # Wait for requests in flight at the deadline rather than count them
        # as errors: the deadline is ours, not a server fault.
        "-w",
        "--worker-threads",
        str(worker_threads),
        "-m",
        method,
    ]
    if rate_per_s:
        argv += ["-q", str(rate_per_s), "--latency-correction"]
    if body_path is not None:
        argv += ["-D", str(body_path)]
    if content_type:
        argv += ["-T", content_type]
    if db_path is not None:
        argv += ["--db-url", str(db_path)]
    if rand_regex_url:
        argv.append("--rand-regex-url")
    if connect_timeout_s is not None:
        # oha's default is 5 s; a server that accepts slowly needs longer
        argv += ["--connect-timeout", f"{connect_timeout_s}s"]
    return [*argv, url]


def run(
    url: str,
    *,
    concurrency: int,
    duration_s: float,
    rate_per_s: float | None = None,
    method: str = "GET",
    body_path: Path | None = None,
    content_type: str | None = None,
    cpus: tuple[int, ...] | None = None,
    server_port: int | None = None,
    per_request: bool = False,
    rand_regex_url: bool = False,
    label: str = "load",
    connect_timeout_s: float | None = None,
    stop: threading.Event | None = None,
) -> LoadResult:
    """One oha run; see the module docstring for what makes it fail.

    `stop`, when set, ends the run early: oha gets SIGINT and reports what
    it measured so far (the duration is then the time it actually ran).
    """
    cpus = cpus or tuple(sorted(os.sched_getaffinity(0)))
    run_dir = paths.RUN_DIR / "load"
    run_dir.mkdir(parents=True, exist_ok=True)
    # per process: two notebooks measuring at once must not share a file
    output = run_dir / f"{label}-{os.getpid()}.json"
    db_path = run_dir / f"{label}-{os.getpid()}.sqlite" if per_request else None
    if db_path is not None:
        db_path.unlink(missing_ok=True)
    argv = oha_argv(
        url,
        concurrency=concurrency,
        duration_s=duration_s,
        rate_per_s=rate_per_s,
        method=method,
        body_path=body_path,
        content_type=content_type,
        worker_threads=len(cpus),
        output=output,
        db_path=db_path,
        rand_regex_url=rand_regex_url,
        connect_timeout_s=connect_timeout_s,
    )
    nofile = concurrency + FD_HEADROOM
    raise_nofile(nofile)  # LimitTooLow here, with a clear message, if it can't

    def pin() -> None:
        os.sched_setaffinity(0, cpus)

    started_s = time.monotonic()
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=pin
    )
    killer = threading.Timer(duration_s + OVERRUN_S, _kill, args=(proc.pid,))
    killer.start()
    finished = threading.Event()
    if stop is not None:
        threading.Thread(
            target=_interrupt_on, args=(stop, finished, proc.pid), daemon=True
        ).start()
    seen = _ConnectionWatch(server_port, duration_s) if server_port else None
    try:
        # wait4 gives the child's own CPU time: what the generator cost.
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        finished.set()
        killer.cancel()
        if seen is not None:
            seen.stop()
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall_s = time.monotonic() - started_s
    stderr = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if proc.returncode != 0 or not output.exists():
        raise LoadFailed(f"oha exited with {proc.returncode}: {stderr.strip()[-800:]}")
    figures = parse_oha_json(output.read_text())
    figures["db_path"] = str(db_path) if db_path else None
    check_figures(figures, rate_per_s, f"{method} {url} at c={concurrency}")
    result = LoadResult(
        url=url,
        method=method,
        mode="open" if rate_per_s else "closed",
        concurrency=concurrency,
        target_rate_per_s=rate_per_s,
        duration_s=figures["duration_s"] or wall_s,
        requests=figures["requests"],
        rate_per_s=figures["rate_per_s"],
        latency_ms=figures["latency_ms"],
        status_counts=figures["status_counts"],
        loadgen_cpu_s=usage.ru_utime + usage.ru_stime,
        loadgen_cores=len(cpus),
        connections_seen=seen.most if seen else None,
        db_path=str(db_path) if db_path else None,
    )
    _add_warnings(result)
    return result


def _add_warnings(result: LoadResult) -> None:
    if result.bounded_by_loadgen:
        result.warnings.append(
            f"the load generator used {result.loadgen_cpu_share:.0%} of its "
            f"{result.loadgen_cores} core(s): this figure is bounded by the "
            "generator; give it more cores or lower the concurrency"
        )
    if result.connections_seen is not None and result.mode == "closed":
        if result.connections_seen < result.concurrency:
            result.warnings.append(
                f"only {result.connections_seen} of {result.concurrency} "
                "connections were seen open at once on the server"
            )


def _interrupt_on(stop: threading.Event, finished: threading.Event, pid: int):
    """SIGINT oha once `stop` is set: it stops and writes its report."""
    while not finished.is_set():
        if stop.wait(0.1):
            if not finished.is_set():
                try:
                    os.kill(pid, signal.SIGINT)
                except ProcessLookupError:
                    pass
            return


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class _ConnectionWatch:
    """Counts established connections on the server's port during a run."""

    def __init__(self, port: int, duration_s: float):
        self.port = port
        self.most = 0
        self._stop = threading.Event()
        self._interval_s = max(0.2, duration_s / 10)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.most = max(self.most, count_established(self.port))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def read_requests(db_path: str) -> list[tuple[float, float, int]]:
    """Per-request (scheduled start s, latency ms, status) from oha's sqlite.

    In open loop the latency runs from when the request was due, not from
    when oha managed to send it (`start_latency_correction`), which is what
    corrects for coordinated omission.
    """
    with sqlite3.connect(db_path) as db:
        rows = db.execute(
            "SELECT COALESCE(start_latency_correction, start), end, status "
            "FROM oha ORDER BY 1"
        ).fetchall()
    return [(due_s, (end_s - due_s) * 1000.0, status) for due_s, end_s, status in rows]
