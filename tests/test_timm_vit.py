"""A timm ViT folder loads as transformers' ViTForImageClassification with timm's logits, proved
without timm: ``timm_vit_forward`` is timm's VisionTransformer forward written out from
timm/models/vision_transformer.py (``forward_features``, ``_pos_embed``, ``Block``) and
timm/layers/attention.py (``Attention``), over a tiny random state dict in timm's layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_unlearn.errors import UnlearnError

# 32 px, patch 8, dim 24, 2 blocks, 3 heads, 4 classes, MLP ratio 4.
TINY = {"img_size": 32, "patch_size": 8, "embed_dim": 24, "depth": 2, "num_heads": 3, "num_classes": 4}


def timm_state(seed: int = 0, *, img_size: int = 32, num_classes: int = 4, **arch: int) -> dict:
    """A random state dict with timm VisionTransformer's keys and shapes (class token, qkv bias)."""
    import torch

    a = {**TINY, "img_size": img_size, "num_classes": num_classes, **arch}
    d, p, inner = a["embed_dim"], a["patch_size"], 4 * a["embed_dim"]
    g = torch.Generator().manual_seed(seed)

    def rand(*shape: int, scale: float = 0.2, mean: float = 0.0):
        return mean + scale * torch.randn(*shape, generator=g)

    state = {
        "cls_token": rand(1, 1, d),
        "pos_embed": rand(1, (img_size // p) ** 2 + 1, d),
        "patch_embed.proj.weight": rand(d, 3, p, p),
        "patch_embed.proj.bias": rand(d),
        "norm.weight": rand(d, mean=1.0),
        "norm.bias": rand(d),
        "head.weight": rand(num_classes, d),
        "head.bias": rand(num_classes),
    }
    for i in range(a["depth"]):
        b = f"blocks.{i}"
        state |= {f"{b}.norm1.weight": rand(d, mean=1.0), f"{b}.norm1.bias": rand(d)}
        state |= {f"{b}.attn.qkv.weight": rand(3 * d, d), f"{b}.attn.qkv.bias": rand(3 * d)}
        state |= {f"{b}.attn.proj.weight": rand(d, d), f"{b}.attn.proj.bias": rand(d)}
        state |= {f"{b}.norm2.weight": rand(d, mean=1.0), f"{b}.norm2.bias": rand(d)}
        state |= {f"{b}.mlp.fc1.weight": rand(inner, d), f"{b}.mlp.fc1.bias": rand(inner)}
        state |= {f"{b}.mlp.fc2.weight": rand(d, inner), f"{b}.mlp.fc2.bias": rand(d)}
    return state


def timm_vit_forward(state: dict, pixels, num_heads: int):
    """timm's VisionTransformer.forward for the plain layout (global_pool 'token', eps 1e-6)."""
    import torch
    import torch.nn.functional as F

    def norm(x, name):
        return F.layer_norm(x, x.shape[-1:], state[f"{name}.weight"], state[f"{name}.bias"], eps=1e-6)

    def linear(x, name):
        return F.linear(x, state[f"{name}.weight"], state.get(f"{name}.bias"))

    w = state["patch_embed.proj.weight"]
    x = F.conv2d(pixels, w, state["patch_embed.proj.bias"], stride=w.shape[-1])  # PatchEmbed
    x = x.flatten(2).transpose(1, 2)  # NCHW -> NLC
    batch, _, dim = x.shape
    x = torch.cat([state["cls_token"].expand(batch, -1, -1), x], dim=1) + state["pos_embed"]  # _pos_embed
    head_dim = dim // num_heads
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    for i in range(depth):
        b = f"blocks.{i}"
        h = norm(x, f"{b}.norm1")
        q, k, v = linear(h, f"{b}.attn.qkv").reshape(batch, -1, 3, num_heads, head_dim).permute(2, 0, 3, 1, 4)
        attn = ((q * head_dim**-0.5) @ k.transpose(-2, -1)).softmax(dim=-1)
        x = x + linear((attn @ v).transpose(1, 2).reshape(batch, -1, dim), f"{b}.attn.proj")
        x = x + linear(F.gelu(linear(norm(x, f"{b}.norm2"), f"{b}.mlp.fc1")), f"{b}.mlp.fc2")
    x = norm(x, "norm")
    return linear(x[:, 0], "head")  # forward_head: the class token, then the linear head


def timm_folder(folder: Path, state: dict, architecture: str = "vit_tiny_patch16_224", **model_args) -> Path:
    """``state`` saved as timm's push_to_hf_hub does: config.json (its shape as timm 1.0 writes
    it for ``timm.create_model(architecture, **model_args)``) and model.safetensors."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    classes = state["head.weight"].shape[0]
    args = {**TINY, "num_classes": classes, "in_chans": 3, "global_pool": "token", **model_args}
    config = {
        "architecture": architecture,
        "num_classes": classes,
        "num_features": state["cls_token"].shape[-1],
        "global_pool": "token",
        "model_args": args,
        "pretrained_cfg": {
            "input_size": [3, args["img_size"], args["img_size"]],
            "interpolation": "bicubic",
            "mean": [0.5, 0.5, 0.5],
            "std": [0.5, 0.5, 0.5],
            "num_classes": classes,
            "first_conv": "patch_embed.proj",
            "classifier": "head",
        },
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    return folder


def test_a_timm_folder_gives_timm_logits(tmp_path):
    import torch

    from pytest_unlearn.loading import load_image_classifier

    state = timm_state()
    folder = timm_folder(tmp_path / "vit", state)
    model, processor = load_image_classifier(folder, device="cpu", where="--model X", need_processor=False)
    assert processor is None
    assert type(model).__name__ == "ViTForImageClassification"
    assert not any(t.is_meta for t in [*model.parameters(), *model.buffers()])
    pixels = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = model(pixel_values=pixels).logits
        expected = timm_vit_forward(state, pixels, num_heads=3)
    assert got.shape == (3, 4)
    assert torch.allclose(got, expected, atol=1e-5, rtol=0), (got - expected).abs().max()


def test_the_heads_come_from_the_architecture_name(tmp_path):
    """timm's config.json for a stock model records no num_heads: ViT-S's 6 come from its name."""
    import torch

    from pytest_unlearn.timm_vit import load_timm_vit

    state = timm_state(2, embed_dim=384, depth=1)
    folder = timm_folder(tmp_path / "vit-s", state, architecture="vit_small_patch8_32")
    config = json.loads((folder / "config.json").read_text())
    config["model_args"] = {"num_classes": 4, "in_chans": 3, "global_pool": "token", "img_size": [32, 32]}
    (folder / "config.json").write_text(json.dumps(config))
    model = load_timm_vit(folder, where="--model X")
    assert model.config.num_attention_heads == 6
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        got, expected = model(pixel_values=pixels).logits, timm_vit_forward(state, pixels, num_heads=6)
    assert torch.allclose(got, expected, atol=1e-5, rtol=0)


def _refusal(folder: Path) -> str:
    from pytest_unlearn.timm_vit import load_timm_vit

    with pytest.raises(UnlearnError) as info:
        load_timm_vit(folder, where="--setting style_classifier=DIR")
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_non_vit_architecture_is_refused_naming_the_file(tmp_path):
    folder = timm_folder(tmp_path / "r", timm_state(), architecture="resnet50")
    assert _refusal(folder) == (
        f"--setting style_classifier=DIR: {folder / 'config.json'}: architecture 'resnet50' is not a plain timm ViT; "
        "only vit_* (or deit_*) with a class token and a linear head load (convert other classifiers to a transformers "
        "image-classification folder)"
    )


def test_a_missing_tensor_is_named(tmp_path):
    state = timm_state()
    del state["blocks.1.mlp.fc2.weight"]
    folder = timm_folder(tmp_path / "m", state)
    assert _refusal(folder) == (
        f"--setting style_classifier=DIR: {folder / 'model.safetensors'}: lacks blocks.1.mlp.fc2.weight; "
        "is it a timm ViT state dict (model_state_dict)?"
    )


def test_register_tokens_are_refused(tmp_path):
    import torch

    state = timm_state() | {"reg_token": torch.zeros(1, 4, 24)}
    folder = timm_folder(tmp_path / "reg", state, architecture="vit_tiny_reg4_patch8_32")
    assert _refusal(folder) == (
        f"--setting style_classifier=DIR: {folder / 'model.safetensors'}: reg_token means register tokens, which is "
        "not supported; only the plain ViT loads"
    )


def test_no_safetensors_says_to_convert(tmp_path):
    folder = timm_folder(tmp_path / "p", timm_state())
    (folder / "model.safetensors").unlink()
    assert _refusal(folder) == (
        f"--setting style_classifier=DIR: {folder / 'model.safetensors'}: no such file; a timm folder loads from "
        "safetensors only (convert a .pth once, see docs/suites/unlearncanvas.md)"
    )


def test_the_generic_judge_asks_for_an_image_processor(tmp_path):
    from pytest_unlearn.engines.judges import classifier_judge

    folder = timm_folder(tmp_path / "j", timm_state())
    with pytest.raises(UnlearnError) as info:
        classifier_judge(str(folder), "cpu")
    assert str(info.value) == (
        f"--setting classifier_model={folder}: a timm folder has no image processor; add a preprocessor_config.json "
        "(e.g. a ViTImageProcessor with the size, mean and std the classifier was trained with)"
    )


@pytest.mark.parametrize(
    ("change", "name", "message"),
    [
        (
            lambda s, c: s.update({"blocks.1.mlp.fc1.weight": s["blocks.1.mlp.fc1.weight"][:95]}),
            "model.safetensors",
            "blocks.1.mlp.fc1.weight has shape [95, 24], but the ViT its other tensors describe needs [96, 24]",
        ),
        (
            lambda s, c: s.update({"blocks.0.ls1.gamma": s["norm.bias"].clone()}),
            "model.safetensors",
            "blocks.0.ls1.gamma means layer scale, which is not supported; only the plain ViT loads",
        ),
        (
            lambda s, c: c["model_args"].update({"act_layer": "quick_gelu"}),
            "config.json",
            "model_args act_layer='quick_gelu' is not supported; only the plain ViT (class token, global_pool "
            "'token', linear head) loads",
        ),
        (
            lambda s, c: c["model_args"].pop("num_heads"),
            "config.json",
            "cannot tell the attention heads of 'vit_tiny_patch16_224' with embed dim 24; add \"model_args\": "
            '{"num_heads": N} as timm was given it',
        ),
        (
            lambda s, c: c.update({"num_classes": 5}),
            "config.json",
            "num_classes 5, but head.weight has 4 rows",
        ),
    ],
    ids=["wrong-shape", "layer-scale", "act-layer", "no-heads", "num-classes"],
)
def test_what_a_timm_folder_gets_wrong_is_one_line(tmp_path, change, name, message):
    state = timm_state()
    folder = timm_folder(tmp_path / "v", state)
    config = json.loads((folder / "config.json").read_text())
    change(state, config)
    timm_folder(folder, state)
    (folder / "config.json").write_text(json.dumps(config))
    assert _refusal(folder) == f"--setting style_classifier=DIR: {folder / name}: {message}"
