"""What ``--stress quantize:int4 --stress relearn`` costs beside a plain run of the same suite.

Runs ``pytest --suite semeval`` in fresh subprocesses, each with its own empty ``--cache-dir``:
plain; with the two stresses (cold: the copies made, their passes computed); the stressed run
again on its cache (warm: nothing is made or computed again). Prints wall seconds, the ratio of
each to the plain run, the seconds the copies took to make (the card's ``stress`` section), and
the load average, side by side in one run.

    python benchmarks/stress_cost.py                 # the SemEval world's retrained model
    python benchmarks/stress_cost.py --real          # SmolLM2-135M-Instruct (python -m fixtures.real_env first)
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
STRESSES = ("--stress=quantize:int4", "--stress=relearn:steps=10,lr=1e-4")


def run(args: list[str], folder: Path, cache: Path, env: dict[str, str]) -> tuple[float, dict]:
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--rootdir={folder}",
        *args, f"--cache-dir={cache}", "--scorecard=card.json",
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(done.stdout[-3000:] + done.stderr[-3000:])
    return elapsed, json.loads((folder / "card.json").read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--real", action="store_true", help="SmolLM2-135M-Instruct on the real-model world")
    args = parser.parse_args()

    if args.real:
        from fixtures.real_world import build_models

        paths = build_models(None)
        # The README's real-model line (bundled SemEval prompts, real MMLU sample and Wikipedia MIA
        # sets); no original model, so no recovery check: the cost of the copies and their passes.
        base = [
            "--suite=semeval", f"--model={paths['model']}", f"--data=mmlu={paths['mmlu-sample']}",
            f"--data=mia={paths['mia']}", "--setting=max_new_tokens=32",
        ]  # fmt: skip
        label = "SmolLM2-135M-Instruct, the README's real-model line"
    else:
        from fixtures.worlds import models

        world = models("semeval")
        base = ["--suite=semeval", f"--model={world['retrained']}", f"--original-model={world['target']}"]
        label = "SemEval world, retrained model against the target"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        plain, _ = run(base, folder, folder / "cache-plain", env)
        cold, card = run([*base, *STRESSES], folder, folder / "cache-stress", env)
        warm, warm_card = run([*base, *STRESSES], folder, folder / "cache-stress", env)
    made = {name: (section.get("copy") or {}).get("seconds") for name, section in card.get("stress", {}).items()}
    print(f"{label}; load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, at end {os.getloadavg()[0]:.2f}")
    print(f"plain run                               {plain:7.1f} s   1.00x")
    print(f"--stress quantize:int4 --stress relearn {cold:7.1f} s   {cold / plain:.2f}x  (copies made in {made} s)")
    reused = [e["reused"] for events in warm_card["cache_reuse"]["checks"].values() for e in events]
    copies = [(s.get("copy") or {}).get("reused") for s in warm_card.get("stress", {}).values()]
    print(
        f"the same again, warm cache              {warm:7.1f} s   {warm / plain:.2f}x  "
        f"({sum(reused)} of {len(reused)} cache reads reused, copies reused: {copies})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
