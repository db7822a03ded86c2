"""The GIL chapter's bench: one CPU-bound task on 1..N workers, three ways.

The task is what a backend really does with a request body: parse a batch
of statuses (data/twitter.json) and summarise it, the same summary
fastjson-api serves. `snippets/python/gil/work.py` runs it on CPython
threads and on the usual workaround, a process pool; `go/gilwork` on
goroutines; `rust/gil-work` on Rust threads. Each prints one JSON line with
its throughput and a digest of its results, which the bench checks against
a digest it computes itself, so the three are known to do the same work.

zlib's `compress` is the second task: CPython releases the GIL while zlib
deflates, so Python threads do scale there. It is the counterexample.

The same summary is then served over HTTP (Python's ThreadingHTTPServer,
Go's net/http, Rust's fastjson-api) and loaded with oha at 1..N concurrent
connections, to show what the GIL means for a service, not only a batch.
"""

import hashlib
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import psutil

from book import (
    claims,
    json_api,
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

CHAPTER = "gil"
CLAIM_KEY = "gil_parallel"
WORK_PY = paths.SNIPPETS_DIR / "python" / "gil" / "work.py"
TASKS = ("summarise", "compress")
# One cycle of batches: batch i and batch i + 100 are the same bytes.
CALIBRATION_BATCHES = 100
MIN_BATCHES = 20  # fewer, and start-up noise would be most of a run
BATCH_SIZES = (10, 50, 100)
DEFAULT_BATCH_SIZE = 100
# A batch run may take this many times its target before it is killed.
RUN_TIMEOUT_FACTOR = 10
RUN_TIMEOUT_MIN_S = 60.0
MEMORY_INTERVAL_S = 0.05  # 20 Hz: a Rust run at 2 workers lasts well under 1 s
# A speedup at or above this share of the ideal counts as running in parallel.
PARALLEL_SHARE = 0.70
# Python threads below this speedup gained nothing worth the name.
NO_GAIN_SPEEDUP = 1.25
# Interpreters that may be free-threaded builds (CPython 3.13+ --disable-gil).
FREE_THREADED_CANDIDATES = ("python3.14t", "python3.13t")

SERIES = {
    "python threads": "Python threads (GIL)",
    "python processes": "Python processes",
    "python free-threaded": "Python threads (free-threaded build)",
    "go": "Go goroutines",
    "rust": "Rust threads",
}
COLOURS = {
    "python threads": plots.LEGACY_COLOUR,
    "python processes": "#e6ab02",
    "python free-threaded": "#e7298a",
    "go": plots.GO_COLOUR,
    "rust": plots.RUST_COLOUR,
}


# --- the bench's own answer --------------------------------------------------


@cache
def _work_module():
    """snippets/python/gil/work.py as a module, for its batch builder only.

    The batches are the input's statuses cut from its source text; building
    them here the same way is what lets the bench know the expected digest.
    The summary itself is computed by json_api.expected_summary, not by the
    legacy code under test.
    """
    spec = importlib.util.spec_from_file_location("gil_work", WORK_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def canonical(obj) -> bytes:
    """Sorted keys, no spaces, UTF-8 as is: the bytes every digest covers."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


@cache
def distinct_batches(batch_size: int) -> tuple[bytes, ...]:
    """The distinct batch bodies (one per status of the input)."""
    work = _work_module()
    return tuple(work.build_batches(paths.TWITTER_JSON, 10**9, batch_size))


@cache
def _distinct_results(task: str, batch_size: int) -> tuple[bytes, ...]:
    """Each distinct batch's result, as canonical JSON."""
    out = []
    for body in distinct_batches(batch_size):
        if task == "summarise":
            out.append(canonical(json_api.expected_summary(body)))
        elif task == "compress":
            # The programs digest the round trip, not the compressed bytes:
            # Go's, Rust's and CPython's deflate are free to differ.
            out.append(canonical({"input_bytes": len(body), "ok": True}))
        else:
            raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    return tuple(out)


@cache
def expected_digest(task: str, batches: int, batch_size: int) -> str:
    """sha256 of the canonical list of results of batches 0..batches-1."""
    results_ = _distinct_results(task, batch_size)
    digest = hashlib.sha256(b"[")
    for index in range(batches):
        if index:
            digest.update(b",")
        digest.update(results_[index % len(results_)])
    digest.update(b"]")
    return digest.hexdigest()


# --- the programs --------------------------------------------------------------


def build_all() -> list[toolchain.Built]:
    """The Rust and Go batch programs, and fastjson-api (Rust's server)."""
    return [
        toolchain.build_cargo("gil-work"),
        toolchain.build_cargo("fastjson-api"),
        toolchain.build_go("gilwork"),
    ]


@cache
def free_threaded_python() -> dict:
    """A free-threaded CPython on PATH, or why there is none.

    Returns {"path", "version"} when an interpreter runs with the GIL off,
    else {"path": None, "why": ...}.
    """
    for name in FREE_THREADED_CANDIDATES:
        path = shutil.which(name)
        if path is None:
            continue
        probe = (
            "import sys, platform; "
            "print(platform.python_version(), sys._is_gil_enabled())"
        )
        try:
            done = subprocess.run(
                [path, "-c", probe],
                capture_output=True,
                text=True,
                timeout=20,
                env={**os.environ, "PYTHON_GIL": "0"},
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        words = done.stdout.split()
        if done.returncode == 0 and words[-1:] == ["False"]:
            return {"path": path, "version": words[0]}
    return {
        "path": None,
        "why": (
            f"no free-threaded CPython on PATH (looked for "
            f"{', '.join(FREE_THREADED_CANDIDATES)}); this Python is "
            f"{sys.version.split()[0]}, which always has the GIL. Threads that "
            "run Python code in parallel need CPython 3.13 or later built with "
            "--disable-gil (for example `uv python install 3.13t`, or the "
            "python3.13-nogil package of Ubuntu or deadsnakes; Debian 12 has "
            "none) and C extensions built for it"
        ),
    }


def series_available() -> tuple[str, ...]:
    """The series this machine can run, in the order they are plotted."""
    found = ("python threads", "python processes")
    if free_threaded_python()["path"]:
        found += ("python free-threaded",)
    return (*found, "go", "rust")


def batch_argv(series: str, task: str, workers: int, batches: int, batch_size: int):
    """The command line of one batch run, and extra environment for it."""
    flags = [
        "--task",
        task,
        "--workers",
        str(workers),
        "--batches",
        str(batches),
        "--batch-size",
        str(batch_size),
        "--input",
        str(paths.TWITTER_JSON),
    ]
    if series == "python threads":
        return [sys.executable, str(WORK_PY), *flags, "--pool", "threads"], {}
    if series == "python processes":
        return [sys.executable, str(WORK_PY), *flags, "--pool", "processes"], {}
    if series == "python free-threaded":
        interpreter = free_threaded_python()["path"]
        if interpreter is None:
            raise RuntimeError(free_threaded_python()["why"])
        argv = [interpreter, str(WORK_PY), *flags, "--pool", "threads"]
        return argv, {"PYTHON_GIL": "0"}
    if series == "go":
        return [str(paths.GO_DIR / "bin" / "gilwork"), *flags], {}
    if series == "rust":
        return [str(paths.RUST_DIR / "target" / "release" / "gil-work"), *flags], {}
    raise ValueError(f"unknown series {series!r}; known: {', '.join(SERIES)}")


def parse_line(stdout: str) -> dict:
    """The one JSON result line a batch program prints."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if len(lines) != 1 or not lines[0].startswith("{"):
        raise ValueError(f"want one JSON line, got {len(lines)}: {stdout[-300:]!r}")
    line = json.loads(lines[0])
    for key in ("task", "workers", "batches", "tasks_per_s", "digest"):
        if key not in line:
            raise ValueError(f"the result line has no {key!r}: {lines[0][:300]}")
    return line


class DigestMismatch(AssertionError):
    """A program's results differ from the bench's own: it did other work."""


def run_batch(
    series: str,
    task: str,
    workers: int,
    batches: int,
    batch_size: int,
    cpus: tuple[int, ...],
    expected_s: float = 1.0,
) -> dict:
    """One batch run with its whole process tree's memory sampled.

    The digest is checked against the bench's own before the figure is kept.
    """
    argv, env = batch_argv(series, task, workers, batches, batch_size)
    timeout_s = max(RUN_TIMEOUT_MIN_S, RUN_TIMEOUT_FACTOR * expected_s)
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
        preexec_fn=lambda: os.sched_setaffinity(0, cpus),
    )
    with memory.MemorySampler([proc.pid], interval_s=MEMORY_INTERVAL_S) as sampler:
        try:
            stdout, stderr = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_tree(proc)
            raise RuntimeError(
                f"{series} {task} x{workers}: over {timeout_s:.0f} s"
            ) from None
        except BaseException:  # an interrupt: the run must not outlive it
            _kill_tree(proc)
            raise
    if proc.returncode != 0:
        raise RuntimeError(
            f"`{' '.join(argv)}` exited with {proc.returncode}: {stderr[-800:]}"
        )
    line = parse_line(stdout)
    asked = {"task": task, "workers": workers, "batches": batches}
    if {key: line[key] for key in asked} != asked:
        raise RuntimeError(f"{series} ran something else than asked: {line}")
    want = expected_digest(task, batches, batch_size)
    if line["digest"] != want:
        raise DigestMismatch(
            f"{series} {task} x{workers} ({batches} batches of {batch_size}): "
            f"digest {line['digest'][:16]}..., the bench's is {want[:16]}..."
        )
    return {
        "series": series,
        "task": task,
        "workers": workers,
        "batches": batches,
        "batch_size": batch_size,
        "tasks_per_s": line["tasks_per_s"],
        "elapsed_s": line["elapsed_s"],
        "digest": line["digest"],
        "memory": sampler.summary(),
    }


def _kill_tree(proc: subprocess.Popen) -> None:
    """Kill a batch run and its pool's workers, which are its children."""
    try:
        children = memory.tree(proc.pid)[1:]
    except psutil.NoSuchProcess:
        children = []
    for child in children:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    proc.kill()
    proc.communicate()


def batches_for(rate_per_s: float, duration_s: float) -> int:
    """Batches that keep one worker busy for about duration_s."""
    return max(MIN_BATCHES, math.ceil(rate_per_s * duration_s))


def verify_batches(
    tasks=TASKS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    series: tuple[str, ...] | None = None,
) -> dict:
    """Every program, every task, one cycle of batches on one worker.

    Each run's digest must equal the bench's own (run_batch raises
    DigestMismatch otherwise), so equal digests prove the programs did the
    same work. The runs double as the warm-up, and their rates set how many
    batches the sweep gives each program. Returns {"series task": run}.
    """
    cpus = machine.available_cpus()
    runs = {}
    for task in tasks:
        for name in series or series_available():
            runs[f"{name} {task}"] = run_batch(
                name, task, 1, CALIBRATION_BATCHES, batch_size, cpus
            )
    return runs


def digests_report(runs: dict) -> str:
    """One line per task: how many programs gave the bench's digest."""
    lines = []
    for task in sorted({run["task"] for run in runs.values()}):
        same = [run for run in runs.values() if run["task"] == task]
        digests = {run["digest"] for run in same}
        lines.append(
            f"{task}: {len(same)} programs, {len(digests)} distinct digest(s), "
            f"{next(iter(digests))[:16]}... (the bench's own)"
        )
    return "\n".join(lines)


# --- the batch sweep -----------------------------------------------------------


def worker_counts(cores: int, mode_name: str) -> tuple[int, ...]:
    """1 to the machine's cores and a little past it.

    Quick mode stops one past the cores; the others go on to twice the cores
    (at least one past), where every worker must share a core.
    """
    counts = set(range(1, cores + 1)) | {cores + 1}
    if mode_name != "quick":
        counts |= {2 * cores}
    return tuple(sorted(counts))


def batch_duration_s(mode: modes.Mode) -> float:
    """Target seconds for one worker to finish a point's batches."""
    return mode.duration_s / 3


def measure_batches(
    tasks=TASKS,
    workers: tuple[int, ...] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    series: tuple[str, ...] | None = None,
    duration_s: float | None = None,
    verified: dict | None = None,
    on_point=None,
) -> dict:
    """Throughput, speedup and memory of each series over the worker counts.

    Per series and task, the verification run (one cycle at 1 worker) sets
    the batch count; every worker count then runs that same count, whose
    digest is checked against the bench's. `verified` reuses the runs of an
    earlier verify_batches. `on_point(part, done, total)` is called after
    each point, so a panel can draw the curves as they fill.
    """
    mode = modes.current()
    cpus = machine.available_cpus()
    counts = tuple(workers or worker_counts(len(cpus), mode.name))
    chosen = tuple(series or series_available())
    target_s = duration_s or batch_duration_s(mode)
    runs = dict(verified or {})
    for task in tasks:
        for name in chosen:
            if f"{name} {task}" not in runs:
                runs.update(verify_batches((task,), batch_size, (name,)))
    part = {
        "cores": len(cpus),
        "cpus": list(cpus),
        "workers": list(counts),
        "batch_size": batch_size,
        "target_s": target_s,
        "series": list(chosen),
        "tasks": list(tasks),
        "free_threaded": free_threaded_python(),
        "verified": {
            key: {"tasks_per_s": run["tasks_per_s"], "digest": run["digest"]}
            for key, run in runs.items()
        },
        "points": {},
    }
    total = len(tasks) * len(chosen) * len(counts)
    done = 0
    for task in tasks:
        for name in chosen:
            key = f"{name} {task}"
            rate_per_s = runs[key]["tasks_per_s"]
            batches = batches_for(rate_per_s, target_s)
            part["points"][key] = []
            for count in counts:
                point = run_batch(
                    name, task, count, batches, batch_size, cpus, batches / rate_per_s
                )
                part["points"][key].append(point)
                done += 1
                if on_point:
                    on_point(part, done, total)
    return part


# --- the HTTP side -------------------------------------------------------------

HTTP_PATHS = {"python": "/summarise", "go": "/summarise", "rust": "/statuses"}
HTTP_STACKS = {
    "python": "Python ThreadingHTTPServer",
    "go": "Go net/http",
    "rust": "Rust fastjson-api (Actix)",
}


def http_split() -> machine.CoreSplit:
    """How the cores are shared between the server and oha.

    A server pinned to one core cannot show parallelism, so below 4 cores
    the server gets every core and oha shares them (its CPU is recorded and
    reported). From 4 cores on, oha gets a quarter of them, at least one.
    """
    cpus = machine.available_cpus()
    if len(cpus) < 4:
        return machine.CoreSplit(server=cpus, load=cpus)
    load_cores = max(1, len(cpus) // 4)
    return machine.CoreSplit(server=cpus[:-load_cores], load=cpus[-load_cores:])


def describe_split(split: machine.CoreSplit) -> str:
    if split.server == split.load:
        return (
            f"server and load generator share all {len(split.server)} core(s) "
            f"{list(split.server)}: a server pinned to one core could not show "
            "parallelism, so oha takes its CPU from the server's and the "
            "figures are a floor"
        )
    return split.describe()


def start_http(stack: str, cpus: tuple[int, ...]) -> Server:
    """One of the three services, pinned to `cpus`."""
    if stack == "python":
        argv = [sys.executable, str(WORK_PY), "serve", "--port", "0"]
        return Server("gil-python", [argv], cpus=cpus, ready_path="/summarise")
    if stack == "go":
        argv = [str(paths.GO_DIR / "bin" / "gilwork"), "serve", "--port", "0"]
        return Server("gil-go", [argv], cpus=cpus, ready_path="/summarise")
    if stack == "rust":
        binary = paths.RUST_DIR / "target" / "release" / "fastjson-api"
        argv = [str(binary), "--port", "0", "--workers", str(len(cpus))]
        return Server("gil-rust", [argv], cpus=cpus, ready_path="/json")
    raise ValueError(f"unknown stack {stack!r}; known: {', '.join(HTTP_STACKS)}")


def tree_cpu_s(pids: list[int]) -> float:
    """User and system CPU seconds of the trees rooted at pids, so far."""
    total_s = 0.0
    for pid in pids:
        try:
            procs = memory.tree(pid)
        except psutil.NoSuchProcess:
            continue
        for proc in procs:
            try:
                times = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total_s += times.user + times.system
    return total_s


def http_body(batch_size: int) -> Path:
    """Batch 0 as a request body file, for oha."""
    path = paths.RUN_DIR / "payloads" / f"gil-batch-{batch_size}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(distinct_batches(batch_size)[0])
    return path


def verify_http(server: Server, stack: str, body: bytes) -> dict:
    """The summary the bench computes, and bad input refused with 400/422."""
    route = HTTP_PATHS[stack]
    expected = json_api.expected_summary(body)
    verify.verify_post_json(server.port, route, body, expected)
    bad_inputs = [(b'{"statuses": [', 400), (b'{"statuses": [{"lang": 5}]}', 422)]
    for bad_body, status in bad_inputs:
        verify.verify_error(server.port, "POST", route, bad_body, status)
    return expected


def http_concurrency(cores: int, mode_name: str) -> tuple[int, ...]:
    """Connections to sweep: 1, the server's cores, and past them."""
    levels = {1, cores, 2 * cores}
    if mode_name != "quick":
        levels |= {4 * cores}
    return tuple(sorted(levels))


def measure_http(
    stacks=tuple(HTTP_STACKS),
    concurrency: tuple[int, ...] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_point=None,
) -> dict:
    """Closed-loop throughput of each service over the connection counts."""
    mode = modes.current()
    split = http_split()
    levels = tuple(concurrency or http_concurrency(len(split.server), mode.name))
    body_path = http_body(batch_size)
    body = body_path.read_bytes()
    part = {
        "split": describe_split(split),
        "shared_cores": split.server == split.load,
        "server_cpus": list(split.server),
        "load_cpus": list(split.load),
        "concurrency": list(levels),
        "body_bytes": len(body),
        "points": {},
        "verified": {},
    }
    total = len(stacks) * len(levels)
    done = 0
    for stack in stacks:
        with start_http(stack, split.server) as server:
            part["verified"][stack] = verify_http(server, stack, body)
            url = server.url(HTTP_PATHS[stack])
            kwargs = {
                "cpus": split.load,
                "server_port": server.port,
                "method": "POST",
                "body_path": body_path,
                "content_type": "application/json",
            }
            part["points"][stack] = []
            # One warm-up per server, at the most connections: every thread
            # or goroutine the sweep will use has then started once.
            load.run(
                url,
                concurrency=max(levels),
                duration_s=mode.warmup_s,
                label=f"gil-{stack}-warmup",
                **kwargs,
            )
            for level in levels:
                cpu_before_s = tree_cpu_s(server.pids)
                with memory.MemorySampler(server.pids) as sampler:
                    run = load.run(
                        url,
                        concurrency=level,
                        duration_s=mode.duration_s,
                        label=f"gil-{stack}-c{level}",
                        **kwargs,
                    )
                server_cpu_s = tree_cpu_s(server.pids) - cpu_before_s
                part["points"][stack].append(
                    {
                        "concurrency": level,
                        "load": run.as_dict(),
                        "memory": sampler.summary(),
                        "server_cpu_s": server_cpu_s,
                        # cores kept busy on average: 1.0 is one core's worth
                        "server_cores_busy": server_cpu_s / run.duration_s,
                    }
                )
                done += 1
                if on_point:
                    on_point(part, done, total)
    return part


# --- one record ----------------------------------------------------------------


def measure(
    batch_size: int = DEFAULT_BATCH_SIZE,
    verified: dict | None = None,
    save_as: str | None = "sweep",
):
    """The batch sweep and the HTTP sweep, saved as one record.

    `verified` is what verify_batches returned, so its runs are not repeated.
    """
    mode = modes.current()
    started_at = results.now_iso()
    started_s = time.monotonic()
    batch = measure_batches(batch_size=batch_size, verified=verified)
    batch_s = time.monotonic() - started_s
    http = measure_http(batch_size=batch_size)
    record = {
        "started_at": started_at,
        "mode": mode.name,
        "knobs": {
            "batch_size": batch_size,
            "workers": batch["workers"],
            "batch_target_s": batch["target_s"],
            "concurrency": http["concurrency"],
            "duration_s": mode.duration_s,
            "warmup_s": mode.warmup_s,
        },
        "fingerprint": machine.fingerprint(http_split()),
        "batch": batch,
        "http": http,
        "run_s": {"batch": batch_s, "http": time.monotonic() - started_s - batch_s},
        "ended_at": results.now_iso(),
    }
    if save_as:
        results.save(record, CHAPTER, save_as)
    return record


# --- reading a record ----------------------------------------------------------


def speedups(points: list[dict]) -> list[float]:
    """Throughput at each worker count over throughput at the first (1)."""
    base = points[0]["tasks_per_s"]
    return [p["tasks_per_s"] / base for p in points]


def ideal(workers: int, cores: int) -> float:
    """Perfect scaling: one core per worker, until the cores run out."""
    return float(min(workers, cores))


def footprint_bytes(point: dict) -> int:
    """Peak PSS of the run's whole tree where the OS gives it, else peak RSS."""
    mem = point["memory"]
    return mem.get("peak_pss_bytes") or mem.get("peak_rss_bytes") or 0


def top_speedup(part: dict, series: str, task: str) -> tuple[int, float]:
    """Workers and speedup at the most workers measured."""
    points = part["points"][f"{series} {task}"]
    return points[-1]["workers"], speedups(points)[-1]


def parallel(speedup: float, workers: int, cores: int) -> bool:
    return speedup >= PARALLEL_SHARE * ideal(workers, cores)


def verdict_rule() -> str:
    """The thresholds the verdict applies, in words."""
    return (
        f"rule: the claim holds when Python threads stay below "
        f"{NO_GAIN_SPEEDUP:.2f}x on the summary while Go and Rust both reach "
        f"{PARALLEL_SHARE:.0%} of the ideal; in part when only one of the two "
        "is true."
    )


@dataclass(frozen=True)
class Verdict:
    """The claim's verdict here, shaped like claims.Verdict for the scoreboard."""

    word: str  # "holds", "holds in part", "does not hold", "not measured"
    sentence: str
    workers: int
    cores: int
    speedup: dict[str, float]  # series -> speedup at `workers`


def verdict(record: dict) -> Verdict:
    """The claim, judged from the speedups at the most workers measured.

    Holds when Python threads gained (almost) nothing on the summary while
    both Go and Rust ran in parallel; in part when only one side of that is
    true; does not hold otherwise. One core cannot show parallelism at all,
    so there the claim is not measured.
    """
    part = record["batch"]
    cores = part["cores"]
    workers, py = top_speedup(part, "python threads", "summarise")
    _, go = top_speedup(part, "go", "summarise")
    _, rust = top_speedup(part, "rust", "summarise")
    best = ideal(workers, cores)
    python_stuck = py < NO_GAIN_SPEEDUP
    natives = parallel(go, workers, cores) and parallel(rust, workers, cores)
    if cores < 2:
        word = "not measured"
    elif python_stuck and natives:
        word = "holds"
    elif python_stuck or natives:
        word = "holds in part"
    else:
        word = "does not hold"
    says = claims.claim(CLAIM_KEY).says.rstrip(".")
    sentence = (
        f"At {workers} workers on {cores} core(s) (ideal {best:.0f}x), Python "
        f"threads ran the summary {py:.2f}x as fast as one thread, Go "
        f"{go:.2f}x and Rust {rust:.2f}x. The article's claim ({says}) "
        f"{word} on this machine."
    )
    if cores < 2:
        sentence += " One core cannot run anything in parallel: not measured."
    speedup = {"python threads": py, "go": go, "rust": rust}
    return Verdict(word, sentence, workers, cores, speedup)


def compress_sentence(record: dict) -> str:
    """The counterexample: zlib releases the GIL."""
    part = record["batch"]
    if "compress" not in part["tasks"]:
        return "The compress task was not measured."
    workers, compress = top_speedup(part, "python threads", "compress")
    _, summary = top_speedup(part, "python threads", "summarise")
    best = ideal(workers, part["cores"])
    return (
        f"Python threads at {workers} workers (ideal {best:.0f}x): "
        f"{compress:.2f}x on compress, where zlib releases the GIL, against "
        f"{summary:.2f}x on the summary, which is Python bytecode."
    )


def processes_sentence(record: dict) -> str:
    """What the process workaround bought, and what it cost in memory."""
    part = record["batch"]
    procs = part["points"]["python processes summarise"]
    threads = part["points"]["python threads summarise"]
    workers, speedup = top_speedup(part, "python processes", "summarise")
    ratio = footprint_bytes(procs[-1]) / footprint_bytes(threads[-1])
    return (
        f"Python processes reached {speedup:.2f}x at {workers} workers, for "
        f"{footprint_bytes(procs[-1]) / 2**20:.0f} MiB against "
        f"{footprint_bytes(threads[-1]) / 2**20:.0f} MiB for threads "
        f"({ratio:.1f}x the memory): every worker is an interpreter with its "
        "own copy of the data."
    )


def http_scaling(part: dict) -> dict[str, dict]:
    """Per service: req/s at 1 connection, at the most, and the ratio."""
    out = {}
    for stack, points in part["points"].items():
        one = points[0]["load"]["rate_per_s"]
        best = max(p["load"]["rate_per_s"] for p in points)
        out[stack] = {
            "one_connection_per_s": one,
            "best_per_s": best,
            "gain": best / one,
            "most_cores_busy": max(p.get("server_cores_busy", 0.0) for p in points),
        }
    return out


def http_sentence(record: dict) -> str:
    part = record["http"]
    scaling = http_scaling(part)
    cores = len(part["server_cpus"])
    bits = [
        f"{HTTP_STACKS[s]} {v['best_per_s']:,.0f} req/s ({v['gain']:.2f}x its "
        f"rate at one connection, {v['most_cores_busy']:.2f} cores busy at most)"
        for s, v in scaling.items()
    ]
    return (
        f"Over HTTP with {max(part['concurrency'])} connections at most, on "
        f"{cores} server core(s): " + "; ".join(bits) + "."
    )


def loadgen_sentence(record: dict) -> str:
    """oha's own CPU, which on shared cores was taken from the server."""
    part = record["http"]
    shares = [
        p["load"]["loadgen_cpu_share"]
        for points in part["points"].values()
        for p in points
    ]
    where = (
        "the cores it shared with the server"
        if part["shared_cores"]
        else ("its own cores")
    )
    return f"oha used at most {max(shares):.0%} of {where}."


def more_cores_sentence(record: dict) -> str:
    """What this machine's curve can and cannot tell about a bigger one."""
    cores = record["batch"]["cores"]
    if cores <= 2:
        return (
            f"This machine has {cores} core(s), so the curves stop at an "
            f"ideal of {cores}x. On 8 or 16 cores expect Go and Rust to keep "
            "climbing close to the ideal line until memory bandwidth and the "
            "Go collector bite, Python processes to climb too with memory "
            "growing by one interpreter per worker, and Python threads to stay "
            "flat at about 1x: the GIL lets one thread run bytecode at a time "
            "however many cores there are."
        )
    return (
        f"This machine has {cores} cores; the ideal line flattens at {cores}x "
        "once the workers outnumber them."
    )


def table(record: dict) -> list[dict]:
    rows = []
    for key, points in record["batch"]["points"].items():
        for point, speedup in zip(points, speedups(points), strict=True):
            rows.append(
                {
                    "series task": key,
                    "workers": point["workers"],
                    "tasks/s": round(point["tasks_per_s"]),
                    "speedup": f"{speedup:.2f}",
                    "peak MiB": round(footprint_bytes(point) / 2**20, 1),
                    "processes": point["memory"].get("processes", 0),
                }
            )
    return rows


def print_table(rows: list[dict]) -> None:
    tables.print_rows(rows)


def http_table(record: dict) -> list[dict]:
    rows = []
    for stack, points in record["http"]["points"].items():
        for point in points:
            run = point["load"]
            rows.append(
                {
                    "service": stack,
                    "connections": point["concurrency"],
                    "req/s": round(run["rate_per_s"]),
                    "p50 ms": round(run["latency_ms"]["p50"], 1),
                    "p99 ms": round(run["latency_ms"]["p99"], 1),
                    "server cores busy": f"{point['server_cores_busy']:.2f}",
                    "MiB": round(footprint_bytes(point) / 2**20, 1),
                    "oha CPU": f"{run['loadgen_cpu_share']:.0%}",
                }
            )
    return rows


# --- figures and the panel -----------------------------------------------------


def speedup_figure(part: dict, task: str, fingerprint: dict | None):
    """Speedup over one worker, per series, with the ideal line."""
    series, colours, dash = {}, {}, {}
    cores = part["cores"]
    for key, points in part["points"].items():
        name, point_task = key.rsplit(" ", 1)
        if point_task != task or not points:
            continue
        label = SERIES[name]
        series[label] = ([p["workers"] for p in points], speedups(points))
        colours[label] = COLOURS[name]
    counts = part["workers"]
    series["ideal: min(workers, cores)"] = (counts, [ideal(w, cores) for w in counts])
    colours["ideal: min(workers, cores)"] = plots.ARTICLE_COLOUR
    dash["ideal: min(workers, cores)"] = "dash"
    fig = plots.curves(
        series,
        f"{task}: speedup over one worker, {cores} core(s)",
        "workers",
        "speedup (x)",
        fingerprint,
        colours=colours,
        dash=dash,
    )
    fig.update_xaxes(dtick=1)
    return fig


def memory_figure(part: dict, task: str, fingerprint: dict | None):
    """Peak memory of the whole process tree against workers."""
    series, colours = {}, {}
    for key, points in part["points"].items():
        name, point_task = key.rsplit(" ", 1)
        if point_task != task:
            continue
        label = SERIES[name]
        series[label] = (
            [p["workers"] for p in points],
            [footprint_bytes(p) / 2**20 for p in points],
        )
        colours[label] = COLOURS[name]
    fig = plots.curves(
        series,
        f"{task}: peak memory of the whole process tree (PSS)",
        "workers",
        "MiB",
        fingerprint,
        colours=colours,
    )
    fig.update_xaxes(dtick=1)
    fig.update_yaxes(rangemode="tozero")
    return fig


def http_figure(record: dict):
    """Requests per second against connections, per service."""
    part = record["http"]
    series, colours = {}, {}
    for stack, points in part["points"].items():
        label = HTTP_STACKS[stack]
        series[label] = (
            [p["concurrency"] for p in points],
            [p["load"]["rate_per_s"] for p in points],
        )
        colours[label] = plots.COLOURS[stack]
    fig = plots.curves(
        series,
        "The summary as a service: throughput against concurrent connections",
        "concurrent connections",
        "requests per second",
        record["fingerprint"],
        log_x=True,
        colours=colours,
    )
    fig.update_xaxes(tickvals=part["concurrency"])
    fig.update_yaxes(rangemode="tozero")
    return fig


def panel():
    """Knobs: workers, batch size, task; the speedup curve fills as it runs."""
    import ipywidgets as widgets

    from book.widgets import Panel

    cores = len(machine.available_cpus())
    counts = worker_counts(cores, modes.current().name)
    knobs = {
        "workers": widgets.Text(
            value=", ".join(map(str, counts)), description="workers",
            continuous_update=False,
        ),
        "batch_size": widgets.Dropdown(
            options=list(BATCH_SIZES), value=DEFAULT_BATCH_SIZE,
            description="batch size",
        ),
        "task": widgets.Dropdown(
            options=list(TASKS), value="summarise", description="task"
        ),
    }  # fmt: skip

    def run(values: dict, progress) -> None:
        levels = tuple(
            sorted({int(v) for v in values["workers"].split(",") if v.strip()})
        )
        if not levels or levels[0] != 1:
            levels = (1, *levels)  # a speedup needs the one-worker rate
        task = values["task"]

        def on_point(part, done, total):
            progress.step(done, total, f"{done} of {total} runs measured")
            progress.plot(
                speedup_figure(part, task, None), "Speedup, filling as it runs"
            )

        progress.step(0, 1, "building ...")
        build_all()
        started_at = results.now_iso()
        part = measure_batches(
            tasks=(task,),
            workers=levels,
            batch_size=values["batch_size"],
            on_point=on_point,
        )
        record = {
            "started_at": started_at,
            "ended_at": results.now_iso(),
            "mode": modes.current().name,
            "knobs": values,
            "fingerprint": machine.fingerprint(),
            "batch": part,
        }
        results.save(record, CHAPTER, "panel")
        workers, py = top_speedup(part, "python threads", task)
        _, go = top_speedup(part, "go", task)
        _, rust = top_speedup(part, "rust", task)
        progress.step(
            1,
            1,
            f"{task} at {workers} workers: Python threads {py:.2f}x, "
            f"Go {go:.2f}x, Rust {rust:.2f}x.",
        )

    return Panel(
        "Python threads against goroutines and Rust threads",
        knobs,
        run,
        "Runs the batch sweep again for one task with your worker counts and "
        "batch size, and draws the speedup as each run arrives; the result is "
        "saved as results/gil/panel.json.",
    )
