"""``load_pipeline`` on one original-format Stable Diffusion checkpoint, loaded offline.

A tiny random pipeline is saved as a diffusers folder, written as a CompVis/LDM single file by
``fixtures.sd_single_file``, and loaded back through ``from_single_file`` with ``--model-config``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from fixtures.sd_single_file import write_single_file
from pytest_unlearn.engines.diffusion import generate, load_pipeline, named_parameters
from pytest_unlearn.engines.generation import GenerationSettings
from pytest_unlearn.errors import UnlearnError


def _tiny_pipeline(tokenizer_dir: Path):
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from fixtures.genmu_world import write_tokenizer

    write_tokenizer(tokenizer_dir)
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=16,
        block_out_channels=(16, 32, 64),
        layers_per_block=1,
        # SD v1's pattern (attention everywhere but the coarsest level), and an up level with
        # attention followed by an upsampler, which moves the upsampler to slot 2.
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=64,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        block_out_channels=(16, 32),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=32,
        mid_block_add_attention=True,  # the 1x1-conv attention of the original autoencoder
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    # Every parameter away from its initial value: a weight the loader silently skipped keeps
    # its init (a norm's ones, a bias's zeros) and would otherwise equal the original by chance.
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in (unet, vae, text_encoder):
            for param in module.parameters():
                param.add_(0.02 * torch.randn(param.shape, generator=generator))
    # SD v1's schedule, with the settings diffusers warns about when they are missing.
    scheduler = DDIMScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False, steps_offset=1
    )
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


@pytest.fixture(scope="module")
def sd_world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A saved diffusers folder, a config-only copy of it, and the folder as one LDM file."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("sd-single-file")
    folder = root / "pipeline"
    _tiny_pipeline(root / "tokenizer").save_pretrained(folder, safe_serialization=True)
    # Configs without weights: a component that did not come from the file cannot load at all,
    # instead of quietly loading the folder's own weights and passing the comparison.
    config = root / "config"
    shutil.copytree(folder, config, ignore=shutil.ignore_patterns("*.safetensors"))
    single = write_single_file(folder, root / "tiny-sd-v1.safetensors")
    return {"folder": folder, "config": config, "file": single}


def test_the_written_file_has_the_original_layout_of_sd_v1(sd_world: dict[str, Path]) -> None:
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type, is_clip_model
    from safetensors.torch import load_file

    checkpoint = load_file(sd_world["file"])
    prefixes = {key.split(".")[0] for key in checkpoint}
    assert prefixes == {"model", "first_stage_model", "cond_stage_model"}
    assert infer_diffusers_model_type(checkpoint) == "v1"
    assert is_clip_model(checkpoint)
    # Spot checks of the mappings diffusers' loader undoes: an upsampler after a resnet only
    # (slot 1) and after a resnet and an attention (slot 2), the VAE attention as a 1x1 conv.
    assert "model.diffusion_model.output_blocks.1.1.conv.weight" in checkpoint
    assert "model.diffusion_model.output_blocks.3.2.conv.weight" in checkpoint
    assert checkpoint["first_stage_model.encoder.mid.attn_1.q.weight"].shape == (32, 32, 1, 1)


def test_a_single_file_loads_offline_with_the_weights_and_images_of_its_folder(sd_world: dict[str, Path]) -> None:
    torch.set_num_threads(1)
    kwargs = {"device": "cpu", "dtype": "float32", "allow_pickle": False}
    from_folder = load_pipeline(sd_world["folder"], **kwargs)
    from_file = load_pipeline(sd_world["file"], model_config=sd_world["config"], **kwargs)

    expected, loaded = named_parameters(from_folder), named_parameters(from_file)
    assert sorted(loaded) == sorted(expected)
    different = [name for name, tensor in expected.items() if not torch.equal(tensor, loaded[name])]
    assert different == []

    settings = GenerationSettings(steps=2, guidance=7.5, resolution=32, scheduler="default")
    requests = [("a golf ball on grass", 7)]
    (a,) = generate(from_folder, requests, settings, batch_size=1)
    (b,) = generate(from_file, requests, settings, batch_size=1)
    assert a.size == b.size == (32, 32)
    assert np.array_equal(np.asarray(a), np.asarray(b))


def test_a_single_file_without_model_config_names_the_flag(sd_world: dict[str, Path]) -> None:
    with pytest.raises(UnlearnError, match="--model-config") as info:
        load_pipeline(sd_world["file"], device="cpu", dtype="float32", allow_pickle=False)
    assert str(info.value) == (
        f"--model {sd_world['file']}: a single checkpoint file needs --model-config DIR, a local diffusers folder describing its architecture"
    )


def test_a_pickle_checkpoint_needs_allow_pickle(tmp_path: Path, sd_world: dict[str, Path]) -> None:
    # Refused before it is opened: the bytes are never unpickled.
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"not even a pickle")
    with pytest.raises(UnlearnError, match="--allow-pickle") as info:
        load_pipeline(ckpt, device="cpu", dtype="float32", allow_pickle=False, model_config=sd_world["config"])
    assert str(info.value) == (
        f"--model {ckpt}: a pickle checkpoint, which can run code when loaded; convert it to safetensors or pass --allow-pickle"
    )


@pytest.mark.parametrize("damage", ["missing", "shape"])
def test_a_single_file_that_does_not_match_its_config_is_refused(
    tmp_path: Path, sd_world: dict[str, Path], damage: str
) -> None:
    """diffusers' single-file loader would initialise a tensor the file lacks randomly, without a
    word (issue 23, class "loading"): the load is refused with one line naming the tensor. A
    tensor of the wrong shape is refused by diffusers itself, also in one line."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(sd_world["file"])
    victim = "model.diffusion_model.out.2.bias"
    assert victim in tensors
    damaged = tmp_path / "damaged.safetensors"
    if damage == "missing":
        del tensors[victim]
        start = f"--model {damaged}: the checkpoint does not match the architecture of --model-config"
        expected = "unet lacks 1 tensor(s), which the loader would initialise randomly: conv_out.bias"
    else:
        tensors[victim] = torch.zeros(tensors[victim].shape[0] + 1)
        start = f"--model {damaged}: cannot load the pipeline"
        expected = "UNet2DConditionModel"
    save_file(tensors, damaged)
    with pytest.raises(UnlearnError) as info:
        load_pipeline(damaged, model_config=sd_world["config"], device="cpu", dtype="float32", allow_pickle=False)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(start)
    assert expected in message
