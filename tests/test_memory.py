"""Peak memory per phase (pytest_unlearn/memory.py) and its place in the scorecard's timings."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_unlearn import memory

MIB = 1024 * 1024


def touched(mib: int) -> np.ndarray:
    """An array whose pages are all resident (np.ones writes every page)."""
    return np.ones(mib * MIB // 8)


@pytest.mark.skipif(not memory.peak_is_per_phase(), reason="no resettable high-water mark on this OS")
def test_each_phase_gets_its_own_peak_not_the_process_high_water_mark():
    with memory.measure() as big:
        block = touched(300)
        del block
    with memory.measure() as small:
        block = touched(50)
        del block
    # The first phase's 300 MiB were freed before the second began: a process-lifetime peak would
    # give the second phase 300 MiB more than its own allocation.
    assert big.rss_mib - small.rss_mib > 200
    with memory.measure() as idle:
        pass
    assert small.rss_mib - idle.rss_mib > 40
    assert big.cuda_mib is None  # no CUDA here: no GPU figure rather than a zero


def test_the_process_peak_is_never_below_a_phase_peak_measured_just_before():
    with memory.measure() as phase:
        block = touched(100)
    del block
    assert memory.process_peak_mib() >= phase.rss_mib - 1
