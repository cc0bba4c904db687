"""loading: a checkpoint missing a tensor, with an extra one or one of the wrong shape (transformers, diffusers, image classifiers), a model given as its own original: one line naming the tensor and the file, never a randomly initialised pass.

Issue 23, items 3 and 7.

transformers and diffusers load a checkpoint lacking a tensor with that tensor randomly
initialised (a model whose scores change on every run, and can pass), skip a tensor the model
does not have, and give a multi-line report for a tensor of the wrong shape. Each tampered copy
of a committed world model below is run through the real plugin: the run fails (exit 1, no
passed card) and every check carries one line naming the tensor and the file. A model given as
its own ``--original-model`` is a warning, and a usage error under ``--unlearn-strict``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

pytestmark = pytest.mark.slow

ARCHITECTURE = "the checkpoint does not match the model's architecture"
FIX = "re-save the model with save_pretrained, or check that the weights and config.json belong together"


def tamper(source: Path, dest: Path, weights: str, how: str, name: str) -> Path:
    """A copy of the model folder ``source`` whose ``weights`` file lacks tensor ``name``
    ("missing"), holds an extra one ("unexpected") or holds ``name`` in another shape ("shape")."""
    shutil.copytree(source, dest)
    state = load_file(dest / weights)
    assert name in state
    if how == "missing":
        del state[name]
    elif how == "unexpected":
        state["extra.injected.weight"] = torch.zeros(4, 4)
    else:
        state[name] = torch.zeros(3, 5)
    save_file(state, dest / weights, metadata={"format": "pt"})
    return dest


def run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict]:
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--no-cache", "--scorecard=card.json", *args)
    return result, json.loads((pytester.path / "card.json").read_text())


def assert_one_line_per_check(result: pytest.RunResult, card: dict, expected: str) -> None:
    """Exit 1, a card that does not pass, every check erring with ``expected``, no traceback,
    and the libraries' own multi-line load reports kept out of the output."""
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, output[-3000:]
    assert card["passed"] is False
    assert card["checks"] and {check["error"] for check in card["checks"]} == {expected}
    assert all(check["passed"] is False for check in card["checks"])
    first = card["checks"][0]["id"]
    result.stdout.fnmatch_lines([f"{first}: {expected}"])
    assert "Traceback" not in output and "LOAD REPORT" not in output
    assert "PASS" not in [line.split()[-1] for line in result.stdout.lines if line.strip()]


OLMO_TENSOR = "model.layers.0.mlp.up_proj.weight"
CASES = {
    "missing": f"model.safetensors lacks 1 tensor(s) of the model, which the loader would initialise randomly: "
    f"{OLMO_TENSOR}",
    "unexpected": "model.safetensors holds 1 tensor(s) the model does not have: extra.injected.weight",
    "shape": f"1 tensor(s) of the wrong shape: {OLMO_TENSOR} in model.safetensors is [3, 5], the model's is [384, 128]",
}


@pytest.mark.parametrize("how", CASES)
def test_a_causal_lm_checkpoint_that_does_not_match_fails_every_check(pytester, semeval_models, tmp_path, how):
    model = tamper(semeval_models["retrained"], tmp_path / how, "model.safetensors", how, OLMO_TENSOR)
    result, card = run(pytester, "--suite=semeval", f"--model={model}")
    assert_one_line_per_check(result, card, f"--model {model}: {ARCHITECTURE}: {CASES[how]}; {FIX}")
    assert len(card["checks"]) == 16  # the whole suite ran, and none of it on the tampered weights


def test_an_image_classifier_missing_a_tensor_fails_every_check(pytester, mufac_models, tmp_path):
    tensor = "classifier.1.weight"
    model = tamper(mufac_models["retrained"], tmp_path / "model", "model.safetensors", "missing", tensor)
    result, card = run(pytester, "--suite=mufac-mini", f"--model={model}", f"--original-model={mufac_models['target']}")
    assert_one_line_per_check(
        result,
        card,
        f"--model {model}: {ARCHITECTURE}: model.safetensors lacks 1 tensor(s) of the model, which the loader "
        f"would initialise randomly: {tensor}; {FIX}",
    )


def test_an_image_classifier_with_a_wrong_shape_names_the_tensor(pytester, mufac_models, tmp_path):
    tensor = "classifier.1.weight"
    model = tamper(mufac_models["retrained"], tmp_path / "model", "model.safetensors", "shape", tensor)
    result, card = run(pytester, "--suite=mufac-mini", f"--model={model}", f"--original-model={mufac_models['target']}")
    shape = list(load_file(mufac_models["retrained"] / "model.safetensors")[tensor].shape)
    assert_one_line_per_check(
        result,
        card,
        f"--model {model}: {ARCHITECTURE}: 1 tensor(s) of the wrong shape: {tensor} in model.safetensors is [3, 5], "
        f"the model's is [{', '.join(map(str, shape))}]; {FIX}",
    )


def test_a_diffusion_unet_missing_a_tensor_fails_every_check(pytester, genmu_models, tmp_path):
    weights = "unet/diffusion_pytorch_model.safetensors"
    model = tamper(genmu_models["erased"], tmp_path / "erased", weights, "missing", "conv_in.bias")
    result, card = run(
        pytester,
        "--suite=genmu-mini",
        "--batch-size=32",
        f"--model={model}",
        f"--original-model={genmu_models['original']}",
        f"--setting=clip_model={genmu_models['clip']}",
    )
    assert_one_line_per_check(
        result,
        card,
        f"--model {model}: {ARCHITECTURE}: {weights} lacks 1 tensor(s) of the model, which the loader would "
        f"initialise randomly: conv_in.bias; {FIX}",
    )


def test_a_text_encoder_with_an_extra_tensor_is_refused_by_the_pipeline_loader(genmu_models, tmp_path):
    """The diffusers pipeline has no loading report of its own: each weighted component is loaded
    strictly, the transformers text encoder as well as the diffusers UNet and VAE."""
    from pytest_unlearn.engines.diffusion import load_pipeline
    from pytest_unlearn.errors import UnlearnError

    weights = "text_encoder/model.safetensors"
    model = tamper(
        genmu_models["erased"], tmp_path / "erased", weights, "unexpected", "embeddings.position_embedding.weight"
    )
    with pytest.raises(UnlearnError) as refused:
        load_pipeline(model, device="cpu", dtype="float32", allow_pickle=False)
    assert str(refused.value) == (
        f"--model {model}: {ARCHITECTURE}: {weights} holds 1 tensor(s) the model does not have: "
        f"extra.injected.weight; {FIX}"
    )


def test_tied_weights_are_not_reported_missing(semeval_models, tmp_path):
    """A checkpoint saved with tied embeddings has no lm_head tensor: that is no mismatch."""
    from pytest_unlearn.loading import load_causal_lm

    model_dir = tamper(semeval_models["retrained"], tmp_path / "tied", "model.safetensors", "missing", "lm_head.weight")
    config = json.loads((model_dir / "config.json").read_text())
    config["tie_word_embeddings"] = True
    (model_dir / "config.json").write_text(json.dumps(config))
    model, _, _ = load_causal_lm(model_dir, device="cpu", dtype="float32", allow_pickle=False)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    # ...while the same missing tensor without tying is refused.
    config["tie_word_embeddings"] = False
    (model_dir / "config.json").write_text(json.dumps(config))
    from pytest_unlearn.errors import UnlearnError

    with pytest.raises(UnlearnError, match="lacks 1 tensor.*: lm_head.weight;"):
        load_causal_lm(model_dir, device="cpu", dtype="float32", allow_pickle=False)


# --- a model given as its own original --------------------------------------------------------


def self_as_original(model: Path, original: Path, how: str) -> str:
    return (
        f"--model {model} is also --original-model {original} ({how}): the checks relative to --original-model "
        "compare the model with itself and cannot fail for the reason they exist; pass the model "
        "--original-model stands for"
    )


def test_a_model_given_as_its_own_original_is_a_warning(pytester, mufac_models):
    target = mufac_models["target"]
    result, card = run(
        pytester, "--suite=mufac-mini", "--batch-size=64", f"--model={target}", f"--original-model={target}"
    )
    line = self_as_original(target, target, "the same path")
    assert card["warnings"] == [line]
    result.stdout.fnmatch_lines([f"warning: {line}"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # the target still fails its forget checks


def test_a_copy_of_the_model_as_original_is_an_error_under_strict(pytester, mufac_models, tmp_path):
    target = mufac_models["target"]
    copy = tmp_path / "copy"
    shutil.copytree(target, copy)
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--suite=mufac-mini", f"--model={target}", f"--original-model={copy}",
        "--unlearn-strict",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: {self_as_original(target, copy, 'the same weights')} (--strict turns warnings into errors)"]
    )
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_a_reference_that_is_the_model_is_named(tofu_models):
    """TOFU's --reference (the retain model) is the other role a relative check compares with."""
    from pytest_unlearn.evaluation import RunSettings
    from pytest_unlearn.loading import same_model_roles

    model = next(iter(tofu_models.values()))
    others = [p for p in tofu_models.values() if p != model]
    assert same_model_roles(RunSettings(model=model, reference=model)) == (
        f"--model {model} is also --reference {model} (the same path): the checks relative to --reference compare "
        "the model with itself and cannot fail for the reason they exist; pass the model --reference stands for"
    )
    assert same_model_roles(RunSettings(model=model, reference=others[0], original_model=others[-1])) is None
