"""One evaluation spread over pytest-xdist workers: device pinning, CPU threads, check groups.

Pure Python (no pytest, no torch at import). The plugin calls these from its hooks:

- each worker ``gwN`` sees one GPU: ``CUDA_VISIBLE_DEVICES`` becomes the N-th entry (modulo the
  list's length) of ``--devices``, or of the ``CUDA_VISIBLE_DEVICES`` list the run started with;
- on CPU the cores are shared: each of n workers gets ``cpu_count // n`` torch threads;
- checks that need the same expensive input form one xdist group, so the input is computed by
  one worker (the connected components of the checks' ``requires`` sets).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from typing import Any

from pytest_unlearn.errors import UnlearnError

CUDA_ENV = "CUDA_VISIBLE_DEVICES"
# Set by pytest-xdist in every worker (remote.py): the number of workers of the run.
WORKER_COUNT_ENV = "PYTEST_XDIST_WORKER_COUNT"


def parse_devices(text: str) -> tuple[int, ...]:
    """``"0,1,2,3"`` → (0, 1, 2, 3): GPU indices as torch numbers them (``cuda:N``)."""
    entries = [part.strip() for part in text.split(",")]
    if not entries or any(not part for part in entries):
        raise ValueError("must be a comma-separated list of GPU indices, e.g. 0,1,2,3")
    devices = []
    for part in entries:
        if not part.isdigit():
            raise ValueError("must be a comma-separated list of GPU indices (non-negative integers), e.g. 0,1")
        devices.append(int(part))
    return tuple(devices)


def visible_list(environ: Mapping[str, str]) -> list[str] | None:
    """The entries of ``CUDA_VISIBLE_DEVICES`` (ids or UUIDs), or None when it is not set."""
    raw = environ.get(CUDA_ENV)
    if raw is None:
        return None
    return [part.strip() for part in raw.split(",") if part.strip()]


def worker_number(workerid: str) -> int:
    """``"gw3"`` → 3."""
    digits = workerid[2:] if workerid.startswith("gw") else workerid
    if not digits.isdigit():
        raise ValueError(f"not an xdist worker id: {workerid!r}")
    return int(digits)


def check_devices(devices: Sequence[int], environ: Mapping[str, str], gpu_count: Callable[[], int]) -> None:
    """``--devices`` may name only GPUs this process can see (``gpu_count`` is asked only when
    ``CUDA_VISIBLE_DEVICES`` is not set; it imports torch)."""
    visible = visible_list(environ)
    count = len(visible) if visible is not None else gpu_count()
    where = f"{CUDA_ENV}={environ.get(CUDA_ENV)!r}" if visible is not None else "this machine"
    if count == 0:
        raise UnlearnError(
            f"--devices {','.join(map(str, devices))}: {where} has no visible GPU; drop --devices to run on the CPU"
        )
    beyond = [d for d in devices if d >= count]
    if beyond:
        raise UnlearnError(
            f"--devices {','.join(map(str, devices))}: GPU {beyond[0]} is beyond the {count} visible on {where} "
            f"(valid: 0-{count - 1})"
        )


def pinned_device(index: int, devices: Sequence[int] | None, environ: Mapping[str, str]) -> str | None:
    """The ``CUDA_VISIBLE_DEVICES`` value for worker number ``index`` (None: leave it alone).

    With ``--devices``, the worker takes entry ``index % len(devices)``; each entry is a GPU
    index among those visible, translated through an existing ``CUDA_VISIBLE_DEVICES`` list so
    the pinning composes with a scheduler's (slurm) own. Without ``--devices``, the worker takes
    entry ``index % len(list)`` of ``CUDA_VISIBLE_DEVICES`` when that is set.
    """
    visible = visible_list(environ)
    if devices:
        device = devices[index % len(devices)]
        if visible is not None:
            return visible[device % len(visible)] if visible else None
        return str(device)
    if visible:
        return visible[index % len(visible)]
    return None


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


#: libgomp (torch's OpenMP on Linux) reads it once, when torch is imported.
WAIT_POLICY_ENV = "OMP_WAIT_POLICY"


#: Cores other processes keep busy, from which a run waits passively: one busy process is
#: about 1.0 (this process is idle while it starts).
BUSY_CORES = 0.9


def busy_cores(sample: float = 0.1) -> float | None:
    """How many cores are busy right now, from two reads of ``/proc/stat`` ``sample`` seconds
    apart (None where there is no ``/proc``). Read as a run starts, while this process is idle:
    the busy cores are other processes'. Unlike the load average it does not count a parent
    process that waits (a test runner, a CI shell) nor what finished a minute ago."""
    import time

    def read() -> tuple[int, int]:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = [int(x) for x in handle.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields[:8]), idle

    try:
        total0, idle0 = read()
        time.sleep(sample)
        total1, idle1 = read()
    except (OSError, ValueError, IndexError):
        return None
    elapsed = total1 - total0
    if elapsed <= 0:
        return None
    return (elapsed - (idle1 - idle0)) / elapsed * (os.cpu_count() or 1)


def choose_wait_policy(
    environ: MutableMapping[str, str], torch_loaded: bool, busy: float | None = None, cores: int | None = None
) -> str:
    """The CPU rule's OpenMP wait policy, and its phrase for the report header.

    By default torch's OpenMP threads spin while they wait for each other. Beside another busy
    process, a spinning thread holds a core the other one needs and the pass collapses; told to
    wait passively, threads yield their core, but every wake-up costs, which a quiet machine
    pays for nothing (benchmarks/busy_machine.py, the semeval world's passes on 2 cores: beside
    one busy process 3.4x the quiet time spinning, 0.75x passive; quiet, passive 2.1x slower).
    So a run starts with ``OMP_WAIT_POLICY=PASSIVE`` only when other processes keep at least
    :data:`BUSY_CORES` cores busy as it starts (``busy``: :func:`busy_cores`), set before torch
    is imported (the plugin imports none at load; libgomp reads it once). A policy the user set
    is kept.
    """
    given = environ.get(WAIT_POLICY_ENV)
    if given:
        return f"{WAIT_POLICY_ENV}={given} (yours)"
    if torch_loaded:
        return (
            f"{WAIT_POLICY_ENV} unset (torch was imported before the plugin could choose: threads spin while waiting)"
        )
    if busy is None:
        busy = busy_cores()
    if busy is None:
        return f"{WAIT_POLICY_ENV} unset (no /proc/stat here to see other processes: threads spin while waiting)"
    cores = cores or cpu_count()
    if busy >= BUSY_CORES:
        environ[WAIT_POLICY_ENV] = "PASSIVE"
        return (
            f"{WAIT_POLICY_ENV}=PASSIVE ({busy:.1f} of {cores} cores busy with other processes at start, so "
            f"waiting threads yield their core; set {WAIT_POLICY_ENV} to choose)"
        )
    return (
        f"{WAIT_POLICY_ENV} unset ({busy:.1f} of {cores} cores busy at start: quiet, threads spin while waiting; "
        f"set {WAIT_POLICY_ENV}=PASSIVE on a machine others share)"
    )


def cpu_rule(workers: int, policy: str) -> str:
    """The header line of the CPU rule: usable cores, torch threads per process (``workers``
    xdist workers, 0 without xdist), wait policy."""
    cpus = cpu_count()
    threads = (
        f"{threads_per_worker(cpus, workers)} torch threads in each of {workers} xdist workers"
        if workers
        else "torch's own thread count"
    )
    return f"unlearn: CPU {cpus} usable cores (sched_getaffinity), {threads}, {policy}"


def threads_per_worker(cpus: int, workers: int) -> int:
    return max(1, cpus // max(1, workers))


def split_cpu_threads(device: str, environ: Mapping[str, str] | None = None) -> int | None:
    """In an xdist worker evaluating on the CPU, give torch its share of the cores.

    Called by the backends right after loading a model (torch is imported by then). Returns
    the thread count set, or None when nothing was changed (not a worker, or not on the CPU).
    """
    environ = os.environ if environ is None else environ
    raw = environ.get(WORKER_COUNT_ENV)
    if not raw or not raw.isdigit() or not str(device).startswith("cpu"):
        return None
    import torch

    threads = threads_per_worker(cpu_count(), int(raw))
    torch.set_num_threads(threads)
    return threads


def input_groups(requires: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """Check id → group name: checks are in one group when their inputs overlap (transitively).

    The group is named after its inputs (``"images+original_images"``), so the name says what
    the worker of that group computes. A check that needs no input stays alone.
    """
    parent: dict[str, str] = {}

    def find(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for needed in requires.values():
        needed = list(needed)
        for name in needed:
            parent.setdefault(name, name)
        for name in needed[1:]:
            a, b = find(needed[0]), find(name)
            if a != b:
                parent[max(a, b)] = min(a, b)
    members: dict[str, list[str]] = {}
    for name in parent:
        members.setdefault(find(name), []).append(name)
    names = {root: "+".join(sorted(names)) for root, names in members.items()}
    groups = {}
    for check_id, needed in requires.items():
        needed = list(needed)
        groups[check_id] = names[find(needed[0])] if needed else f"check:{check_id}"
    return groups


# -- results that travel from workers to the controller ------------------------------------------
# execnet carries only builtin types: numpy arrays, tuples, tuple-keyed dicts and our frozen
# dataclasses are tagged, so the controller rebuilds exactly the inputs the worker computed.
def encode(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype), "shape": list(value.shape)}
    if isinstance(value, np.generic):
        return value.item()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        return {
            "__dataclass__": f"{cls.__module__}:{cls.__qualname__}",
            "fields": {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)},
        }
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {"__dict__": {k: encode(v) for k, v in value.items()}}
        return {"__items__": [[encode(k), encode(v)] for k, v in value.items()]}
    return value


def decode(value: Any) -> Any:
    import numpy as np

    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__ndarray__" in value:
        return np.asarray(value["__ndarray__"], dtype=value["dtype"]).reshape(value["shape"])
    if "__tuple__" in value:
        return tuple(decode(v) for v in value["__tuple__"])
    if "__dict__" in value:
        return {k: decode(v) for k, v in value["__dict__"].items()}
    if "__items__" in value:
        return {decode(k): decode(v) for k, v in value["__items__"]}
    if "__dataclass__" in value:
        reference = value["__dataclass__"]
        if not reference.startswith("pytest_unlearn."):
            raise UnlearnError(f"worker state names a foreign class {reference!r}")
        from pytest_unlearn.registry import load_reference

        cls = load_reference(reference)
        return cls(**{k: decode(v) for k, v in value["fields"].items()})
    return value
