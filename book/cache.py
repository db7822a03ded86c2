"""The cache chapter's bench: the legacy Java CacheServer against Go.

CacheServer (snippets/java/cache) gives every connection a platform thread
for as long as it stays open; rust-cache-server (go/rust-cache-server) serves
the same API on net/http, with its values behind a Store interface: a map
under sync.RWMutex, sync.Map, or Redis. This module builds and starts each,
checks they give the same answers, runs the Go store benchmarks, and holds
many keep-alive connections against each server while they serve a get/put
mix, sampling memory and the connections each server really accepted.
"""

import contextlib
import os
import re
import resource
import socket
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import psutil

from book import (
    claims,
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
from book.servers import LOOPBACK, LimitTooLow, Server, free_port

CHAPTER = "cache"
GO_PACKAGE = "rust-cache-server"
JAVA_SNIPPET = "cache"
JAVA_HEAP = "2g"  # the article's heap, as -Xms and -Xmx

# The key space of the load: /cache/k0000 .. /cache/k9999, all preloaded,
# so every GET finds its key and every PUT replaces one (the size is fixed).
KEY_DIGITS = 4
KEY_COUNT = 10**KEY_DIGITS
KEY_PATTERN = f"/cache/k[0-9]{{{KEY_DIGITS}}}"
MAX_KEY_BYTES = 250  # both services: longer keys get 414
MAX_VALUE_BYTES = 1 << 20  # both services: larger values get 413

# Open files a server needs beyond one per connection (JVM jars, stdio).
SERVER_FD_HEADROOM = 1024
# A server that accepts slowly (a thread per connection on one core) needs
# longer than oha's default 5 s to take every connection; a run that has not
# held them all this long after it started ends with the hold, and fails.
CONNECT_TIMEOUT_S = 90.0
# The watchdog: a server whose tree grows past this is stopped.
JAVA_CAP_BYTES = 4 * claims.GIB  # the 2 GiB heap, thread stacks, metaspace
GO_CAP_BYTES = 2 * claims.GIB
# How often the connections a server holds (its open sockets) are counted,
# and its memory sampled: 4 Hz (a JVM with 10,000 threads has 20,000 mappings
# to walk per sample).
WATCH_INTERVAL_S = 0.25

TARGETS = {
    "java": "CacheServer (Java, thread per connection)",
    "rwmutex": "rust-cache-server, sync.RWMutex",
    "syncmap": "rust-cache-server, sync.Map",
    "redis": "rust-cache-server, Redis store",
}
# The same, short enough for a figure's legend.
LABELS = {
    "java": "Java, thread per connection",
    "rwmutex": "Go, RWMutex",
    "syncmap": "Go, sync.Map",
    "redis": "Go, Redis",
}
SIDE_COLOURS = {
    "java": plots.COLOURS["java"],
    "rwmutex": plots.COLOURS["go"],
    "syncmap": "#1b9e77",
    "redis": "#e7298a",
}


class TooFewConnections(RuntimeError):
    """The load generator did not open as many connections as it was asked."""

    def __init__(self, message: str, point: dict):
        super().__init__(message)
        self.point = point


# --- building and starting ---------------------------------------------------


def build_all() -> list[toolchain.Built]:
    """The Go service and the Java snippet."""
    return [
        toolchain.build_go(GO_PACKAGE),
        toolchain.build_java(JAVA_SNIPPET),
    ]


def redis_answers(port: int) -> bool:
    """Readiness for redis-server: a PING over TCP answered with +PONG."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=2) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def redis_server(cpus: tuple[int, ...], nofile: int) -> Server:
    """A fresh redis-server on a free loopback port, without persistence."""
    binary = toolchain.require("redis-server")
    port = free_port()
    return Server(
        "redis",
        [
            [
                binary,
                "--port",
                str(port),
                "--bind",
                LOOPBACK,
                "--save",
                "",
                "--appendonly",
                "no",
                # the Go store's pool holds 10 connections per core
                "--maxclients",
                "512",
            ]
        ],
        port=port,
        cpus=cpus,
        nofile=nofile,
        ready_check=redis_answers,
    )


def java_cache(cpus: tuple[int, ...], nofile: int) -> Server:
    """CacheServer as the legacy service was deployed: a fixed 2 GB heap."""
    java = toolchain.require("java")
    classes = toolchain.build_java(JAVA_SNIPPET).path
    heap = [f"-Xms{JAVA_HEAP}", f"-Xmx{JAVA_HEAP}"]
    return Server(
        "java-cache",
        [[java, *heap, "-cp", str(classes), "CacheServer", "--port", "0"]],
        cpus=cpus,
        nofile=nofile,
        ready_path="/health",
    )


def go_cache(
    store: str, cpus: tuple[int, ...], nofile: int, redis_port: int | None = None
) -> Server:
    """rust-cache-server with one of its stores."""
    binary = toolchain.build_go(GO_PACKAGE).path
    argv = [str(binary), "--port", "0", "--store", store]
    if redis_port is not None:
        argv += ["--redis-addr", f"{LOOPBACK}:{redis_port}"]
    return Server(
        f"go-cache-{store}",
        [argv],
        cpus=cpus,
        nofile=nofile,
        ready_path="/health",
    )


@dataclass
class Stack:
    """What serves one target: the front door and, for Redis, redis-server."""

    target: str
    front: Server
    servers: list[Server]

    @property
    def port(self) -> int:
        return self.front.port

    @property
    def pids(self) -> list[int]:
        return [pid for server in self.servers for pid in server.pids]

    def url(self, path: str) -> str:
        return self.front.url(path)

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()


@contextlib.contextmanager
def start(target: str, cpus: tuple[int, ...], connections: int = 100):
    """Start a target on `cpus`, with open files for `connections`."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; known: {', '.join(TARGETS)}")
    nofile = connections + SERVER_FD_HEADROOM
    with contextlib.ExitStack() as stack:
        servers = []
        if target == "java":
            servers.append(stack.enter_context(java_cache(cpus, nofile)))
        elif target == "redis":
            redis = stack.enter_context(redis_server(cpus, SERVER_FD_HEADROOM))
            servers.append(redis)
            servers.append(
                stack.enter_context(go_cache("redis", cpus, nofile, redis.port))
            )
        else:
            servers.append(stack.enter_context(go_cache(target, cpus, nofile)))
        yield Stack(target, servers[-1], servers)


def cap_bytes(target: str) -> int:
    return JAVA_CAP_BYTES if target == "java" else GO_CAP_BYTES


# --- preloading and verification ---------------------------------------------


def key(index: int) -> str:
    return f"k{index:0{KEY_DIGITS}d}"


def value_for(value_bytes: int) -> bytes:
    """The value every key holds: printable, and the same on every run."""
    pattern = b"rewrite-lab-cache-value:"
    return (pattern * (value_bytes // len(pattern) + 1))[:value_bytes]


def value_file(value_bytes: int) -> Path:
    """The PUT body the load generator sends, as a file for oha -D."""
    path = paths.RUN_DIR / "payloads" / f"cache-value-{value_bytes}.bin"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.stat().st_size != value_bytes:
        path.write_bytes(value_for(value_bytes))
    return path


PRELOAD_BATCH = 500  # requests pipelined per write, answers read before the next


def preload(port: int, value_bytes: int, keys: int = KEY_COUNT) -> float:
    """PUT every key of the load's key space; returns the seconds it took.

    The requests are pipelined in batches on one keep-alive connection (both
    services answer requests in order), so 10,000 keys take a fraction of a
    second rather than 10,000 round trips from Python.
    """
    value = value_for(value_bytes)
    started_s = time.monotonic()
    with socket.create_connection((LOOPBACK, port), timeout=30) as conn:
        for first in range(0, keys, PRELOAD_BATCH):
            batch = range(first, min(first + PRELOAD_BATCH, keys))
            conn.sendall(
                b"".join(
                    f"PUT /cache/{key(i)} HTTP/1.1\r\nHost: {LOOPBACK}\r\n"
                    f"Content-Length: {value_bytes}\r\n\r\n".encode()
                    + value
                    for i in batch
                )
            )
            _read_no_content(conn, len(batch))
    return time.monotonic() - started_s


def _read_no_content(conn: socket.socket, answers: int) -> None:
    """Read `answers` 204 responses (headers only, no body) or fail."""
    data = b""
    while data.count(b"\r\n\r\n") < answers:
        chunk = conn.recv(65536)
        if not chunk:
            raise verify.VerificationFailed("the server closed during the preload")
        data += chunk
    heads = data.split(b"\r\n\r\n")[:answers]
    bad = [h.split(b"\r\n", 1)[0] for h in heads if not h.startswith(b"HTTP/1.1 204")]
    if bad:
        raise verify.VerificationFailed(f"preload answers were not 204: {bad[:3]}")


# What each probe sends, and the status both services must answer with.
PROBES = (
    ("put", "PUT", "/cache/probe", b"hello, cache", 204),
    ("get", "GET", "/cache/probe", None, 200),
    ("replace", "PUT", "/cache/probe", b"second value", 204),
    ("get again", "GET", "/cache/probe", None, 200),
    ("escaped key", "PUT", "/cache/a%20b", b"spaced", 204),
    ("get escaped", "GET", "/cache/a%20b", None, 200),
    ("delete", "DELETE", "/cache/probe", None, 204),
    ("get deleted", "GET", "/cache/probe", None, 404),
    ("delete absent", "DELETE", "/cache/never-stored", None, 204),
    ("empty key", "GET", "/cache/", None, 400),
    ("key too long", "GET", "/cache/" + "k" * (MAX_KEY_BYTES + 1), None, 414),
    ("longest key", "PUT", "/cache/" + "k" * MAX_KEY_BYTES, b"x", 204),
    ("value too large", "PUT", "/cache/big", b"v" * (MAX_VALUE_BYTES + 1), 413),
    ("largest value", "PUT", "/cache/big", b"v" * MAX_VALUE_BYTES, 204),
    ("nested path", "GET", "/cache/a/b", None, 404),
    ("wrong method", "POST", "/cache/probe", b"x", 405),
    ("unknown path", "GET", "/nothing-here", None, 404),
)


def answer_summary(answer: verify.Answer) -> dict:
    """What must be equal across services: status, type, body or error kind."""
    content_type = answer.headers.get("content-type", "").split(";")[0]
    summary = {"status": answer.status, "content_type": content_type or None}
    if answer.status >= 400:
        summary["error"] = answer.json().get("error")
    elif answer.status == 200:
        summary["body"] = answer.body.decode("latin-1")
    return summary


def verify_target(stack: Stack) -> dict:
    """Every probe, in order, on a fresh server; returns the answers seen.

    Fails on a wrong status, and on a 4xx without a JSON body carrying an
    `error` field (verify.verify_error checks that). Then /health must say
    the server holds what the probes stored.
    """
    answers = {}
    faults = []
    for name, method, path, body, want in PROBES:
        content_type = "application/octet-stream" if body is not None else None
        if want >= 400:
            answer = verify.verify_error(
                stack.port, method, path, body, want, content_type
            )
        else:
            answer = verify.request(stack.port, method, path, body, content_type)
        if answer.status != want:
            faults.append(f"{name}: status {answer.status}, want {want}")
            continue
        answers[name] = answer_summary(answer)
    health = verify.request(stack.port, "GET", "/health").json()
    if health.get("status") != "ok" or health.get("keys") != 3:
        faults.append(f"/health says {health}, want status ok and 3 keys")
    if answers.get("get", {}).get("body") != "hello, cache":
        faults.append(f"GET after PUT returned {answers.get('get')}")
    if faults:
        raise verify.VerificationFailed(f"{stack.target}: " + "; ".join(faults))
    answers["health store"] = health["store"]
    return answers


def verify_equal(answers_by_target: dict[str, dict]) -> int:
    """Every target answered every probe alike; returns the probes compared."""
    first, *others = answers_by_target
    reference = {
        k: v for k, v in answers_by_target[first].items() if k != "health store"
    }
    for target in others:
        theirs = {
            k: v for k, v in answers_by_target[target].items() if k != "health store"
        }
        differ = [k for k in reference if reference[k] != theirs.get(k)]
        if differ:
            raise verify.VerificationFailed(
                f"{target} answers differently from {first}: "
                + "; ".join(f"{k}: {theirs.get(k)} vs {reference[k]}" for k in differ)
            )
    return len(reference)


# --- the load: many keep-alive connections, a get/put mix ---------------------


def split_connections(connections: int, read_share: float) -> dict[str, int]:
    """How many of the connections send GETs and how many PUTs.

    Each connection sends one kind only, so the mix of requests follows the
    mix of connections (closely: a PUT costs the server about what a GET does).
    """
    if not 0.0 <= read_share <= 1.0:
        raise ValueError("read_share must be between 0 and 1")
    if connections < 1:
        raise ValueError("at least one connection")
    gets = round(connections * read_share)
    if 0.0 < read_share < 1.0 and connections >= 2:
        gets = min(max(gets, 1), connections - 1)  # both kinds, if asked
    split = {"GET": gets, "PUT": connections - gets}
    return {method: n for method, n in split.items() if n > 0}


# The kernel's socket tables; a JVM binds 127.0.0.1 through an IPv6 socket,
# so its connections appear in tcp6 with IPv4-mapped addresses.
PROC_NET_TCP = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))
TCP_ESTABLISHED = "01"  # the state column of /proc/net/tcp
LOOPBACK_HEX = "0100007F"  # 127.0.0.1 as /proc/net/tcp writes it


def established_inodes(port: int) -> set[str]:
    """Socket inodes of established TCP connections to 127.0.0.1:port.

    The kernel's view, so it includes connections the server has not yet
    accepted. Read straight from /proc/net: psutil's net_connections (what
    load.count_established uses) maps every socket of every process and takes
    seconds at 10,000 connections.
    """
    wanted = f"{LOOPBACK_HEX}:{port:04X}"
    inodes = set()
    for table_path in PROC_NET_TCP:
        if not table_path.exists():
            continue
        with table_path.open(encoding="ascii") as table:
            next(table)  # the header line
            for line in table:
                fields = line.split()
                if fields[1].endswith(wanted) and fields[3] == TCP_ESTABLISHED:
                    inodes.add(fields[9])
    return inodes


def held_by(pid: int, inodes: set[str]) -> int:
    """How many of these sockets the process has open: those it accepted."""
    fd_dir = f"/proc/{pid}/fd"
    held = 0
    for fd in os.listdir(fd_dir):
        try:
            link = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue  # closed between listing and reading
        if link.startswith("socket:[") and link[8:-1] in inodes:
            held += 1
    return held


def socket_counts(pid: int, port: int) -> tuple[int, int]:
    """(accepted by the server process, established in the kernel)."""
    if not PROC_NET_TCP[0].exists():  # not Linux: psutil, slower, one figure
        established = load.count_established(port)
        return established, established
    inodes = established_inodes(port)
    return held_by(pid, inodes), len(inodes)


class SocketWatch:
    """Counts the connections a server holds, over time, two ways.

    `established` is the kernel's count on the server's port; `accepted` is
    how many of those sockets the server process holds open: the connections
    it really took, not merely those the kernel completed and queued for it.
    """

    def __init__(
        self,
        pid: int,
        port: int,
        origin_s: float,
        interval_s: float = WATCH_INTERVAL_S,
        stop_after: tuple[int, float, threading.Event] | None = None,
    ):
        """`stop_after=(connections, hold_s, stop)` sets `stop` once the
        server has held `connections` for `hold_s`, or once it is gone."""
        self.pid = pid
        self.port = port
        self.origin_s = origin_s
        self.interval_s = interval_s
        self.stop_after = stop_after
        self.stopped_at_s: float | None = None  # when stop was set
        # (t_s, accepted, established)
        self.samples: list[tuple[float, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "SocketWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                accepted, established = socket_counts(self.pid, self.port)
            except (FileNotFoundError, ProcessLookupError, psutil.NoSuchProcess):
                if self.stop_after:
                    self.stop_after[2].set()  # the server is gone: stop the load
                return
            t_s = time.monotonic() - self.origin_s
            self.samples.append((t_s, accepted, established))
            if self.stop_after:
                connections, hold_s, stop = self.stop_after
                all_at_s = self.all_accepted_at_s(connections)
                if all_at_s is not None and t_s >= all_at_s + hold_s:
                    if not stop.is_set():
                        self.stopped_at_s = t_s
                    stop.set()
            self._stop.wait(self.interval_s)

    @property
    def most_accepted(self) -> int:
        return max((s[1] for s in self.samples), default=0)

    @property
    def most_established(self) -> int:
        return max((s[2] for s in self.samples), default=0)

    def all_accepted_at_s(self, connections: int) -> float | None:
        """When the server first held every connection, if it did."""
        for t_s, accepted, _ in self.samples:
            if accepted >= connections:
                return t_s
        return None


def _run_or_figures(kwargs: dict, out: dict, method: str) -> None:
    """One oha run on a thread; a failed run keeps its figures and reason."""
    try:
        out[method] = load.run(**kwargs).as_dict()
    except load.LoadFailed as failure:
        if failure.figures is None:  # oha itself failed: nothing was measured
            out[method] = {"crashed": str(failure)}
            return
        out[method] = {**failure.figures, "failed": str(failure), "method": method}
    except Exception as error:  # re-raised on the calling thread
        out[method] = {"crashed": f"{type(error).__name__}: {error}"}


def mixed_load(
    stack: Stack,
    connections: int,
    read_share: float,
    value_bytes: int,
    hold_s: float,
    load_cpus: tuple[int, ...],
    label: str,
    on_cap=None,
) -> dict:
    """Hold `connections` keep-alive connections while they GET and PUT.

    Two oha processes run at once on the load cores, one for GETs and one for
    PUTs, both over random keys of the preloaded key space; the whole server
    (redis-server included) is sampled for memory, and its accepted sockets
    are counted. The load runs until the server has held every connection
    for `hold_s` (a thread-per-connection server may take many seconds to
    accept them all), at most CONNECT_TIMEOUT_S + hold_s. Raises
    TooFewConnections if the server never held them all.
    """
    split = split_connections(connections, read_share)
    body = value_file(value_bytes)
    stop = threading.Event()
    threads, runs = [], {}
    for method, count in split.items():
        kwargs = {
            "url": stack.url(KEY_PATTERN),
            "concurrency": count,
            "duration_s": CONNECT_TIMEOUT_S + hold_s,  # stop ends it earlier
            "stop": stop,
            "method": method,
            "body_path": body if method == "PUT" else None,
            "content_type": "application/octet-stream" if method == "PUT" else None,
            "cpus": load_cpus,
            # SocketWatch counts the connections: psutil's count is too slow
            "server_port": None,
            "rand_regex_url": True,
            # every request's times, for the rate while all connections held
            "per_request": True,
            "label": f"{label}-{method.lower()}",
            "connect_timeout_s": CONNECT_TIMEOUT_S,
        }
        threads.append(
            threading.Thread(target=_run_or_figures, args=(kwargs, runs, method))
        )
    origin_s = time.monotonic()
    with (
        memory.MemorySampler(
            stack.pids,
            interval_s=WATCH_INTERVAL_S,
            cap_bytes=cap_bytes(stack.target),
            on_cap=on_cap,
        ) as sampler,
        SocketWatch(
            stack.front.pid,
            stack.port,
            origin_s,
            stop_after=(connections, hold_s, stop),
        ) as sockets,
    ):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    ended_s = time.monotonic() - origin_s
    for method, run in runs.items():
        if "crashed" in run:
            raise load.LoadFailed(f"{method} load: {run['crashed']}")
    seen = sockets.most_established
    all_at_s = sockets.all_accepted_at_s(connections)
    done_s = completions(runs)
    window = (all_at_s, sockets.stopped_at_s)
    point = {
        "connections": connections,
        "split": split,
        "read_share": read_share,
        "value_bytes": value_bytes,
        "hold_s": hold_s,
        "wall_s": ended_s,
        "runs": runs,
        "requests": sum(run["requests"] for run in runs.values()),
        "rate_per_s": sum(run["rate_per_s"] for run in runs.values()),
        # the rate while the server held every connection (ramp excluded)
        "held_rate_per_s": rate_between(done_s, *window),
        "held_window_s": window,
        "errors": sum_errors(runs),
        "non_2xx": sum_non_2xx(runs),
        "connections_seen": seen,
        "accepted_most": sockets.most_accepted,
        "all_accepted_at_s": all_at_s,
        "memory": sampler.summary(),
        "capped": sampler.capped_at is not None,
        "timeline": {
            "memory": [(round(s.t_s, 2), s.rss_bytes) for s in sampler.samples],
            "accepted": [(round(t, 2), n) for t, n, _ in sockets.samples],
            "established": [(round(t, 2), n) for t, _, n in sockets.samples],
            "rate_per_s": per_second(done_s),
        },
    }
    if min(seen, sockets.most_accepted) < connections:
        raise TooFewConnections(
            f"{stack.target}: asked for {connections:,} connections, the "
            f"server held at most {sockets.most_accepted:,} (the kernel saw "
            f"{seen:,} established); errors: {point['errors'] or 'none'}",
            point,
        )
    return point


def completions(runs: dict) -> list[float]:
    """When each answered request ended, in seconds since its oha started.

    Read from oha's per-request records, which are then deleted (at 10,000
    connections they run to hundreds of thousands of rows). The two oha
    processes start within milliseconds of the sampling clock's origin.
    """
    done = []
    for run in runs.values():
        db_path = run.get("db_path")
        if not db_path or not Path(db_path).exists():
            continue
        done += [
            due_s + latency_ms / 1000
            for due_s, latency_ms, _ in load.read_requests(db_path)
        ]
        Path(db_path).unlink()
    return sorted(done)


def rate_between(done_s: list[float], start_s, end_s) -> float | None:
    """Requests answered per second between two moments, or None."""
    if start_s is None or end_s is None or end_s <= start_s:
        return None
    return sum(1 for t in done_s if start_s <= t < end_s) / (end_s - start_s)


def per_second(done_s: list[float]) -> list[tuple[int, int]]:
    """(second, requests answered in it) for every second of the run."""
    counts: dict[int, int] = {}
    for t in done_s:
        counts[int(t)] = counts.get(int(t), 0) + 1
    return [
        (second, counts.get(second, 0))
        for second in range(int(max(done_s, default=0)) + 1)
    ]


def sum_errors(runs: dict) -> dict[str, int]:
    """oha's error kinds summed over the GET and PUT runs."""
    total: dict[str, int] = {}
    for run in runs.values():
        for kind, count in (run.get("errors") or {}).items():
            total[kind] = total.get(kind, 0) + int(count)
    return total


def sum_non_2xx(runs: dict) -> int:
    return sum(
        int(n)
        for run in runs.values()
        for code, n in (run.get("status_counts") or {}).items()
        if not code.startswith("2")
    )


# --- the Go store benchmarks -------------------------------------------------

BENCH_LINE = re.compile(
    r"^BenchmarkStores/(?P<store>\w+)/read(?P<read>\d+)(?:-(?P<procs>\d+))?\s+"
    r"(?P<n>\d+)\s+(?P<ns>[\d.]+) ns/op"
    r"(?:\s+(?P<bytes>[\d.]+) B/op\s+(?P<allocs>\d+) allocs/op)?"
)
BENCH_TIMEOUT_S = 600


def parse_go_bench(text: str) -> list[dict]:
    """The BenchmarkStores lines of `go test -bench` output, one row each.

    Go leaves the -N suffix off a benchmark's name when GOMAXPROCS is 1.
    """
    rows = []
    for line in text.splitlines():
        match = BENCH_LINE.match(line.strip())
        if not match:
            continue
        ns_per_op = float(match["ns"])
        rows.append(
            {
                "store": match["store"],
                "read_percent": int(match["read"]),
                "procs": int(match["procs"] or 1),
                "iterations": int(match["n"]),
                "ns_per_op": ns_per_op,
                # RunParallel: ns/op is wall time per operation over all
                # goroutines, so its inverse is the total rate
                "ops_per_s": 1e9 / ns_per_op,
                "bytes_per_op": float(match["bytes"]) if match["bytes"] else None,
                "allocs_per_op": int(match["allocs"]) if match["allocs"] else None,
            }
        )
    return rows


def median_rows(rows: list[dict]) -> list[dict]:
    """One row per store, mix and GOMAXPROCS: the median of its repeats."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["store"], row["read_percent"], row["procs"]), []).append(
            row
        )
    merged = []
    for group in groups.values():
        ns = statistics.median(r["ns_per_op"] for r in group)
        merged.append(
            {
                **group[0],
                "ns_per_op": ns,
                "ops_per_s": 1e9 / ns,
                "repeats": len(group),
                "spread_ns": max(r["ns_per_op"] for r in group)
                - min(r["ns_per_op"] for r in group),
            }
        )
    return merged


def run_go_bench(bench_time_s: float, count: int = 1, procs=None) -> dict:
    """`go test -bench BenchmarkStores` with GOMAXPROCS 1 and every core."""
    go = toolchain.require("go")
    procs = procs or sorted({1, len(machine.available_cpus())})
    argv = [
        go,
        "test",
        "-run",
        "^$",
        "-bench",
        "BenchmarkStores",
        "-benchtime",
        f"{int(bench_time_s * 1000)}ms",
        "-count",
        str(count),
        "-cpu",
        ",".join(map(str, procs)),
        f"./{GO_PACKAGE}",
    ]
    started_s = time.monotonic()
    done = subprocess.run(
        argv,
        cwd=paths.GO_DIR,
        capture_output=True,
        text=True,
        timeout=BENCH_TIMEOUT_S,
    )
    if done.returncode != 0:
        raise toolchain.BuildFailed(
            f"`{' '.join(argv)}` failed:\n{(done.stdout + done.stderr)[-2000:]}"
        )
    rows = parse_go_bench(done.stdout)
    if not rows:
        raise RuntimeError(f"no BenchmarkStores lines in:\n{done.stdout[-2000:]}")
    return {
        "argv": argv[1:],
        "bench_time_s": bench_time_s,
        "count": count,
        "procs": procs,
        "rows": median_rows(rows),
        "wall_s": time.monotonic() - started_s,
    }


def syncmap_against_rwmutex(bench: dict) -> list[dict]:
    """For each mix and GOMAXPROCS: how many times faster sync.Map was."""
    by_key = {(r["store"], r["read_percent"], r["procs"]): r for r in bench["rows"]}
    cases = []
    for (store, read_percent, procs), row in sorted(by_key.items()):
        if store != "syncmap" or ("rwmutex", read_percent, procs) not in by_key:
            continue
        rw = by_key[("rwmutex", read_percent, procs)]
        cases.append(
            {
                "read_percent": read_percent,
                "procs": procs,
                "speedup": rw["ns_per_op"] / row["ns_per_op"],
                "syncmap_ns": row["ns_per_op"],
                "rwmutex_ns": rw["ns_per_op"],
            }
        )
    return cases


def syncmap_verdict(bench: dict) -> str:
    """When sync.Map won and when it lost, from the benchmark's figures."""
    cases = syncmap_against_rwmutex(bench)
    wins = [c for c in cases if c["speedup"] > 1.0]
    best = max(cases, key=lambda c: c["speedup"])
    worst = min(cases, key=lambda c: c["speedup"])

    def where(case):
        return (
            f"{case['read_percent']}% reads, GOMAXPROCS={case['procs']}: "
            f"{case['speedup']:.2f}x the RWMutex map's rate"
        )

    return (
        f"sync.Map beat the map under sync.RWMutex in {len(wins)} of "
        f"{len(cases)} cases and lost {len(cases) - len(wins)}. Its best case: "
        f"{where(best)}; its worst: {where(worst)}."
    )


def verify_all(cpus: tuple[int, ...]) -> tuple[int, list[str], dict[str, str]]:
    """Each target on a fresh server, then the answers compared across them.

    Returns the probes compared, the targets verified, and those skipped
    because a tool is missing (Redis, say) with the install command.
    """
    answers, skipped = {}, {}
    for target in TARGETS:
        try:
            with start(target, cpus) as stack:
                answers[target] = verify_target(stack)
        except toolchain.ToolMissing as missing:
            skipped[target] = str(missing)
    return verify_equal(answers), sorted(answers), skipped


# --- measuring ---------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """How much each mode measures. quick stays at or under 1,000 connections."""

    connections: tuple[int, ...]
    # seconds of load after the server holds every connection (the ramp to
    # that moment is extra, and recorded): up to 1,000 connections, and above
    hold_s: float
    hold_many_s: float
    bench_time_s: float  # go test -benchtime, per benchmark
    trials: int


PLANS = {
    "quick": Plan(
        (100, 1000), hold_s=1.5, hold_many_s=1.5, bench_time_s=0.05, trials=1
    ),
    "default": Plan(
        (100, 1000, 10000), hold_s=4.0, hold_many_s=6.0, bench_time_s=0.2, trials=1
    ),
    "full": Plan(
        (100, 1000, 10000), hold_s=10.0, hold_many_s=30.0, bench_time_s=1.0, trials=3
    ),
}
QUICK_MAX_CONNECTIONS = 1000


def plan(mode: modes.Mode | None = None) -> Plan:
    return PLANS[(mode or modes.current()).name]


def hold_s(connections: int, the_plan: Plan) -> float:
    return the_plan.hold_s if connections <= 1000 else the_plan.hold_many_s


WARMUP_CONNECTIONS = 32


def warm_up(stack: Stack, value_bytes: int, warmup_s: float, cpus) -> None:
    """GETs then PUTs on a few connections, discarded: the JVM compiles its
    hot paths in the first seconds, and a cold JVM would be measured unfairly.
    """
    for method, share in (("GET", 1.0), ("PUT", 0.5)):
        load.run(
            stack.url(KEY_PATTERN),
            concurrency=WARMUP_CONNECTIONS,
            duration_s=warmup_s * share,
            method=method,
            body_path=value_file(value_bytes) if method == "PUT" else None,
            content_type="application/octet-stream" if method == "PUT" else None,
            cpus=cpus,
            rand_regex_url=True,
            label=f"cache-warmup-{method.lower()}-{os.getpid()}",
        )


def measure_point(
    target: str,
    connections: int,
    read_share: float,
    value_bytes: int,
    hold_for_s: float,
    split: machine.CoreSplit,
    warmup_s: float,
) -> tuple[dict, dict]:
    """A fresh server: verify it, preload the keys, warm it up, then hold
    the load.

    Returns the point and the probes' answers (for the equality check).
    """
    with start(target, split.server, connections) as stack:
        answers = verify_target(stack)
        preload_s = preload(stack.port, value_bytes)
        with memory.MemorySampler(stack.pids) as idle:
            time.sleep(0.1)  # a sample or two of the idle server
        warm_up(stack, value_bytes, warmup_s, split.load)
        try:
            point = mixed_load(
                stack,
                connections,
                read_share,
                value_bytes,
                hold_for_s,
                split.load,
                # the pid keeps two runs side by side (a test, a notebook) apart
                label=f"cache-{target}-c{connections}-{os.getpid()}",
                on_cap=lambda sample: stack.stop(),
            )
        except TooFewConnections as short:
            # The open-file limits were checked before the run, so a server
            # that never held them all is a finding about it, kept and shown.
            point = short.point
            point["short"] = str(short)
    point["target"] = target
    point["preload_s"] = preload_s
    point["idle_memory"] = idle.summary()
    return point, answers


def within_file_limit(levels: tuple[int, ...]) -> tuple[tuple[int, ...], str | None]:
    """The connection counts this machine's open-file hard limit allows.

    Each side (the server, and the load generator) needs one descriptor per
    connection and some headroom; a count the limit cannot hold is left out
    and the reason returned, rather than measured with refused connections.
    """
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        return levels, None
    allowed = tuple(n for n in levels if n + SERVER_FD_HEADROOM <= hard)
    dropped = [n for n in levels if n not in allowed]
    if not dropped:
        return levels, None
    reason = (
        f"the open-file hard limit is {hard}, too low for "
        f"{', '.join(f'{n:,}' for n in dropped)} connections; raise it "
        "(ulimit -Hn, as root) to measure them"
    )
    if not allowed:
        raise LimitTooLow(reason)
    return allowed, reason


def measure(
    connections: tuple[int, ...] | None = None,
    read_share: float = 0.9,
    value_bytes: int = 1024,
    stores: tuple[str, ...] = ("rwmutex", "syncmap", "redis"),
    bench: bool = True,
    on_point=None,
    save_as: str | None = "sweep",
) -> dict:
    """The whole chapter's measurement; saves and returns the record.

    Java and the first store are measured at every connection count; the
    other stores at the highest only, under the same load. `on_point(record,
    done, total)` is called after each point, for a panel.
    """
    mode = modes.current()
    the_plan = plan(mode)
    levels = tuple(sorted(connections or the_plan.connections))
    if mode.name == "quick" and levels[-1] > QUICK_MAX_CONNECTIONS:
        raise ValueError(f"quick mode stays at {QUICK_MAX_CONNECTIONS} or fewer")
    levels, limited = within_file_limit(levels)
    split = machine.core_split()
    record = {
        "started_at": results.now_iso(),
        "mode": mode.name,
        "knobs": {
            "connections": list(levels),
            "read_share": read_share,
            "value_bytes": value_bytes,
            "stores": list(stores),
            "hold_s": {str(n): hold_s(n, the_plan) for n in levels},
            "bench_time_s": the_plan.bench_time_s,
            "trials": the_plan.trials,
            "warmup_s": mode.warmup_s,
            "java_heap": JAVA_HEAP,
            "key_count": KEY_COUNT,
        },
        "fingerprint": machine.fingerprint(split),
        "core_split": split.describe(),
        "points": {},
        "skipped": {},
        "limited": limited,
    }
    if bench:
        record["bench"] = run_go_bench(the_plan.bench_time_s, the_plan.trials)
    work = [("java", n) for n in levels] + [(stores[0], n) for n in levels]
    work += [(store, levels[-1]) for store in stores[1:]]
    answers = {}
    for done, (target, level) in enumerate(work, start=1):
        if target in record["skipped"]:
            continue
        try:
            trials = []
            for _ in range(the_plan.trials):
                point, answers[target] = measure_point(
                    target,
                    level,
                    read_share,
                    value_bytes,
                    hold_s(level, the_plan),
                    split,
                    mode.warmup_s,
                )
                trials.append(point)
        except toolchain.ToolMissing as missing:
            record["skipped"][target] = str(missing)
            continue
        # the median trial by peak memory stands for the point
        trials.sort(key=footprint_bytes)
        point = trials[len(trials) // 2]
        if len(trials) > 1:
            point["trial_footprints"] = [footprint_bytes(t) for t in trials]
        record["points"].setdefault(target, []).append(point)
        if on_point:
            on_point(record, done, len(work))
    record["verified"] = {
        "probes_equal": verify_equal(answers),
        "targets": sorted(answers),
    }
    record["ended_at"] = results.now_iso()
    if save_as:
        results.save(record, CHAPTER, save_as)
    return record


# --- reading a record --------------------------------------------------------


def footprint_bytes(point: dict) -> int:
    """Peak PSS of the server's processes (redis-server included), else RSS."""
    mem = point["memory"]
    return mem.get("peak_pss_bytes") or mem["peak_rss_bytes"]


def held_rate(point: dict) -> float:
    """Requests per second while every connection was held, else overall."""
    return point.get("held_rate_per_s") or point["rate_per_s"]


def failed_requests(point: dict) -> int:
    return sum(point["errors"].values()) + point["non_2xx"]


def top_point(record: dict, target: str) -> dict | None:
    points = record["points"].get(target) or []
    return points[-1] if points else None


def top_connections(record: dict) -> int:
    return record["knobs"]["connections"][-1]


def replacement(record: dict) -> str:
    return record["knobs"]["stores"][0]


def memory_verdict(record: dict) -> claims.Verdict:
    """Java's peak against the Go service's, at the highest connection count.

    A side that never held every connection paid for fewer of them, so the
    sentence (which the scoreboard shows too) says so.
    """
    java = footprint_bytes(top_point(record, "java"))
    go = footprint_bytes(top_point(record, replacement(record)))
    verdict = claims.ratio_verdict(claims.claim("cache_memory"), java / go)
    short = [
        f"{TARGETS[target]} held at most {top['accepted_most']:,} of "
        f"{top['connections']:,} connections"
        for target in ("java", replacement(record))
        if (top := top_point(record, target)).get("short")
    ]
    if not short:
        return verdict
    caveat = " (" + "; ".join(short) + ", so its figure is for fewer)"
    return replace(verdict, sentence=verdict.sentence + caveat)


def _size(n_bytes: float) -> str:
    if n_bytes >= claims.GIB:
        return f"{n_bytes / claims.GIB:.2f} GiB"
    return f"{n_bytes / claims.MIB:.0f} MiB"


def verdict_text(record: dict) -> str:
    """The verdict, with the absolute figures and at what load it was taken."""
    claim = claims.claim("cache_memory")
    verdict = memory_verdict(record)
    n = top_connections(record)
    java = footprint_bytes(top_point(record, "java"))
    go = footprint_bytes(top_point(record, replacement(record)))
    lines = [verdict.sentence]
    lines.append(
        f"At {n:,} connections: Java {_size(java)} at its peak (the article: "
        f"{_size(claim.legacy_value)}), Go {_size(go)} (the article: "
        f"{_size(claim.replacement_value)})."
    )
    go_word = "within" if go <= claim.replacement_value else "above"
    java_word = "reached" if java >= 0.9 * claim.legacy_value else "stayed below"
    lines.append(
        f"Go stayed {go_word} the article's figure; Java {java_word} its "
        f"{_size(claim.legacy_value)} heap."
    )
    for target in ("java", replacement(record)):
        top = top_point(record, target)
        if top.get("short"):
            lines.append(
                f"{TARGETS[target]} {accepted_words(top)}, and "
                f"{failed_requests(top):,} requests failed: its memory is "
                "that of a server turning some clients away."
            )
        elif failed_requests(top):
            lines.append(
                f"{TARGETS[target]} held every connection, but "
                f"{failed_requests(top):,} requests failed."
            )
    if n < 10_000:
        why = record.get("limited") or f"{record.get('mode', 'this')} mode"
        lines.append(
            f"This run stopped at {n:,} connections, not the article's 10,000: "
            f"the verdict is for this load only ({why})."
        )
    return "\n".join(lines)


def per_connection_bytes(record: dict, target: str) -> float | None:
    """The slope of peak memory between the lowest and highest counts, per
    connection the server really held."""
    points = record["points"].get(target) or []
    if len(points) < 2:
        return None
    low, high = points[0], points[-1]
    held = min(high["accepted_most"], high["connections"]) - low["connections"]
    if held <= 0:
        return None
    return (footprint_bytes(high) - footprint_bytes(low)) / held


def growth_text(record: dict) -> str:
    parts = []
    for target in ("java", replacement(record)):
        slope = per_connection_bytes(record, target)
        if slope is not None:
            parts.append(f"{TARGETS[target]}: {slope / 1024:.0f} KiB per connection")
    return "Memory added per connection, lowest to highest count: " + "; ".join(parts)


def load_text(record: dict) -> list[str]:
    """Throughput and errors of every point, one line each."""
    lines = []
    for target, points in record["points"].items():
        for p in points:
            gets = p["runs"].get("GET", {}).get("requests", 0)
            lines.append(
                f"{TARGETS[target]} at {p['connections']:,} connections: "
                f"{held_rate(p):,.0f} req/s {held_words(p)} "
                f"({gets / max(p['requests'], 1):.0%} GETs), "
                f"{sum(p['errors'].values())} errors, {p['non_2xx']} non-2xx, "
                + accepted_words(p)
            )
    return lines


def held_words(point: dict) -> str:
    return "once all were open" if point.get("held_rate_per_s") else "overall"


def accepted_words(point: dict) -> str:
    if point["all_accepted_at_s"] is None:
        return f"never held them all, at most {point['accepted_most']:,}"
    held_s = point["all_accepted_at_s"]
    return f"all {point['accepted_most']:,} held after {held_s:.1f} s"


def connections_text(record: dict) -> str:
    """Whether every point really held the connections it asked for."""
    points = [p for pts in record["points"].values() for p in pts]
    short = [p for p in points if p.get("short")]
    ramps = [
        f"{TARGETS[p['target']]} {p['all_accepted_at_s']:.1f} s"
        for p in points
        if p["connections"] == top_connections(record)
        and p["all_accepted_at_s"] is not None
    ]
    text = (
        f"{len(points) - len(short)} of {len(points)} points held every "
        f"connection asked (counted in the server's own descriptors and by the "
        f"kernel). Time to accept all {top_connections(record):,}: "
        + ("; ".join(ramps) or "none did")
        + "."
    )
    for p in short:
        text += f" Short: {TARGETS[p['target']]}, {p['short']}."
    return text


def stores_text(record: dict) -> list[str]:
    """Each store at the highest count, against the first (the replacement)."""
    base = top_point(record, replacement(record))
    lines = []
    for store in record["knobs"]["stores"]:
        point = top_point(record, store)
        if point is None:
            lines.append(f"{store}: not measured ({record['skipped'].get(store)})")
            continue
        lines.append(
            f"{TARGETS[store]}: {held_rate(point):,.0f} req/s "
            f"({held_rate(point) / held_rate(base):.2f}x "
            f"{replacement(record)}), peak {_size(footprint_bytes(point))}, "
            f"{failed_requests(point)} failed requests"
        )
    return lines


def closing_rows(record: dict) -> list[dict]:
    """Peak memory per side at each connection count: the closing note."""
    rows = []
    for target, points in record["points"].items():
        for p in points:
            rows.append(
                {
                    "server": TARGETS[target],
                    "connections": p["connections"],
                    "peak MiB": round(footprint_bytes(p) / claims.MIB),
                    "req/s held": round(held_rate(p)),
                    "failed": failed_requests(p),
                }
            )
    return rows


def print_rows(rows: list[dict]) -> None:
    tables.print_rows(rows)


# --- figures and the panel ---------------------------------------------------


def bench_figure(record: dict):
    """Operations per second of each store at each mix, per GOMAXPROCS."""
    series, colours, dash = {}, {}, {}
    for row in sorted(record["bench"]["rows"], key=lambda r: r["read_percent"]):
        name = f"{row['store']}, GOMAXPROCS={row['procs']}"
        xs, ys = series.setdefault(name, ([], []))
        xs.append(row["read_percent"])
        ys.append(row["ops_per_s"] / 1e6)
        colours[name] = SIDE_COLOURS[row["store"]]
        dash[name] = "solid" if row["procs"] > 1 else "dot"
    return plots.curves(
        series,
        "Go store benchmarks: operations per second, all goroutines together",
        "reads in the mix (%)",
        "million operations per second",
        record["fingerprint"],
        colours=colours,
        dash=dash,
    )


def timeline_figure(record: dict, connections: int | None = None):
    """Memory over time at one connection count, with the article's figures."""
    connections = connections or top_connections(record)
    claim = claims.claim("cache_memory")
    series, colours, dash = {}, {}, {}
    held_at_s = {}  # when each server first held every connection
    for target, points in record["points"].items():
        for p in points:
            if p["connections"] != connections:
                continue
            name = LABELS[target]
            memory_line = p["timeline"]["memory"]
            series[name] = (
                [t for t, _ in memory_line],
                [b / claims.MIB for _, b in memory_line],
            )
            colours[name] = SIDE_COLOURS[target]
            held_at_s[target] = p["all_accepted_at_s"]
    fig = plots.curves(
        series,
        f"Memory (RSS) over time, {connections:,} keep-alive connections",
        "seconds since the load generator started",
        "MiB",
        record["fingerprint"],
        colours=colours,
        dash=dash,
    )
    for value, label in (
        (claim.legacy_value, f"the article: {claim.legacy}"),
        (claim.replacement_value, f"the article: {claim.replacement}"),
    ):
        fig.add_hline(
            y=value / claims.MIB,
            line_dash="dash",
            line_color=plots.ARTICLE_COLOUR,
            annotation_text=f"{label}, {_size(value)}",
            annotation_position="top left",
        )
    for target, at_s in held_at_s.items():
        if at_s is not None:  # a thin mark: from here on, all were open
            fig.add_vline(
                x=at_s, line_dash="dot", line_width=1, line_color=SIDE_COLOURS[target]
            )
    return fig


def connections_figure(record: dict, connections: int | None = None):
    """Connections each server held (solid) and requests it answered per
    second (dotted, right axis), over time."""
    connections = connections or top_connections(record)
    series, colours, dash = {}, {}, {}
    rates = {}
    for target, points in record["points"].items():
        for p in points:
            if p["connections"] != connections:
                continue
            name = LABELS[target]
            accepted = p["timeline"]["accepted"]
            series[name] = ([t for t, _ in accepted], [n for _, n in accepted])
            colours[name] = SIDE_COLOURS[target]
            rates[target] = p["timeline"].get("rate_per_s") or []
    fig = plots.curves(
        series,
        f"Connections held and requests answered, {connections:,} asked",
        "seconds since the load generator started",
        "connections the server held",
        record["fingerprint"],
        colours=colours,
        dash=dash,
    )
    for trace in fig.data:
        trace.legendgroup = trace.name
    for target, per_s in rates.items():
        fig.add_scatter(
            x=[second + 0.5 for second, _ in per_s],
            y=[n for _, n in per_s],
            name=f"{LABELS[target]}: req/s",
            mode="lines",
            line={"color": SIDE_COLOURS[target], "dash": "dot"},
            yaxis="y2",
            # one legend entry per server toggles both of its lines
            legendgroup=LABELS[target],
            showlegend=False,
        )
    top_rate = max((n for per_s in rates.values() for _, n in per_s), default=1)
    fig.update_layout(
        yaxis2={
            "title": "requests answered per second",
            "overlaying": "y",
            "side": "right",
            "range": [0, 1.1 * top_rate],
            "tickmode": "auto",
            "showgrid": False,
        }
    )
    return fig


def growth_figure(record: dict):
    """Peak memory against the number of connections, log-log."""
    claim = claims.claim("cache_memory")
    series, colours, dash = {}, {}, {}
    for target, points in record["points"].items():
        if len(points) < 2:
            continue
        series[LABELS[target]] = (
            [p["connections"] for p in points],
            [footprint_bytes(p) / claims.MIB for p in points],
        )
        colours[LABELS[target]] = SIDE_COLOURS[target]
    fig = plots.curves(
        series,
        "Peak memory against concurrent connections",
        "concurrent keep-alive connections",
        "peak MiB",
        record["fingerprint"],
        log_x=True,
        colours=colours,
        dash=dash,
    )
    fig.add_scatter(
        x=[10_000, 10_000],
        y=[claim.legacy_value / claims.MIB, claim.replacement_value / claims.MIB],
        mode="markers+text",
        text=[claim.legacy, claim.replacement],
        textposition="middle left",
        marker={"color": plots.ARTICLE_COLOUR, "size": 12, "symbol": "diamond"},
        name="the article, at 10,000",
    )
    fig.update_yaxes(type="log")
    return fig


def claim_figure(record: dict):
    verdict = memory_verdict(record)
    return plots.claim_beside_measured(
        claims.claim("cache_memory"),
        footprint_bytes(top_point(record, "java")),
        footprint_bytes(top_point(record, replacement(record))),
        verdict,
        record["fingerprint"],
        scale=1 / claims.MIB,
        unit="MiB",
    )


def stores_figure(record: dict):
    """Throughput and failed requests of every target at the highest count."""
    import plotly.graph_objects as go

    n = top_connections(record)
    names, rates, failed, colours = [], [], [], []
    for target in ("java", *record["knobs"]["stores"]):
        point = top_point(record, target)
        if point is None or point["connections"] != n:
            continue
        names.append(LABELS[target])
        rates.append(held_rate(point))
        failed.append(failed_requests(point))
        colours.append(SIDE_COLOURS[target])
    fig = go.Figure()
    fig.add_bar(
        x=names,
        y=rates,
        marker_color=colours,
        text=[
            f"{rate:,.0f} req/s, {n} failed"
            for rate, n in zip(rates, failed, strict=True)
        ],
        textposition="outside",
        name="requests per second",
    )
    plots._layout(  # the book's common layout: title, fingerprint line
        fig,
        f"Throughput and failed requests at {n:,} connections, same get/put mix",
        record["fingerprint"],
        yaxis_title="requests per second, all connections open",
    )
    return fig


def panel():
    """Knobs: connections, read/write mix, value size, store; Run re-measures."""
    import ipywidgets as widgets

    from book.widgets import Panel

    knobs = {
        "connections": widgets.Dropdown(
            options=[100, 1000, 5000, 10000], value=1000, description="connections"
        ),
        "read_share": widgets.FloatSlider(
            value=0.9, min=0.0, max=1.0, step=0.1, description="reads"
        ),
        # every key is preloaded: 10,000 values of 16 KiB are 160 MB already
        "value_bytes": widgets.Dropdown(
            options=[64, 1024, 16384], value=1024, description="value bytes"
        ),
        "store": widgets.Dropdown(
            options=["rwmutex", "syncmap", "redis"], value="rwmutex",
            description="Go store",
        ),
    }  # fmt: skip

    def run(values: dict, progress) -> None:
        def on_point(record, done, total):
            progress.step(done, total, f"{done} of {total} servers measured")
            progress.plot(
                timeline_figure(record, values["connections"]),
                "Memory over time, filling as each server is measured",
            )

        progress.step(0, 2, "starting, verifying, preloading ...")
        record = measure(
            connections=(values["connections"],),
            read_share=values["read_share"],
            value_bytes=values["value_bytes"],
            stores=(values["store"],),
            bench=False,
            on_point=on_point,
            save_as="panel",
        )
        progress.step(2, 2, memory_verdict(record).sentence)

    return Panel(
        "Java CacheServer against rust-cache-server",
        knobs,
        run,
        "Holds the chosen number of keep-alive connections against Java and "
        "the chosen Go store with your read share and value size, and draws "
        "memory over time; the result is saved as results/cache/panel.json.",
    )
