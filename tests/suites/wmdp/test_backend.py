"""Our batched choice log-likelihoods are lm-evaluation-harness' ``HFLM.loglikelihood``.

The reference below is lm-eval's code path transcribed for one request at a time
(``_encode_pair``, then ``_loglikelihood_tokens``: the unpadded input
``(context_enc + continuation_enc)[:-1]``, ``log_softmax`` of the logits, the continuation's
slice summed). Ours batches with left padding and reads one position when every continuation is
a single token; both paths are compared with it.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from pytest_unlearn.engines.multiple_choice import choice_loglikelihoods, encode_pair  # noqa: E402


def lm_eval_encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole_enc = tokenizer.encode(context + continuation, add_special_tokens=False)
    context_enc = tokenizer.encode(context, add_special_tokens=False)
    return context_enc, whole_enc[len(context_enc) :]


@torch.no_grad()
def lm_eval_loglikelihood(model, tokenizer, context: str, continuation: str) -> float:
    context_enc, continuation_enc = lm_eval_encode_pair(tokenizer, context, continuation)
    inp = torch.tensor((context_enc + continuation_enc)[:-1], dtype=torch.long)[None]
    logits = torch.nn.functional.log_softmax(model(inp).logits, dim=-1)[0]
    inplen, contlen = inp.shape[1], len(continuation_enc)
    logits = logits[inplen - contlen : inplen]
    return float(logits.gather(1, torch.tensor(continuation_enc)[:, None]).sum())


def merging_tokenizer():
    """Byte-level BPE with merges across the space: " A" and "er:" are one token each."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    symbols = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {s: i for i, s in enumerate(symbols)}
    merges = [("Ġ", "A"), ("e", "r"), ("er", ":")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|endoftext|>", pad_token="<|endoftext|>")


def test_encode_pair_is_lm_evals():
    tokenizer = merging_tokenizer()
    for context, continuation in [
        ("Q?\nAnswer:", " A"),  # " A" one token
        ("Q?\nAnswer: ", "A"),  # the trailing space moves to the continuation
        ("Q?\nAnswer:  ", "B"),
        ("Q?\nAnsw", "er:"),  # merges across the boundary: the continuation is whole[len(context):]
    ]:
        assert encode_pair(tokenizer, context, continuation) == lm_eval_encode_pair(tokenizer, context, continuation)
    ctx, cont = encode_pair(tokenizer, "Q?\nAnswer: ", "A")
    assert cont == tokenizer.encode(" A", add_special_tokens=False) and len(cont) == 1


def test_single_token_path_matches_lm_eval_on_the_world_model(wmdp_models):
    from transformers import AutoTokenizer, OlmoForCausalLM

    from fixtures import wmdp_world

    path = wmdp_models["target"]
    model = OlmoForCausalLM.from_pretrained(path).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    world = wmdp_world.generate_world()
    # Contexts of different lengths in one batch: left padding must not move a number.
    contexts = [wmdp_world.hazardous_context("bio", it) for it in world.hazardous["bio"][:3]]
    contexts += [wmdp_world.mmlu_context("geography", it) for it in world.mmlu_test["geography"][:3]]
    contexts.append("The following are multiple choice questions")
    continuations = [" A", " B", " C", " D"]
    ours = choice_loglikelihoods(model, tokenizer, contexts, continuations, batch_size=4, device="cpu")
    for context, row in zip(contexts, ours):
        reference = [lm_eval_loglikelihood(model, tokenizer, context, c) for c in continuations]
        assert row == pytest.approx(reference, abs=1e-4)
    # The world's target model knows its answers: each prediction is the answer.
    answers = [it.answer for it in world.hazardous["bio"][:3]] + [it.answer for it in world.mmlu_test["geography"][:3]]
    assert [max(range(4), key=row.__getitem__) for row in ours[:6]] == answers


def test_multi_token_path_matches_lm_eval():
    from tests.tiny_models import byte_level_tokenizer, tiny_olmo

    tokenizer = byte_level_tokenizer(pad="<|endoftext|>")
    tokenizer.padding_side = "left"
    model = tiny_olmo(len(tokenizer)).eval()
    # Byte-level without merges: " A" is two tokens, " yes please" eleven.
    contexts = ["Is it?\nAnswer:", "A longer question, with more bytes in it?\nAnswer:", "Q:\nAnswer: "]
    continuations = [" A", " no", " yes please"]
    ours = choice_loglikelihoods(model, tokenizer, contexts, continuations, batch_size=3, device="cpu")
    for context, row in zip(contexts, ours):
        reference = [lm_eval_loglikelihood(model, tokenizer, context, c) for c in continuations]
        assert row == pytest.approx(reference, abs=1e-4)
