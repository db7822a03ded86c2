"""The fingerprint's BUSY label: from the CPU share sampled at the start."""

from book import machine


def _fp(**extra):
    return {
        "cpu_model": "AMD EPYC",
        "cpus_available": 2,
        "memory_bytes": 24 * 1024**3,
        "os": "Debian GNU/Linux 12 (bookworm)",
        **extra,
    }


def test_a_quiet_start_is_not_labelled_even_after_a_high_load_average():
    # 10,000 threads of the previous chapter leave the load average high
    quiet = _fp(cpu_busy_share_at_start=0.04, load_average_1m=117.0)
    assert not machine.is_busy(quiet)
    assert "BUSY" not in machine.label(quiet)


def test_other_work_at_the_start_labels_the_figures():
    busy = _fp(cpu_busy_share_at_start=0.65, load_average_1m=1.0)
    assert machine.is_busy(busy)
    assert "BUSY: 65% of the CPUs in use by other work at the start" in (
        machine.label(busy)
    )


def test_older_records_fall_back_on_the_load_average():
    assert machine.is_busy(_fp(load_average_1m=7.5))
    assert "BUSY: load average 7.5" in machine.label(_fp(load_average_1m=7.5))
    assert not machine.is_busy(_fp(load_average_1m=2.5))


def test_the_fingerprint_samples_the_cpu_share():
    share = machine.fingerprint()["cpu_busy_share_at_start"]
    assert 0.0 <= share <= 1.0
