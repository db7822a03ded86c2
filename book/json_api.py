"""The PHP-FPM chapter's bench: the legacy JSON API against fastjson-api.

Both serve GET /json (TechEmpower's JSON test) and POST /statuses (a batch
of statuses shaped like data/twitter.json, answered with a summary). This
module builds and starts each as production runs it, checks that both give
the answer the bench computes itself, and measures them on the same cores
with the same load.
"""

import json
import os
import subprocess
import time
from collections import Counter
from pathlib import Path

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
from book.servers import Server, free_port, nginx_command, render_config

CHAPTER = "php_fpm"
STATUSES_PATH = "/statuses"
JSON_PATH = "/json"
BODY_LIMIT_BYTES = 2 * 1024 * 1024  # both services refuse larger bodies (413)
TOP_HASHTAGS = 10
PHP_DIR = paths.SNIPPETS_DIR / "php"


# --- payloads and the bench's own answer -----------------------------------


def payload(statuses: int = 100) -> Path:
    """The first `statuses` statuses of data/twitter.json, as a request body."""
    document = json.loads(paths.TWITTER_JSON.read_text(encoding="utf-8"))
    if not 1 <= statuses <= len(document["statuses"]):
        raise ValueError(f"statuses must be 1..{len(document['statuses'])}")
    body = {**document, "statuses": document["statuses"][:statuses]}
    path = paths.RUN_DIR / "payloads" / f"statuses-{statuses}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")
    return path


def expected_summary(body: bytes) -> dict:
    """The summary both services must return, computed independently here."""
    statuses = json.loads(body)["statuses"]
    tags = Counter(
        tag["text"] for status in statuses for tag in status["entities"]["hashtags"]
    )
    # count descending, then tag by UTF-8 byte order (= code point order)
    top = sorted(tags.items(), key=lambda item: (-item[1], item[0]))[:TOP_HASHTAGS]
    return {
        "statuses": len(statuses),
        "retweets": sum(
            isinstance(status.get("retweeted_status"), dict) for status in statuses
        ),
        "users": len({status["user"]["id_str"] for status in statuses}),
        "total_followers": sum(s["user"]["followers_count"] for s in statuses),
        "total_retweet_count": sum(s["retweet_count"] for s in statuses),
        "text_chars": sum(len(s["text"]) for s in statuses),
        "languages": dict(sorted(Counter(s["lang"] for s in statuses).items())),
        "top_hashtags": [{"tag": tag, "count": count} for tag, count in top],
    }


# --- the two stacks ----------------------------------------------------------


def build_all() -> list[toolchain.Built]:
    """fastjson-api, in the release build the chapter measures."""
    return [toolchain.build_cargo("fastjson-api"), build_summarise_bench()]


def build_summarise_bench() -> toolchain.Built:
    """The in-process benchmark, rust/fastjson-api/examples/summarise.rs.

    An example target, so it is compiled exactly like the server (a bench
    target would be built with unwinding) and reuses the crates the server's
    build compiled.
    """
    return toolchain.build_cargo("fastjson-api", example="summarise")


def php_stack(max_children: int, cpus: tuple[int, ...]) -> Server:
    """php-fpm (pm = static, OPcache on) behind nginx, pinned to `cpus`."""
    php_fpm = toolchain.require("php-fpm")
    nginx = toolchain.require("nginx")
    run_dir = paths.server_run_dir("php")
    run_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    values = {
        "port": port,
        "run_dir": run_dir,
        "docroot": PHP_DIR / "public",
        "max_children": max_children,
        "nginx_workers": len(cpus),
    }
    fpm_conf = render_config(
        PHP_DIR / "php-fpm.conf.tmpl", run_dir / "php-fpm.conf", values
    )
    nginx_conf = render_config(
        PHP_DIR / "nginx.conf.tmpl", run_dir / "nginx.conf", values
    )
    return Server(
        "php",
        [
            # -R: the bench may run as root; -F: stay in the foreground.
            [
                php_fpm,
                "-R",
                "-F",
                "-n",
                "-c",
                str(PHP_DIR / "php.ini"),
                "-y",
                str(fpm_conf),
            ],
            nginx_command(nginx, run_dir, nginx_conf),
        ],
        port=port,
        cpus=cpus,
        # nginx's worker_connections is 4096, two descriptors each at most
        nofile=16384,
        ready_path=JSON_PATH,
        ready_status=200,
        run_dir=run_dir,
    )


def fastjson_api(workers: int, cpus: tuple[int, ...]) -> Server:
    """The Rust service, one actix worker per server core by default."""
    binary = toolchain.build_cargo("fastjson-api").path
    return Server(
        "fastjson-api",
        [[str(binary), "--port", "0", "--workers", str(workers)]],
        cpus=cpus,
        ready_path=JSON_PATH,
    )


STACKS = {"php": "PHP-FPM behind nginx", "rust": "fastjson-api (Rust)"}


def start(stack: str, cpus: tuple[int, ...], max_children: int | None = None):
    if stack == "php":
        return php_stack(max_children or 2 * len(cpus), cpus)
    if stack == "rust":
        return fastjson_api(len(cpus), cpus)
    raise ValueError(f"unknown stack {stack!r}; known: {', '.join(STACKS)}")


# --- verification ------------------------------------------------------------


def _status(lang: str, text: str, tags: list[str]) -> dict:
    return {
        "id_str": "1",
        "text": text,
        "lang": lang,
        "retweet_count": 3,
        "user": {"id_str": "u1", "followers_count": 7},
        "entities": {"hashtags": [{"text": tag} for tag in tags]},
    }


EDGE_BODIES = tuple(
    json.dumps({"statuses": statuses}).encode()
    for statuses in (
        [],
        [_status("\u0000x", "tab\there \u00e9 \ud83d\ude00", ["a", "a", "B"])],
        [_status("0", "x", []), _status("1", "y", ["0"])],
    )
)


def verify_stack(server: Server, body_path: Path) -> dict:
    """Both endpoints, and bad input, before any load. Returns the summary."""
    body = body_path.read_bytes()
    expected = expected_summary(body)
    verify.verify_techempower_json(server.port, JSON_PATH)
    verify.verify_post_json(server.port, STATUSES_PATH, body, expected)
    # Corners where implementations have differed: escapes, a NUL-led key,
    # emoji, a lang "0" (PHP would make a list of it), no statuses at all.
    for edge in EDGE_BODIES:
        verify.verify_post_json(
            server.port, STATUSES_PATH, edge, expected_summary(edge)
        )
    bad_inputs = [
        (b'{"statuses": [', 400, "application/json"),
        (b'{"statuses": [{"lang": 5}]}', 422, "application/json"),
        (b"x" * (BODY_LIMIT_BYTES + 1), 413, "application/json"),
        (body, 415, "text/plain"),
    ]
    for bad_body, status, content_type in bad_inputs:
        verify.verify_error(
            server.port, "POST", STATUSES_PATH, bad_body, status, content_type
        )
    return expected


# --- measuring ---------------------------------------------------------------


def measure_point(
    server: Server,
    endpoint: str,
    concurrency: int,
    mode: modes.Mode,
    load_cpus: tuple[int, ...],
    body_path: Path | None,
) -> dict:
    """Warm up, then one counted closed-loop run with memory sampled."""
    kwargs = {
        "concurrency": concurrency,
        "cpus": load_cpus,
        "server_port": server.port,
        "method": "POST" if endpoint == STATUSES_PATH else "GET",
        "body_path": body_path if endpoint == STATUSES_PATH else None,
        "content_type": "application/json" if endpoint == STATUSES_PATH else None,
    }
    load.run(server.url(endpoint), duration_s=mode.warmup_s, label="warmup", **kwargs)
    trials = []
    for trial in range(mode.trials):
        with memory.MemorySampler(server.pids) as sampler:
            result = load.run(
                server.url(endpoint),
                duration_s=mode.duration_s,
                label=f"{server.name}-c{concurrency}-t{trial}",
                **kwargs,
            )
        trials.append({"load": result.as_dict(), "memory": sampler.summary()})
    # the median trial by throughput stands for the point; all are kept
    trials.sort(key=lambda t: t["load"]["rate_per_s"])
    return {"concurrency": concurrency, **trials[len(trials) // 2], "trials": trials}


def measure(
    stacks=("php", "rust"),
    endpoints=(STATUSES_PATH, JSON_PATH),
    concurrency: tuple[int, ...] | None = None,
    statuses: int = 100,
    max_children: int | None = None,
    server_cores: int | None = None,
    duration_s: float | None = None,
    on_point=None,
    save_as: str | None = "sweep",
) -> dict:
    """Sweep concurrency for each stack and endpoint; save and return the record.

    `on_point(record_so_far, done, total)` is called after each point, so a
    panel can draw the curve as it fills.
    """
    mode = modes.current()
    if duration_s:
        mode = modes.Mode(mode.name, duration_s, mode.warmup_s, mode.trials, ())
    levels = tuple(concurrency or modes.current().concurrency)
    split = machine.core_split(server_cores)
    body_path = payload(statuses)
    record = {
        "started_at": results.now_iso(),
        "mode": mode.name,
        "knobs": {
            "concurrency": list(levels),
            "statuses": statuses,
            "body_bytes": body_path.stat().st_size,
            "max_children": max_children or 2 * len(split.server),
            "server_cores": len(split.server),
            "duration_s": mode.duration_s,
            "warmup_s": mode.warmup_s,
            "trials": mode.trials,
        },
        "fingerprint": machine.fingerprint(split),
        "core_split": split.describe(),
        "points": {},
    }
    total = len(stacks) * len(endpoints) * len(levels)
    done = 0
    for stack in stacks:
        with start(stack, split.server, max_children) as server:
            started_s = time.monotonic()
            record.setdefault("verified", {})[stack] = verify_stack(server, body_path)
            with memory.MemorySampler(server.pids) as idle:
                time.sleep(0.5)
            record.setdefault("idle_memory", {})[stack] = idle.summary()
            for endpoint in endpoints:
                key = f"{stack} {endpoint}"
                record["points"][key] = []
                for level in levels:
                    point = measure_point(
                        server, endpoint, level, mode, split.load, body_path
                    )
                    record["points"][key].append(point)
                    done += 1
                    if on_point:
                        on_point(record, done, total)
            record.setdefault("run_s", {})[stack] = time.monotonic() - started_s
    record["ended_at"] = results.now_iso()
    if save_as:
        results.save(record, CHAPTER, save_as)
    return record


def in_process_rate(cpu: int, duration_s: float, statuses: int = 100) -> dict:
    """The same Rust parse-and-summarise, in-process on one core.

    The gap between this and the HTTP rate per core is what HTTP costs, so
    the bench parses the very body the load sends (payload(statuses), not
    the pretty-printed file on disk). It runs pinned to `cpu`.
    """
    executable = build_summarise_bench().path
    env = {"BENCH_DURATION_S": str(duration_s), "BENCH_BODY": str(payload(statuses))}
    done = subprocess.run(
        [str(executable)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=duration_s + 60,
        preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
    )
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"the bench printed no JSON line:\n{done.stdout[-2000:]}")


# --- reading a record --------------------------------------------------------


def best_point(record: dict, key: str) -> dict:
    """The concurrency level with the highest throughput for `stack endpoint`."""
    return max(record["points"][key], key=lambda p: p["load"]["rate_per_s"])


def footprint_bytes(point: dict) -> int:
    """Steady PSS where the OS gives it (shared pages counted once), else RSS."""
    mem = point["memory"]
    return mem.get("steady_pss_bytes") or mem["steady_rss_bytes"]


def throughput_verdict(record: dict, endpoint: str = STATUSES_PATH):
    php = best_point(record, f"php {endpoint}")["load"]["rate_per_s"]
    rust = best_point(record, f"rust {endpoint}")["load"]["rate_per_s"]
    return claims.ratio_verdict(claims.claim("php_throughput"), rust / php)


def memory_verdict(record: dict, endpoint: str = STATUSES_PATH):
    """Footprints at the highest concurrency measured, the same for both."""
    php = footprint_bytes(record["points"][f"php {endpoint}"][-1])
    rust = footprint_bytes(record["points"][f"rust {endpoint}"][-1])
    return claims.ratio_verdict(claims.claim("php_memory"), php / rust)


def table(record: dict) -> list[dict]:
    """One row per point: what the chapter prints under the curves."""
    server_cores = record["knobs"]["server_cores"]
    rows = []
    for key, points in record["points"].items():
        for point in points:
            run = point["load"]
            rows.append(
                {
                    "stack endpoint": key,
                    "connections": point["concurrency"],
                    "req/s": round(run["rate_per_s"]),
                    "req/s per server core": round(run["rate_per_s"] / server_cores),
                    "p50 ms": round(run["latency_ms"]["p50"], 2),
                    "p99 ms": round(run["latency_ms"]["p99"], 2),
                    "memory MiB": round(footprint_bytes(point) / 2**20, 1),
                    "load generator CPU": f"{run['loadgen_cpu_share']:.0%}",
                    "bounded by generator": run["bounded_by_loadgen"],
                }
            )
    return rows


# --- figures and the panel ---------------------------------------------------


def _curve_per_point(record: dict, value, title: str, y_title: str):
    """One line per stack and endpoint over the concurrency sweep."""
    series, colours, dash = {}, {}, {}
    for key, points in record["points"].items():
        stack, endpoint = key.split()
        name = f"{STACKS[stack]} {endpoint}"
        series[name] = ([p["concurrency"] for p in points], [value(p) for p in points])
        colours[name] = plots.COLOURS[stack]
        dash[name] = "dot" if endpoint == JSON_PATH else "solid"
    return plots.curves(
        series,
        title,
        "concurrent connections",
        y_title,
        record["fingerprint"],
        log_x=True,
        colours=colours,
        dash=dash,
    )


def throughput_figure(record: dict):
    return _curve_per_point(
        record,
        lambda p: p["load"]["rate_per_s"],
        "Throughput against connections (closed loop)",
        "requests per second",
    )


def memory_figure(record: dict):
    return _curve_per_point(
        record,
        lambda p: footprint_bytes(p) / 2**20,
        "Memory of the whole server during the load (PSS, steady state)",
        "MiB",
    )


def print_table(record: dict) -> None:
    rows = table(record)
    tables.print_rows(rows)


def loadgen_report(record: dict) -> str:
    """How many points the load generator, not the server, limited."""
    points = [p for pts in record["points"].values() for p in pts]
    bounded = [p for p in points if p["load"]["bounded_by_loadgen"]]
    keys = sorted(
        {k for k, pts in record["points"].items() for p in pts if p in bounded}
    )
    text = (
        f"{len(bounded)} of {len(points)} points were bounded by the load "
        "generator (it used 90% or more of its cores)"
    )
    if bounded:
        text += (
            f": {', '.join(keys)}. Those figures are a floor for the server, "
            "not its ceiling; with more cores the bench gives oha more"
        )
    return text + "."


def panel():
    """Knobs for this chapter: run a smaller sweep and watch it fill."""
    import ipywidgets as widgets

    from book.widgets import Panel

    cpus = machine.available_cpus()
    knobs = {
        "concurrency": widgets.Text(
            value="1, 8, 32", description="connections", continuous_update=False
        ),
        "statuses": widgets.Dropdown(
            options=[10, 50, 100], value=100, description="statuses"
        ),
        "max_children": widgets.IntSlider(
            value=2 * len(machine.core_split().server), min=1, max=32,
            description="max_children",
        ),
        "server_cores": widgets.IntSlider(
            value=len(machine.core_split().server), min=1,
            max=max(1, len(cpus) - 1), description="server cores",
        ),
        "duration_s": widgets.FloatSlider(
            value=modes.current().duration_s, min=1, max=30, step=1,
            description="seconds",
        ),
    }  # fmt: skip

    def run(values: dict, progress) -> None:
        levels = tuple(int(v) for v in values["concurrency"].split(",") if v.strip())

        def on_point(record, done, total):
            progress.step(done, total, f"{done} of {total} points measured")
            progress.plot(throughput_figure(record), "Throughput, filling as it runs")

        progress.step(0, 1, "building and verifying ...")
        record = measure(
            concurrency=levels,
            statuses=values["statuses"],
            max_children=values["max_children"],
            server_cores=values["server_cores"],
            duration_s=values["duration_s"],
            on_point=on_point,
            save_as="panel",
        )
        verdict = throughput_verdict(record)
        progress.step(1, 1, verdict.sentence)

    return Panel(
        "PHP-FPM against fastjson-api",
        knobs,
        run,
        "Runs the sweep again with your settings and draws throughput as each "
        "point arrives; the result is saved as results/php_fpm/panel.json.",
    )


def memory_bound_report(record: dict) -> list[str]:
    """fastjson-api's memory against the bodies it can have in flight.

    With c connections, at most c request bodies are buffered at once, so
    the footprint should stay under idle + c x body plus a small constant,
    and not climb from the start of a run to its end.
    """
    body_bytes = record["knobs"]["body_bytes"]
    idle_bytes = footprint_bytes({"memory": record["idle_memory"]["rust"]})
    lines = []
    for point in record["points"][f"rust {STATUSES_PATH}"]:
        mem = point["memory"]
        in_flight = point["concurrency"] * body_bytes
        growth = mem["last_rss_bytes"] - mem["first_rss_bytes"]
        lines.append(
            f"{point['concurrency']:>4} connections: peak RSS "
            f"{mem['peak_rss_bytes'] / 2**20:.1f} MiB against idle "
            f"{idle_bytes / 2**20:.1f} MiB + bodies in flight "
            f"{in_flight / 2**20:.1f} MiB; change over the run "
            f"{growth / 2**20:+.1f} MiB"
        )
    return lines
