"""Genμ: every image is generated once however many checks use it, and the plugin adds little.

Runs ``pytest --suite genmu-mini`` (10 checks, all reading the same images) on the miniature
world's erased model through the real plugin, counting the images the diffusers pipeline is asked
for; then generates exactly the images the suite needs with the bare pipeline, as a user's own
script would. Prints:

- images the pipeline produced during the suite run, against the distinct (prompt, seed) pairs
  the checks need, worked out here from the prompt CSV (target: equal);
- suite wall time / bare pipeline time for those images (target: <= 1.15, with generation
  dominating as it does on real SD; use ``--steps 50``, the challenge's default).

    python benchmarks/genmu_generation.py [--steps 50] [--images-per-prompt 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def needed_requests(prompt_csv: Path, targets: list[str], images_per_prompt: int, seed: int) -> set[tuple[str, int]]:
    """Independently of the plugin: every prompt of a target, direct prompts of the others."""
    with prompt_csv.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    prompts = set()
    for row in rows:
        kinds = ("direct", "indirect", "adversarial") if row["concept_name"] in targets else ("direct",)
        prompts |= {row[f"{kind}_prompt"] for kind in kinds if row[f"{kind}_prompt"].strip()}
    return {(prompt, seed + i) for prompt in prompts for i in range(images_per_prompt)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=50, help="denoising steps (the challenge uses 50)")
    parser.add_argument("--images-per-prompt", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import pytest
    import torch
    from diffusers import StableDiffusionPipeline

    from fixtures.worlds import models as world_models
    from pytest_unlearn.manifest import resolve_suite

    torch.set_num_threads(args.threads)
    models = world_models("genmu")
    manifest = resolve_suite("genmu-mini")
    targets = list(manifest.settings["targets"])
    seed = int(manifest.settings.get("seed", 0))
    needed = needed_requests(manifest.data["prompts"], targets, args.images_per_prompt, seed)

    produced: list[int] = []
    call = StableDiffusionPipeline.__call__

    def counting_call(self, prompt=None, *a, **kw):  # noqa: ANN001, ANN002, ANN003
        produced.append(len(prompt) if isinstance(prompt, list) else 1)
        return call(self, prompt, *a, **kw)

    StableDiffusionPipeline.__call__ = counting_call  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as tmp:
        card = Path(tmp, "card.json")
        start = time.perf_counter()
        exit_code = pytest.main(
            [
                "-q",
                "-p",
                "no:cacheprovider",
                f"--rootdir={tmp}",
                "--suite=genmu-mini",
                "--no-cache",  # measures generation: every image made in this run
                f"--model={models['erased']}",
                f"--clip-model={models['clip']}",
                f"--setting=steps={args.steps}",
                f"--setting=images_per_prompt={args.images_per_prompt}",
                f"--batch-size={args.batch_size}",
                f"--scorecard={card}",
                f"--artifacts={tmp}/artifacts",
                "-k",
                "not weight and not drop",  # both need --original-model: a second model's images
            ]
        )
        suite_seconds = time.perf_counter() - start
        scorecard = json.loads(card.read_text())
        checks, timings = scorecard["checks"], scorecard["timings"]
    StableDiffusionPipeline.__call__ = call  # type: ignore[method-assign]
    if exit_code not in (0, 1):
        print(f"the suite run failed to run (exit {exit_code})")
        return 1

    pipe = StableDiffusionPipeline.from_pretrained(models["erased"], local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    requests = sorted(needed)
    start = time.perf_counter()
    for first in range(0, len(requests), args.batch_size):
        batch = requests[first : first + args.batch_size]
        pipe(
            [p for p, _ in batch],
            generator=[torch.Generator().manual_seed(s) for _, s in batch],
            num_inference_steps=args.steps,
            guidance_scale=float(manifest.settings["guidance"]),
            height=int(manifest.settings["resolution"]),
            width=int(manifest.settings["resolution"]),
        )
    bare_seconds = time.perf_counter() - start

    print(f"\nchecks run: {len(checks)}, all reading the same images")
    print(f"images needed (distinct prompt, seed pairs from the CSV): {len(needed)}")
    print(f"images the pipeline produced during the suite run:       {sum(produced)} in {len(produced)} calls")
    print(f"suite wall time {suite_seconds:.1f}s (loading, judging, PNGs, scorecard included)")
    print(f"bare pipeline time for the same images {bare_seconds:.1f}s ({args.steps} steps, 1 model load excluded)")
    print("suite time by phase (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items() if "." not in k))
    print(f"ratio suite / bare: {suite_seconds / bare_seconds:.2f} (target <= 1.15)")
    return 0 if sum(produced) == len(needed) else 1


if __name__ == "__main__":
    sys.exit(main())
