"""The mcq backend scores as lm-evaluation-harness 0.4.13's ``HFLM`` does: BOS and left truncation.

The reference is lm-eval's code path transcribed independently for one request at a time, from
``lm_eval/models/huggingface.py`` v0.4.13: ``tok_encode`` (``add_bos_token`` None: the
tokenizer's own ``encode`` default; True/False: ``add_special_tokens=`` that), ``_encode_pair``
(``whole[len(context_enc):]``) and ``_loglikelihood_tokens`` (input
``(context_enc + continuation_enc)[-(max_length + 1):][:-1]``, unpadded, continuation slice summed).
The tokenizer prepends BOS through a ``tokenizers`` ``TemplateProcessing`` post-processor, as
Llama- and Mistral-family tokenizers do.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from pytest_unlearn.engines import multiple_choice as mcq_backend  # noqa: E402
from pytest_unlearn.engines.lmeval import LM_EVAL_VERSION  # noqa: E402
from pytest_unlearn.engines.multiple_choice import choice_loglikelihoods  # noqa: E402

BOS, EOS = "<s>", "<|endoftext|>"
LETTERS = [" A", " B", " C", " D"]


def bos_tokenizer(*, merge_letters: bool = True):
    """Byte-level BPE whose post-processor prepends ``<s>``; " A" .. " D" one token each when
    ``merge_letters`` (the single-pass path), two bytes each otherwise (the per-row path)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {s: i for i, s in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    merges = [("Ġ", x) for x in "ABCD"] if merge_letters else []
    for a, b in merges:
        vocab[a + b] = len(vocab)
    for special in (EOS, BOS):
        vocab[special] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens([EOS, BOS])
    core.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, vocab[BOS])])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token=BOS, eos_token=EOS, pad_token=EOS)
    tokenizer.padding_side = "left"
    return tokenizer


def tiny_model(tokenizer, max_positions: int = 4096):
    from tests.tiny_models import tiny_olmo

    model = tiny_olmo(len(tokenizer), seed=3).eval()
    model.config.max_position_embeddings = max_positions  # OLMo is rotary: only HFLM.max_length reads it
    with torch.no_grad():
        # Peaked attention, so that one more token (BOS) visibly moves the numbers.
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight *= 8
            layer.self_attn.k_proj.weight *= 8
        model.lm_head.weight *= 100  # and sharp next-token distributions, not near-uniform ones
    return model


@torch.no_grad()
def lm_eval_reference(model, tokenizer, context: str, continuation: str, add_bos_token=None, max_length=4096) -> float:
    """HFLM.loglikelihood of one request, transcribed (see the module docstring)."""

    def tok_encode(text: str) -> list[int]:
        kwargs = {} if add_bos_token is None else {"add_special_tokens": add_bos_token}
        if text.startswith(BOS):
            kwargs = {"add_special_tokens": False}
        return tokenizer.encode(text, **kwargs)

    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
    whole, context_enc = tok_encode(context + continuation), tok_encode(context)
    continuation_enc = whole[len(context_enc) :]
    inp = torch.tensor((context_enc + continuation_enc)[-(max_length + 1) :][:-1])[None]
    logits = torch.log_softmax(model(inp).logits.float(), dim=-1)[0]
    n = len(continuation_enc)
    picked = logits[inp.shape[1] - n : inp.shape[1]].gather(1, torch.tensor(continuation_enc)[:, None])
    return float(picked.sum())


CONTEXTS = ["Which colour is the sky?\nA. red\nB. blue\nC. green\nD. black\nAnswer:", "Two plus two?\nAnswer:"]


def test_the_tokenizer_decides_bos_and_the_setting_overrides_it():
    tokenizer = bos_tokenizer()
    assert tokenizer.encode("x")[0] == tokenizer.bos_token_id  # the world's tokenizer adds BOS
    model = tiny_model(tokenizer)
    auto = choice_loglikelihoods(model, tokenizer, CONTEXTS, LETTERS, batch_size=2, device="cpu")
    off = choice_loglikelihoods(model, tokenizer, CONTEXTS, LETTERS, batch_size=2, device="cpu", add_bos_token=False)
    on = choice_loglikelihoods(model, tokenizer, CONTEXTS, LETTERS, batch_size=2, device="cpu", add_bos_token=True)
    for i, context in enumerate(CONTEXTS):
        assert auto[i] == pytest.approx([lm_eval_reference(model, tokenizer, context, c) for c in LETTERS], abs=1e-4)
        assert off[i] == pytest.approx(
            [lm_eval_reference(model, tokenizer, context, c, add_bos_token=False) for c in LETTERS], abs=1e-4
        )
    assert sum(on, []) == pytest.approx(sum(auto, []), abs=1e-6)  # the tokenizer's own default is to add it
    # BOS moves every number: scoring without it is not lm-eval's figure for this tokenizer.
    assert max(abs(a - b) for ra, rb in zip(auto, off) for a, b in zip(ra, rb)) > 0.05


def test_a_context_already_starting_with_bos_gets_no_second_one():
    tokenizer = bos_tokenizer()
    model = tiny_model(tokenizer)
    context = BOS + CONTEXTS[1]
    ours = choice_loglikelihoods(model, tokenizer, [context], LETTERS, batch_size=1, device="cpu")
    assert ours[0] == pytest.approx([lm_eval_reference(model, tokenizer, context, c) for c in LETTERS], abs=1e-4)
    plain = choice_loglikelihoods(model, tokenizer, [CONTEXTS[1]], LETTERS, batch_size=1, device="cpu")
    assert ours[0] == pytest.approx(plain[0], abs=1e-5)


@pytest.mark.parametrize("merge_letters", [True, False], ids=["one-pass-per-question", "one-row-per-choice"])
def test_an_over_long_question_is_cut_from_the_left_with_one_warning_and_batched_apart(monkeypatch, merge_letters):
    tokenizer = bos_tokenizer(merge_letters=merge_letters)
    max_length = 40
    model = tiny_model(tokenizer, max_positions=max_length)
    long = "Background: " + "the quick brown fox jumps over the lazy dog; " * 6 + "so?\nAnswer:"
    contexts = ["Q?\nAnswer:", long, "Is it?\nAnswer:"]
    assert len(tokenizer.encode(long)) > 4 * max_length
    batches: list[list[int]] = []
    real = mcq_backend.each_batch

    def spy(lengths, batch_size, max_tokens, run, *args, **kwargs):
        batches.append(list(lengths))
        return real(lengths, batch_size, max_tokens, run, *args, **kwargs)

    monkeypatch.setattr(mcq_backend, "each_batch", spy)
    calls: list[tuple[int, int]] = []
    ours = choice_loglikelihoods(
        model, tokenizer, contexts, LETTERS, batch_size=8, device="cpu", on_truncate=lambda n, m: calls.append((n, m))
    )
    assert calls == [(1, max_length)]  # one warning for the run, naming the rows and the window
    for context, row in zip(contexts, ours):
        reference = [lm_eval_reference(model, tokenizer, context, c, max_length=max_length) for c in LETTERS]
        assert row == pytest.approx(reference, abs=1e-4)
    # The cut rows run in their own batches: the short rows' batch is never padded to the window.
    assert len(batches) == 2
    assert max(batches[0]) < 20 and min(batches[1]) == max_length


def test_the_model_context_length_is_lm_evals():
    from types import SimpleNamespace

    from pytest_unlearn.engines.lmeval import model_max_length

    tok = SimpleNamespace(model_max_length=1000000000000000019884624838656)
    assert model_max_length(SimpleNamespace(config=SimpleNamespace(n_positions=1024)), tok) == 1024
    assert model_max_length(SimpleNamespace(config=SimpleNamespace(max_position_embeddings=77)), tok) == 77
    assert model_max_length(SimpleNamespace(config=SimpleNamespace()), tok) == 2048  # HFLM._DEFAULT_MAX_LENGTH
    assert model_max_length(SimpleNamespace(config=SimpleNamespace()), SimpleNamespace(model_max_length=512)) == 512


MANIFEST = """
[suite]
name = "bos"
version = "1"
backend = "mcq"

[settings.subsets.facts]
file = "facts"
description = ""

[[checks]]
id = "facts-accuracy"
metric = "mcq.accuracy"
params = { subset = "facts" }
op = "<="
threshold = 1.0
"""


@pytest.fixture
def bos_world(pytester: pytest.Pytester) -> tuple[Path, Path, list[dict]]:
    tokenizer = bos_tokenizer()
    model = tiny_model(tokenizer, max_positions=96)
    folder = pytester.path / "model"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    questions = [
        {"question": "Which colour is the sky?", "choices": ["red", "blue", "green", "black"], "answer": 1},
        {"question": "Long: " + "words and more words " * 8, "choices": ["a", "b", "c", "d"], "answer": 0},
        {"question": "Two plus two?", "choices": ["3", "4", "5", "6"], "answer": 1},
    ]
    data = pytester.path / "facts"
    data.mkdir()
    (data / "facts.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions))
    (pytester.path / "bos.toml").write_text(MANIFEST)
    return folder, data, questions


def _run(pytester: pytest.Pytester, folder: Path, data: Path, *args: str):
    return pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--suite", str(pytester.path / "bos.toml"), f"--model={folder}", f"--data={data}",
        f"--cache-dir={pytester.path / 'cache'}", "--scorecard=card.json", *args,
    )  # fmt: skip


def _context(q: dict) -> str:
    return f"{q['question'].strip()}\nA. {q['choices'][0]}\nB. {q['choices'][1]}\nC. {q['choices'][2]}\nD. {q['choices'][3]}\nAnswer:"


@pytest.mark.parametrize("setting", [None, "false"])
def test_the_plugin_scores_with_lm_evals_bos_and_truncation(pytester, bos_world, setting):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, data, questions = bos_world
    args = () if setting is None else (f"--setting=add_bos_token={setting}",)
    result = _run(pytester, folder, data, *args)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    card = json.loads((pytester.path / "card.json").read_text())
    settings = card["settings"] if "settings" in card else card["suite"]["settings"]
    assert settings["lm_eval_version"] == LM_EVAL_VERSION == "0.4.13"
    assert settings["add_bos_token"] == ("auto (the tokenizer decides)" if setting is None else False)
    warning = (
        "bos: 1 question(s) longer than the model's context (96 tokens) were cut from the left, as lm-eval 0.4.13 does*"
    )
    result.stdout.fnmatch_lines([f"*{warning}"])
    rows = [
        json.loads(line) for line in (pytester.path / card["artifacts"]["mcq_predictions"]).read_text().splitlines()
    ]
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    bos = None if setting is None else False
    for q, row in zip(questions, rows):
        reference = [
            lm_eval_reference(model, tokenizer, _context(q), c, add_bos_token=bos, max_length=96) for c in LETTERS
        ]
        assert list(row["loglikelihoods"].values()) == pytest.approx(reference, abs=1e-4)


def test_a_bad_add_bos_token_is_one_line(pytester, bos_world):
    folder, data, _ = bos_world
    result = _run(pytester, folder, data, "--setting=add_bos_token=maybe")
    assert result.ret != pytest.ExitCode.OK
    result.stderr.fnmatch_lines(
        [
            "ERROR: suite bos (manifest or --setting): setting 'add_bos_token' must be true, false or \"auto\", got 'maybe'*"
        ]
    )
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
