"""The weight-change ratio on real diffusers/transformers modules, checked against numpy."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_unlearn.engines.diffusion import named_parameters, weight_change
from pytest_unlearn.errors import UnlearnError


@pytest.fixture(scope="module")
def tiny_pipe():
    from tests.tiny_models import tiny_sd_modules

    return tiny_sd_modules()


def perturbed(pipe, scale: float, seed: int = 1):
    other = copy.deepcopy(pipe)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in (other.unet.down_blocks[0].attentions[0],):
            for p in module.parameters():
                p.add_(scale * torch.randn(p.shape, generator=generator))
    return other


def test_identical_models_change_nothing(tiny_pipe):
    change = weight_change(named_parameters(tiny_pipe), named_parameters(copy.deepcopy(tiny_pipe)))
    assert change.l2 == 0.0 and change.ratio == 0.0
    assert change.parameters == sum(
        p.numel() for m in (tiny_pipe.unet, tiny_pipe.vae, tiny_pipe.text_encoder) for p in m.parameters()
    )


def test_ratio_is_the_l2_norm_of_the_whole_difference_over_the_parameter_count(tiny_pipe):
    other = perturbed(tiny_pipe, 0.01)
    a = np.concatenate([p.detach().numpy().ravel() for p in named_parameters(tiny_pipe).values()]).astype(np.float64)
    b = np.concatenate([p.detach().numpy().ravel() for p in named_parameters(other).values()]).astype(np.float64)
    change = weight_change(named_parameters(tiny_pipe), named_parameters(other))
    assert change.l2 == pytest.approx(np.linalg.norm(a - b), rel=1e-9)
    assert change.ratio == pytest.approx(np.linalg.norm(a - b) / a.size, rel=1e-9)
    # Only the UNet's first cross-attention block was touched: the breakdown says where.
    assert change.per_component["vae"][0] == 0.0 and change.per_component["text_encoder"][0] == 0.0
    assert change.summary()["top_layers"][0]["layer"].startswith("unet.down_blocks.0.attentions.0")


def test_ratio_grows_with_the_size_of_the_perturbation(tiny_pipe):
    ratios = [
        weight_change(named_parameters(tiny_pipe), named_parameters(perturbed(tiny_pipe, s))).ratio
        for s in (1e-4, 1e-3, 1e-2)
    ]
    assert 0 < ratios[0] < ratios[1] < ratios[2]
    assert ratios[2] / ratios[1] == pytest.approx(10.0, rel=1e-6)  # same noise, ten times larger


def test_another_architecture_is_a_clear_error(tiny_pipe):
    original = named_parameters(tiny_pipe)
    other = dict(original)
    key = next(iter(other))
    other[key] = torch.zeros(3, 3)
    with pytest.raises(
        UnlearnError, match=f"--original-model has another architecture than --model: '{key}' has shape"
    ):
        weight_change(original, other)
    del other[key]
    with pytest.raises(UnlearnError, match="exists in only one of them"):
        weight_change(original, other)


vectors = st.lists(st.floats(-10, 10, allow_nan=False), min_size=1, max_size=20)


@settings(max_examples=40, deadline=None)
@given(vectors, st.data(), st.floats(0.1, 10), st.floats(-5, 5))
def test_ratio_scales_linearly_and_ignores_a_common_shift(theta, data, k, shift):
    delta = data.draw(st.lists(st.floats(-1, 1, allow_nan=False), min_size=len(theta), max_size=len(theta)))
    t = torch.tensor(theta, dtype=torch.float64)
    d = torch.tensor(delta, dtype=torch.float64)
    base = weight_change({"unet.w": t}, {"unet.w": t + d}).ratio
    assert weight_change({"unet.w": t}, {"unet.w": t + k * d}).ratio == pytest.approx(k * base, rel=1e-9, abs=1e-12)
    assert weight_change({"unet.w": t + shift}, {"unet.w": t + d + shift}).ratio == pytest.approx(
        base, rel=1e-6, abs=1e-9
    )


def test_a_pipeline_with_nan_weights_is_refused_at_load(tmp_path):
    """A NaN UNet draws black images, in which no concept is present: it would pass every forget
    check, so loading refuses it with one line naming the flag and the first broken tensor."""
    from safetensors.torch import load_file, save_file

    from pytest_unlearn.engines.diffusion import load_pipeline
    from tests.tiny_models import write_tiny_sd

    write_tiny_sd(tmp_path)
    (weights,) = (tmp_path / "unet").glob("*.safetensors")
    tensors = load_file(weights)
    name = sorted(tensors)[0]
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] = float("nan")
    save_file(tensors, weights)
    with pytest.raises(UnlearnError) as refused:
        load_pipeline(tmp_path, device="cpu", dtype="float32", allow_pickle=False, flag="--original-model")
    message = str(refused.value)
    assert message.startswith(f"--original-model {tmp_path}: the weights hold NaN or infinite values")
    assert name in message and "\n" not in message
