"""The machine's fingerprint, and how its cores are split for a measurement."""

import os
import platform
from dataclasses import dataclass
from functools import cache

import psutil

# The article's VM had 4 cores: give the server that many when we can.
ARTICLE_SERVER_CORES = 4
# A measurement that starts with more than this share of the CPUs in use by
# other work is labelled BUSY: its figures are noisy.
BUSY_SHARE = 0.30
BUSY_SAMPLE_S = 0.5


@dataclass(frozen=True)
class CoreSplit:
    server: tuple[int, ...]  # CPUs the server is pinned to
    load: tuple[int, ...]  # CPUs the load generator is pinned to

    def describe(self) -> str:
        return (
            f"server on {len(self.server)} core(s) {list(self.server)}, "
            f"load generator on {len(self.load)} core(s) {list(self.load)}"
        )


def available_cpus() -> tuple[int, ...]:
    """The CPUs this process may run on (a container may allow fewer)."""
    return tuple(sorted(os.sched_getaffinity(0)))


def core_split(server_cores: int | None = None) -> CoreSplit:
    """Give the server up to 4 cores and the load generator the rest.

    On 2 cores that is one each. The load generator always keeps at least one
    core of its own, so the two never compete for the same core.
    """
    cpus = available_cpus()
    if len(cpus) < 2:
        # One core: nothing to split. Both share it, and figures say so.
        return CoreSplit(server=cpus, load=cpus)
    wanted = server_cores or min(ARTICLE_SERVER_CORES, len(cpus) // 2)
    wanted = max(1, min(wanted, len(cpus) - 1))
    return CoreSplit(server=cpus[:wanted], load=cpus[wanted:])


@cache
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


@cache
def os_name() -> str:
    try:
        with open("/etc/os-release", encoding="utf-8") as release:
            for line in release:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def fingerprint(split: CoreSplit | None = None) -> dict:
    """What a reader needs to compare a figure with their own machine's."""
    from book import toolchain  # late: toolchain asks every tool its version

    # Sampled before the tools are asked their versions (a JVM starting is
    # work too). A load average would not do: the threads of the previous
    # chapter's last run keep it high for minutes after they have ended.
    busy_share = psutil.cpu_percent(interval=BUSY_SAMPLE_S) / 100
    fp = {
        "cpu_model": cpu_model(),
        "logical_cores": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "cpus_available": len(available_cpus()),
        "memory_bytes": psutil.virtual_memory().total,
        "os": os_name(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "toolchains": toolchain.versions(),
        # other work on the machine at the start: figures taken while it was
        # busy are noisy, and their captions say so
        "cpu_busy_share_at_start": busy_share,
        "load_average_1m": os.getloadavg()[0],
    }
    if split is not None:
        fp["server_cpus"] = list(split.server)
        fp["load_cpus"] = list(split.load)
    return fp


def label(fp: dict) -> str:
    """One line for a figure's caption."""
    memory_gib = fp["memory_bytes"] / 1024**3
    text = (
        f"{fp['cpu_model']}, {fp['cpus_available']} CPUs, {memory_gib:.0f} GiB, "
        f"{fp['os']}"
    )
    if "server_cpus" in fp:
        text += (
            f"; server on {len(fp['server_cpus'])} core(s), "
            f"load on {len(fp['load_cpus'])}"
        )
    if is_busy(fp):
        text += f"; BUSY: {busy_words(fp)} at the start, so these figures are noisy"
    return text


def is_busy(fp: dict) -> bool:
    """Other work held a good share of the CPUs when the measurement began.

    Records saved before the CPU share was sampled carry only the load
    average: more runnable work than cores, plus one for the bench.
    """
    share = fp.get("cpu_busy_share_at_start")
    if share is not None:
        return share > BUSY_SHARE
    load = fp.get("load_average_1m")
    return load is not None and load > fp["cpus_available"] + 1


def busy_words(fp: dict) -> str:
    share = fp.get("cpu_busy_share_at_start")
    if share is not None:
        return f"{share:.0%} of the CPUs in use by other work"
    return f"load average {fp['load_average_1m']:.1f}"
