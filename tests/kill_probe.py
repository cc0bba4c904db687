"""A plugin for subprocess runs of tests/test_faults.py (``-p tests.kill_probe``): the process
SIGKILLs itself halfway through writing the final scorecard, as a crash or the OOM killer
would. The "running" card written when the first check starts goes through untouched."""

from __future__ import annotations

import json
import os
import signal
import tempfile

import pytest_unlearn.scorecard as scorecard


def _write_half_then_die(path, data: bytes) -> None:
    if json.loads(data).get("status") == "running":
        return _original(path, data)
    handle, _ = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:24]}.", suffix=".tmp")
    os.write(handle, data[: len(data) // 2])
    os.kill(os.getpid(), signal.SIGKILL)


_original = scorecard.write_bytes_atomic
scorecard.write_bytes_atomic = _write_half_then_die
