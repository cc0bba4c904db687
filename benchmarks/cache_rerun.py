"""Warm rerun against cold run: with nothing changed, a rerun reads every artifact from the cache.

Runs ``pytest --suite genmu-mini`` twice on the miniature world's erased model (against the
original, so both image sets and the weight change are cached), in fresh subprocesses with one
shared, initially empty ``--cache-dir``; ``--setting steps=50`` so that generation dominates as
it does on real Stable Diffusion. Prints both wall times and warm / cold (target: <= 5%), and
checks the two scorecards agree apart from timings.

    python benchmarks/cache_rerun.py [--steps 50] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def run(models: dict[str, Path], folder: Path, cache: Path, steps: int, env: dict[str, str]) -> tuple[float, dict]:
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--rootdir={folder}",
        "--suite=genmu-mini", f"--model={models['erased']}", f"--original-model={models['original']}",
        f"--clip-model={models['clip']}", f"--setting=steps={steps}", "--batch-size=32",
        f"--cache-dir={cache}", "--scorecard=card.json",
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(done.stdout + done.stderr)
    card = json.loads((folder / "card.json").read_text())
    return elapsed, card


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    from fixtures.worlds import models as world_models

    models = world_models("genmu")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory() as tmp:
        folder, cache = Path(tmp), Path(tmp, "cache")
        cold, cold_card = run(models, folder, cache, args.steps, env)
        warm, warm_card = run(models, folder, cache, args.steps, env)
    same = {k: v for k, v in cold_card.items() if k not in ("timings", "created")} == {
        k: v for k, v in warm_card.items() if k not in ("timings", "created")
    }
    print(f"genmu-mini, steps={args.steps}, threads={args.threads}")
    generation = sum(v for k, v in cold_card["timings"].items() if k.startswith("generate_"))
    print(f"cold run (empty cache):        {cold:7.2f} s  (generation {generation:.2f} s)")
    print(f"warm rerun timings: {warm_card['timings']}")
    print(f"warm rerun (nothing changed):  {warm:7.2f} s")
    print(f"warm / cold = {warm / cold:.1%} (target <= 5%); scorecards identical apart from timings: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
