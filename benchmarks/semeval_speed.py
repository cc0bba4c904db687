"""SemEval suite speed against the official one-prompt-at-a-time loops, phase by phase.

Runs the plugin's backend (``SemevalBackend.compute``, the path ``pytest --suite semeval``
takes, artifact cache off) and faithful copies of the organizers' loops
(``fixtures/official_semeval.py``: ``evaluate_generations.py``'s generation and MIA loss loops,
open-instruct's MMLU loop at batch size 1) on the same loaded model, each phase timed side by
side (the order alternates per phase, so background load hits both), then confirms identical
outputs: generations, MIA losses (to 1e-5), MMLU letters. Prints each phase's ratio, the
end-to-end ratio (sum of the phases) and the MMLU prefix/suffix token split.

Default (a quick run, a few minutes on 2 cores): the real model (SmolLM2-135M-Instruct,
``python -m fixtures.build real``), 32 of the bundled prompts, 64 new tokens, 40 Wikipedia MIA
documents, real MMLU 4 subjects x 20 questions, one torch thread. The official settings and the
full size:

    python benchmarks/semeval_speed.py --prompts 0 --max-new-tokens 256 --mia-documents 0

(``0``: all), or ``--full`` for the same. ``--model tiny`` runs the miniature world's target
model on its bundled data.

Also printed (real model): the model load split into fingerprint, ``from_pretrained`` and the
finiteness check; each phase's physical bound on this machine (its matmul FLOPs, the work the
official loop does, at the matmul rate measured here on the model's own shapes, one pass of a
``[1024, hidden] x [hidden, intermediate]`` product); and the long-document case (``--long-documents``
rows of ``--long-tokens`` tokens plus one short row): our MIA pass at the default batch size
against one row per batch and against the masked left-padded batch of before.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fixtures.official_semeval import official_generate, official_mmlu_letters, official_nll  # noqa: E402
from pytest_unlearn.evaluation import RunSettings  # noqa: E402
from pytest_unlearn.manifest import resolve_suite  # noqa: E402
from pytest_unlearn.semeval import metrics as sm  # noqa: E402
from pytest_unlearn.semeval.evaluation import SemevalBackend  # noqa: E402


def mia_subset(mia_dir: Path, work: Path, documents: int) -> Path:
    """The first ``documents`` of each MIA set, written under ``work`` (0: the whole sets)."""
    if not documents:
        return mia_dir
    (work / "mia").mkdir()
    for name in ("member", "nonmember"):
        lines = (mia_dir / f"{name}.jsonl").read_text().splitlines()[:documents]
        (work / "mia" / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    return work / "mia"


def semeval_backend(
    model_dir: Path, mia_dir: Path | None, mmlu_dir: Path | None, work: Path, args: argparse.Namespace, **run: str
) -> SemevalBackend:
    """The semeval backend this checkout's manifest makes, at ``args``' batch size, new tokens and
    prompt count (every k-th prompt: every split, task and kind), ``run`` its device and dtype."""
    settings = RunSettings(
        model=model_dir,
        artifacts=work / "artifacts",
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        mia_data=mia_dir,
        mmlu=mmlu_dir,
        cache_dir=None,
        **run,
    )
    backend = SemevalBackend(resolve_suite(str(REPO / "suites" / "semeval" / "manifest.toml")), settings)
    # The manifest sets 256 (the official scorer's); the plugin merges --max-new-tokens into it.
    backend.max_new_tokens = args.max_new_tokens
    if args.prompts:
        step = max(1, len(backend.rows) // args.prompts)
        backend.rows = backend.rows[::step][: args.prompts]
    return backend


def _read_jsonl(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=("real", "tiny"), default="real")
    parser.add_argument("--batch-size", type=int, default=16, help="our --batch-size (the plugin's default: 16)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="the official scorer uses 256")
    parser.add_argument("--prompts", type=int, default=32, help="forget+retain prompts (0: all 108)")
    parser.add_argument("--mia-documents", type=int, default=20, help="per set (0: all 100; real model only)")
    parser.add_argument("--mmlu-subjects", type=int, default=4)
    parser.add_argument("--mmlu-questions", type=int, default=20, help="per subject (real model only)")
    # One thread by default: on a machine whose cores other processes share, two OpenMP threads
    # wait on each other at every op (the plugin's generation phase measured 134 s with two
    # threads against 8 s with one); both sides always run with the same setting.
    parser.add_argument("--threads", type=int, default=1, help="torch threads for both runs (0: torch's default)")
    parser.add_argument("--full", action="store_true", help="the official settings at full size")
    parser.add_argument("--long-documents", type=int, default=3, help="long-document case: rows (0: skip)")
    parser.add_argument("--long-tokens", type=int, default=2000, help="long-document case: tokens per row")
    args = parser.parse_args()
    if args.full:
        args.prompts, args.max_new_tokens, args.mia_documents = 0, 256, 0

    import torch

    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="unlearn-bench-"))
    if args.model == "real":
        from fixtures import real_world

        model_dir = real_world.real_model_path()
        mia_dir = mia_subset(real_world.real_mia_path(), work, args.mia_documents)
        mmlu_dir = real_world.write_mmlu_sample(
            work / "mmlu", subjects=args.mmlu_subjects, questions=args.mmlu_questions
        )
    else:
        from fixtures.worlds import models as world_models

        model_dir, mia_dir, mmlu_dir = world_models("semeval")["target"], None, None
    backend = semeval_backend(model_dir, mia_dir, mmlu_dir, work, args, device="cpu", dtype="float32")
    load_split = _timed_load(model_dir) if args.model == "real" else None
    model, tokenizer, _ = backend.require_model("the benchmark")  # loaded once, outside every timing
    # One-off imports (rouge_score pulls nltk and scipy, ~2 s) are paid before any timing.
    sm.regurgitation_score("warm up", "warm up")
    sm.mia_auc([1.0], [2.0])
    from pytest_unlearn.engines.causal_lm import mmlu_predict, mmlu_prefixes, mmlu_prompts, share_prefixes

    rows = backend.rows
    members, nonmembers = backend.mia
    mmlu = mmlu_prompts(tokenizer, backend.mmlu_data, backend.shots)
    prompts = [p for _, _, p in mmlu]

    def official_text() -> list[str]:
        generations = official_generate(model, tokenizer, [r.input for r in rows], args.max_new_tokens)
        official["scores"] = [sm.prompt_score(r.kind, r.output, g) for r, g in zip(rows, generations)]
        return generations

    official: dict[str, object] = {}
    phases = {
        "generation": (lambda: backend.compute("text"), official_text),
        "MIA": (
            lambda: backend.compute("mia"),
            lambda: official_nll(model, tokenizer, [d.document for d in members + nonmembers]),
        ),
        "MMLU": (lambda: backend.compute("mmlu"), lambda: official_mmlu_letters(model, tokenizer, prompts)),
    }
    times: dict[str, tuple[float, float]] = {}
    for turn, (phase, (ours_fn, official_fn)) in enumerate(phases.items()):
        order = [("ours", ours_fn), ("official", official_fn)]
        spent = {}
        for who, fn in order if turn % 2 == 0 else order[::-1]:
            started = time.perf_counter()
            result = fn()
            spent[who] = time.perf_counter() - started
            if who == "official":
                official[phase] = result
        times[phase] = (spent["ours"], spent["official"])

    artifacts = backend.artifacts()
    our_rows = _read_jsonl(artifacts["generations"])
    our_losses = [r["nll"] for r in _read_jsonl(artifacts["mia_losses"])]
    our_letters = [r["prediction"] for r in _read_jsonl(artifacts["mmlu_predictions"])]
    same_generations = [r["output"] for r in our_rows] == official["generation"]
    identical = sum(r["output"] == g for r, g in zip(our_rows, official["generation"]))  # type: ignore[arg-type]
    same_scores = [r["score"] for r in our_rows] == official["scores"]
    max_loss_gap = max(abs(a - b) for a, b in zip(our_losses, official["MIA"]))  # type: ignore[arg-type]
    same_letters = our_letters == official["MMLU"]
    plan = share_prefixes(tokenizer, prompts, mmlu_prefixes(backend.mmlu_data, mmlu))
    whole = mmlu_predict(model, tokenizer, prompts, batch_size=args.batch_size, device="cpu")
    prefixes = mmlu_prefixes(backend.mmlu_data, mmlu)
    shared = mmlu_predict(model, tokenizer, prompts, batch_size=args.batch_size, device="cpu", prefixes=prefixes)
    max_dp = max(abs(a - b) for (_, pa), (_, pb) in zip(shared, whole) for a, b in zip(pa, pb))

    bounds = _bounds(model, tokenizer, rows, members + nonmembers, prompts, args.max_new_tokens)
    long_case = _long_documents(model, tokenizer, args) if args.model == "real" and args.long_documents else None
    load = os.getloadavg()
    print(
        f"model={args.model} ({model_dir.resolve().name}) torch threads={torch.get_num_threads()} "
        f"load average={load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
        f"({os.cpu_count()} cores; no GPU is lent to this project)"
    )
    print(
        f"prompts={len(rows)} max_new_tokens={args.max_new_tokens} batch_size={args.batch_size} "
        f"mia_documents={len(members) + len(nonmembers)} mmlu_questions={len(prompts)} "
        f"({len(backend.mmlu_data.subjects)} subjects, {backend.shots}-shot)"
    )
    print(
        f"MMLU tokens: {plan.full_tokens} unshared; shared {plan.prefix_tokens} prefix (once per subject) + "
        f"{plan.suffix_tokens} suffix + {plan.unshared_tokens} in {len(plan.unshared)} prompts run whole "
        f"({plan.full_tokens / max(1, plan.prefix_tokens + plan.suffix_tokens + plan.unshared_tokens):.1f}x fewer)"
    )
    total_ours = sum(t[0] for t in times.values())
    total_official = sum(t[1] for t in times.values())
    rate = bounds.pop("rate")
    print(f"matmul rate measured here: {rate / 1e9:.0f} GFLOP/s; bound: the official loop's matmul FLOPs at that rate")
    for phase, (ours, off) in times.items():
        print(
            f"{phase:>10}: official {off:7.2f} s   pytest-unlearn {ours:7.2f} s   ratio {off / ours:5.1f}x   "
            f"bound {bounds[phase] / rate:6.2f} s (official at {bounds[phase] / rate / off:4.0%} of it, "
            f"ours {bounds[phase] / rate / ours:4.0%})"
        )
    print(
        f"end to end: official {total_official:7.2f} s   pytest-unlearn {total_ours:7.2f} s   "
        f"ratio {total_official / total_ours:5.1f}x (targets: MMLU >= 4x, generation >= 3x, end to end >= 3x)"
    )
    print(
        f"identical generations: {same_generations} ({identical}/{len(rows)}); identical scores: {same_scores}; "
        f"identical MMLU letters: {same_letters}; max |NLL difference|: {max_loss_gap:.2e}; "
        f"MMLU shared vs unshared max |dp|: {max_dp:.2e}"
    )
    if load_split:
        print(
            "model load: fingerprint {fingerprint:.2f} s, from_pretrained {load:.2f} s, "
            "finiteness check {finite:.2f} s (one read of each tensor: its sum)".format(**load_split)
        )
    if long_case:
        print(
            "long documents ({rows} x {tokens} tokens + 1 short): one row per batch {one:.1f} s, batch size {bs} "
            "{ours:.1f} s ({one_ratio:.2f}x of one row), the masked batch of before {masked:.1f} s; "
            "max |NLL difference| {gap:.1e}".format(**long_case)
        )
    ok = same_generations and same_scores and same_letters and max_loss_gap < 1e-5 and max_dp < 1e-5
    return 0 if ok else 1


def _timed_load(model_dir: Path) -> dict[str, float]:
    """The model load split into its passes over the weights (a separate load, not timed above)."""
    from pytest_unlearn import loading
    from pytest_unlearn.fingerprint import fingerprint

    started = time.perf_counter()
    fingerprint(model_dir)
    split = {"fingerprint": time.perf_counter() - started}
    real_check = loading.check_finite

    def timed_check(*a: object, **k: object) -> None:
        begun = time.perf_counter()
        real_check(*a, **k)  # type: ignore[arg-type]
        split["finite"] = time.perf_counter() - begun

    loading.check_finite = timed_check  # type: ignore[assignment]
    try:
        started = time.perf_counter()
        loading.load_causal_lm(model_dir, device="cpu", dtype="float32", allow_pickle=False)
        split["load"] = time.perf_counter() - started - split["finite"]
    finally:
        loading.check_finite = real_check
    return split


def _bounds(model, tokenizer, rows, documents, prompts, max_new_tokens) -> dict[str, float]:  # noqa: ANN001
    """Each phase's matmul FLOPs as the official loop runs it (every linear layer and the head
    at 2 FLOPs per weight per token, attention at 2·L²·hidden per layer for a row of L tokens),
    and the machine's measured matmul rate (``rate``)."""
    import torch

    config = model.config
    hidden, layers = config.hidden_size, config.num_hidden_layers
    inner = getattr(config, "intermediate_size", 4 * hidden)
    embedding = model.get_input_embeddings().weight.numel()
    weights = sum(p.numel() for p in model.parameters()) - embedding + model.get_output_embeddings().weight.numel()
    if model.get_output_embeddings().weight is model.get_input_embeddings().weight:
        weights = sum(p.numel() for p in model.parameters())  # tied: the head is the embedding

    def flops(length: int) -> float:
        return 2.0 * weights * length + 2.0 * layers * hidden * length**2

    def generation(prompt: str) -> float:
        n = len(tokenizer(prompt).input_ids)
        return flops(n) + sum(2.0 * weights + 4.0 * layers * hidden * (n + k) for k in range(max_new_tokens))

    a, b = torch.randn(1024, hidden), torch.randn(inner, hidden)
    torch.nn.functional.linear(a, b)
    started, reps = time.perf_counter(), 20
    for _ in range(reps):
        torch.nn.functional.linear(a, b)
    rate = reps * 2.0 * 1024 * hidden * inner / (time.perf_counter() - started)
    return {
        "generation": sum(generation(r.input) for r in rows),
        "MIA": sum(flops(len(tokenizer(d.document).input_ids)) for d in documents),
        "MMLU": sum(flops(len(tokenizer(p).input_ids)) for p in prompts),
        "rate": rate,
    }


def _long_documents(model, tokenizer, args) -> dict[str, float]:  # noqa: ANN001
    """Our MIA pass over long real documents and one short one, batched as the plugin does, one
    row per batch, and as the masked left-padded batch of before (every row in one batch)."""
    from fixtures import real_world
    from pytest_unlearn.engines import causal_lm

    texts = [
        json.loads(line)["document"] for line in (real_world.real_mia_path() / "member.jsonl").read_text().splitlines()
    ]
    ids = tokenizer("\n\n".join(texts)).input_ids
    tokens = args.long_tokens
    documents = [tokenizer.decode(ids[i * tokens : (i + 1) * tokens]) for i in range(args.long_documents)]
    documents.append(texts[0][:200])

    def run(batch_size: int) -> tuple[float, list[float]]:
        started = time.perf_counter()
        losses = causal_lm.document_nll(model, tokenizer, documents, batch_size=batch_size, device="cpu")
        return time.perf_counter() - started, losses

    ours, ours_losses = run(args.batch_size)
    one, one_losses = run(1)
    real_first, real_share, real_alone = causal_lm._text_first, causal_lm.CPU_MIN_ROW_SHARE, causal_lm.CPU_ALONE_TOKENS
    causal_lm._text_first = lambda ids, mask: None  # the masked pass of before
    causal_lm.CPU_MIN_ROW_SHARE, causal_lm.CPU_ALONE_TOKENS = 0.0, 10**9
    try:
        masked, masked_losses = run(args.batch_size)
    finally:
        causal_lm._text_first = real_first
        causal_lm.CPU_MIN_ROW_SHARE, causal_lm.CPU_ALONE_TOKENS = real_share, real_alone
    gap = max(abs(x - y) for x, y in zip(ours_losses + masked_losses, one_losses + one_losses))
    return {
        "rows": args.long_documents, "tokens": tokens, "bs": args.batch_size, "one": one, "ours": ours,
        "masked": masked, "one_ratio": ours / one, "gap": gap,
    }  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
