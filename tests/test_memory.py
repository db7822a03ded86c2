"""The memory sampler on processes this test starts."""

import subprocess
import sys
import time

from book import memory

GROW_SCRIPT = (
    "import time\n"
    "blocks = []\n"
    "for _ in range(60):\n"
    "    blocks.append(bytearray(8 * 1024 * 1024))  # 8 MiB, touched\n"
    "    time.sleep(0.05)\n"
    "time.sleep(600)\n"
)


def test_sampler_sees_growth_and_gives_pss():
    proc = subprocess.Popen([sys.executable, "-c", GROW_SCRIPT])
    try:
        with memory.MemorySampler([proc.pid], interval_s=0.05) as sampler:
            time.sleep(1.5)
        summary = sampler.summary()
    finally:
        proc.kill()
        proc.wait()
    assert summary["samples"] >= 10
    assert summary["peak_rss_bytes"] > summary["first_rss_bytes"] + 64 * 2**20
    assert 0 < summary["peak_pss_bytes"] <= summary["peak_rss_bytes"]


def test_watchdog_stops_a_process_that_crosses_its_bound():
    proc = subprocess.Popen([sys.executable, "-c", GROW_SCRIPT])
    cap_bytes = 200 * 2**20
    try:
        with memory.MemorySampler(
            [proc.pid], interval_s=0.02, cap_bytes=cap_bytes,
            on_cap=lambda sample: proc.kill(),
        ) as sampler:  # fmt: skip
            proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert sampler.capped_at is not None
    assert sampler.capped_at.rss_bytes > cap_bytes
    # stopped within one 8 MiB step of the cap, well before the 480 MiB it wanted
    assert max(s.rss_bytes for s in sampler.samples) < cap_bytes + 64 * 2**20


def test_summary_says_why_when_nothing_was_sampled():
    assert "why_missing" in memory.summarise([])
