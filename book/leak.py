"""The leak chapter's bench: a Java heap that fills, against Rust ownership.

Three services answer the same session API (POST /sessions, GET /stats):
LeakService in Java, which keeps every session in a static map until the
heap runs out; leak-service in Rust with the same unbounded map; and
leak-service with a capacity-limited map. Each gets the same open-loop load
(a constant rate, latency-corrected) on the same core, while the bench
samples its memory, polls /stats for the heap, reads the JVM's GC log, and
watches for the end: the JVM's OutOfMemoryError, or the RSS watchdog.

The bound the reader sets is the heap cap: what a service may keep. The JVM
holds its heap to it (-Xmx); the watchdog holds each process's RSS to its
RSS at start plus the cap (plus, for the JVM, an allowance for what grows
outside the heap) and kills the server the moment it crosses, so no run can
make the machine swap.
"""

import http.client
import json
import math
import os
import signal
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from book import (
    gclog,
    load,
    machine,
    memory,
    modes,
    paths,
    plots,
    results,
    tables,
    toolchain,
    verify,
)
from book.servers import Server

CHAPTER = "leak"
SESSIONS_PATH = "/sessions"
STATS_PATH = "/stats"
KIB = 1024
MIB = 1024**2

# What a session's request carries: a user and 40 items, about 1 KB of JSON.
BODY_ITEMS = 40
# Both services refuse a body over 64 KiB (413).
BODY_LIMIT_BYTES = 64 * KIB
# What the JVM's RSS may grow by outside the heap under this load: G1's
# remembered sets and card table, JIT code, metaspace, thread stacks. The
# heap flag stops the JVM long before; this keeps the watchdog a backstop.
JVM_NON_HEAP_ALLOWANCE_BYTES = 128 * MIB
# What one leaked session costs the Java heap beyond its buffer: the parsed
# request (40 strings), the record, the map entry. Measured: about 4 KiB.
JAVA_SESSION_OVERHEAD_BYTES = 4 * KIB
OOM_EXIT_CODE = 3  # -XX:+ExitOnOutOfMemoryError makes the JVM exit with 3
OOM_LINE = "java.lang.OutOfMemoryError"
# The bounded cache may keep a quarter of the heap cap's worth of sessions,
# so it fills early in the run and what follows shows whether memory is flat.
CACHE_SHARE_OF_CAP = 0.25
MIN_CAPACITY_SESSIONS = 16
CONNECTIONS = 32  # oha's connections; the rate, not these, sets the load
STATS_INTERVAL_S = 0.25
EXIT_WATCH_INTERVAL_S = 0.02
# A server still answering this long after the load's deadline is hung (a
# JVM stuck in back-to-back full collections): the bench stops it.
HUNG_AFTER_S = 5.0
# Memory may use at most this share of the machine, whatever the knobs say.
MACHINE_SHARE_LIMIT = 0.25


@dataclass(frozen=True)
class Settings:
    heap_cap_mib: int
    rate_per_s: float
    leak_bytes: int
    max_bound_s: float  # no run lasts longer, whatever the estimate says


# Quick mode: a small cap and a higher rate, so the heap fills in seconds.
SETTINGS = {
    "quick": Settings(heap_cap_mib=32, rate_per_s=250, leak_bytes=16 * KIB,
                      max_bound_s=30),
    "default": Settings(heap_cap_mib=64, rate_per_s=200, leak_bytes=16 * KIB,
                        max_bound_s=120),
    "full": Settings(heap_cap_mib=64, rate_per_s=200, leak_bytes=16 * KIB,
                     max_bound_s=300),
}  # fmt: skip

STACKS = {
    "java": "Java LeakService (static map)",
    "rust-unbounded": "Rust leak-service, unbounded map",
    "rust-bounded": "Rust leak-service, bounded cache",
}
# Java first: the Rust runs last as long as the runs before them did.
ORDER = ("java", "rust-unbounded", "rust-bounded")


def settings() -> Settings:
    return SETTINGS[modes.current().name]


# --- the three services ------------------------------------------------------


def payload() -> Path:
    """The request body every POST /sessions sends: about 1 KB of JSON."""
    items = [f"item-{index:04d}-{'x' * 16}" for index in range(BODY_ITEMS)]
    body = json.dumps({"user": "u123", "items": items}, separators=(",", ":"))
    path = paths.RUN_DIR / "payloads" / "leak-session.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
    return path


# What build_all built, by name. The services start from these, so a source
# edited while the chapter runs does not trigger a build in the middle of it.
_BUILT: dict[str, Path] = {}


def build_all() -> list[toolchain.Built]:
    """LeakService (javac) and leak-service (cargo)."""
    built = [
        toolchain.build_java("leak"),
        toolchain.build_cargo("leak-service"),
    ]
    _BUILT.update({b.name: b.path for b in built})
    return built


def _product(name: str, build) -> Path:
    if name not in _BUILT:
        _BUILT[name] = build().path
    return _BUILT[name]


def java_service(heap_cap_mib: int, leak_bytes: int, cpus) -> Server:
    """LeakService with a capped heap, G1, exit on OOM and a GC log."""
    java = toolchain.require("java")
    classes = _product("java/leak", lambda: toolchain.build_java("leak"))
    run_dir = paths.RUN_DIR / "servers" / "leak-java"
    run_dir.mkdir(parents=True, exist_ok=True)
    gc_log = run_dir / "gc.log"
    gc_log.unlink(missing_ok=True)
    argv = [
        java,
        f"-Xmx{heap_cap_mib}m",
        "-XX:+UseG1GC",
        "-XX:+ExitOnOutOfMemoryError",
        f"-Xlog:gc*:file={gc_log}:uptime,level,tags",
        "-cp",
        str(classes),
        "LeakService",
        "--port",
        "0",
        "--leak-bytes",
        str(leak_bytes),
    ]
    return Server(
        "leak-java", [argv], cpus=cpus, ready_path=STATS_PATH, run_dir=run_dir
    )


def rust_service(mode: str, leak_bytes: int, cpus, capacity: int) -> Server:
    """leak-service in `bounded` or `unbounded` mode."""
    binary = _product("leak-service", lambda: toolchain.build_cargo("leak-service"))
    argv = [
        str(binary),
        "--port",
        "0",
        "--mode",
        mode,
        "--capacity",
        str(capacity),
        "--leak-bytes",
        str(leak_bytes),
    ]
    return Server(f"leak-rust-{mode}", [argv], cpus=cpus, ready_path=STATS_PATH)


def start(stack: str, knobs: dict, cpus) -> Server:
    if stack == "java":
        return java_service(knobs["heap_cap_mib"], knobs["leak_bytes"], cpus)
    if stack in ("rust-unbounded", "rust-bounded"):
        mode = stack.removeprefix("rust-")
        return rust_service(mode, knobs["leak_bytes"], cpus, knobs["capacity"])
    raise ValueError(f"unknown stack {stack!r}; known: {', '.join(STACKS)}")


def gc_log_path(server: Server) -> Path | None:
    path = server.run_dir / "gc.log"
    return path if server.name == "leak-java" else None


# --- verification ------------------------------------------------------------


def _json(port: int, method: str, path: str, body: bytes | None = None):
    answer = verify.request(port, method, path, body)
    if answer.status != 200:
        raise verify.VerificationFailed(
            f"{method} {path}: status {answer.status}, want 200: {answer.body[:200]!r}"
        )
    return answer.json()


BAD_INPUTS = (
    # (what, body, wanted status, wanted error kind)
    ("malformed JSON", b'{"user": "u1",', 400, "malformed_json"),
    ("a number for the user", b'{"user": 1, "items": []}', 422, "wrong_type"),
    ("an unknown field", b'{"user": "u", "items": [], "x": 1}', 422, "wrong_type"),
    (
        "a body over 64 KiB",
        b'{"user": "' + b"x" * BODY_LIMIT_BYTES + b'"}',
        413,
        "body_too_large",
    ),
)


def verify_stack(server: Server, body_path: Path, leak_bytes: int) -> dict:
    """The session API answers as the bench expects; bad input gets a 4xx.

    Returns the answers that must be equal across the three services.
    """
    body = body_path.read_bytes()
    items = len(json.loads(body)["items"])
    created = _json(server.port, "POST", SESSIONS_PATH, body)
    if set(created) != {"session", "items"} or created["items"] != items:
        raise verify.VerificationFailed(f"POST {SESSIONS_PATH} answered {created}")
    shown = _json(server.port, "GET", f"{SESSIONS_PATH}/{created['session']}")
    want = {
        "session": created["session"],
        "user": "u123",
        "items": items,
        "payload_bytes": leak_bytes,
    }
    if shown != want:
        raise verify.VerificationFailed(f"GET {SESSIONS_PATH}/id: {shown} != {want}")
    stats = _json(server.port, "GET", STATS_PATH)
    stats_keys = {"sessions", "heap_used_bytes", "gc_time_ms", "gc_count"}
    if set(stats) != stats_keys or stats["sessions"] != 1:
        raise verify.VerificationFailed(f"GET {STATS_PATH} answered {stats}")
    kinds = {}
    for what, bad_body, status, kind in BAD_INPUTS:
        answer = verify.verify_error(
            server.port, "POST", SESSIONS_PATH, bad_body, status
        )
        if answer.json().get("error") != kind:
            raise verify.VerificationFailed(
                f"{what}: error {answer.json().get('error')!r}, want {kind!r}"
            )
        kinds[what] = [status, kind]
    missing = verify.verify_error(server.port, "GET", "/nowhere", None, 404)
    kinds["an unknown path"] = [404, missing.json()["error"]]
    return {
        "created": created,
        "shown": shown,
        "sessions": stats["sessions"],
        "refusals": kinds,
    }


def verify_all(cpus, settings_: Settings | None = None) -> dict:
    """Start each service in turn and verify it; returns every one's answers."""
    chosen = settings_ or settings()
    knobs = {
        "heap_cap_mib": chosen.heap_cap_mib,
        "leak_bytes": chosen.leak_bytes,
        "capacity": cache_capacity(chosen.heap_cap_mib, chosen.leak_bytes),
    }
    body_path = payload()
    verified = {}
    for stack in STACKS:
        with start(stack, knobs, cpus) as server:
            verified[stack] = verify_stack(server, body_path, chosen.leak_bytes)
    return verified


def same_answers(verified: dict) -> bool:
    """Every service gave the same answers (ids included: each starts at 1)."""
    return (
        len({json.dumps(answers, sort_keys=True) for answers in verified.values()}) == 1
    )


# --- one loaded run, watched -------------------------------------------------


def _kill_group(server: Server) -> None:
    """SIGKILL the server's own process group at once: memory is growing."""
    if server.pgid is not None:
        try:
            os.killpg(server.pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class _StatsPoller:
    """GET /stats every STATS_INTERVAL_S: sessions held, heap used, GC time."""

    def __init__(self, port: int, t0_s: float, stop: threading.Event):
        self.port = port
        self.t0_s = t0_s
        self.stop = stop
        self.rows: list[list] = []  # [t_s, sessions, heap_used_bytes, gc_time_ms]
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            asked_s = time.monotonic() - self.t0_s
            try:
                connection = http.client.HTTPConnection(
                    "127.0.0.1", self.port, timeout=1.0
                )
                connection.request("GET", STATS_PATH)
                stats = json.loads(connection.getresponse().read())
                connection.close()
                self.rows.append(
                    [
                        asked_s,
                        stats["sessions"],
                        stats["heap_used_bytes"],
                        stats["gc_time_ms"],
                    ]
                )
            except (OSError, ValueError, http.client.HTTPException):
                pass  # a server in a full GC, or gone: the exit watch decides
            self.stop.wait(STATS_INTERVAL_S)

    def join(self) -> None:
        self._thread.join()


class _ExitWatch:
    """Notes the moment the server's process exits, and its exit code."""

    def __init__(self, server: Server, t0_s: float, stop: threading.Event):
        self.server = server
        self.t0_s = t0_s
        self.stop = stop
        self.exited_s: float | None = None
        self.exit_code: int | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        proc = self.server.procs[0]
        while not self.stop.is_set():
            if proc.poll() is not None:
                self.exited_s = time.monotonic() - self.t0_s
                self.exit_code = proc.returncode
                return
            self.stop.wait(EXIT_WATCH_INTERVAL_S)

    def join(self) -> None:
        self._thread.join()


def watchdog_cap_bytes(stack: str, idle_rss_bytes: int, heap_cap_mib: int) -> int:
    """RSS at start plus the heap cap (plus the JVM's non-heap allowance)."""
    cap = idle_rss_bytes + heap_cap_mib * MIB
    if stack == "java":
        cap += JVM_NON_HEAP_ALLOWANCE_BYTES
    return cap


def run_watched(
    server: Server,
    *,
    rate_per_s: float,
    duration_s: float,
    cap_bytes: int,
    body_path: Path,
    load_cpus,
    label: str,
    bin_s: float = 0.5,
    must_keep_up: bool = True,
) -> dict:
    """Open-loop POST /sessions for `duration_s`, memory capped at `cap_bytes`.

    The server's death during the run is what this chapter measures, not a
    fault: the run records when and how it ended (`end`), and keeps the
    requests answered before it. A run in which the server stayed up must
    pass every check load.run makes, unless `must_keep_up` is False: a
    leaking server that falls behind the rate without dying is measured too,
    and the run says why load.run refused it (`fell_behind`).
    """
    stop = threading.Event()
    capped: dict = {}

    def on_cap(sample: memory.Sample) -> None:
        capped["at_s"] = time.monotonic()
        _kill_group(server)  # the watchdog: stop the server, say so below

    hung = threading.Timer(duration_s + HUNG_AFTER_S, _kill_group, args=(server,))
    sampler_started_s = time.monotonic()
    with memory.MemorySampler(
        server.pids, cap_bytes=cap_bytes, on_cap=on_cap
    ) as sampler:
        t0_s = time.monotonic()
        t0_wall_s = time.time()
        stats = _StatsPoller(server.port, t0_s, stop)
        exits = _ExitWatch(server, t0_s, stop)
        hung.start()
        try:
            result = load.run(
                server.url(SESSIONS_PATH),
                concurrency=CONNECTIONS,
                duration_s=duration_s,
                rate_per_s=rate_per_s,
                method="POST",
                body_path=body_path,
                content_type="application/json",
                cpus=load_cpus,
                per_request=True,
                label=label,
            )
            figures = {"errors": {}, "load": result.as_dict()}
            db_path = result.db_path
            fell_behind = None
        except load.LoadFailed as error:
            time.sleep(2 * EXIT_WATCH_INTERVAL_S)
            alive = exits.exited_s is None and not server.exited()
            if alive and must_keep_up:
                raise  # the server was up: a real failure of the run
            figures, db_path = _figures_after_death(label, t0_wall_s)
            fell_behind = str(error) if alive else None
        finally:
            hung.cancel()
            stop.set()
            stats.join()
            exits.join()
    shift_s = t0_s - sampler_started_s
    mem = [[s.t_s - shift_s, s.rss_bytes] for s in sampler.samples if s.rss_bytes]
    end = end_event(
        capped_s=capped["at_s"] - t0_s if capped else None,
        exited_s=exits.exited_s,
        exit_code=exits.exit_code,
        stdout=_stdout(server),
        duration_s=duration_s,
    )
    requests = load.read_requests(db_path) if db_path else []
    gc_pauses = []
    gc_log = gc_log_path(server)
    if gc_log is not None and gc_log.exists():
        # the log's clock starts with the JVM; the load's, t0 later
        offset_s = t0_wall_s - server.started_at_s
        gc_pauses = [
            [p.start_s - offset_s, p.duration_ms]
            for p in gclog.parse_jvm_gc_log(gc_log.read_text(errors="replace"))
        ]
    end_s = end["t_s"]
    return {
        "end": end,
        "cap_bytes": cap_bytes,
        "memory": mem,
        "stats": stats.rows,
        "gc_pauses": gc_pauses,
        "timeline": timeline(requests, bin_s, end_s),
        # from 1 s (the JVM has compiled its hot code by then) to half-way,
        # against the last two seconds: for the table and the verdict
        "phases": {
            "first_half": phase(requests, min(1.0, end_s / 4), end_s / 2),
            "last_2s": phase(requests, max(0.0, end_s - 2.0), end_s),
        },
        "gc_share": gc_share(gc_pauses, bin_s, end_s) if gc_log else None,
        "requests_ok": sum(1 for r in requests if 200 <= r[2] < 300),
        "requests_not_2xx": sum(1 for r in requests if not 200 <= r[2] < 300),
        "requests_failed": sum(figures["errors"].values()),
        "errors": figures["errors"],
        "load": figures["load"],
        "peak_rss_bytes": max((m[1] for m in mem), default=None),
        "fell_behind": fell_behind,
    }


def _written_since(path: Path, since_wall_s: float) -> bool:
    return path.exists() and path.stat().st_mtime >= since_wall_s


def _figures_after_death(label: str, since_wall_s: float) -> tuple[dict, str | None]:
    """oha's figures from its files, for a run load.run refused.

    A run the server's death cut short has connection errors, and a leaking
    server may fall behind the rate; either way oha's JSON and sqlite are
    still on disk, written where load.run asked oha to write them.
    """
    run_dir = paths.RUN_DIR / "load"
    # load.run names its files per process (notebooks side by side differ);
    # an older load.run named them by label alone; only this run's file counts
    stems = [f"{label}-{os.getpid()}", label]
    stem = next(
        (s for s in stems if _written_since(run_dir / f"{s}.json", since_wall_s)),
        stems[0],
    )
    output = run_dir / f"{stem}.json"
    db_path = run_dir / f"{stem}.sqlite"
    if not _written_since(output, since_wall_s):
        raise load.LoadFailed(f"oha wrote no result for {label}")
    figures = load.parse_oha_json(output.read_text())
    load_dict = {
        k: figures[k]
        for k in ("duration_s", "rate_per_s", "requests", "status_counts", "latency_ms")
    }
    return {"errors": figures["errors"], "load": load_dict}, (
        str(db_path) if db_path.exists() else None
    )


def _stdout(server: Server) -> str:
    path = server.log_path(0, "stdout")
    return path.read_text(errors="replace") if path.exists() else ""


def end_event(
    *,
    capped_s: float | None,
    exited_s: float | None,
    exit_code: int | None,
    stdout: str,
    duration_s: float,
) -> dict:
    """How a run ended: oom, watchdog, hung, exited or the time bound.

    The watchdog is checked first: the exit it causes is its own doing.
    """
    if capped_s is not None:
        return {"kind": "watchdog", "t_s": capped_s, "exit_code": exit_code}
    if exited_s is not None:
        if exit_code == OOM_EXIT_CODE and OOM_LINE in stdout:
            line = next(ln for ln in stdout.splitlines() if OOM_LINE in ln)
            return {
                "kind": "oom",
                "t_s": exited_s,
                "exit_code": exit_code,
                "line": line.strip(),
            }
        if exited_s > duration_s + HUNG_AFTER_S - 1.0 and exit_code == -9:
            return {"kind": "hung", "t_s": exited_s, "exit_code": exit_code}
        return {"kind": "exited", "t_s": exited_s, "exit_code": exit_code}
    return {"kind": "time bound", "t_s": duration_s, "exit_code": None}


# --- pure computations on a run ----------------------------------------------


def _percentile(sorted_values: list[float], share: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    rank = max(1, math.ceil(share * len(sorted_values)))
    return sorted_values[rank - 1]


def _bins(bin_s: float, end_s: float) -> list[tuple[float, float]]:
    """(start s, width s) of each bin up to end_s; the last may be partial."""
    count = max(1, math.ceil(end_s / bin_s - 1e-9))
    return [(i * bin_s, min(bin_s, end_s - i * bin_s) or bin_s) for i in range(count)]


def timeline(requests: list, bin_s: float, end_s: float) -> list[dict]:
    """Per time bin: answers per second, and p50/p99 of the requests due then.

    `requests` are (due s, latency ms, status) from oha's records; latency
    runs from when a request was due (latency-corrected). A request that was
    never answered (the server died) has no record and no latency. The last
    bin ends at end_s, so a run cut short is not charged for time it did not
    have.
    """
    bins = _bins(bin_s, end_s)
    due: list[list[float]] = [[] for _ in bins]
    done = [0] * len(bins)
    for due_s, latency_ms, status in requests:
        if not 200 <= status < 300:
            continue
        index = min(len(bins) - 1, max(0, int(due_s // bin_s)))
        due[index].append(latency_ms)
        end_index = int((due_s + latency_ms / 1000.0) // bin_s)
        if 0 <= end_index < len(bins):
            done[end_index] += 1
    rows = []
    for (low_s, width_s), latencies, answered in zip(bins, due, done, strict=True):
        latencies.sort()
        rows.append(
            {
                "t_s": low_s + width_s / 2,
                "answered_per_s": answered / width_s,
                "due": len(latencies),
                "p50_ms": _percentile(latencies, 0.50) if latencies else None,
                "p99_ms": _percentile(latencies, 0.99) if latencies else None,
            }
        )
    return rows


def phase(requests: list, from_s: float, to_s: float) -> dict:
    """Latency percentiles and answer rate of the requests due in [from, to)."""
    latencies = sorted(
        lat
        for due_s, lat, status in requests
        if from_s <= due_s < to_s and 200 <= status < 300
    )
    width_s = max(to_s - from_s, 1e-9)
    return {
        "from_s": from_s,
        "to_s": to_s,
        "answered_per_s": len(latencies) / width_s,
        "p50_ms": _percentile(latencies, 0.50) if latencies else None,
        "p99_ms": _percentile(latencies, 0.99) if latencies else None,
    }


def gc_share(pauses: list, bin_s: float, end_s: float) -> list[dict]:
    """Per time bin: the share of wall time the JVM spent in GC pauses."""
    bins = _bins(bin_s, end_s)
    paused_s = [0.0] * len(bins)
    for start_s, duration_ms in pauses:
        stop_s = start_s + duration_ms / 1000.0
        first = max(0, int(start_s // bin_s))
        for index in range(first, min(len(bins), int(stop_s // bin_s) + 1)):
            low, high = bins[index][0], bins[index][0] + bins[index][1]
            paused_s[index] += max(0.0, min(stop_s, high) - max(start_s, low))
    return [
        {"t_s": low_s + width_s / 2, "share": min(1.0, paused / width_s)}
        for (low_s, width_s), paused in zip(bins, paused_s, strict=True)
    ]


def slope_bytes_per_s(points: list) -> float:
    """Least-squares slope of [t_s, bytes] points: how fast memory grows."""
    if len(points) < 2:
        return 0.0
    ts = [p[0] for p in points]
    ys = [p[1] for p in points]
    mean_t, mean_y = statistics.fmean(ts), statistics.fmean(ys)
    var_t = sum((t - mean_t) ** 2 for t in ts)
    if var_t == 0:
        return 0.0
    return sum((t - mean_t) * (y - mean_y) for t, y in zip(ts, ys, strict=True)) / var_t


def second_half_growth_bytes(points: list) -> float:
    """RSS in the last tenth of the run less RSS at its middle (medians)."""
    if len(points) < 10:
        return 0.0
    end_s = points[-1][0]
    middle = [p[1] for p in points if abs(p[0] - end_s / 2) <= end_s / 20]
    last = [p[1] for p in points if p[0] >= end_s * 0.9]
    if not middle or not last:
        return 0.0
    return statistics.median(last) - statistics.median(middle)


def expected_oom_s(heap_cap_mib: int, rate_per_s: float, leak_bytes: int) -> float:
    """When the Java heap should fill: the cap over what each second leaks."""
    per_s = rate_per_s * (leak_bytes + JAVA_SESSION_OVERHEAD_BYTES)
    return heap_cap_mib * MIB / per_s


def time_bound_s(
    heap_cap_mib: int, rate_per_s: float, leak_bytes: int, max_bound_s: float
) -> float:
    """A quarter longer than the heap should last, plus 4 s; never past max.

    oha runs for the whole bound even after a server died (its per-request
    records are written only at the end), so a loose bound costs time.
    """
    expected = expected_oom_s(heap_cap_mib, rate_per_s, leak_bytes)
    return round(min(max_bound_s, 1.25 * expected + 4.0), 1)


def cache_capacity(heap_cap_mib: int, leak_bytes: int) -> int:
    """Sessions the bounded service keeps: CACHE_SHARE_OF_CAP of the cap."""
    per_session = leak_bytes + JAVA_SESSION_OVERHEAD_BYTES
    return max(
        MIN_CAPACITY_SESSIONS,
        int(CACHE_SHARE_OF_CAP * heap_cap_mib * MIB / per_session),
    )


def bin_width_s(bound_s: float) -> float:
    return 0.5 if bound_s <= 40 else 1.0


# --- measuring ---------------------------------------------------------------


def check_knobs(heap_cap_mib: int, rate_per_s: float, leak_bytes: int) -> None:
    total = psutil.virtual_memory().total
    if heap_cap_mib * MIB + JVM_NON_HEAP_ALLOWANCE_BYTES > MACHINE_SHARE_LIMIT * total:
        raise ValueError(
            f"a {heap_cap_mib} MiB heap cap is more than this bench lets a run "
            f"use on a {total / 2**30:.0f} GiB machine: choose a smaller cap"
        )
    if not 1 <= rate_per_s <= 5000:
        raise ValueError("the rate must be 1 to 5,000 requests per second")
    if not 0 <= leak_bytes <= 1 * MIB:
        raise ValueError("the leak per request must be 0 to 1 MiB")


def measure(
    heap_cap_mib: int | None = None,
    rate_per_s: float | None = None,
    leak_bytes: int | None = None,
    capacity: int | None = None,
    stacks=ORDER,
    on_stack=None,
    save_as: str | None = "sweep",
) -> dict:
    """Each stack under the same load until it dies or the time bound.

    The Rust bounded service runs as long as the longest run before it
    lasted. `on_stack(record, done, total)` is called after each stack.
    """
    mode = modes.current()
    chosen = settings()
    heap_cap_mib = heap_cap_mib or chosen.heap_cap_mib
    rate_per_s = rate_per_s or chosen.rate_per_s
    leak_bytes = chosen.leak_bytes if leak_bytes is None else leak_bytes
    check_knobs(heap_cap_mib, rate_per_s, leak_bytes)
    capacity = capacity or cache_capacity(heap_cap_mib, leak_bytes)
    bound_s = time_bound_s(heap_cap_mib, rate_per_s, leak_bytes, chosen.max_bound_s)
    bin_s = bin_width_s(bound_s)
    split = machine.core_split()
    body_path = payload()
    knobs = {
        "heap_cap_mib": heap_cap_mib,
        "rate_per_s": rate_per_s,
        "leak_bytes": leak_bytes,
        "capacity": capacity,
        "connections": CONNECTIONS,
        "body_bytes": body_path.stat().st_size,
        "time_bound_s": bound_s,
        "expected_oom_s": expected_oom_s(heap_cap_mib, rate_per_s, leak_bytes),
        "bin_s": bin_s,
        "jvm_non_heap_allowance_bytes": JVM_NON_HEAP_ALLOWANCE_BYTES,
        "server_cores": len(split.server),
    }
    record = {
        "started_at": results.now_iso(),
        "mode": mode.name,
        "knobs": knobs,
        "fingerprint": machine.fingerprint(split),
        "core_split": split.describe(),
        "verified": {},
        "runs": {},
    }
    for done, stack in enumerate(stacks, start=1):
        duration_s = bound_s
        if stack == "rust-bounded" and record["runs"]:
            longest_s = max(run["end"]["t_s"] for run in record["runs"].values())
            duration_s = round(max(3.0, min(bound_s, math.ceil(longest_s))), 1)
        with start(stack, knobs, split.server) as server:
            record["verified"][stack] = verify_stack(server, body_path, leak_bytes)
            idle_rss_bytes = memory.sample_tree(server.pids)[0]
            cap = watchdog_cap_bytes(stack, idle_rss_bytes, heap_cap_mib)
            run = run_watched(
                server,
                rate_per_s=rate_per_s,
                duration_s=duration_s,
                cap_bytes=cap,
                body_path=body_path,
                load_cpus=split.load,
                label=f"leak-{stack}",
                bin_s=bin_s,
                # the bounded service is the control: it must keep up
                must_keep_up=stack == "rust-bounded",
            )
        run["idle_rss_bytes"] = idle_rss_bytes
        run["duration_s"] = duration_s
        record["runs"][stack] = run
        if on_stack:
            on_stack(record, done, len(stacks))
    record["same_answers"] = same_answers(record["verified"])
    record["ended_at"] = results.now_iso()
    if save_as:
        results.save(record, CHAPTER, save_as)
    return record


# --- reading a record --------------------------------------------------------


END_WORDS = {
    "oom": "ran out of heap (OutOfMemoryError) and the JVM exited",
    "watchdog": "was stopped by the bench's RSS watchdog",
    "hung": "hung past the time bound and was stopped by the bench",
    "exited": "exited on its own",
    "time bound": "was still up at the time bound",
}


def ending(run: dict) -> str:
    """How and when a run ended, as a verb phrase."""
    end = run["end"]
    return f"{END_WORDS[end['kind']]} after {end['t_s']:.1f} s"


def second_half(points: list) -> list:
    end_s = points[-1][0] if points else 0.0
    return [p for p in points if p[0] >= end_s / 2]


def run_summary(stack: str, run: dict) -> dict:
    """One row of the chapter's table."""
    first, last = run["phases"]["first_half"], run["phases"]["last_2s"]

    def ms(value):
        return "-" if value is None else round(value, 1)

    return {
        "service": stack,
        "ended by": run["end"]["kind"]
        + (" (fell behind)" if run.get("fell_behind") else ""),
        "after s": round(run["end"]["t_s"], 1),
        "answered": run["requests_ok"],
        "failed": run["requests_failed"],
        "RSS idle MiB": round(run["idle_rss_bytes"] / MIB, 1),
        "RSS peak MiB": round((run["peak_rss_bytes"] or 0) / MIB, 1),
        "growth, 2nd half MiB/s": round(
            slope_bytes_per_s(second_half(run["memory"])) / MIB, 2
        ),
        "watchdog MiB": round(run["cap_bytes"] / MIB),
        "p99 ms, 1 s to half-way": ms(first["p99_ms"]),
        "p99 ms, last 2 s": ms(last["p99_ms"]),
        "answered/s, last 2 s": round(last["answered_per_s"]),
    }


def print_table(record: dict) -> None:
    rows = [run_summary(stack, run) for stack, run in record["runs"].items()]
    tables.print_rows(rows)


def watchdog_report(record: dict) -> list[str]:
    """One line per service: its RSS bound, and whether the watchdog fired."""
    lines = []
    for stack, run in record["runs"].items():
        bound = f"{stack}: RSS bound {run['cap_bytes'] / MIB:.0f} MiB"
        if run["end"]["kind"] == "watchdog":
            lines.append(
                f"{bound}, crossed after {run['end']['t_s']:.1f} s: the watchdog "
                "killed the server there"
            )
        else:
            peak_mib = (run["peak_rss_bytes"] or 0) / MIB
            lines.append(f"{bound}, never crossed (peak {peak_mib:.0f} MiB)")
    return lines


def final_gc_share(run: dict, last_s: float = 2.0) -> float | None:
    """The share of time in GC pauses over the run's last `last_s` seconds."""
    if not run.get("gc_share"):
        return None
    end_s = run["end"]["t_s"]
    kept = [b["share"] for b in run["gc_share"] if b["t_s"] >= end_s - last_s]
    return statistics.fmean(kept) if kept else None


def early_gc_share(run: dict) -> float | None:
    """GC share over the first half of the run."""
    if not run.get("gc_share"):
        return None
    end_s = run["end"]["t_s"]
    kept = [b["share"] for b in run["gc_share"] if b["t_s"] <= end_s / 2]
    return statistics.fmean(kept) if kept else None


@dataclass(frozen=True)
class LeakVerdict:
    word: str  # the whole claim: "holds", "holds in part", "does not hold"
    java_word: str  # "Java leaks until the process is killed"
    ownership_word: str  # "ownership removes this leak"
    sentences: tuple[str, ...]

    @property
    def sentence(self) -> str:
        return " ".join(self.sentences)


def flat(run: dict, heap_cap_mib: int) -> bool:
    """RSS grew by less than a tenth of the cap over the second half."""
    return second_half_growth_bytes(run["memory"]) < 0.1 * heap_cap_mib * MIB


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


def verdict(record: dict) -> LeakVerdict:
    """Which half of the claim the measurement bears out, and why."""
    runs = record["runs"]
    cap_mib = record["knobs"]["heap_cap_mib"]
    java, unbounded, bounded = (
        runs["java"],
        runs["rust-unbounded"],
        runs["rust-bounded"],
    )
    java_slope = slope_bytes_per_s(java["memory"])
    unbounded_slope = slope_bytes_per_s(unbounded["memory"])
    java_oom = java["end"]["kind"] == "oom"
    leaked_too = unbounded["end"]["kind"] == "watchdog" or (
        unbounded_slope > 0.5 * max(java_slope, 1.0)
    )
    bounded_flat = flat(bounded, cap_mib)
    java_word = "holds" if java_oom else "does not hold"
    ownership_word = "does not hold" if leaked_too else "holds"
    held = [java_oom, not leaked_too]
    word = "holds" if all(held) else "holds in part" if any(held) else "does not hold"
    first, last = java["phases"]["first_half"], java["phases"]["last_2s"]
    growth_mib = second_half_growth_bytes(bounded["memory"]) / MIB
    sentences = [
        f"Java: with -Xmx{cap_mib}m, LeakService {ending(java)}, having stored "
        f"{java['requests_ok']:,} sessions. In its last 2 s GC pauses took "
        f"{_share(final_gc_share(java, 2.0))} of the time (first half: "
        f"{_share(early_gc_share(java))}), p99 latency was {_ms(last['p99_ms'])} "
        f"(from 1 s to half-way: {_ms(first['p99_ms'])}) and it answered "
        f"{last['answered_per_s']:.0f} requests/s of the "
        f"{record['knobs']['rate_per_s']:.0f} offered. The half of the claim "
        f"that a Java leak ends with the process killed {java_word} here.",
        f"Rust with the same unbounded map grew by "
        f"{unbounded_slope / MIB:.1f} MiB/s (Java: {java_slope / MIB:.1f} MiB/s) "
        f"and {ending(unbounded)}. Ownership freed each request's temporaries "
        "when its handler returned, but the map owns every session, so the half "
        f"that says ownership removes this leak {ownership_word}.",
        f"With a cache of {record['knobs']['capacity']:,} sessions, the Rust "
        f"service {'stayed flat' if bounded_flat else 'did not stay flat'} "
        f"({growth_mib:+.1f} MiB over the second half, peak "
        f"{bounded['peak_rss_bytes'] / MIB:.0f} MiB) for "
        f"{bounded['end']['t_s']:.0f} s: the bound did that, not the borrow "
        "checker.",
        f"The claim {word} on this machine.",
    ]
    return LeakVerdict(word, java_word, ownership_word, tuple(sentences))


def closing_note(record: dict) -> str:
    """Time to OOM at the record's settings, and each stack's peak memory."""
    k = record["knobs"]
    java = record["runs"]["java"]
    if java["end"]["kind"] == "oom":
        oom = f"the JVM ran out of heap after {java['end']['t_s']:.1f} s"
    else:
        oom = f"the JVM did not run out of heap within {java['end']['t_s']:.0f} s"
    peaks = "; ".join(
        f"{STACKS[stack]} {run['peak_rss_bytes'] / MIB:.0f} MiB"
        for stack, run in record["runs"].items()
    )
    return (
        f"At {k['rate_per_s']:.0f} requests/s, {k['leak_bytes'] // KIB} KiB kept "
        f"per request and a {k['heap_cap_mib']} MiB heap ({record['mode']} "
        f"mode), {oom}. Peak RSS: {peaks}."
    )


# --- figures and the panel ---------------------------------------------------

_COLOURS = {
    "java": plots.LEGACY_COLOUR,
    "rust-unbounded": plots.GO_COLOUR,
    "rust-bounded": plots.RUST_COLOUR,
}


def _x_range(record: dict) -> list[float]:
    """From the load's start to the end of the longest run."""
    longest_s = max(run["end"]["t_s"] for run in record["runs"].values())
    return [0, longest_s * 1.03]


MARKS = {"oom": "OutOfMemoryError", "watchdog": "watchdog kill", "hung": "hung",
         "exited": "exited"}  # fmt: skip


def _mark_ends(fig, record: dict) -> None:
    """A vertical line where each run that died, died."""
    for stack, run in record["runs"].items():
        kind = run["end"]["kind"]
        if kind in MARKS:
            fig.add_vline(
                x=run["end"]["t_s"],
                line={"color": _COLOURS[stack], "dash": "dot", "width": 1.5},
                annotation_text=f"{stack}: {MARKS[kind]}",
                # Java's mark at the top, the others' at the bottom, so two
                # ends close together stay readable
                annotation_position="top left" if stack == "java" else "bottom left",
                annotation_font={"size": 10, "color": _COLOURS[stack]},
            )


def _timeline_figure(record: dict, series: dict, title: str, y_title: str, dash=None):
    colours = {name: _COLOURS[name.split(" ")[0]] for name in series}
    fig = plots.curves(
        series,
        title,
        "seconds since the load started",
        y_title,
        record["fingerprint"],
        colours=colours,
        dash=dash,
    )
    fig.update_traces(mode="lines")
    fig.update_xaxes(range=_x_range(record))
    _mark_ends(fig, record)
    return fig


def memory_figure(record: dict):
    series, dash = {}, {}
    for stack, run in record["runs"].items():
        series[f"{stack} RSS"] = (
            [m[0] for m in run["memory"]],
            [m[1] / MIB for m in run["memory"]],
        )
        if stack == "java":
            rows = [r for r in run["stats"] if r[2] is not None]
            series["java heap used (/stats)"] = (
                [r[0] for r in rows],
                [r[2] / MIB for r in rows],
            )
            dash["java heap used (/stats)"] = "dash"
    fig = _timeline_figure(
        record, series, "Memory under the same steady load", "MiB", dash
    )
    fig.add_hline(
        y=record["knobs"]["heap_cap_mib"],
        line={"color": "#555", "dash": "dash", "width": 1},
        annotation_text=f"heap cap -Xmx{record['knobs']['heap_cap_mib']}m",
        annotation_position="bottom right",
    )
    return fig


def gc_figure(record: dict):
    series = {}
    for stack, run in record["runs"].items():
        if run.get("gc_share"):
            rows = run["gc_share"]
            series[f"{stack} GC pauses"] = (
                [r["t_s"] for r in rows],
                [100 * r["share"] for r in rows],
            )
        else:  # no collector: nothing ever pauses the Rust service for GC
            series[f"{stack} (no collector)"] = (_x_range(record), [0, 0])
    return _timeline_figure(
        record, series, "Share of time in GC pauses", "% of wall time"
    )


def latency_figure(record: dict):
    series, dash = {}, {}
    for stack, run in record["runs"].items():
        rows = [r for r in run["timeline"] if r["p99_ms"] is not None]
        series[f"{stack} p99"] = ([r["t_s"] for r in rows], [r["p99_ms"] for r in rows])
        series[f"{stack} p50"] = ([r["t_s"] for r in rows], [r["p50_ms"] for r in rows])
        dash[f"{stack} p50"] = "dot"
    fig = _timeline_figure(
        record,
        series,
        "Latency of the requests due in each bin",
        "ms (latency-corrected)",
        dash,
    )
    fig.update_yaxes(type="log")
    return fig


def throughput_figure(record: dict):
    series = {}
    for stack, run in record["runs"].items():
        rows = run["timeline"]
        series[f"{stack} answered"] = (
            [r["t_s"] for r in rows],
            [r["answered_per_s"] for r in rows],
        )
    fig = _timeline_figure(
        record, series, "Requests answered per second", "requests per second"
    )
    fig.add_hline(
        y=record["knobs"]["rate_per_s"],
        line={"color": "#555", "dash": "dash", "width": 1},
        annotation_text="offered rate",
        annotation_position="bottom right",
    )
    return fig


def panel():
    """Knobs: heap cap, request rate, leak size per request."""
    import ipywidgets as widgets

    from book.widgets import Panel

    chosen = settings()
    knobs = {
        "heap_cap_mib": widgets.IntSlider(
            value=chosen.heap_cap_mib,
            min=16,
            max=512,
            step=16,
            description="heap cap MiB",
        ),
        "rate_per_s": widgets.IntSlider(
            value=int(chosen.rate_per_s),
            min=50,
            max=1000,
            step=50,
            description="requests/s",
        ),
        "leak_bytes": widgets.Dropdown(
            options=[
                ("1 KiB", KIB),
                ("4 KiB", 4 * KIB),
                ("16 KiB", 16 * KIB),
                ("64 KiB", 64 * KIB),
            ],
            value=chosen.leak_bytes,
            description="kept/request",
        ),
    }

    def run(values: dict, progress) -> None:
        bound_s = time_bound_s(
            values["heap_cap_mib"],
            values["rate_per_s"],
            values["leak_bytes"],
            chosen.max_bound_s,
        )
        progress.step(0, len(ORDER), f"building; each run lasts up to {bound_s} s")

        def on_stack(record, done, total):
            progress.step(done, total, f"{done} of {total} services measured")
            progress.plot(memory_figure(record), "Memory, filling as it runs")

        record = measure(
            heap_cap_mib=values["heap_cap_mib"],
            rate_per_s=values["rate_per_s"],
            leak_bytes=values["leak_bytes"],
            on_stack=on_stack,
            save_as="panel",
        )
        progress.step(len(ORDER), len(ORDER), closing_note(record))

    return Panel(
        "A leaking JVM against Rust, under your load",
        knobs,
        run,
        "Runs the three services again with your heap cap, rate and leak size "
        "and draws their memory as each run ends; every run is bounded in time "
        "and by the RSS watchdog. The result is saved as results/leak/panel.json.",
    )
