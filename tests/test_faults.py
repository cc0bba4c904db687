"""Faults mid-run: a semeval run SIGKILLed during generation, the MIA pass, the MMLU pass and the
scorecard write, then rerun, ends with the scorecard of a clean run (timings and dates aside); the
cache never holds a partial entry, and a killed run's scorecard never reads as complete.

(genmu's image batches have the same test in tests/test_cache.py.)
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

# Each input is one cache entry: the forget generations, the retain generations, the MIA
# losses, the MMLU predictions, in the order the manifest's checks ask for them.
ENTRIES = ("semeval-generations", "semeval-generations", "semeval-mia", "semeval-mmlu")


def command(model: Path, cache: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--suite=semeval",
        f"--model={model}",
        "--max-new-tokens=24",
        "--batch-size=8",
        "--setting=bootstrap_samples=100",
        "--scorecard=card.json",
        f"--cache-dir={cache}",
        *args,
    ]


def entries(cache: Path) -> list[Path]:
    return sorted(p for kind in set(ENTRIES) for p in (cache / kind).rglob("*") if p.is_file() and p.suffix != ".lock")


def comparable(card: dict) -> dict:
    card = dict(card)
    for key in ("timings", "created"):
        card.pop(key)
    return card


def test_runs_killed_at_every_phase_resume_to_the_clean_scorecard(tmp_path, semeval_models):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    model = semeval_models["retrained"]
    cache = tmp_path / "cache"
    card_path = tmp_path / "card.json"
    rng = random.Random(20261201)
    # Kill after 0, 1, 2 and 3 finished entries: during the forget generations, the retain
    # generations, the MIA pass and the MMLU pass; a random moment after that entry lands.
    for finished in range(len(ENTRIES)):
        run = subprocess.Popen(
            command(model, cache), cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 300
        while len([p for p in entries(cache) if not p.name.startswith(".")]) < finished:
            assert run.poll() is None, f"the run finished before it could be killed after {finished} entries"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 0.3))
        if run.poll() is None:
            os.kill(run.pid, signal.SIGKILL)
        assert run.wait() == -signal.SIGKILL, f"the run ended by itself after {finished} entries"
        # Whatever the moment: no half entry was published (only whole JSON documents, no
        # temporary files read as entries), and the card on disk does not claim a result.
        for entry in entries(cache):
            if entry.name.startswith("."):
                continue  # a temporary file the kill left: never read, its name is not a key
            json.loads(entry.read_text())
        if card_path.exists():
            card = json.loads(card_path.read_text())
            assert card["status"] == "running" and card["passed"] is False and card["checks"] == []

    # Killed halfway through writing the final scorecard: the "running" card stays.
    died = subprocess.run(
        [*command(model, cache), "-p", "tests.kill_probe"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert died.returncode == -signal.SIGKILL, died.stdout + died.stderr
    assert json.loads(card_path.read_text())["status"] == "running"
    assert len(entries(cache)) >= len(ENTRIES)  # every input was cached before the write

    resumed = subprocess.run(command(model, cache), cwd=tmp_path, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    resumed_card = json.loads(card_path.read_text())
    assert resumed_card["status"] == "complete"
    assert "scorecard: card.json (replaced the earlier running scorecard of " in resumed.stdout

    card_path.unlink()
    clean = subprocess.run(command(model, cache, "--no-cache"), cwd=tmp_path, env=env, capture_output=True, text=True)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert comparable(json.loads(card_path.read_text())) == comparable(resumed_card)
