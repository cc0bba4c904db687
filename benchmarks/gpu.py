"""The semeval suite and a wmdp-style multiple-choice pass on a CUDA GPU, against the official loops.

Runs on one CUDA device, unchanged (no GPU has been lent to this project yet: it has never run;
the README says so). The real model (SmolLM2-135M-Instruct, ``python -m fixtures.build real``)
in bfloat16 (what the SemEval scorer loads on a GPU), ``--batch-size 64``:

- semeval: the plugin's backend (``SemevalBackend.compute``, artifact cache off) phase by phase
  (generation, MIA losses, MMLU) against ``fixtures/official_semeval.py`` (the organizers'
  one-prompt-at-a-time loops and open-instruct's MMLU loop at batch size 1), the order
  alternating per phase;
- wmdp: the multiple-choice engine (``choice_loglikelihoods``, what ``--suite wmdp`` runs) on
  real MMLU questions in lm-eval's 0-shot prompt against lm-eval's ``loglikelihood`` at batch
  size 1 (one forward per question and choice), transcribed below.

Prints per phase: both times and their ratio, the peak GPU memory of our pass, and how far the
outputs are from the one-at-a-time loop (generations that differ: bfloat16 batched and unbatched
round differently; MIA |NLL difference|; MMLU/wmdp letters that differ). The card's name, torch
and CUDA versions head the output.

    python benchmarks/gpu.py [--batch-size 64] [--prompts 0] [--max-new-tokens 256] [--mia-documents 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def _lm_eval_loglikelihoods(
    model: Any, tokenizer: Any, contexts: list[str], continuations: list[str]
) -> list[list[float]]:
    """lm-eval 0.4.13 ``HFLM.loglikelihood`` at batch size 1: for each (context, continuation),
    one forward over ``(context + continuation)[:-1]`` (no BOS), the log-softmax summed over the
    continuation's tokens."""
    import torch

    out = []
    with torch.no_grad():
        for context in contexts:
            row = []
            for continuation in continuations:
                whole = tokenizer.encode(context + continuation, add_special_tokens=False)
                ctx = tokenizer.encode(context, add_special_tokens=False)
                cont = whole[len(ctx) :]
                ids = torch.tensor([(ctx + cont)[:-1]], device=model.device)
                logp = torch.log_softmax(model(ids).logits[0, -len(cont) :].float(), dim=-1)
                row.append(float(logp.gather(-1, torch.tensor(cont, device=model.device)[:, None]).sum()))
            out.append(row)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=256, help="the official scorer's 256")
    parser.add_argument("--prompts", type=int, default=0, help="forget+retain prompts (0: all 108)")
    parser.add_argument("--mia-documents", type=int, default=0, help="per set (0: all 100)")
    parser.add_argument("--mmlu-subjects", type=int, default=4)
    parser.add_argument("--mmlu-questions", type=int, default=50, help="per subject")
    parser.add_argument("--dtype", default="bfloat16")
    # A smoke run of this script's code where no GPU is (tiny sizes, --dtype float32): no timing
    # or memory figure of a CPU run means anything here.
    parser.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    args = parser.parse_args()

    import torch

    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        print("benchmarks/gpu.py needs a CUDA device; none is visible here (torch.cuda.is_available() is False)")
        return 2
    from semeval_speed import mia_subset, semeval_backend  # the same backend as the CPU benchmark

    from fixtures import real_world
    from fixtures.official_semeval import official_generate, official_mmlu_letters, official_nll
    from pytest_unlearn.engines.causal_lm import mmlu_prompts
    from pytest_unlearn.engines.multiple_choice import choice_loglikelihoods
    from pytest_unlearn.mcq.data import mmlu_context
    from pytest_unlearn.semeval import metrics as sm

    torch.manual_seed(0)
    work = Path(tempfile.mkdtemp(prefix="unlearn-gpu-bench-"))
    mia_dir = mia_subset(real_world.real_mia_path(), work, args.mia_documents)
    mmlu_dir = real_world.write_mmlu_sample(work / "mmlu", subjects=args.mmlu_subjects, questions=args.mmlu_questions)
    backend = semeval_backend(
        real_world.real_model_path(), mia_dir, mmlu_dir, work, args, device=args.device, dtype=args.dtype
    )
    started = time.perf_counter()
    model, tokenizer, device = backend.require_model("the benchmark")
    load_seconds = time.perf_counter() - started
    sm.regurgitation_score("warm up", "warm up")
    sm.mia_auc([1.0], [2.0])
    rows = backend.rows
    members, nonmembers = backend.mia
    documents = [d.document for d in members + nonmembers]
    mmlu = mmlu_prompts(tokenizer, backend.mmlu_data, backend.shots)
    prompts = [p for _, _, p in mmlu]
    data = backend.mmlu_data
    # wmdp's prompt (lm-eval: description, question, choices, "Answer:"), 0-shot, on MMLU questions.
    contexts = [mmlu_context([], subject, data.test[subject][index], 0) for subject, index, _ in mmlu]
    choices = [" A", " B", " C", " D"]
    official: dict[str, Any] = {}

    def synchronize() -> None:
        if cuda:
            torch.cuda.synchronize()

    def sync(fn: Any) -> Any:
        def run() -> Any:
            result = fn()
            synchronize()
            return result

        return run

    phases = {
        "generation": (
            lambda: backend.compute("text"),
            lambda: official_generate(model, tokenizer, [r.input for r in rows], args.max_new_tokens),
        ),
        "MIA": (lambda: backend.compute("mia"), lambda: official_nll(model, tokenizer, documents)),
        "MMLU": (lambda: backend.compute("mmlu"), lambda: official_mmlu_letters(model, tokenizer, prompts)),
        "wmdp": (
            lambda: official.__setitem__(
                "wmdp-ours",
                choice_loglikelihoods(model, tokenizer, contexts, choices, batch_size=args.batch_size, device=device),
            ),
            lambda: _lm_eval_loglikelihoods(model, tokenizer, contexts, choices),
        ),
    }
    times: dict[str, tuple[float, float, float]] = {}
    for turn, (phase, (ours_fn, official_fn)) in enumerate(phases.items()):
        order = [("ours", ours_fn), ("official", official_fn)]
        spent: dict[str, float] = {}
        for who, fn in order if turn % 2 == 0 else order[::-1]:
            synchronize()
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            begun = time.perf_counter()
            result = sync(fn)()
            spent[who] = time.perf_counter() - begun
            if who == "ours":
                spent["peak"] = torch.cuda.max_memory_allocated() / 2**20 if cuda else float("nan")
            else:
                official[phase] = result
        times[phase] = (spent["ours"], spent["official"], spent["peak"])

    artifacts = backend.artifacts()
    read = [json.loads(line) for line in Path(artifacts["generations"]).read_text().splitlines()]
    differ = sum(r["output"] != g for r, g in zip(read, official["generation"]))
    losses = [json.loads(line)["nll"] for line in Path(artifacts["mia_losses"]).read_text().splitlines()]
    nll_gap = max(abs(a - b) for a, b in zip(losses, official["MIA"]))
    letters = [json.loads(line)["prediction"] for line in Path(artifacts["mmlu_predictions"]).read_text().splitlines()]
    mmlu_differ = sum(a != b for a, b in zip(letters, official["MMLU"]))

    def argmax(row: list[float]) -> int:
        return max(range(len(row)), key=lambda j: (row[j], -j))

    wmdp_differ = sum(argmax(a) != argmax(b) for a, b in zip(official["wmdp-ours"], official["wmdp"]))

    card = torch.cuda.get_device_name(0) if cuda else f"{args.device} (smoke run, figures meaningless)"
    print(f"device: {card}; torch {torch.__version__}, CUDA {torch.version.cuda}; dtype {args.dtype}")
    print(
        f"model load {load_seconds:.1f} s; prompts={len(rows)} max_new_tokens={args.max_new_tokens} "
        f"batch_size={args.batch_size} mia_documents={len(documents)} mmlu_questions={len(prompts)} "
        f"wmdp-style questions={len(contexts)}"
    )
    for phase, (ours, off, peak) in times.items():
        print(
            f"{phase:>10}: official {off:8.2f} s   pytest-unlearn {ours:8.2f} s   ratio {off / ours:6.1f}x   "
            f"peak GPU memory {peak:8.0f} MiB"
        )
    total_ours = sum(t[0] for t in times.values())
    total_official = sum(t[1] for t in times.values())
    print(f"end to end: official {total_official:8.2f} s   pytest-unlearn {total_ours:8.2f} s   "
          f"ratio {total_official / total_ours:6.1f}x")  # fmt: skip
    print(
        f"against the one-at-a-time loop: {differ}/{len(rows)} generations differ; max |MIA NLL difference| "
        f"{nll_gap:.2e}; {mmlu_differ}/{len(prompts)} MMLU letters differ; {wmdp_differ}/{len(contexts)} "
        "wmdp-style answers differ"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
