"""Tiny random model folders for the release-gate tests (seconds to build, no network).

- :func:`write_tiny_olmo`: an OLMo causal LM (hidden size 16) with a byte-level tokenizer,
  saved as ``save_pretrained`` writes it, so the semeval loader takes it for a real checkpoint;
- :func:`write_tiny_sd`: a Stable Diffusion pipeline folder whose UNet width is a parameter,
  so two of them differ in architecture.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

EOS = "<|endoftext|>"


def byte_level_tokenizer(*, eos: str | None = EOS, pad: str | None = None) -> Any:
    """A BPE tokenizer without merges: one token per byte, plus ``eos`` when given."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    symbols = pre_tokenizers.ByteLevel.alphabet()
    vocab = {symbol: index for index, symbol in enumerate(sorted(symbols))}
    vocab[EOS] = len(vocab)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([EOS])
    kwargs = {key: value for key, value in (("eos_token", eos), ("pad_token", pad)) if value is not None}
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **kwargs)


def tiny_olmo(vocab_size: int, *, seed: int = 0) -> Any:
    import torch
    from transformers import OlmoConfig, OlmoForCausalLM

    config = OlmoConfig(
        vocab_size=vocab_size,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=vocab_size - 1,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    return OlmoForCausalLM(config)


def write_tiny_olmo(folder: Path, *, eos: str | None = EOS, pad: str | None = None, safetensors: bool = True) -> Any:
    """Save a tiny OLMo and its tokenizer in ``folder``; returns the model (to tamper with)."""
    tokenizer = byte_level_tokenizer(eos=eos, pad=pad)
    model = tiny_olmo(len(tokenizer))
    folder.mkdir(parents=True, exist_ok=True)
    if safetensors:
        model.save_pretrained(folder)
    else:
        model.config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    if eos is None:
        # save_pretrained keeps the class default; drop every trace of an eos token.
        config = json.loads((folder / "tokenizer_config.json").read_text())
        config["eos_token"] = None
        config["pad_token"] = None if pad is None else pad
        (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return model


def clip_tokenizer_files(folder: Path) -> None:
    """A CLIP tokenizer without merges (one token per byte), as ``CLIPTokenizer`` reads it."""
    from tokenizers import pre_tokenizers

    symbols = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = [*symbols, *(s + "</w>" for s in symbols), "<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "CLIPTokenizer",
                "model_max_length": 16,
                "bos_token": "<|startoftext|>",
                "eos_token": "<|endoftext|>",
                "pad_token": "<|endoftext|>",
                "unk_token": "<|endoftext|>",
            }
        )
    )


def tiny_sd_modules(*, width: int = 8, seed: int = 0, vocab_size: int = 50, tokenizer: Any = None) -> SimpleNamespace:
    """A random UNet, VAE and CLIP text encoder small enough for a unit test; ``width`` sets the
    UNet's first block width (two widths make two architectures)."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(width, 2 * width),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=4,
        norm_num_groups=4,
    )
    vae = AutoencoderKL(
        block_out_channels=(8,),
        latent_channels=4,
        norm_num_groups=4,
        down_block_types=("DownEncoderBlock2D",),
        up_block_types=("UpDecoderBlock2D",),
    )
    special = (
        {}
        if tokenizer is None
        else {
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        }
    )
    text = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer) if tokenizer is not None else vocab_size,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=16,
            **special,
        )
    )
    return SimpleNamespace(unet=unet, vae=vae, text_encoder=text)


def write_tiny_sd(folder: Path, *, width: int = 8, seed: int = 0) -> None:
    """A random Stable Diffusion folder; ``width`` sets the UNet's first block width."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as scratch:
        clip_tokenizer_files(Path(scratch))
        tokenizer = CLIPTokenizer.from_pretrained(scratch)
    modules = tiny_sd_modules(width=width, seed=seed, tokenizer=tokenizer)
    vae, text, unet = modules.vae, modules.text_encoder, modules.unet
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=DDIMScheduler(
            beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False, steps_offset=1
        ),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
