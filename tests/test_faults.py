"""Faults mid-run: a semeval or tofu run SIGKILLed during each of its cached passes (semeval:
generation, MIA, MMLU; tofu: the model's and the reference's losses and generations) and during
the scorecard write, then rerun, ends with the scorecard of a clean run (timings and dates aside);
the cache never holds a partial entry, and a killed run's scorecard never reads as complete.

(genmu's image batches have the same test in tests/test_cache.py; evallearn caches nothing.)
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

from pytest_unlearn.cache import decode_entry
from tests.conftest import REPO

pytestmark = pytest.mark.slow


def semeval_args(models: dict[str, Path]) -> list[str]:
    return [
        "--suite=semeval",
        f"--model={models['semeval']['retrained']}",
        "--max-new-tokens=24",
        "--setting=bootstrap_samples=100",
    ]


def tofu_args(models: dict[str, Path]) -> list[str]:
    return [
        "--suite=tofu-mini",
        f"--model={models['tofu']['target']}",
        f"--reference={models['tofu']['retain']}",
        "--setting=bootstrap_samples=100",
    ]


# Per suite: its arguments, and what its cached inputs are (one entry each, in the order the
# manifest's checks ask for them): semeval's forget and retain generations, MIA losses, MMLU
# predictions; tofu's answer losses and generations of the model and of the reference.
SUITES = {"semeval": semeval_args, "tofu": tofu_args}
ENTRIES = ("forget generations", "retain generations", "MIA losses", "MMLU predictions")


def command(suite_args: list[str], cache: Path, *args: str) -> list[str]:
    return [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *suite_args,
        "--batch-size=8", "--scorecard=card.json", f"--cache-dir={cache}", *args,
    ]  # fmt: skip


def entries(cache: Path) -> list[Path]:
    """The cache's entries (and any temporary file a kill left beside them)."""
    return sorted(p for p in cache.rglob("*") if p.is_file() and "locks" not in p.parts and p.name != ".gitignore")


def comparable(card: dict) -> dict:
    card = dict(card)
    # cache_reuse: whether each entry was found or written, what a resumed run differs in by design.
    for key in ("timings", "created", "cache_reuse"):
        card.pop(key)
    return card


@pytest.fixture(scope="module")
def models() -> dict[str, dict[str, Path]]:
    from fixtures.worlds import models as world_models

    return {"semeval": world_models("semeval"), "tofu": world_models("tofu")}


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_runs_killed_at_every_phase_resume_to_the_clean_scorecard(tmp_path, models, suite):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    suite_args = SUITES[suite](models)
    card_path = tmp_path / "card.json"
    # The clean run, in a cache of its own: its scorecard, and how many inputs a run caches.
    clean = subprocess.run(
        command(suite_args, tmp_path / "clean-cache"), cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert clean.returncode in (0, 1), clean.stdout + clean.stderr
    clean_card = json.loads(card_path.read_text())
    n_entries = len(entries(tmp_path / "clean-cache"))
    assert n_entries >= 4 if suite == "tofu" else n_entries == len(ENTRIES)
    card_path.unlink()

    cache = tmp_path / "cache"
    rng = random.Random(20261201)
    # Killed after 0, 1, ... finished entries: during each cached input's pass, at a random
    # moment after the entry before it landed.
    for finished in range(n_entries):
        run = subprocess.Popen(
            command(suite_args, cache), cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
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
            # A whole entry: its header's size and checksum hold, and its content is JSON.
            kind, key = entry.parent.parent.name, entry.name.split(".")[0]
            content, problem = decode_entry(kind, key, entry.read_bytes())
            assert problem is None, f"{entry}: {problem}"
            json.loads(content)
        if card_path.exists():
            card = json.loads(card_path.read_text())
            assert card["status"] == "running" and card["passed"] is False and card["checks"] == []

    # Killed halfway through writing the final scorecard: the "running" card stays.
    died = subprocess.run(
        [*command(suite_args, cache), "-p", "tests.kill_probe"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert died.returncode == -signal.SIGKILL, died.stdout + died.stderr
    assert json.loads(card_path.read_text())["status"] == "running"
    assert len([p for p in entries(cache) if not p.name.startswith(".")]) == n_entries  # all cached before

    resumed = subprocess.run(command(suite_args, cache), cwd=tmp_path, env=env, capture_output=True, text=True)
    assert resumed.returncode == clean.returncode, resumed.stdout + resumed.stderr
    resumed_card = json.loads(card_path.read_text())
    assert resumed_card["status"] == "complete"
    assert "scorecard: card.json (replaced the earlier running scorecard of " in resumed.stdout
    assert comparable(resumed_card) == comparable(clean_card)
