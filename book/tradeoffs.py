"""The trade-offs chapter's bench: build times, sizes, start-up, scaling out.

Builds are timed on copies of the sources in .run/tradeoffs, so the one-line
change an incremental rebuild needs never touches the repository, and the
bench's own builds stay untouched.
"""

import contextlib
import math
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

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
    toolchain,
)
from book.servers import Server, free_port, nginx_command, render_config

CHAPTER = "tradeoffs"
WORK_DIR = paths.RUN_DIR / "tradeoffs"
BUILD_TIMEOUT_S = 1800
LB_CONCURRENCY = 64  # connections through the balancer: enough to queue
JOIN_TIMEOUT_S = 60.0
ONE_LINE_CHANGE = "\n// one line added to time an incremental rebuild\n"
# the JVM flags of the legacy cache: the article's 2 GB heap
JAVA_CACHE_FLAGS = ["-Xms2g", "-Xmx2g"]


@dataclass(frozen=True)
class Service:
    title: str
    probe_path: str  # a GET that must answer 200


SERVICES = {
    "rust": Service("fastjson-api (Rust)", "/json"),
    "go": Service("rust-cache-server (Go)", "/health"),
    "java": Service("CacheServer (JVM)", "/health"),
    "php": Service("PHP-FPM behind nginx", "/json"),
}
SCALED = ("rust", "go", "java")
RUST = "fastjson-api"
GO = "rust-cache-server"  # php-fpm scales by processes already


def build_all() -> list[toolchain.Built]:
    return [
        toolchain.build_cargo("fastjson-api"),
        toolchain.build_go("rust-cache-server"),
        toolchain.build_java("cache"),
    ]


def _argv(key: str, cpus_per_instance: int = 1) -> list[str]:
    if key == "rust":
        binary = toolchain.build_cargo("fastjson-api").path
        return [str(binary), "--port", "0", "--workers", str(cpus_per_instance)]
    if key == "go":
        binary = toolchain.build_go("rust-cache-server").path
        return [str(binary), "--port", "0", "--store", "rwmutex"]
    if key == "java":
        classes = toolchain.build_java("cache").path
        java = toolchain.require("java")
        return [
            java,
            *JAVA_CACHE_FLAGS,
            "-cp",
            str(classes),
            "CacheServer",
            "--port",
            "0",
        ]
    raise ValueError(f"unknown service {key!r}")


def start(key: str, cpus: tuple[int, ...], name: str | None = None) -> Server:
    if key == "php":
        return json_api.php_stack(2 * len(cpus), cpus)
    return Server(
        name or key,
        [_argv(key, len(cpus))],
        cpus=cpus,
        ready_path=SERVICES[key].probe_path,
        ready_status=200,
    )


# --- build times ---------------------------------------------------------


def _timed(argv: list[str], cwd: Path, env: dict | None = None) -> float:
    started_s = time.monotonic()
    done = subprocess.run(
        argv,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    if done.returncode != 0:
        raise toolchain.BuildFailed(
            f"`{' '.join(argv)}` failed:\n{(done.stdout + done.stderr)[-2000:]}"
        )
    return time.monotonic() - started_s


def _fresh_copy(source: Path, target: Path, skip: tuple[str, ...]) -> Path:
    shutil.rmtree(target, ignore_errors=True)
    # dirs_exist_ok: whatever rmtree could not remove is overwritten
    shutil.copytree(
        source, target, ignore=shutil.ignore_patterns(*skip), dirs_exist_ok=True
    )
    return target


def _touch(path: Path) -> None:
    with open(path, "a", encoding="utf-8") as source:
        source.write(ONE_LINE_CHANGE)


def _rust_builds(cold: bool) -> dict:
    cargo = toolchain.require("cargo")
    copy = _fresh_copy(paths.RUST_DIR, WORK_DIR / "rust", ("target",))
    target = WORK_DIR / "cargo-target"  # kept between runs: the dependency cache
    build = [cargo, "build", "--release", "--locked", "-p", RUST]
    build += ["--target-dir", str(target)]
    figures = {}
    if cold:
        shutil.rmtree(target, ignore_errors=True)
        figures["cold_s"] = _timed(build, copy)
    elif not target.exists() and (paths.RUST_DIR / "target" / "release").exists():
        # Seed it from the bench's own release build (hard links, no copy):
        # the compiled crates.io dependencies are reused, as a CI cache would.
        shutil.copytree(
            paths.RUST_DIR / "target" / "release",
            target / "release",
            copy_function=os.link,
        )
    clean = [cargo, "clean", "--release", "-p", RUST, "--target-dir", str(target)]
    subprocess.run(clean, cwd=copy, capture_output=True, timeout=BUILD_TIMEOUT_S)
    figures["clean_s"] = _timed(build, copy)
    _touch(copy / RUST / "src" / "main.rs")
    figures["incremental_s"] = _timed(build, copy)
    return figures


def _go_builds(cold: bool) -> dict:
    go = toolchain.require("go")
    copy = _fresh_copy(paths.GO_DIR, WORK_DIR / "go", ("bin",))
    build = [go, "build", "-o", str(WORK_DIR / "go-bin"), f"./{GO}"]
    cache = WORK_DIR / "gocache"  # kept between runs, like cargo's target
    env = {"GOCACHE": str(cache)}
    figures = {}
    if cold:
        shutil.rmtree(cache, ignore_errors=True)
        figures["cold_s"] = _timed(build, copy, env)
    else:
        _timed(build, copy, env)  # untimed: the standard library and modules
    # The service's own files change, so its packages are compiled again
    # while the standard library and the modules come from the cache.
    for source in (copy / GO).glob("*.go"):
        _touch(source)
    figures["clean_s"] = _timed(build, copy, env)
    _touch(copy / GO / "main.go")
    figures["incremental_s"] = _timed(build, copy, env)
    return figures


def _java_builds() -> dict:
    javac = toolchain.require("javac")
    copy = _fresh_copy(paths.SNIPPETS_DIR / "java" / "cache", WORK_DIR / "java", ())
    out = WORK_DIR / "java-classes"
    shutil.rmtree(out, ignore_errors=True)
    sources = [str(p) for p in sorted(copy.glob("*.java"))]
    build = [javac, "--release", "17", "-d", str(out), *sources]
    figures = {"clean_s": _timed(build, copy)}
    _touch(Path(sources[0]))
    figures["incremental_s"] = _timed(build, copy)
    return figures


def build_times(cold: bool) -> dict:
    """Release builds of one service per language, on copies of the sources.

    clean: the service's own code compiled from scratch with its dependencies
    already compiled (crates.io crates for Rust; the standard library and
    modules for Go), as on a developer's machine or with a CI cache; the
    release profile has fat LTO, so every Rust rebuild links the whole
    program again. incremental: after a one-line change. cold (full mode
    only: on 2 cores it adds two minutes to the book): everything from an
    empty cache, dependencies included.
    """
    return {
        "rust": _rust_builds(cold),
        "go": _go_builds(cold),
        "java": _java_builds(),
        "build_cores": len(machine.available_cpus()),
        "cold_included": cold,
    }


# --- artefacts, start-up, idle memory -------------------------------------


def _tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def java_home() -> Path:
    done = subprocess.run(
        [toolchain.require("java"), "-XshowSettings:properties", "-version"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    for line in done.stderr.splitlines():
        if "java.home =" in line:
            return Path(line.split("=", 1)[1].strip())
    raise RuntimeError("java did not report java.home")


def artefact_sizes() -> dict:
    """What must be shipped to run each service."""
    classes = toolchain.build_java("cache").path
    return {
        "rust": {"binary_bytes": _tree_bytes(toolchain.build_cargo(RUST).path)},
        "go": {"binary_bytes": _tree_bytes(toolchain.build_go(GO).path)},
        "java": {
            "classes_bytes": _tree_bytes(classes),
            "jvm_bytes": _tree_bytes(java_home()),
        },
    }


def start_up(key: str, cpus: tuple[int, ...], trials: int) -> dict:
    """Seconds from process start to the first 200 answer, and idle memory."""
    times_s = []
    idle = None
    for _ in range(trials):
        with start(key, cpus, name=f"startup-{key}") as server:
            ready_s = time.time() - server.started_at_s
            with urllib.request.urlopen(
                server.url(SERVICES[key].probe_path), timeout=5
            ) as answer:
                if answer.status != 200:
                    raise RuntimeError(f"{key}: first answer was {answer.status}")
            times_s.append(ready_s)
            time.sleep(1.0)  # let start-up work settle before reading memory
            with memory.MemorySampler(server.pids) as sampler:
                time.sleep(0.5)
            idle = sampler.summary()
    times_s.sort()
    return {
        "first_answer_s": times_s[len(times_s) // 2],
        "trials_s": times_s,
        "idle_memory": idle,
    }


# --- scaling out behind nginx ---------------------------------------------


def _render_balancer(run_dir: Path, port: int, upstream_ports: list[int], workers):
    upstreams = "\n        ".join(f"server 127.0.0.1:{p};" for p in upstream_ports)
    values = {
        "run_dir": run_dir,
        "port": port,
        "upstreams": upstreams,
        "workers": workers,
    }
    template = paths.SNIPPETS_DIR / "nginx" / "balancer.conf.tmpl"
    return render_config(template, run_dir / "nginx.conf", values)


def balancer(upstream_ports: list[int], cpus: tuple[int, ...], probe: str) -> Server:
    run_dir = paths.server_run_dir("balancer")
    run_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = _render_balancer(run_dir, port, upstream_ports, len(cpus))
    nginx = toolchain.require("nginx")
    return Server(
        "balancer",
        [nginx_command(nginx, run_dir, conf)],
        port=port,
        cpus=cpus,
        nofile=16384,
        ready_path=probe,
        ready_status=200,
        run_dir=run_dir,
    )


def _upstream_of(url: str) -> str | None:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return answer.headers.get("X-Upstream")


def scale_point(key: str, instances: int, split, mode: modes.Mode) -> dict:
    """N instances on the server's cores behind nginx: throughput and memory."""
    probe = SERVICES[key].probe_path
    with contextlib.ExitStack() as stack:
        servers = [
            stack.enter_context(start(key, split.server, name=f"{key}-{i}"))
            for i in range(instances)
        ]
        lb = stack.enter_context(
            balancer([s.port for s in servers], split.server, probe)
        )
        seen = {_upstream_of(lb.url(probe)) for _ in range(4 * instances)}
        if len(seen) != instances:
            raise RuntimeError(f"the balancer reached {len(seen)} of {instances}")
        kwargs = {"concurrency": LB_CONCURRENCY, "cpus": split.load}
        load.run(lb.url(probe), duration_s=mode.warmup_s, label="lb-warmup", **kwargs)
        pids = [pid for s in servers for pid in s.pids]
        with memory.MemorySampler(pids) as instances_memory:
            result = load.run(
                lb.url(probe),
                duration_s=mode.duration_s,
                label=f"lb-{key}-{instances}",
                **kwargs,
            )
    return {
        "instances": instances,
        "load": result.as_dict(),
        "memory": instances_memory.summary(),
    }


def join_time(key: str, split) -> float:
    """Seconds from starting one more instance to the balancer routing to it."""
    probe = SERVICES[key].probe_path
    with contextlib.ExitStack() as stack:
        first = stack.enter_context(start(key, split.server, name=f"{key}-0"))
        lb = stack.enter_context(balancer([first.port], split.server, probe))
        started_s = time.monotonic()
        second = stack.enter_context(start(key, split.server, name=f"{key}-1"))
        _render_balancer(
            lb.run_dir, lb.port, [first.port, second.port], len(split.server)
        )
        os.kill(lb.pid, signal.SIGHUP)  # nginx re-reads its config, no restart
        wanted = f"127.0.0.1:{second.port}"
        while time.monotonic() - started_s < JOIN_TIMEOUT_S:
            if _upstream_of(lb.url(probe)) == wanted:
                return time.monotonic() - started_s
            time.sleep(0.005)
    raise RuntimeError(f"{key}: the new instance did not join in {JOIN_TIMEOUT_S} s")


# --- the whole chapter ------------------------------------------------------


def instance_counts(mode: modes.Mode) -> tuple[int, ...]:
    return (1, 2) if mode.name == "quick" else (1, 2, 4)


def measure(save_as: str = "sweep", counts=None, services=SCALED) -> dict:
    mode = modes.current()
    split = machine.core_split()
    counts = tuple(counts or instance_counts(mode))
    record = {
        "started_at": results.now_iso(),
        "mode": mode.name,
        "knobs": {
            "instances": list(counts),
            "lb_concurrency": LB_CONCURRENCY,
            "duration_s": mode.duration_s,
            "java_flags": JAVA_CACHE_FLAGS,
        },
        "fingerprint": machine.fingerprint(split),
        "core_split": split.describe(),
    }
    record["builds"] = build_times(cold=mode.name == "full")
    record["sizes"] = artefact_sizes()
    record["start_up"] = {
        key: start_up(key, split.server, max(1, mode.trials)) for key in SERVICES
    }
    record["scale_out"] = {
        key: [scale_point(key, n, split, mode) for n in counts] for key in services
    }
    record["join_s"] = {key: join_time(key, split) for key in services}
    record["ended_at"] = results.now_iso()
    results.save(record, CHAPTER, save_as)
    return record


# --- verdicts -----------------------------------------------------------------


def compile_verdict(record: dict) -> claims.Verdict:
    rust = record["builds"]["rust"]
    go = record["builds"]["go"]
    # from scratch where it was timed, else the own-code build
    kind, what = (
        ("cold_s", "from scratch")
        if "cold_s" in rust
        else ("clean_s", "of the service's own code")
    )
    ratio = rust[kind] / go[kind]
    return claims.qualitative_verdict(
        claims.claim("compile_time"),
        holds=ratio > 1.0,
        measured=(
            f"a release build {what} took {rust[kind]:.1f} s in Rust and "
            f"{go[kind]:.1f} s in Go ({ratio:.1f}x); after a one-line change "
            f"{rust['incremental_s']:.1f} s against {go['incremental_s']:.1f} s."
        ),
    )


# A redeploy of a change within this many seconds counts as "seconds".
DEPLOY_SECONDS_S = 10.0


def redeploy_s(record: dict, key: str) -> float:
    """A one-line change to a first correct answer: rebuild, then start."""
    return (
        record["builds"][key]["incremental_s"]
        + (record["start_up"][key]["first_answer_s"])
    )


def deploy_verdict(record: dict) -> claims.Verdict:
    """Seconds, not minutes: Go redeploys a change within seconds, faster
    than Rust and the JVM do."""
    times_s = {key: redeploy_s(record, key) for key in ("go", "rust", "java")}
    go_s = times_s["go"]
    return claims.qualitative_verdict(
        claims.claim("deploy_seconds"),
        holds=go_s < DEPLOY_SECONDS_S and go_s <= min(times_s.values()),
        measured=(
            "from a one-line change to the first correct answer (rebuild, then "
            f"start) took {go_s:.1f} s in Go, {times_s['rust']:.1f} s in Rust "
            f"and {times_s['java']:.1f} s on the JVM (javac, then the JVM's start "
            f"of {record['start_up']['java']['first_answer_s'] * 1000:.0f} ms); a "
            f"new Go instance joined the balancer {record['join_s']['go']:.2f} s "
            "after it was started."
        ),
    )


def vertical_verdict(record: dict) -> claims.Verdict:
    """Does one Rust instance carry what the others need more instances for?"""
    one_rust = record["scale_out"]["rust"][0]["load"]["rate_per_s"]
    best_other = {
        key: max(p["load"]["rate_per_s"] for p in points)
        for key, points in record["scale_out"].items()
        if key != "rust"
    }
    needed = {
        key: math.ceil(one_rust / record["scale_out"][key][0]["load"]["rate_per_s"])
        for key in best_other
    }
    return claims.qualitative_verdict(
        claims.claim("rust_vertical"),
        holds=all(one_rust >= rate for rate in best_other.values()),
        measured=(
            f"one Rust instance served {one_rust:,.0f} req/s through the balancer; "
            + "; ".join(
                f"{SERVICES[key].title} peaked at {rate:,.0f} req/s with any number "
                f"of instances (one instance of it carries 1/{needed[key]} of "
                "Rust's load)"
                for key, rate in best_other.items()
            )
            + "."
        ),
    )


# --- figures --------------------------------------------------------------------


def build_figure(record: dict):
    import plotly.graph_objects as go

    fig = go.Figure()
    langs = ["rust", "go", "java"]
    names = ["Rust (cargo, LTO)", "Go (go build)", "Java (javac)"]
    for kind, label in (
        ("clean_s", "clean build"),
        ("incremental_s", "one-line change"),
    ):
        fig.add_bar(name=label, x=names, y=[record["builds"][k][kind] for k in langs])
    plots._layout(
        fig,
        "Release build times",
        record["fingerprint"],
        barmode="group",
        yaxis_title="seconds",
    )
    return fig


def startup_figure(record: dict):
    import plotly.graph_objects as go

    keys = list(record["start_up"])
    fig = go.Figure()
    fig.add_bar(
        name="first correct answer",
        x=[SERVICES[k].title for k in keys],
        y=[record["start_up"][k]["first_answer_s"] * 1000 for k in keys],
        marker_color=[
            plots.COLOURS[{"php": "php", "java": "java"}.get(k, k)] for k in keys
        ],
    )
    plots._layout(
        fig,
        "Time from process start to the first correct answer",
        record["fingerprint"],
        yaxis_title="milliseconds",
        yaxis_type="log",
    )
    return fig


def idle_memory_figure(record: dict):
    import plotly.graph_objects as go

    keys = list(record["start_up"])
    fig = go.Figure()
    fig.add_bar(
        x=[SERVICES[k].title for k in keys],
        y=[
            json_api.footprint_bytes({"memory": record["start_up"][k]["idle_memory"]})
            / 2**20
            for k in keys
        ],
    )
    plots._layout(
        fig, "Idle memory after start (PSS)", record["fingerprint"], yaxis_title="MiB"
    )
    return fig


def scale_figure(record: dict, what: str):
    series = {}
    for key, points in record["scale_out"].items():
        xs = [p["instances"] for p in points]
        if what == "throughput":
            ys = [p["load"]["rate_per_s"] for p in points]
        else:
            ys = [json_api.footprint_bytes(p) / 2**20 for p in points]
        series[SERVICES[key].title] = (xs, ys)
    title, y_title = (
        ("Throughput through the balancer", "requests per second")
        if what == "throughput"
        else ("Memory of all instances (PSS)", "MiB")
    )
    colours = {SERVICES[k].title: plots.COLOURS[k] for k in record["scale_out"]}
    return plots.curves(
        series,
        title,
        "instances on the same cores",
        y_title,
        record["fingerprint"],
        colours=colours,
    )


def print_summary(record: dict) -> None:
    sizes = record["sizes"]
    print(
        f"Rust binary {sizes['rust']['binary_bytes'] / 2**20:.1f} MiB, "
        f"Go binary {sizes['go']['binary_bytes'] / 2**20:.1f} MiB, "
        f"Java classes {sizes['java']['classes_bytes'] / 2**10:.0f} KiB plus a "
        f"JVM of {sizes['java']['jvm_bytes'] / 2**20:.0f} MiB"
    )
    for key, figures in record["start_up"].items():
        mem = json_api.footprint_bytes({"memory": figures["idle_memory"]})
        print(
            f"{SERVICES[key].title}: first answer after "
            f"{figures['first_answer_s'] * 1000:.0f} ms, idle "
            f"{mem / 2**20:.1f} MiB"
        )
    for key, seconds in record["join_s"].items():
        print(
            f"{SERVICES[key].title}: a second instance joined the balancer "
            f"{seconds:.2f} s after it was started"
        )


def panel():
    import ipywidgets as widgets

    from book.widgets import Panel

    knobs = {
        "instances": widgets.Text(value="1, 2, 4", description="instances"),
        "service": widgets.Dropdown(
            options=list(SCALED), value="rust", description="service"
        ),
    }

    def run(values: dict, progress) -> None:
        mode = modes.current()
        split = machine.core_split()
        counts = [int(v) for v in values["instances"].split(",") if v.strip()]
        record = {"fingerprint": machine.fingerprint(split), "scale_out": {}}
        points = record["scale_out"].setdefault(values["service"], [])
        for done, count in enumerate(counts, 1):
            points.append(scale_point(values["service"], count, split, mode))
            progress.step(done, len(counts), f"{done} of {len(counts)} measured")
            progress.plot(scale_figure(record, "throughput"), "Filling as it runs")

    return Panel(
        "Scaling out behind nginx",
        knobs,
        run,
        "Starts N instances of a service on the same cores behind nginx and "
        "measures throughput through the balancer for each N.",
    )
