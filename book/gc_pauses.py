"""The GC chapter's bench: Java's collectors, Go's and Rust's under a peak.

The three order services (snippets/java/gc, go/gcservice, rust/gc-service)
do the same object-heavy work: a long-lived cache, a per-request object
graph, one cache entry replaced per request. Each is loaded at a constant
arrival rate with oha's latency correction, in three runs on one time axis:
a steady rate, a step up to the peak, and the steady rate again. Every
request's due time and corrected latency is kept, and every collector pause
is read from the JVM's GC log or Go's gctrace and placed on the same axis,
so the chapter can see whether the slow requests were in flight during a
pause.
"""

import bisect
import json
import re
import select
import socket
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from book import (
    claims,
    gclog,
    load,
    machine,
    memory,
    modes,
    paths,
    plots,
    results,
    toolchain,
    verify,
)
from book.gclog import Pause
from book.servers import Server

CHAPTER = "gc_pauses"
CLAIM_KEY = "gc_latency"
ORDERS_PATH = "/orders"
HEALTH_PATH = "/health"
STATUSES_PER_ORDER = 5  # the first 5 statuses of data/twitter.json per request
BODY_LIMIT_BYTES = 1024 * 1024  # all three refuse larger bodies (413)

# The load: the same for every stack.
RATE_PER_S = 300.0  # the steady arrival rate, req/s
PEAK_FACTOR = 3.0  # the peak is this many times the steady rate
CONNECTIONS = 32  # oha's connections; requests beyond them wait, and count
WARMUP_CONNECTIONS = 8  # closed loop, so the JIT sees thousands of requests
HEAP = "512m"  # -Xms and -Xmx of every Java run
GOGC = 100  # Go's default
# Above this, a request is a spike: ~10x the median of every stack here.
SPIKE_MS = 10.0
# Pauses and requests come from three clocks (the JVM's or Go's uptime,
# oha's start, Python's wall clock); they agree to a few ms, so a request
# counts as in flight during a pause within this much of it.
ALIGN_SLACK_S = 0.010
# A pause also leaves a backlog: the requests that arrived during it, which
# the server then works off while new ones keep coming. At the steady rates
# here (about half of what the slowest stack can serve) that takes about as
# long again as the pause, so a request in flight then counts as well.
PAUSE_SHADOW = 1.0
# The claim's parts: most spikes in flight during a pause; Go's longest
# pause at least this many times shorter than Java's ("far shorter").
ALIGNED_SHARE = 0.5
FAR_SHORTER = 10.0
# Go and Rust hold no fixed heap; the watchdog stops a run past this.
NATIVE_CAP_BYTES = 3 * 2**30
# The timeline draws the slowest request per window: at least this long,
# and long enough that a row has at most TIMELINE_POINTS (a page with tens of
# thousands of points is slow to draw, and slower still to diff in the tests).
TIMELINE_WINDOW_S = 0.010
TIMELINE_POINTS = 400

PHASES = ("steady", "peak", "steady again")
COLLECTORS = {"g1": "G1", "parallel": "Parallel", "zgc": "Z"}
STACKS = {
    "java-g1": "Java, G1",
    "java-parallel": "Java, Parallel",
    "java-zgc": "Java, ZGC",
    "go": "Go",
    "rust": "Rust (no GC)",
}
STACK_COLOURS = {
    "java-g1": plots.LEGACY_COLOUR,
    "java-parallel": "#e7298a",
    "java-zgc": "#a6761d",
    "go": plots.GO_COLOUR,
    "rust": plots.RUST_COLOUR,
}


@dataclass(frozen=True)
class Plan:
    """What a mode runs: which stacks, and for how long."""

    stacks: tuple[str, ...]
    phase_s: tuple[float, float, float]  # steady, peak, steady again
    warmup_s: float
    cache_entries: int


PLANS = {
    "quick": Plan(("java-g1", "go", "rust"), (3.0, 3.0, 3.0), 2.0, 50_000),
    "default": Plan(tuple(STACKS), (5.0, 5.0, 5.0), 3.0, 200_000),
    "full": Plan(tuple(STACKS), (20.0, 20.0, 20.0), 5.0, 200_000),
}


def plan() -> Plan:
    return PLANS[modes.current().name]


# --- payload and the bench's own answer --------------------------------------


def payload(statuses: int = STATUSES_PER_ORDER) -> Path:
    """The first `statuses` statuses of data/twitter.json, as a request body."""
    document = json.loads(paths.TWITTER_JSON.read_text(encoding="utf-8"))
    body = {"statuses": document["statuses"][:statuses]}
    path = paths.RUN_DIR / "payloads" / f"orders-{statuses}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")
    return path


# Unicode White_Space, which Go's strings.Fields, Rust's split_whitespace and
# the Java service's own splitter use (Python's str.split adds \x1c-\x1f).
_WHITE_SPACE = re.compile(
    "[\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+"
)


def expected_answer(body: bytes) -> dict:
    """The answer all three services must give, computed here on its own."""
    statuses = json.loads(body)["statuses"]
    return {
        "statuses": len(statuses),
        "words": sum(
            len([w for w in _WHITE_SPACE.split(s.get("text") or "") if w])
            for s in statuses
        ),
        "hashtags": sum(len(s["entities"]["hashtags"]) for s in statuses),
        "followers": sum(s["user"]["followers_count"] for s in statuses),
    }


# --- the stacks ----------------------------------------------------------------


def build_all() -> list[toolchain.Built]:
    """The three services this chapter runs."""
    return [
        toolchain.build_java("gc"),
        toolchain.build_go("gcservice"),
        toolchain.build_cargo("gc-service"),
    ]


def _built(product: Path, build) -> Path:
    """The product of build_all(), which the chapter runs first; built here
    only if it is missing, so that starting a stack never rebuilds it."""
    return product if product.exists() else build().path


def gc_log_path(stack: str) -> Path:
    return paths.RUN_DIR / "servers" / f"gc-{stack}" / "gc.log"


def java_service(
    collector: str, heap: str, cache_entries: int, cpus: tuple[int, ...]
) -> Server:
    """GcService on the JDK with one collector and a fixed heap, GC logged."""
    classes = _built(
        paths.TOOLS_DIR / "classes" / "gc", lambda: toolchain.build_java("gc")
    )
    stack = f"java-{collector}"
    log = gc_log_path(stack)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.unlink(missing_ok=True)
    argv = [
        toolchain.require("java"),
        f"-Xms{heap}",
        f"-Xmx{heap}",
        f"-XX:+Use{COLLECTORS[collector]}GC",
        f"-Xlog:gc*:file={log}:uptime,level,tags",
        "-cp",
        str(classes),
        "GcService",
        "--port",
        "0",
        "--cache-entries",
        str(cache_entries),
    ]
    return Server(f"gc-{stack}", [argv], cpus=cpus, ready_path=HEALTH_PATH)


def go_service(gogc: int, cache_entries: int, cpus: tuple[int, ...]) -> Server:
    """gcservice with gctrace on stderr; GOMAXPROCS is the cores it has."""
    binary = _built(
        paths.GO_DIR / "bin" / "gcservice", lambda: toolchain.build_go("gcservice")
    )
    env = {"GODEBUG": "gctrace=1", "GOGC": str(gogc), "GOMAXPROCS": str(len(cpus))}
    argv = [str(binary), "--port", "0", "--cache-entries", str(cache_entries)]
    return Server("gc-go", [argv], cpus=cpus, env=env, ready_path=HEALTH_PATH)


def rust_service(cache_entries: int, cpus: tuple[int, ...]) -> Server:
    """gc-service, one actix worker per core it has."""
    binary = _built(
        paths.RUST_DIR / "target" / "release" / "gc-service",
        lambda: toolchain.build_cargo("gc-service"),
    )
    argv = [
        str(binary),
        "--port",
        "0",
        "--cache-entries",
        str(cache_entries),
        "--workers",
        str(len(cpus)),
    ]
    return Server("gc-rust", [argv], cpus=cpus, ready_path=HEALTH_PATH)


def start(stack: str, knobs: dict, cpus: tuple[int, ...]) -> Server:
    """One stack, with this run's heap, GOGC and cache size."""
    if stack.startswith("java-") and stack[5:] in COLLECTORS:
        return java_service(stack[5:], knobs["heap"], knobs["cache_entries"], cpus)
    if stack == "go":
        return go_service(knobs["gogc"], knobs["cache_entries"], cpus)
    if stack == "rust":
        return rust_service(knobs["cache_entries"], cpus)
    raise ValueError(f"unknown stack {stack!r}; known: {', '.join(STACKS)}")


# --- verification --------------------------------------------------------------


def verify_stack(server: Server, body_path: Path) -> dict:
    """The answer, and bad input refused with a 4xx and a JSON body."""
    body = body_path.read_bytes()
    expected = expected_answer(body)
    verify.verify_post_json(server.port, ORDERS_PATH, body, expected)
    bad_inputs = [
        (b'{"statuses": [', 400),  # malformed
        (b'{"statuses": [{"text": 5}]}', 422),  # wrong type
        (b"{}", 422),  # missing field
    ]
    for bad_body, status in bad_inputs:
        verify.verify_error(server.port, "POST", ORDERS_PATH, bad_body, status)
    # the answer can be lost to a reset (see below): three tries
    for attempt in range(3):
        try:
            verify_too_large(server.port)
            break
        except (verify.VerificationFailed, OSError):
            if attempt == 2:
                raise
    return expected


def _complete(answer: bytes) -> bool:
    """Whether an HTTP answer with a Content-Length has all of its body."""
    head, found, body = answer.partition(b"\r\n\r\n")
    if not found:
        return False
    match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    return match is not None and len(body) >= int(match.group(1))


def verify_too_large(port: int, timeout_s: float = 10.0) -> None:
    """A body over the limit is refused with 413 and a JSON error body.

    The services answer as soon as they read Content-Length and close the
    connection; a client still sending the body then gets a reset, which
    can discard the answer before it is read. So this client sends the body
    in chunks and stops as soon as an answer is waiting, as browsers do.
    """
    head = (
        f"POST {ORDERS_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {BODY_LIMIT_BYTES + 1}\r\nConnection: close\r\n\r\n"
    ).encode()
    chunk = b" " * 65536
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(head)
        sent = 0
        try:
            while sent <= BODY_LIMIT_BYTES:
                readable, _, _ = select.select([sock], [], [], 0.0)
                if readable:
                    break
                sock.sendall(chunk[: BODY_LIMIT_BYTES + 1 - sent])
                sent += len(chunk)
            while not _complete(answer):
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except (ConnectionResetError, BrokenPipeError):
            pass  # the answer, if it came, is already in `answer`
    head_text, _, body = answer.partition(b"\r\n\r\n")
    status_line = head_text.split(b"\r\n", 1)[0].decode(errors="replace")
    faults = []
    if not status_line.startswith("HTTP/1.1 413"):
        faults.append(f"status line {status_line!r}, want 413")
    try:
        if "error" not in json.loads(body):
            faults.append(f"error body has no 'error' field: {body[:120]!r}")
    except ValueError:
        faults.append(f"error body is not JSON: {body[:120]!r}")
    if faults:
        raise verify.VerificationFailed(
            f"POST {ORDERS_PATH} on port {port} (over the limit): " + "; ".join(faults)
        )


# --- GC logs: what gclog does not read -----------------------------------------

# [8.535s][info][gc          ] Allocation Stall (pool-1-thread-4) 16.990ms
_STALL_LINE = re.compile(
    r"^\[(?P<uptime_s>\d+(?:\.\d+)?)s\]\[\w+\s*\]\[gc\s*\]\s*"
    r"Allocation Stall \((?P<thread>[^)]*)\) (?P<duration_ms>\d+(?:\.\d+)?)ms\s*$",
    re.MULTILINE,
)


def parse_allocation_stalls(text: str) -> list[Pause]:
    """ZGC's allocation stalls: one thread waiting for the collector to free
    memory. Not a collector pause (the rest of the program runs), but the
    thread's request waits all the same. The uptime is when the stall ended.
    """
    return [
        Pause(
            start_s=round(float(m["uptime_s"]) - float(m["duration_ms"]) / 1000, 6),
            duration_ms=float(m["duration_ms"]),
            kind=f"Allocation Stall ({m['thread']})",
        )
        for m in _STALL_LINE.finditer(text)
    ]


_GO_PHASE = re.compile(r"^gc (\d+) STW (sweep|mark) termination$")


def go_cycles(pauses: list[Pause]) -> list[Pause]:
    """Whole Go GC cycles, from the first stop-the-world phase to the end of
    the second: the concurrent mark between them takes a share of the CPU
    (a quarter, and more through mark assists), which on one core the
    requests feel even though nothing is stopped.
    """
    starts: dict[str, Pause] = {}
    cycles = []
    for pause in pauses:
        match = _GO_PHASE.match(pause.kind)
        if match is None:
            continue
        cycle, phase = match.groups()
        if phase == "sweep":
            starts[cycle] = pause
        elif cycle in starts:
            first = starts.pop(cycle)
            end_s = pause.start_s + pause.duration_ms / 1000
            cycles.append(
                Pause(
                    first.start_s,
                    round((end_s - first.start_s) * 1000, 3),
                    f"gc {cycle} cycle",
                )
            )
    return cycles


# --- measuring -----------------------------------------------------------------


def _requests_of(label: str) -> list[tuple[float, float, int]]:
    """Per-request records of the run with this label, also of one that
    failed its check (load.run then returns no path, but oha wrote the file).
    The file is removed once read: the record keeps what it holds.
    """
    rows = []
    for db_path in sorted((paths.RUN_DIR / "load").glob(f"{label}*.sqlite")):
        try:
            rows = load.read_requests(str(db_path))
        except sqlite3.Error:
            rows = []  # oha was killed before it wrote its table
        db_path.unlink(missing_ok=True)
    return rows


def _pause_dicts(pauses: list[Pause], offset_s: float) -> list[dict]:
    """Pauses on the run's time axis (0 = the start of the first phase)."""
    return [
        {
            "t_s": round(p.start_s + offset_s, 6),
            "duration_ms": p.duration_ms,
            "kind": p.kind,
        }
        for p in pauses
    ]


def measure_stack(
    stack: str, knobs: dict, split: machine.CoreSplit, body_path: Path
) -> dict:
    """Start, verify, warm up, then the three phases; the stack's record."""
    rates = [knobs["rate_per_s"], knobs["rate_per_s"] * knobs["peak_factor"]]
    phases = list(
        zip(PHASES, [rates[0], rates[1], rates[0]], knobs["phase_s"], strict=True)
    )
    cap = NATIVE_CAP_BYTES
    if stack.startswith("java-"):
        # JDK 17's ZGC maps its heap three times (one view per colour of
        # pointer), and RSS counts a page once per mapping
        views = 3 if stack == "java-zgc" else 1
        # the heap, then metaspace, threads and code
        cap = views * _heap_bytes(knobs["heap"]) + 2**30
    entry = {"label": STACKS[stack], "kept_up": True, "failure": None, "phases": []}
    requests = {"t_s": [], "latency_ms": [], "phase": []}
    origin_s = None
    with start(stack, knobs, split.server) as server:
        entry["verified"] = verify_stack(server, body_path)
        common = {
            "method": "POST",
            "body_path": body_path,
            "content_type": "application/json",
            "cpus": split.load,
            # no server_port: counting connections scans every socket of the
            # machine, on a core the measurement needs, and open loop has no use
            # for the count
        }
        runs = []
        try:
            load.run(
                server.url(ORDERS_PATH),
                concurrency=WARMUP_CONNECTIONS,
                duration_s=knobs["warmup_s"],
                label=f"gc-{stack}-warmup",
                **common,
            )
        except load.LoadFailed as error:
            entry["kept_up"] = False
            entry["failure"] = f"warm-up: {error}"
            phases = []  # nothing to measure on a server that fails closed loop
        with memory.MemorySampler(
            server.pids, cap_bytes=cap, on_cap=lambda _sample: server.stop()
        ) as sampler:
            for name, rate, duration_s in phases:
                # unique, so a file left by an earlier run is never read
                label = f"gc-{stack}-{name.replace(' ', '-')}-{time.time_ns()}"
                wall_s = time.time()
                origin_s = origin_s if origin_s is not None else wall_s
                phase = {
                    "name": name,
                    "rate_per_s": rate,
                    "duration_s": duration_s,
                    "start_s": round(wall_s - origin_s, 6),
                }
                try:
                    result = load.run(
                        server.url(ORDERS_PATH),
                        concurrency=CONNECTIONS,
                        duration_s=duration_s,
                        rate_per_s=rate,
                        per_request=True,
                        label=label,
                        **common,
                    )
                    phase["oha"] = result.as_dict()
                except load.LoadFailed as error:
                    phase["failure"] = str(error)
                    entry["kept_up"] = False
                    entry["failure"] = entry["failure"] or f"{name}: {error}"
                phase["end_s"] = round(time.time() - origin_s, 6)
                runs.append((phase, label))
                entry["phases"].append(phase)
                if server.exited():
                    break  # crashed, or stopped by the watchdog: nothing to load
        entry["memory"] = sampler.summary()
        if sampler.capped_at is not None:
            entry["kept_up"] = False
            entry["failure"] = "stopped by the memory watchdog"
        gc_offset_s = server.started_at_s - (origin_s or time.time())
        stderr = server.stderr_text()
    # The requests, read after the load so the phases follow each other closely.
    for phase, label in runs:
        rows = _requests_of(label)
        offset_s = phase["start_s"]
        phase["requests"] = len(rows)
        phase["non_2xx"] = sum(1 for *_, status in rows if not 200 <= status < 300)
        for due_s, latency_ms, _status in rows:
            requests["t_s"].append(round(due_s + offset_s, 6))
            requests["latency_ms"].append(round(latency_ms, 3))
            requests["phase"].append(phase["name"])
    entry["requests"] = requests
    entry["pauses"], entry["stalls"], entry["cycles"] = [], [], []
    if stack.startswith("java-"):
        text = gc_log_path(stack).read_text(errors="replace")
        entry["pauses"] = _pause_dicts(gclog.parse_jvm_gc_log(text), gc_offset_s)
        entry["stalls"] = _pause_dicts(parse_allocation_stalls(text), gc_offset_s)
    elif stack == "go":
        pauses = gclog.parse_gctrace(stderr)
        entry["pauses"] = _pause_dicts(pauses, gc_offset_s)
        entry["cycles"] = _pause_dicts(go_cycles(pauses), gc_offset_s)
    entry["gc_offset_s"] = gc_offset_s
    return entry


def _heap_bytes(heap: str) -> int:
    units = {"k": 2**10, "m": 2**20, "g": 2**30}
    return int(heap[:-1]) * units[heap[-1].lower()]


def measure(
    stacks: tuple[str, ...] | None = None,
    rate_per_s: float = RATE_PER_S,
    peak_factor: float = PEAK_FACTOR,
    heap: str = HEAP,
    gogc: int = GOGC,
    phase_s: float | None = None,
    cache_entries: int | None = None,
    on_stack=None,
    save_as: str | None = "sweep",
) -> dict:
    """Every stack through the same peak; save and return the record.

    `on_stack(record_so_far, done, total)` is called after each stack, so a
    panel can draw the timeline as it fills.
    """
    the_plan = plan()
    stacks = tuple(stacks or the_plan.stacks)
    split = machine.core_split()
    body_path = payload()
    knobs = {
        "stacks": list(stacks),
        "rate_per_s": float(rate_per_s),
        "peak_factor": float(peak_factor),
        "peak_rate_per_s": float(rate_per_s) * float(peak_factor),
        "heap": heap,
        "gogc": int(gogc),
        "phase_s": [float(phase_s)] * 3 if phase_s else list(the_plan.phase_s),
        "warmup_s": the_plan.warmup_s,
        "cache_entries": cache_entries or the_plan.cache_entries,
        "connections": CONNECTIONS,
        "statuses_per_order": STATUSES_PER_ORDER,
        "server_cores": len(split.server),
        "spike_ms": SPIKE_MS,
        "align_slack_s": ALIGN_SLACK_S,
    }
    record = {
        "started_at": results.now_iso(),
        "mode": modes.current().name,
        "knobs": knobs,
        "fingerprint": machine.fingerprint(split),
        "core_split": split.describe(),
        "stacks": {},
    }
    for done, stack in enumerate(stacks, start=1):
        started_s = time.monotonic()
        record["stacks"][stack] = measure_stack(stack, knobs, split, body_path)
        record["stacks"][stack]["run_s"] = round(time.monotonic() - started_s, 1)
        if on_stack:
            on_stack(record, done, len(stacks))
    record["ended_at"] = results.now_iso()
    if save_as:
        results.save(record, CHAPTER, save_as)
    return record


# --- reading a record: percentiles and alignment -------------------------------


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of values sorted ascending."""
    if not sorted_values:
        return None
    rank = max(1, -(-q * len(sorted_values) // 100))  # ceil without floats' help
    return sorted_values[min(len(sorted_values), int(rank)) - 1]


def phase_latencies(entry: dict, phase: str) -> list[float]:
    requests = entry["requests"]
    return sorted(
        latency
        for latency, name in zip(requests["latency_ms"], requests["phase"], strict=True)
        if name == phase
    )


def phase_figures(entry: dict, phase: str) -> dict | None:
    """p50, p99, p99.9 and max of one phase, in ms; None if it did not run."""
    values = phase_latencies(entry, phase)
    if not values:
        return None
    return {
        "requests": len(values),
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "p99.9": percentile(values, 99.9),
        "max": values[-1],
    }


def _merged(windows: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[list[float]] = []
    for start_s, end_s in sorted(windows):
        if merged and start_s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end_s)
        else:
            merged.append([start_s, end_s])
    return [(a, b) for a, b in merged]


def spikes_in_windows(
    t_s: list[float],
    latency_ms: list[float],
    windows: list[dict],
    spike_ms: float = SPIKE_MS,
    slack_s: float = ALIGN_SLACK_S,
    shadow: float = PAUSE_SHADOW,
) -> dict:
    """How many spikes were in flight during one of the windows (pauses).

    A request is in flight from when it was due to when its answer came; it
    meets a window if the two overlap. A window is widened by `slack_s` each
    side for the clocks, and after its end by `shadow` times its length for
    the backlog it left. `time_share` is the share of the run the widened
    windows cover: what the spikes' share would be if they fell at random
    times (for a request of zero length).
    """
    spans = _merged(
        [
            (
                w["t_s"] - slack_s,
                w["t_s"] + (1 + shadow) * w["duration_ms"] / 1000 + slack_s,
            )
            for w in windows
        ]
    )
    starts = [a for a, _ in spans]
    spikes = met = 0
    for due_s, latency in zip(t_s, latency_ms, strict=True):
        if latency <= spike_ms:
            continue
        spikes += 1
        end_s = due_s + latency / 1000
        # the last span starting before the request ends; does it reach it?
        index = bisect.bisect_right(starts, end_s) - 1
        if index >= 0 and spans[index][1] >= due_s:
            met += 1
    first_s = min(t_s, default=0.0)
    last_s = max(
        (t + lat / 1000 for t, lat in zip(t_s, latency_ms, strict=True)),
        default=first_s,
    )
    covered_s = sum(max(0.0, min(b, last_s) - max(a, first_s)) for a, b in spans)
    run_s = last_s - first_s
    return {
        "requests": len(t_s),
        "spikes": spikes,
        "in_window": met,
        "share": met / spikes if spikes else None,
        "time_share": covered_s / run_s if run_s > 0 else 0.0,
    }


def alignment(entry: dict, what: str = "pauses") -> dict:
    """Spikes of one stack against its pauses (or stalls, or Go's cycles).

    A Go cycle is not a stop: it leaves no backlog of its own, so it gets
    no shadow.
    """
    requests = entry["requests"]
    return spikes_in_windows(
        requests["t_s"],
        requests["latency_ms"],
        entry[what],
        shadow=0.0 if what == "cycles" else PAUSE_SHADOW,
    )


def longest_pause(entry: dict) -> dict | None:
    """The longest pause of the measured phases (and the warm-up before)."""
    return max(entry["pauses"], key=lambda p: p["duration_ms"], default=None)


def _measured(entry: dict, what: str) -> list[dict]:
    """The pauses (or stalls) that began while the phases ran."""
    end_s = max((p["end_s"] for p in entry["phases"]), default=0.0)
    return [p for p in entry[what] if 0.0 <= p["t_s"] <= end_s]


def _measured_pauses(entry: dict) -> list[dict]:
    return _measured(entry, "pauses")


def longest_measured_pause(entry: dict) -> dict | None:
    """The longest pause that began while the phases ran."""
    return max(_measured_pauses(entry), key=lambda p: p["duration_ms"], default=None)


def table(record: dict) -> list[dict]:
    """One row per stack and phase, the same rows whatever happened."""
    rows = []
    for stack, entry in record["stacks"].items():
        for phase in PHASES:
            ran = next((p for p in entry["phases"] if p["name"] == phase), None)
            figures = phase_figures(entry, phase)
            row = {"stack": STACKS[stack], "phase": phase}
            if ran is None or figures is None:
                row["rate req/s"] = "-"
                row.update({k: "-" for k in ("p50 ms", "p99 ms", "p99.9 ms", "max ms")})
                row["kept up"] = "not run"
            else:
                row["rate req/s"] = round(ran["rate_per_s"])
                for key in ("p50", "p99", "p99.9", "max"):
                    row[f"{key} ms"] = round(figures[key], 2)
                row["kept up"] = "failure" not in ran
            rows.append(row)
    return rows


def print_table(record: dict) -> None:
    rows = table(record)
    columns = list(rows[0])
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in rows:
        cells = (str(row[c]).ljust(w) for c, w in zip(columns, widths, strict=True))
        print("  ".join(cells))


# --- the verdict ---------------------------------------------------------------


@dataclass(frozen=True)
class GcVerdict:
    word: str  # "holds", "holds in part", "does not hold"
    parts: dict  # each part of the claim: True or False
    lines: list  # what the chapter prints, one finding a line
    zgc_sentence: str | None

    @property
    def sentence(self) -> str:
        return " ".join(self.lines)


def _peak(entry: dict, key: str = "p99.9") -> float | None:
    figures = phase_figures(entry, "peak")
    return figures[key] if figures else None


def _ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2f} ms" if value < 10 else f"{value:.0f} ms"


def _holds(ok: bool) -> str:
    return "holds" if ok else "does not hold"


def _spikes_text(lined: dict, during: str) -> str:
    return (
        f"{lined['share'] or 0.0:.0%} of its {lined['spikes']} requests over "
        f"{SPIKE_MS:.0f} ms were in flight during {during}, which cover "
        f"{lined['time_share']:.0%} of the time"
    )


def verdict(record: dict) -> GcVerdict:
    """The article's claim, in three parts, judged from the record.

    1. Java's spikes line up with its pauses: most of its requests over
       SPIKE_MS were in flight during a pause or the backlog it left.
    2. They are larger than Go's and Rust's: Java's p99.9 at the peak is
       above both.
    3. Go's pauses are far shorter: Java's longest pause is FAR_SHORTER
       times Go's longest stop-the-world phase, or more.

    The stop-the-world Java collectors (G1, Parallel) stand for "Java";
    ZGC, which exists to remove those pauses, is judged on its own. A stack
    that fell behind is judged on the requests it did answer (its p99.9 is
    then a floor), and says so. Every line has the same shape whatever was
    measured, so the chapter's output keeps its shape between runs.
    """
    stacks = record["stacks"]
    knobs = record["knobs"]
    java = [k for k in stacks if k.startswith("java-") and k != "java-zgc"]
    java = java or [k for k in stacks if k.startswith("java-")]
    go, rust = stacks.get("go"), stacks.get("rust")
    zgc = _zgc_sentence(record)
    if not java:
        return GcVerdict("cannot be judged here", {}, ["No Java collector ran."], zgc)
    lines = [
        f"Under a peak of {knobs['peak_rate_per_s']:.0f} req/s, with a "
        f"{knobs['heap']} Java heap and GOGC={knobs['gogc']}, on "
        f"{knobs['server_cores']} server core(s):"
    ]
    parts = {"aligned": True, "larger": True, "go_far_shorter": go is not None}
    go_longest = longest_measured_pause(go) if go else None
    go_ms = go_longest["duration_ms"] if go_longest else 0.0
    for key in java:
        entry = stacks[key]
        lined = alignment(entry)
        p999 = _peak(entry) or 0.0
        longest = longest_measured_pause(entry)
        longest_ms = longest["duration_ms"] if longest else 0.0
        parts["aligned"] &= bool(lined["spikes"]) and lined["share"] >= ALIGNED_SHARE
        for other in (go, rust):
            if other is not None:
                parts["larger"] &= p999 > (_peak(other) or 0.0)
        if go is not None:
            parts["go_far_shorter"] &= longest_ms >= FAR_SHORTER * go_ms
        lines.append(
            f"{entry['label']}: "
            + _spikes_text(lined, "a GC pause or the backlog it left")
            + f"; p99.9 at the peak {_ms(p999)}; longest pause {_ms(longest_ms)}; "
            f"kept up: {entry['kept_up']}."
        )
    if go is not None:
        lines.append(
            "Go: "
            + _spikes_text(
                alignment(go, "cycles"),
                "a GC cycle (its concurrent mark shares the cores with the requests)",
            )
            + f"; p99.9 at the peak {_ms(_peak(go))}; longest stop-the-world "
            f"phase {_ms(go_ms)}; kept up: {go['kept_up']}."
        )
    if rust is not None:
        lines.append(
            f"Rust: {alignment(rust)['spikes']} requests over {SPIKE_MS:.0f} ms "
            "with no collector at all, which is what the machine itself costs; "
            f"p99.9 at the peak {_ms(_peak(rust))}; kept up: {rust['kept_up']}."
        )
    lines += [
        "Java's spikes line up with its pauses (half of them or more): "
        f"{_holds(parts['aligned'])}.",
        "Java's p99.9 at the peak is larger than Go's and Rust's: "
        f"{_holds(parts['larger'])}.",
        f"Go's longest pause is {FAR_SHORTER:.0f}x shorter than Java's or more: "
        f"{_holds(parts['go_far_shorter'])}.",
    ]
    held = sum(parts.values())
    word = (
        "holds" if held == len(parts) else "holds in part" if held else "does not hold"
    )
    lines.append(f"The claim {word} on this machine.")
    return GcVerdict(word, parts, lines, zgc)


def _zgc_sentence(record: dict) -> str | None:
    """Does ZGC remove the spikes? Only when ZGC ran."""
    stacks = record["stacks"]
    zgc = stacks.get("java-zgc")
    if zgc is None:
        return None
    heap = record["knobs"]["heap"]
    cores = record["knobs"]["server_cores"]
    stalls = _measured(zgc, "stalls")
    longest_stall = max((s["duration_ms"] for s in stalls), default=0.0)
    longest = longest_measured_pause(zgc)
    pause_ms = longest["duration_ms"] if longest else 0.0
    stalled = alignment(zgc, "stalls")
    why = (
        f"its longest pause was {_ms(pause_ms)}, but its threads stalled "
        f"{len(stalls)} times waiting for memory, up to {_ms(longest_stall)}, "
        "and " + _spikes_text(stalled, "an allocation stall")
    )
    if not zgc["kept_up"]:
        return (
            f"ZGC could not keep up on {cores} core(s) with a {heap} heap: {why}. "
            "Its concurrent collector shares the cores with the requests and "
            "needs headroom in the heap; give it more cores or a larger heap."
        )
    zgc_p999 = _peak(zgc) or 0.0
    rust = stacks.get("rust")
    bar = max(SPIKE_MS, 2 * (_peak(rust) or 0.0)) if rust else SPIKE_MS
    g1 = stacks.get("java-g1")
    versus = f" against G1's {_ms(_peak(g1))}" if g1 is not None else ""
    if zgc_p999 <= bar:
        return (
            f"ZGC kept up, and its p99.9 at the peak was {_ms(zgc_p999)}{versus}, "
            f"within twice Rust's: it removes the spikes on this machine ({why})."
        )
    return (
        f"ZGC kept up, but its p99.9 at the peak was {_ms(zgc_p999)}{versus}: "
        f"it does not remove the spikes on this machine ({why})."
    )


def closing_note(record: dict) -> list[str]:
    """One line per stack: its percentiles per phase and its longest pause."""
    lines = []
    for stack, entry in record["stacks"].items():
        cells = []
        for phase in PHASES:
            figures = phase_figures(entry, phase)
            if figures is None:
                cells.append(f"{phase}: not run")
                continue
            cells.append(
                f"{phase} "
                + "/".join(f"{figures[k]:.1f}" for k in ("p50", "p99", "p99.9", "max"))
            )
        longest = longest_measured_pause(entry)
        count = len(_measured_pauses(entry))
        if stack == "rust":
            pause = "no collector, no pause"
        else:
            longest_ms = longest["duration_ms"] if longest else 0.0
            pause = f"longest of its {count} pauses {longest_ms:.2f} ms"
        lines.append(
            f"{entry['label']} (p50/p99/p99.9/max ms): {'; '.join(cells)}; "
            f"{pause}; kept up: {entry['kept_up']}"
        )
    return lines


# --- figures and the panel -----------------------------------------------------


def window_max(
    t_s: list[float], latency_ms: list[float], window_s: float = TIMELINE_WINDOW_S
) -> tuple[list[float], list[float]]:
    """The slowest request due in each window: spikes survive, noise thins."""
    slowest: dict[int, tuple[float, float]] = {}
    for due_s, latency in zip(t_s, latency_ms, strict=True):
        key = int(due_s // window_s)
        if key not in slowest or latency > slowest[key][1]:
            slowest[key] = (due_s, latency)
    points = [slowest[k] for k in sorted(slowest)]
    return [p[0] for p in points], [p[1] for p in points]


def timeline_window_s(record: dict) -> float:
    """The window the timeline takes the slowest request of."""
    span_s = max(
        (p["end_s"] for e in record["stacks"].values() for p in e["phases"]),
        default=0.0,
    )
    return max(TIMELINE_WINDOW_S, span_s / TIMELINE_POINTS)


def timeline_caption(record: dict) -> str:
    return (
        "Corrected latency of every request, drawn as the slowest in each "
        f"{timeline_window_s(record) * 1000:.0f} ms, with each GC pause where it "
        "happened; the shaded band is the traffic peak."
    )


def timeline_figure(record: dict, max_bands: int = 300):
    """Latency over time, one row per stack, each GC pause where it happened."""
    from plotly.subplots import make_subplots

    stacks = record["stacks"]
    window_s = timeline_window_s(record)
    titles = [
        entry["label"] + ("" if entry["kept_up"] else " (could not keep up)")
        for entry in stacks.values()
    ]
    fig = make_subplots(
        rows=len(stacks),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.04,
        subplot_titles=titles,
    )
    legend_shown = set()

    def once(name: str) -> bool:
        """Whether this is the first row to draw a trace of this name."""
        first = name not in legend_shown
        legend_shown.add(name)
        return first

    for row, (stack, entry) in enumerate(stacks.items(), start=1):
        xs, ys = window_max(
            entry["requests"]["t_s"], entry["requests"]["latency_ms"], window_s
        )
        # what a plot can show: 1 ms on the time axis, 3 digits of latency
        xs = [round(x, 3) for x in xs]
        ys = [float(f"{y:.3g}") for y in ys]
        fig.add_scattergl(
            x=xs,
            y=ys,
            mode="markers",
            marker={"size": 3, "color": STACK_COLOURS[stack]},
            name=entry["label"],
            row=row,
            col=1,
        )
        measured = _measured_pauses(entry)
        if measured:
            fig.add_scatter(
                x=[p["t_s"] for p in measured],
                y=[max(p["duration_ms"], 0.01) for p in measured],
                mode="markers",
                marker={"symbol": "x", "size": 6, "color": "black"},
                name="GC pause (at its length)",
                legendgroup="pause",
                showlegend=once("pause"),
                text=[p["kind"] for p in measured],
                row=row,
                col=1,
            )
        # bands for the pauses long enough to see, the longest first
        long_ones = sorted(
            (p for p in measured if p["duration_ms"] >= 1.0),
            key=lambda p: -p["duration_ms"],
        )[:max_bands]
        for pause in long_ones:
            fig.add_vrect(
                x0=pause["t_s"],
                x1=pause["t_s"] + pause["duration_ms"] / 1000,
                fillcolor="black",
                opacity=0.25,
                line_width=0,
                row=row,
                col=1,
            )
        stalls = _measured(entry, "stalls")
        if stalls:
            fig.add_scatter(
                x=[s["t_s"] for s in stalls],
                y=[s["duration_ms"] for s in stalls],
                mode="markers",
                marker={"symbol": "triangle-up", "size": 6, "color": "#e6ab02"},
                name="ZGC allocation stall (at its length)",
                legendgroup="stall",
                showlegend=once("stall"),
                row=row,
                col=1,
            )
        for phase in entry["phases"]:
            if phase["name"] == "peak":
                fig.add_vrect(
                    x0=phase["start_s"],
                    x1=phase["end_s"],
                    fillcolor="#9e9e9e",
                    opacity=0.12,
                    line_width=0,
                    row=row,
                    col=1,
                )
        # powers of ten only: a log axis's 2s and 5s crowd a short row
        fig.update_yaxes(type="log", dtick=1, title_text="ms", row=row, col=1)
    fig.update_xaxes(title_text="seconds since the first phase began", row=len(stacks))
    knobs = record["knobs"]
    title = (
        f"Latency over time: {knobs['rate_per_s']:.0f} req/s, a peak of "
        f"{knobs['peak_rate_per_s']:.0f} req/s (shaded), then "
        f"{knobs['rate_per_s']:.0f} again"
    )
    plots._layout(fig, title, record["fingerprint"])
    # in pixels: the rows, then below them the axis title, legend, machine
    plot_px, margin_px = 180 * len(stacks), 170
    fig.update_layout(
        height=plot_px + 70 + margin_px,
        margin={"b": margin_px},
        legend={"y": -60 / plot_px},
    )
    if record["fingerprint"]:
        fig.layout.annotations[-1].update(y=-130 / plot_px)
    return fig


def tails_figure(record: dict):
    """p99.9 per phase, one group per stack, with its longest pause."""
    import plotly.graph_objects as go

    fig = go.Figure()
    stacks = record["stacks"]
    names = [entry["label"] for entry in stacks.values()]
    shades = {"steady": "#bdbdbd", "peak": "#636363", "steady again": "#969696"}
    for phase in PHASES:
        values = []
        for entry in stacks.values():
            figures = phase_figures(entry, phase)
            values.append(figures["p99.9"] if figures else None)
        fig.add_bar(
            name=f"p99.9, {phase}", x=names, y=values, marker_color=shades[phase]
        )
    longest = [longest_measured_pause(entry) for entry in stacks.values()]
    fig.add_scatter(
        name="longest GC pause",
        x=names,
        y=[p["duration_ms"] if p else None for p in longest],
        mode="markers",
        marker={"symbol": "x", "size": 11, "color": "black"},
    )
    plots._layout(
        fig,
        "p99.9 latency per phase, and the longest GC pause of each stack",
        record["fingerprint"],
        barmode="group",
        yaxis_title="ms",
        yaxis_type="log",
    )
    return fig


def panel():
    """Knobs for this chapter: run the peak again with your settings."""
    import ipywidgets as widgets

    from book.widgets import Panel

    knobs = {
        "rate_per_s": widgets.IntSlider(
            value=int(RATE_PER_S), min=50, max=3000, step=50, description="rate req/s"
        ),
        "peak_factor": widgets.FloatSlider(
            value=PEAK_FACTOR, min=1.0, max=8.0, step=0.5, description="peak x"
        ),
        "heap": widgets.Dropdown(
            options=["256m", "512m", "1g", "2g"], value=HEAP, description="heap"
        ),
        "collector": widgets.Dropdown(
            options=[("G1", "g1"), ("Parallel", "parallel"), ("ZGC", "zgc")],
            value="g1", description="collector",
        ),
        "gogc": widgets.Dropdown(
            options=[25, 50, 100, 200, 400, 800], value=GOGC, description="GOGC"
        ),
        "phase_s": widgets.FloatSlider(
            value=plan().phase_s[0], min=2, max=30, step=1,
            description="s per phase",
        ),
    }  # fmt: skip

    def run(values: dict, progress) -> None:
        def on_stack(record, done, total):
            progress.step(done, total, f"{done} of {total} stacks measured")
            progress.plot(timeline_figure(record), "Latency over time, filling")

        progress.step(0, 1, "building, starting and verifying ...")
        build_all()  # sources edited since the chapter's build cell are rebuilt
        record = measure(
            stacks=(f"java-{values['collector']}", "go", "rust"),
            rate_per_s=values["rate_per_s"],
            peak_factor=values["peak_factor"],
            heap=values["heap"],
            gogc=values["gogc"],
            phase_s=values["phase_s"],
            on_stack=on_stack,
            save_as="panel",
        )
        progress.step(1, 1, verdict(record).sentence)

    return Panel(
        "Java's collectors, Go and Rust under a traffic peak",
        knobs,
        run,
        "Runs the steady-peak-steady load again on one Java collector, Go and "
        "Rust with your settings and draws the latency timeline as each stack "
        "finishes; the result is saved as results/gc_pauses/panel.json.",
    )


def the_claim() -> claims.Claim:
    return claims.claim(CLAIM_KEY)
