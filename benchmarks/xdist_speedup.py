"""``-n 2`` against ``-n 0`` on a two-group suite: a CPU stand-in for two GPUs.

The suite (written to a temporary folder) is genmu-mini's forget/retain checks, which need the
images of ``--model``, plus one check on the CLIP score of ``--original-model``'s images: two
independent inputs of equal cost (two pipelines generating the same requests), hence two xdist
groups. Both runs use ``--no-cache``. With ``-n 2`` each worker gets half the cores
(``cpu_count // 2`` torch threads); ``-n 0`` uses torch's default. Prints both wall times and
the speed-up, and checks the scorecards agree apart from timings.

    python benchmarks/xdist_speedup.py [--steps 20]
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

CONFTEST = '''
from pytest_unlearn.registry import Measurement, metric


@metric("bench.original_clip_score", higher_is_better=True, unit="clip", requires=("original_images",))
def original_clip_score(inputs):
    """Mean CLIP score of the original model's retention images."""
    return Measurement(float(inputs.original_clip_scores.mean()), int(inputs.original_clip_scores.size))
'''

EXTRA_CHECK = """
[[checks]]
id = "original-clip-score"
metric = "bench.original_clip_score"
op = ">="
threshold = 0.0
"""


def write_suite(folder: Path) -> Path:
    source = REPO / "suites" / "genmu-mini" / "manifest.toml"
    text = source.read_text().replace('"data/prompts.csv"', json.dumps(str(source.parent / "data" / "prompts.csv")))
    # Keep the checks that need only the unlearned images; add one on the original's images.
    head, *checks = text.split("[[checks]]")
    kept = [c for c in checks if any(f'metric = "genmu.{m}"' in c for m in ("forget", "retain", "adjacent"))]
    manifest = folder / "two-groups.toml"
    manifest.write_text(head + "".join("[[checks]]" + c for c in kept) + EXTRA_CHECK)
    (folder / "conftest.py").write_text(CONFTEST)
    return manifest


def run(folder: Path, manifest: Path, models: dict[str, Path], steps: int, workers: str) -> tuple[float, dict]:
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--rootdir={folder}", "-n", workers,
        f"--suite={manifest}", f"--model={models['erased']}", f"--original-model={models['original']}",
        f"--clip-model={models['clip']}", f"--setting=steps={steps}", "--batch-size=32", "--no-cache",
        "--scorecard=card.json",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), str(REPO)])}
    started = time.perf_counter()
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(done.stdout + done.stderr)
    return elapsed, json.loads((folder / "card.json").read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()

    from fixtures.worlds import models as world_models

    models = world_models("genmu")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        manifest = write_suite(folder)
        serial, serial_card = run(folder, manifest, models, args.steps, "0")
        parallel, parallel_card = run(folder, manifest, models, args.steps, "2")

    def strip(card: dict) -> dict:
        return {k: v for k, v in card.items() if k not in ("timings", "created")}

    same = strip(serial_card) == strip(parallel_card)
    print(f"two-group suite (unlearned images | original images), steps={args.steps}, {os.cpu_count()} CPUs")
    print(f"-n 0: {serial:7.2f} s")
    print(f"-n 2: {parallel:7.2f} s")
    print(f"speed-up -n 2 / -n 0: {serial / parallel:.2f}x; scorecards identical apart from timings: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
