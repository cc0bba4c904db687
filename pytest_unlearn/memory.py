"""Peak memory of a phase: resident memory of this process, and the GPU's on CUDA.

Linux keeps a process's resident high-water mark (``VmHWM`` in ``/proc/self/status``) and lets the
process reset it to the current resident size (writing ``5`` to ``/proc/self/clear_refs``), so a
phase's own peak is measured exactly, with no sampling thread. Where that reset is not available
(another OS, a locked-down ``/proc``) the peak is the process's peak so far
(``getrusage().ru_maxrss``), which is an upper bound of the phase's; :func:`peak_is_per_phase`
says which one a run got. GPU peaks come from torch's allocator statistics, read only when torch
is already imported and CUDA is in use (this module never imports torch).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_MIB = 1024 * 1024


@dataclass
class PhasePeak:
    """What :func:`measure` found once its block ends (MiB; ``cuda_mib`` None without CUDA)."""

    rss_mib: float = 0.0
    cuda_mib: float | None = None


def _high_water_mark_kib() -> int | None:
    try:
        found = re.search(r"^VmHWM:\s+(\d+)\s+kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(found.group(1)) if found else None


def _reset_high_water_mark() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def _process_peak_mib() -> float:
    kib = _high_water_mark_kib()
    if kib is not None:
        return kib / 1024
    try:
        import resource
    except ImportError:  # Windows: no figure rather than a wrong one
        return 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is in KiB on Linux and in bytes on macOS.
    return peak / _MIB if sys.platform == "darwin" else peak / 1024


def peak_is_per_phase() -> bool:
    """Whether this machine measures each phase's own peak (else: the process's peak so far)."""
    return _high_water_mark_kib() is not None and _CLEAR_REFS.exists()


def _cuda() -> object | None:
    torch = sys.modules.get("torch")
    try:
        return torch.cuda if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized() else None
    except Exception:  # a broken CUDA install must not break a measurement
        return None


@contextmanager
def measure() -> Iterator[PhasePeak]:
    """Measure the peak memory of the ``with`` block; the result is filled in when it ends."""
    peak = PhasePeak()
    _reset_high_water_mark()
    cuda = _cuda()
    if cuda is not None:
        cuda.reset_peak_memory_stats()
    try:
        yield peak
    finally:
        peak.rss_mib = _process_peak_mib()
        # CUDA may have been initialised inside the block (the model moved to the GPU there).
        cuda = _cuda()
        if cuda is not None:
            peak.cuda_mib = cuda.max_memory_allocated() / _MIB


def process_peak_mib() -> float:
    """The process's resident peak since the last phase reset it (since it started when none
    did): with the phases' own peaks it gives the run's ``total`` peak."""
    return _process_peak_mib()
