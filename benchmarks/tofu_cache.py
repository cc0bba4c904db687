"""TOFU warm rerun against cold run: with nothing changed, a rerun reads every loss and answer
from the artifact cache and loads no model.

Runs ``pytest --suite tofu-mini`` twice on the miniature TOFU world's target model against its
retain model (so both models' passes are cached), in fresh subprocesses with one shared, initially
empty ``--cache-dir``. Prints both wall times, warm / cold, the backend's ``tofu`` and
``reference`` timings, and checks the two scorecards agree apart from timings.

    python benchmarks/tofu_cache.py [--threads 1] [--max-new-tokens 200]
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


def run(models: dict[str, Path], folder: Path, cache: Path, tokens: int, env: dict[str, str]) -> tuple[float, dict]:
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--rootdir={folder}",
        "--suite=tofu-mini", f"--model={models['target']}", f"--reference={models['retain']}",
        f"--max-new-tokens={tokens}", "--batch-size=64", f"--cache-dir={cache}", "--scorecard=card.json",
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(done.stdout + done.stderr)
    return elapsed, json.loads((folder / "card.json").read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-new-tokens", type=int, default=200, help="TOFU's generation length (default 200)")
    args = parser.parse_args()

    from fixtures.tofu_world import build_models

    models = build_models()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory() as tmp:
        folder, cache = Path(tmp), Path(tmp, "cache")
        cold, cold_card = run(models, folder, cache, args.max_new_tokens, env)
        warm, warm_card = run(models, folder, cache, args.max_new_tokens, env)

    def strip(card: dict) -> dict:
        return {k: v for k, v in card.items() if k not in ("timings", "created")}

    print(f"tofu-mini target vs retain, max_new_tokens={args.max_new_tokens}, threads={args.threads}")
    for name, seconds, card in (("cold", cold, cold_card), ("warm", warm, warm_card)):
        t = card["timings"]
        print(f"{name}: {seconds:.1f} s wall (tofu {t.get('tofu', 0):.2f} s, reference {t.get('reference', 0):.2f} s)")
    same = strip(cold_card) == strip(warm_card)
    print(f"warm / cold = {warm / cold:.1%}; scorecards identical apart from timings: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
