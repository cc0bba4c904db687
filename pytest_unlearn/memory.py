"""Peak memory of a phase: resident memory of this process, and the GPU's on CUDA.

The measurement changes nothing in the process it measures: the kernel's high-water mark
(``VmHWM``, which ``/usr/bin/time``, CI monitors and schedulers read) is never reset (the
earlier ``/proc/self/clear_refs`` reset is gone), nor are torch's allocator peak statistics.

- At the start of a phase the process's high-water mark so far is read (``VmHWM`` in
  ``/proc/self/status``). When the phase ends, if it rose, the phase set a new process peak
  and that peak *is* the phase's: exact (:attr:`PhasePeak.exact`).
- Otherwise the phase stayed below an earlier peak, and its figure is the highest resident size
  (``/proc/<pid>/statm``) sampled every :data:`SAMPLE_SECONDS` (1 ms) while it ran. The sampler
  is a small helper *process* living only for the phase: a thread of this process would stop
  while a C extension holds the GIL (numpy filling an array does), a process does not.

Error bound of a sampled figure: a lower bound of the phase's true peak, short of it by at most
the memory the phase allocated and freed again between two samples (1 ms apart, plus whatever
the scheduler delays the helper by on a loaded machine), read in pages (4 KiB). Where ``/proc``
or the helper is not available (macOS, Windows, no ``sys.executable``) the figure is the
process's peak so far (``getrusage().ru_maxrss`` or ``VmHWM``), an upper bound of the phase's;
:func:`peak_is_per_phase` says which a run got. GPU figures come from torch's allocator
(``max_memory_allocated`` when it rose during the phase, else ``memory_allocated`` sampled by a
thread, which torch's kernels leave the GIL to), read only when torch is already imported and
CUDA is in use (this module never imports torch).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_STATUS = Path("/proc/self/status")
_STATM = "/proc/self/statm"
_MIB = 1024 * 1024
#: Seconds between two samples of the resident size while a phase runs.
SAMPLE_SECONDS = 0.001

# The helper process: samples the parent's resident pages until its stdin is closed (or the
# parent dies: EOF too), then prints the highest. -I -S: no site, no user paths, a fast start.
_SAMPLER = """
import os, select, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
interval = float(sys.argv[2])
rss = lambda: int(os.pread(fd, 128, 0).split()[1])
peak = rss()
sys.stdout.write("ready\\n")
sys.stdout.flush()
while not select.select([sys.stdin], [], [], interval)[0]:
    peak = max(peak, rss())
peak = max(peak, rss())
sys.stdout.write(f"{peak}\\n")
sys.stdout.flush()
"""


@dataclass
class PhasePeak:
    """What :func:`measure` found once its block ends (MiB; ``cuda_mib`` None without CUDA).

    ``exact`` says whether ``rss_mib`` is the kernel's own peak (the phase set a new process
    high) or the highest sample (a lower bound, see the module's error bound)."""

    rss_mib: float = 0.0
    cuda_mib: float | None = None
    exact: bool = False


def _high_water_mark_kib() -> int | None:
    try:
        found = re.search(r"^VmHWM:\s+(\d+)\s+kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(found.group(1)) if found else None


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _max_rss_mib() -> float:
    try:
        import resource
    except ImportError:  # Windows: no figure rather than a wrong one
        return 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is in KiB on Linux and in bytes on macOS.
    return peak / _MIB if sys.platform == "darwin" else peak / 1024


def _process_peak_mib() -> float:
    kib = _high_water_mark_kib()
    return kib / 1024 if kib is not None else _max_rss_mib()


def peak_is_per_phase() -> bool:
    """Whether this machine measures each phase's own peak (else: the process's peak so far)."""
    return _high_water_mark_kib() is not None and os.access(_STATM, os.R_OK) and bool(sys.executable)


def _cuda() -> object | None:
    torch = sys.modules.get("torch")
    try:
        return torch.cuda if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized() else None
    except Exception:  # a broken CUDA install must not break a measurement
        return None


class _ResidentSampler:
    """The helper process sampling this process's resident size (see the module docstring)."""

    def __init__(self, interval: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _SAMPLER, f"/proc/{os.getpid()}/statm", repr(interval)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            close_fds=True,
        )
        assert self.process.stdout is not None and self.process.stdin is not None
        # The phase starts once the helper samples: nothing it allocates goes unseen at the start.
        if self.process.stdout.readline().strip() != "ready":
            self.process.kill()
            self.process.wait()
            raise OSError("the memory sampler did not start")

    def stop(self) -> int | None:
        """The highest resident size sampled (bytes), None if the helper failed."""
        try:
            self.process.stdin.close()  # type: ignore[union-attr]
            line = self.process.stdout.readline()  # type: ignore[union-attr]
            self.process.wait(timeout=10)
            return int(line) * _PAGE
        except (OSError, ValueError, subprocess.SubprocessError):
            self.process.kill()
            self.process.wait()
            return None


class _CudaSampler(threading.Thread):
    """Samples torch's allocated CUDA bytes every ``interval`` until stopped."""

    def __init__(self, cuda: object, interval: float) -> None:
        super().__init__(name="pytest-unlearn-cuda-memory", daemon=True)
        self.cuda_module = cuda
        self.interval = interval
        self.peak = 0
        self.stopped = threading.Event()

    def sample(self) -> None:
        try:
            self.peak = max(self.peak, int(self.cuda_module.memory_allocated()))  # type: ignore[attr-defined]
        except Exception:  # a sample is never worth an error
            pass

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.sample()


def _start_sampler(interval: float) -> _ResidentSampler | None:
    if not sys.executable or not peak_is_per_phase():
        return None
    try:
        return _ResidentSampler(interval)
    except (OSError, subprocess.SubprocessError):
        return None


@contextmanager
def measure(interval: float = SAMPLE_SECONDS) -> Iterator[PhasePeak]:
    """Measure the peak memory of the ``with`` block; the result is filled in when it ends.
    Nothing of the process's own accounting is reset (see the module's docstring)."""
    peak = PhasePeak()
    before_kib = _high_water_mark_kib()
    cuda = _cuda()
    cuda_before = _cuda_peak(cuda)
    sampler = _start_sampler(interval)
    cuda_sampler = _CudaSampler(cuda, interval) if cuda is not None else None
    if cuda_sampler is not None:
        cuda_sampler.start()
    try:
        yield peak
    finally:
        sampled = sampler.stop() if sampler is not None else None
        after_kib = _high_water_mark_kib()
        if before_kib is not None and after_kib is not None and after_kib > before_kib:
            peak.rss_mib, peak.exact = after_kib / 1024, True
        elif sampled is not None:
            peak.rss_mib = sampled / _MIB
        else:
            peak.rss_mib = _process_peak_mib()  # no sampling here: the process's peak so far
        if cuda_sampler is not None:
            cuda_sampler.stopped.set()
            cuda_sampler.join()
        # CUDA may have been initialised inside the block (the model moved to the GPU there).
        cuda = _cuda()
        if cuda is not None:
            cuda_after = _cuda_peak(cuda) or 0
            if cuda_after > (cuda_before or 0):
                peak.cuda_mib = cuda_after / _MIB
            else:
                cuda_sampler = cuda_sampler or _CudaSampler(cuda, interval)
                cuda_sampler.sample()
                peak.cuda_mib = cuda_sampler.peak / _MIB


def _cuda_peak(cuda: object | None) -> int | None:
    if cuda is None:
        return None
    try:
        return int(cuda.max_memory_allocated())  # type: ignore[attr-defined]
    except Exception:
        return None


def process_peak_mib() -> float:
    """The process's resident peak since it started (the kernel's ``VmHWM``, never reset): with
    the phases' own peaks it gives the run's ``total`` peak."""
    return _process_peak_mib()
