"""Samples a process tree's memory at a fixed interval, on a thread.

RSS counts every page a process maps, shared or not: summing it over
php-fpm's workers counts the same PHP binary and OPcache many times. PSS
divides each shared page among the processes sharing it, so its sum is the
tree's real footprint; USS is what the tree alone would free. Linux gives
both (smaps_rollup); elsewhere they are reported as unavailable, not guessed.
"""

import statistics
import threading
import time
from dataclasses import dataclass, field

import psutil

SAMPLE_INTERVAL_S = 0.1  # 10 Hz: reading smaps_rollup costs ~0.1 ms a process


@dataclass(frozen=True)
class Sample:
    t_s: float  # seconds since sampling started
    rss_bytes: int
    pss_bytes: int | None
    uss_bytes: int | None
    processes: int


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def sample_tree(pids: list[int]) -> tuple[int, int | None, int | None, int]:
    """RSS, PSS and USS summed over the trees rooted at pids."""
    rss = pss = uss = 0
    full_available = True
    count = 0
    for pid in pids:
        try:
            procs = tree(pid)
        except psutil.NoSuchProcess:
            continue
        for proc in procs:
            try:
                if full_available:
                    info = proc.memory_full_info()
                    rss += info.rss
                    pss += getattr(info, "pss", 0)
                    uss += info.uss
                    full_available = hasattr(info, "pss")
                else:
                    rss += proc.memory_info().rss
                count += 1
            except psutil.AccessDenied:
                full_available = False
                rss += proc.memory_info().rss
                count += 1
            except psutil.NoSuchProcess:
                continue  # a worker exited between listing and reading
    if not full_available:
        return rss, None, None, count
    return rss, pss, uss, count


@dataclass
class MemorySampler:
    """Samples in the background; optionally a watchdog with a cap.

    With `cap_bytes`, the sampler calls `on_cap` (once) as soon as the tree's
    RSS crosses the cap: the chapters that provoke growth stop the server
    there, so the reader's machine never swaps.
    """

    pids: list[int]
    interval_s: float = SAMPLE_INTERVAL_S
    cap_bytes: int | None = None
    on_cap: object = None  # a callable taking the Sample that crossed the cap
    samples: list[Sample] = field(default_factory=list)
    capped_at: Sample | None = None

    def __post_init__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started_s = 0.0

    def __enter__(self) -> "MemorySampler":
        self._started_s = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            rss, pss, uss, count = sample_tree(self.pids)
            if count == 0:
                return  # the tree is gone
            sample = Sample(time.monotonic() - self._started_s, rss, pss, uss, count)
            self.samples.append(sample)
            if self.cap_bytes and rss > self.cap_bytes and self.capped_at is None:
                self.capped_at = sample
                if self.on_cap is not None:
                    self.on_cap(sample)
            self._stop.wait(self.interval_s)

    def summary(self, since_s: float = 0.0) -> dict:
        """Peak and steady state (median of the second half) of the samples."""
        return summarise(self.samples, since_s, self.interval_s)


def summarise(samples: list[Sample], since_s: float = 0.0, interval_s=None) -> dict:
    kept = [s for s in samples if s.t_s >= since_s]
    if not kept:
        return {"samples": 0, "why_missing": "no samples: the process had exited"}
    second_half = kept[len(kept) // 2 :]
    result = {
        "samples": len(kept),
        "interval_s": interval_s,
        "processes": max(s.processes for s in kept),
        "peak_rss_bytes": max(s.rss_bytes for s in kept),
        "steady_rss_bytes": int(statistics.median(s.rss_bytes for s in second_half)),
        "first_rss_bytes": kept[0].rss_bytes,
        "last_rss_bytes": kept[-1].rss_bytes,
    }
    if kept[0].pss_bytes is None:
        result["pss_missing"] = "this OS (or these permissions) gives no PSS/USS"
        return result
    result["peak_pss_bytes"] = max(s.pss_bytes for s in kept)
    steady_pss = statistics.median(s.pss_bytes for s in second_half)
    result["steady_pss_bytes"] = int(steady_pss)
    result["peak_uss_bytes"] = max(s.uss_bytes for s in kept)
    return result
