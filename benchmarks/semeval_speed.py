"""SemEval suite speed against the official one-prompt-at-a-time loops.

Runs both on the tiny target model and the bundled data: generation of every forget/retain
prompt, the MIA losses and the MMLU predictions. Confirms that generations, per-prompt scores,
losses and MMLU letters are identical, then prints the speed ratio (target: >= 10x).

    python benchmarks/semeval_speed.py [--batch-size 64] [--max-new-tokens 256]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fixtures.official_semeval import official_generate, official_mmlu_letters, official_nll  # noqa: E402
from fixtures.worlds import models as world_models  # noqa: E402
from pytest_unlearn.evaluation import RunSettings  # noqa: E402
from pytest_unlearn.manifest import resolve_suite  # noqa: E402
from pytest_unlearn.semeval import metrics as sm  # noqa: E402
from pytest_unlearn.semeval.evaluation import SemevalBackend  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--threads", type=int, default=0, help="torch threads for both runs (0: torch's default)")
    args = parser.parse_args()

    import tempfile

    import torch

    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    model_dir = world_models("semeval")["target"]
    settings = RunSettings(
        model=model_dir,
        artifacts=Path(tempfile.mkdtemp(prefix="unlearn-bench-")),
        device="cpu",
        dtype="float32",
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
    )
    backend = SemevalBackend(resolve_suite("semeval"), settings)
    model, tokenizer, _ = backend.require_model("the benchmark")  # loaded once, outside both timings
    # One-off imports (rouge_score pulls nltk and scipy, ~2 s) are paid before either timing.
    sm.regurgitation_score("warm up", "warm up")
    sm.mia_auc([1.0], [2.0])

    started = time.perf_counter()
    backend.ensure(("text", "mia", "mmlu"))
    ours = time.perf_counter() - started

    rows = backend.rows
    members, nonmembers = backend.mia
    from pytest_unlearn.semeval.backend import mmlu_prompts

    prompts = [p for _, _, p in mmlu_prompts(tokenizer, backend.mmlu_data, backend.shots)]
    started = time.perf_counter()
    generations = official_generate(model, tokenizer, [r.input for r in rows], args.max_new_tokens)
    scores = [sm.prompt_score(r.kind, r.output, g) for r, g in zip(rows, generations)]
    losses = official_nll(model, tokenizer, [d.document for d in members + nonmembers])
    letters = official_mmlu_letters(model, tokenizer, prompts)
    official = time.perf_counter() - started

    import json

    our_rows = [json.loads(line) for line in Path(backend.artifacts()["generations"]).read_text().splitlines()]
    our_losses = [json.loads(line)["nll"] for line in Path(backend.artifacts()["mia_losses"]).read_text().splitlines()]
    our_letters = [
        json.loads(line)["prediction"]
        for line in Path(backend.artifacts()["mmlu_predictions"]).read_text().splitlines()
    ]
    same_generations = [r["output"] for r in our_rows] == generations
    same_scores = [r["score"] for r in our_rows] == scores
    max_loss_gap = max(abs(a - b) for a, b in zip(our_losses, losses))
    same_letters = our_letters == letters

    print(f"torch threads={torch.get_num_threads()}")
    print(f"prompts={len(rows)} mia_documents={len(members) + len(nonmembers)} mmlu_questions={len(prompts)}")
    print(f"official one-at-a-time: {official:.2f} s")
    print(f"pytest-unlearn batched (batch {args.batch_size}): {ours:.2f} s")
    print(f"speed ratio: {official / ours:.1f}x (target >= 10x)")
    print(
        f"identical generations: {same_generations}; identical scores: {same_scores}; "
        f"identical MMLU letters: {same_letters}; max |NLL difference|: {max_loss_gap:.2e}"
    )
    return 0 if same_generations and same_scores and same_letters and max_loss_gap < 1e-5 else 1


if __name__ == "__main__":
    raise SystemExit(main())
