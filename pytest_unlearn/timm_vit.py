"""A timm Vision Transformer folder (``config.json`` with ``architecture``, as timm's
``push_to_hf_hub`` writes it, and ``model.safetensors``) loaded as transformers'
``ViTForImageClassification``, without timm: the state dict is renamed in memory with the mapping
of transformers' ``convert_vit_timm_to_pytorch.py`` and the config read off the tensor shapes.

Only the original ViT layout loads: a class token, position embeddings that include it, pre-norm
blocks (LayerNorm eps 1e-6, GELU MLP, one ``qkv`` projection), a final norm and a linear head on
the class token (timm's ``vit_*`` with ``global_pool='token'``, e.g. UnlearnCanvas' ViT-L/16
classifiers). Anything else is refused in one line naming the file.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from pytest_unlearn.errors import UnlearnError

WEIGHTS = "model.safetensors"

#: (embed dim, heads) of timm's named ViT sizes (vision_transformer.py's model entrypoints); the
#: heads cannot be read off a tensor, so a name outside this table needs ``model_args.num_heads``.
SIZES = {
    "tiny": (192, 3),
    "small": (384, 6),
    "base": (768, 12),
    "large": (1024, 16),
    "huge": (1280, 16),
    "giant": (1408, 16),
    "gigantic": (1664, 16),
}

#: model_args that do not change the forward pass at inference (or are checked below); any other
#: (act_layer, norm_layer, init_values, reg_tokens, no_embed_class, ...) is another layout.
PLAIN_ARGS = {
    "img_size", "patch_size", "in_chans", "num_classes", "embed_dim", "depth", "num_heads", "mlp_ratio",
    "qkv_bias", "global_pool", "class_token", "drop_rate", "pos_drop_rate", "patch_drop_rate",
    "proj_drop_rate", "attn_drop_rate", "drop_path_rate",
}  # fmt: skip

#: What a key outside the plain layout means, for the refusal.
VARIANTS = {
    "dist_token": "a distillation token (DeiT distilled)",
    "head_dist": "a distillation head (DeiT distilled)",
    "reg_token": "register tokens",
    "fc_norm": "average pooling with fc_norm",
    "norm_pre": "a pre-norm before the blocks (CLIP-style)",
    "attn_pool": "attention pooling",
    "ls1": "layer scale",
    "ls2": "layer scale",
    "q_norm": "query/key normalisation",
    "k_norm": "query/key normalisation",
    "patch_embed.norm": "a normalised patch embedding",
}


def is_timm_folder(path: Path) -> bool:
    """Whether ``path``'s config.json is timm's (``architecture``, no transformers ``model_type``)."""
    try:
        config = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and "architecture" in config and "model_type" not in config


def _refuse(where: str, path: Path, name: str, message: str) -> UnlearnError:
    return UnlearnError(f"{where}: {path / name}: {message}")


def vit_config(config: dict[str, Any], shapes: dict[str, tuple[int, ...]], *, where: str, path: Path) -> dict[str, Any]:
    """ViTConfig keyword arguments for a timm ViT of ``config`` (its config.json) whose state dict
    has these tensor ``shapes``; refuses a layout other than the plain class-token ViT."""
    arch = str(config.get("architecture"))
    args = config.get("model_args") or {}
    if not re.match(r"(vit|deit)_", arch) or "distilled" in arch:
        raise _refuse(
            where,
            path,
            "config.json",
            f"architecture {arch!r} is not a plain timm ViT; only vit_* (or deit_*) with a class token and a linear "
            "head load (convert other classifiers to a transformers image-classification folder)",
        )
    if not isinstance(args, dict):
        raise _refuse(where, path, "config.json", "model_args must be a table of timm's model arguments")
    other = sorted(set(args) - PLAIN_ARGS)
    pool = args.get("global_pool", config.get("global_pool", "token"))
    if other or pool != "token" or args.get("class_token", True) is not True:
        what = (
            f"model_args {other[0]}={args[other[0]]!r}"
            if other
            else f"global_pool={pool!r}"
            if pool != "token"
            else f"class_token={args.get('class_token')!r}"
        )
        raise _refuse(
            where,
            path,
            "config.json",
            f"{what} is not supported; only the plain ViT (class token, global_pool 'token', linear head) loads",
        )
    for key in sorted(shapes):
        root = re.sub(r"^blocks\.[^.]*\.", "", key)
        variant = next((VARIANTS[k] for k in VARIANTS if root.startswith(k) or f".{k}." in key), None)
        if variant:
            raise _refuse(
                where, path, WEIGHTS, f"{key} means {variant}, which is not supported; only the plain ViT loads"
            )
    # The tensors the config is read from, with their ranks (the rest is checked against it).
    need = {
        "patch_embed.proj.weight": 4,
        "cls_token": 3,
        "pos_embed": 3,
        "head.weight": 2,
        "blocks.0.attn.qkv.weight": 2,
    }
    missing = [k for k in need if k not in shapes]
    if missing:
        raise _refuse(where, path, WEIGHTS, f"lacks {missing[0]}; is it a timm ViT state dict (model_state_dict)?")
    odd = [k for k, rank in need.items() if len(shapes[k]) != rank or 0 in shapes[k]]
    if odd:
        raise _refuse(where, path, WEIGHTS, f"{odd[0]} has shape {list(shapes[odd[0]])}, not a timm ViT's")
    blocks = [re.match(r"blocks\.(\d+)\.", k) for k in shapes if k.startswith("blocks.")]
    if not all(blocks):
        name = next(k for k, m in zip([k for k in shapes if k.startswith("blocks.")], blocks) if not m)
        raise _refuse(where, path, WEIGHTS, f"{name} is not a timm ViT block tensor (blocks.N.*)")
    hidden, channels, patch, patch_w = shapes["patch_embed.proj.weight"]
    tokens = shapes["pos_embed"][1]
    grid = math.isqrt(max(tokens - 1, 0))
    if patch != patch_w or grid < 1 or grid * grid != tokens - 1:
        raise _refuse(
            where,
            path,
            WEIGHTS,
            f"pos_embed of {tokens} tokens and {patch}x{patch_w} patches are not a square image with a class token "
            "ahead of its patches; only that layout is supported",
        )
    layers = 1 + max(int(m.group(1)) for m in blocks if m)
    heads = args.get("num_heads")
    if heads is None:
        size = next((SIZES[s] for s in SIZES if f"_{s}_" in f"{arch}_"), None)
        if size is None or size[0] != hidden:
            raise _refuse(
                where,
                path,
                "config.json",
                f"cannot tell the attention heads of {arch!r} with embed dim {hidden}; add "
                '"model_args": {"num_heads": N} as timm was given it',
            )
        heads = size[1]
    if not isinstance(heads, int) or heads < 1 or hidden % heads:
        raise _refuse(where, path, "config.json", f"num_heads {heads!r} does not divide the embed dim {hidden}")
    classes = shapes["head.weight"][0]
    if config.get("num_classes", classes) != classes:
        raise _refuse(
            where, path, "config.json", f"num_classes {config.get('num_classes')!r}, but head.weight has {classes} rows"
        )
    pretrained = config.get("pretrained_cfg")
    labels = (pretrained.get("label_names") if isinstance(pretrained, dict) else None) or config.get("label_names")
    out = {
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": shapes["blocks.0.mlp.fc1.weight"][0]
        if "blocks.0.mlp.fc1.weight" in shapes
        else 4 * hidden,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-6,
        "image_size": grid * patch,
        "patch_size": patch,
        "num_channels": channels,
        "qkv_bias": "blocks.0.attn.qkv.bias" in shapes,
        "num_labels": classes,
    }
    if isinstance(labels, list) and len(labels) == classes:
        out["id2label"] = {i: str(name) for i, name in enumerate(labels)}
        out["label2id"] = {str(name): i for i, name in enumerate(labels)}
    return out


def timm_shapes(kwargs: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Every tensor of the plain timm ViT that ``vit_config``'s ``kwargs`` describe, by shape."""
    d, inner, p = kwargs["hidden_size"], kwargs["intermediate_size"], kwargs["patch_size"]
    tokens = (kwargs["image_size"] // p) ** 2 + 1
    out: dict[str, tuple[int, ...]] = {
        "cls_token": (1, 1, d),
        "pos_embed": (1, tokens, d),
        "patch_embed.proj.weight": (d, kwargs["num_channels"], p, p),
        "patch_embed.proj.bias": (d,),
        "norm.weight": (d,),
        "norm.bias": (d,),
        "head.weight": (kwargs["num_labels"], d),
        "head.bias": (kwargs["num_labels"],),
    }
    for i in range(kwargs["num_hidden_layers"]):
        b = f"blocks.{i}"
        out |= {f"{b}.norm1.weight": (d,), f"{b}.norm1.bias": (d,), f"{b}.attn.qkv.weight": (3 * d, d)}
        if kwargs["qkv_bias"]:
            out[f"{b}.attn.qkv.bias"] = (3 * d,)
        out |= {f"{b}.attn.proj.weight": (d, d), f"{b}.attn.proj.bias": (d,)}
        out |= {f"{b}.norm2.weight": (d,), f"{b}.norm2.bias": (d,)}
        out |= {f"{b}.mlp.fc1.weight": (inner, d), f"{b}.mlp.fc1.bias": (inner,)}
        out |= {f"{b}.mlp.fc2.weight": (d, inner), f"{b}.mlp.fc2.bias": (d,)}
    return out


#: Per block, timm's name -> ViTLayer's: transformers 4 (``convert_vit_timm_to_pytorch.py``'s
#: ``create_rename_keys``) and 5, which renamed ViT's modules (5 still reads 4's checkpoints by
#: renaming at load; here the model is filled directly, so the installed version's names are used).
BLOCK_NAMES = {
    "vit.encoder.layer.": {
        "norm1": "layernorm_before",
        "attn.proj": "attention.output.dense",
        "norm2": "layernorm_after",
        "mlp.fc1": "intermediate.dense",
        "mlp.fc2": "output.dense",
        "query": "attention.attention.query",
        "key": "attention.attention.key",
        "value": "attention.attention.value",
    },
    "vit.layers.": {
        "norm1": "layernorm_before",
        "attn.proj": "attention.o_proj",
        "norm2": "layernorm_after",
        "mlp.fc1": "mlp.fc1",
        "mlp.fc2": "mlp.fc2",
        "query": "attention.q_proj",
        "key": "attention.k_proj",
        "value": "attention.v_proj",
    },
}


def timm_to_transformers(state: dict[str, Any], layers: int, hidden: int, prefix: str) -> dict[str, Any]:
    """timm ViT tensors renamed (and ``qkv`` split into query, key, value) as
    ``ViTForImageClassification``'s whose blocks are ``prefix``N (a :data:`BLOCK_NAMES` key),
    after transformers' ``convert_vit_timm_to_pytorch.py`` (``create_rename_keys``, ``read_in_q_k_v``)."""
    renames = {
        "cls_token": "vit.embeddings.cls_token",
        "pos_embed": "vit.embeddings.position_embeddings",
        "patch_embed.proj.weight": "vit.embeddings.patch_embeddings.projection.weight",
        "patch_embed.proj.bias": "vit.embeddings.patch_embeddings.projection.bias",
        "norm.weight": "vit.layernorm.weight",
        "norm.bias": "vit.layernorm.bias",
        "head.weight": "classifier.weight",
        "head.bias": "classifier.bias",
    }
    names = BLOCK_NAMES[prefix]
    for i in range(layers):
        for ours in ("norm1", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2"):
            for kind in ("weight", "bias"):
                renames[f"blocks.{i}.{ours}.{kind}"] = f"{prefix}{i}.{names[ours]}.{kind}"
    out = {renames.get(key, key): tensor for key, tensor in state.items()}
    for i in range(layers):
        for kind in ("weight", "bias"):
            qkv = out.pop(f"blocks.{i}.attn.qkv.{kind}", None)
            if qkv is None:
                continue
            # timm's qkv output rows are [query; key; value], each ``hidden`` long.
            for j, name in enumerate(("query", "key", "value")):
                out[f"{prefix}{i}.{names[name]}.{kind}"] = qkv[j * hidden : (j + 1) * hidden]
    return out


def load_timm_vit(path: Path, *, where: str) -> Any:
    """``ViTForImageClassification`` (eval mode, CPU) from a timm ViT folder; ``where`` starts errors."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    from transformers import ViTConfig, ViTForImageClassification

    path = Path(path)
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _refuse(where, path, "config.json", f"cannot be read ({exc})") from None
    if not (path / WEIGHTS).is_file():
        raise _refuse(
            where,
            path,
            WEIGHTS,
            "no such file; a timm folder loads from safetensors only (convert a .pth once, see "
            "docs/suites/unlearncanvas.md)",
        )
    try:
        state = load_file(path / WEIGHTS)
    except (SafetensorError, OSError) as exc:
        raise _refuse(where, path, WEIGHTS, f"cannot be read ({exc})") from None
    shapes = {key: tuple(tensor.shape) for key, tensor in state.items()}
    kwargs = vit_config(config, shapes, where=where, path=path)
    expected = timm_shapes(kwargs)
    missing = [k for k in expected if k not in shapes]
    extra = sorted(set(shapes) - set(expected))
    wrong = [k for k in expected if k in shapes and shapes[k] != expected[k]]
    if missing:
        raise _refuse(where, path, WEIGHTS, f"lacks {missing[0]}; is it a timm ViT state dict (model_state_dict)?")
    if extra:
        raise _refuse(where, path, WEIGHTS, f"has {extra[0]}, which the plain ViT has not; only that layout loads")
    if wrong:
        raise _refuse(
            where,
            path,
            WEIGHTS,
            f"{wrong[0]} has shape {list(shapes[wrong[0]])}, but the ViT its other tensors describe needs "
            f"{list(expected[wrong[0]])}",
        )
    # On the meta device the model allocates nothing: ViT-L's 300M random weights would be drawn
    # only to be overwritten; ``assign`` then takes the file's tensors as the parameters.
    with torch.device("meta"):
        model = ViTForImageClassification(ViTConfig(**kwargs))
    wanted = model.state_dict()
    prefix = next((p for p in BLOCK_NAMES if any(k.startswith(p) for k in wanted)), None)
    converted = {}
    if prefix is not None:
        converted = timm_to_transformers(state, kwargs["num_hidden_layers"], kwargs["hidden_size"], prefix)
    if set(converted) != set(wanted):
        import transformers

        raise UnlearnError(
            f"{where}: transformers {transformers.__version__} names ViTForImageClassification's tensors in a way "
            "this plugin does not know; install the version in constraints.txt to load a timm folder"
        )
    model.load_state_dict({k: v.float() for k, v in converted.items()}, strict=True, assign=True)
    return model.eval()
