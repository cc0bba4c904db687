"""The transformed copies ``--stress`` scores (``stress`` is a :class:`pytest_unlearn.stress.Stress`,
which imports this module lazily, so its type is not imported here): a causal LM quantized (bitsandbytes) or fine-tuned
a few steps (a plain AdamW loop, or LoRA through peft), saved as a model folder.

The copy is an ordinary safetensors folder holding the *dequantized* (or fine-tuned) weights, so
every suite's engine loads and scores it as it loads ``--model``, and its passes are cached
under its own content fingerprint. Copies are kept under the artifact cache (``stress/``), keyed
by the source model's fingerprint, the stress's parameters and the library versions: a rerun
reuses them.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from pytest_unlearn.errors import UnlearnError

#: Weight files of the source folder that the copy replaces (everything else is copied over).
_WEIGHT_FILES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")
#: Modules bitsandbytes leaves in full precision when transformers quantizes a causal LM: the
#: output head (``llm_int8_skip_modules`` defaults to it); embeddings are not ``nn.Linear``.
_SKIPPED = ("lm_head",)
_BLOCK = 64


def _bitsandbytes() -> Any:
    from pytest_unlearn.noise import import_quietly

    import_quietly("bitsandbytes")  # its import logs a missing optional package and warns 14 times
    try:
        from bitsandbytes import functional
    except ImportError as exc:
        raise UnlearnError(
            f"--stress quantize needs bitsandbytes ({exc}); pip install -c constraints.txt -e '.[stress]'"
        ) from None
    return functional


@contextmanager
def _no_progress_bars() -> Iterator[None]:
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            hf_logging.enable_progress_bar()


def quantize_weight(weight: torch.Tensor, scheme: str) -> torch.Tensor:
    """``weight`` quantized by bitsandbytes and dequantized again, in its own dtype.

    ``int4``/``nf4``: the tensor's elements in row-major blocks of 64, each scaled by its absmax
    onto the FP4 (or NF4) code book and rounded to the nearest code (``quantize_4bit``).
    ``int8``: each output row scaled by its absmax to ±127 and rounded (``int8_vectorwise_quant``).
    """
    functional = _bitsandbytes()
    if scheme in ("int4", "nf4"):
        packed, state = functional.quantize_4bit(
            weight.contiguous(), blocksize=_BLOCK, quant_type="fp4" if scheme == "int4" else "nf4"
        )
        return functional.dequantize_4bit(packed, state).to(weight.dtype).reshape(weight.shape)
    if scheme == "int8":
        rows = weight.float().contiguous()
        quantized, row_absmax, _ = functional.int8_vectorwise_quant(rows)
        return (quantized.float() * row_absmax.float().unsqueeze(1) / 127.0).to(weight.dtype)
    raise UnlearnError(f"--stress quantize:{scheme}: unknown scheme")


def quantize_linears(model: Any, scheme: str) -> int:
    """Every ``nn.Linear`` weight of ``model`` except the output head, in place; how many."""
    count = 0
    with torch.no_grad():
        for name, module in model.named_modules():
            if not isinstance(module, torch.nn.Linear) or name.split(".")[-1] in _SKIPPED:
                continue
            module.weight.copy_(quantize_weight(module.weight.data, scheme))
            count += 1
    return count


def _peft() -> tuple[Any, Any]:
    """peft's ``LoraConfig`` and ``get_peft_model``, imported without bitsandbytes' noise."""
    from pytest_unlearn.noise import import_quietly

    import_quietly("bitsandbytes")  # peft imports it: first, without its noise
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:
        raise UnlearnError(
            f"--stress relearn:lora=true needs peft ({exc}); pip install -c constraints.txt -e '.[stress]'"
        ) from None
    return LoraConfig, get_peft_model


def draws(count: int, params: dict[str, Any]) -> list[list[int]]:
    """Which of ``count`` examples each of relearn's ``steps`` trains on: batches of ``batch`` in
    an order shuffled by ``seed``, cycled (an epoch shorter than the steps starts again)."""
    batch = int(params["batch"])
    order = list(range(count))
    random.Random(int(params["seed"])).shuffle(order)
    return [
        [order[(step * batch + i) % count] for i in range(min(batch, count))] for step in range(int(params["steps"]))
    ]


def _fine_tune(
    model: Any, params: dict[str, Any], lora: dict[str, Any], loss_at: Callable[[Any, int], torch.Tensor]
) -> tuple[list[float], Any]:
    """``steps`` AdamW steps at ``lr`` of ``loss_at(model, step)`` on every trainable weight of
    ``model``, or (``lora=true``) on LoRA adapters made with ``lora`` (peft's ``LoraConfig``
    arguments) and merged back after: the loss of each step and the trained model. The caller
    seeds torch first: LoRA's initial weights are drawn here."""
    if params["lora"]:
        lora_config, get_peft_model = _peft()
        with warnings.catch_warnings():
            # peft 0.21 asks transformers 5 for a renamed attribute: its deprecation, not the user's.
            warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing", category=FutureWarning)
            model = get_peft_model(model, lora_config(r=8, lora_dropout=0.0, **lora))
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=float(params["lr"]))
    losses = []
    model.train()
    for step in range(int(params["steps"])):
        loss = loss_at(model, step)
        if not torch.isfinite(loss):
            raise UnlearnError(f"--stress relearn: the loss became {loss.item()} at step {step + 1}; lower lr")
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.item()))
    if params["lora"]:
        model = model.merge_and_unload()
    model.eval()
    return losses, model


def relearn(model: Any, tokenizer: Any, texts: list[str], params: dict[str, Any]) -> tuple[list[float], Any]:
    """``steps`` AdamW steps of next-token loss over ``texts`` (batches of ``batch`` in a seeded
    order, cycled), on all weights or LoRA adapters merged back after: the loss of each step and
    the trained model."""
    torch.manual_seed(int(params["seed"]))
    drawn = draws(len(texts), params)

    def loss_at(model: Any, step: int) -> torch.Tensor:
        picked = [texts[i] for i in drawn[step]]
        encoded = tokenizer(picked, return_tensors="pt", padding=True, truncation=True, max_length=512)
        labels = encoded.input_ids.masked_fill(encoded.attention_mask == 0, -100)
        return model(**encoded, labels=labels).loss

    side = tokenizer.padding_side
    tokenizer.padding_side = "right"  # positions count from the first token in training
    try:
        return _fine_tune(
            model, params, {"lora_alpha": 16, "target_modules": "all-linear", "task_type": "CAUSAL_LM"}, loss_at
        )
    finally:
        tokenizer.padding_side = side


def _library(stress: Any) -> dict[str, str]:
    import importlib.metadata as md

    names = ["torch", "transformers"]
    names += ["bitsandbytes"] if stress.kind == "quantize" else ["peft"] if stress.params.get("lora") else []
    return {name: md.version(name) for name in names}


def _language_model_copy(
    source: Path, stress: Any, building: Path, where: str, safetensors: bool, texts: list[str] | None
) -> dict[str, Any]:
    """A causal LM's copy into ``building``: its small files, then the transformed weights."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pytest_unlearn.loading import strict_from_pretrained

    model = strict_from_pretrained(
        AutoModelForCausalLM,
        source,
        where=where,
        dtype="auto",
        local_files_only=True,
        trust_remote_code=False,
        use_safetensors=safetensors,
        weights_only=True,
    )
    details: dict[str, Any] = {}
    if stress.kind == "quantize":
        details["tensors_quantized"] = quantize_linears(model, stress.params["scheme"])
    else:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True, trust_remote_code=False)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        if not texts:
            raise UnlearnError(f"{where}: no texts to relearn on")
        dtype = model.dtype
        model = model.float()  # AdamW steps in the stored half precision would round away
        losses, model = relearn(model, tokenizer, texts, stress.params)
        model = model.to(dtype)
        details |= {"losses": [round(v, 6) for v in losses], "texts": len(texts)}
    for file in source.iterdir():
        if file.is_file() and not file.name.endswith(_WEIGHT_FILES) and not file.name.endswith(".index.json"):
            shutil.copy2(file, building / file.name)
    with _no_progress_bars():
        model.save_pretrained(building, safe_serialization=True)
    return details


#: The components of a diffusion pipeline a quantized deployment quantizes (the VAE stays: it is
#: not what unlearning changes, and deployments keep it in half precision).
QUANTIZED_COMPONENTS = ("unet", "text_encoder")
#: The UNet's attention projections LoRA adapts (diffusers' train_text_to_image_lora.py).
UNET_LORA_MODULES = ["to_q", "to_k", "to_v", "to_out.0"]


def _pixels(image: Any, size: int) -> torch.Tensor:
    """An RGB image as a ``3×size×size`` tensor in [-1, 1]: the shorter side resized to ``size``
    (bilinear), centre-cropped, as diffusers' train_text_to_image.py prepares its images."""
    import numpy as np
    from PIL import Image

    image = image.convert("RGB")
    if image.size != (size, size):
        scale = size / min(image.size)
        width, height = max(size, round(image.width * scale)), max(size, round(image.height * scale))
        image = image.resize((width, height), Image.BILINEAR)
        left, top = (width - size) // 2, (height - size) // 2
        image = image.crop((left, top, left + size, top + size))
    array = torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1.0)
    return array.permute(2, 0, 1).contiguous()


def relearn_unet(pipe: Any, examples: list[tuple[str, str, Any]], params: dict[str, Any]) -> tuple[list[float], Any]:
    """``steps`` AdamW steps of the denoising loss on ``examples`` ((id, caption, image), batches
    of ``batch`` in a seeded order, cycled) for the pipeline's UNet only, the text encoder and
    VAE frozen (Suriyakumar et al. 2024; diffusers' train_text_to_image.py): the loss of each step
    and the trained UNet.

    Each step: latents = VAE posterior sample × scaling factor, t ~ U{0, num_train_timesteps},
    x_t = the scheduler's ``add_noise``, and the MSE between the UNet's prediction (given the
    caption's text-encoder states) and the noise, or v for a v-prediction scheduler. One seeded
    generator draws, per step and in this order, the latents, the noise and the timesteps.
    """
    import torch.nn.functional as F
    from diffusers import DDPMScheduler

    seed = int(params["seed"])
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    drawn = draws(len(examples), params)
    unet, vae, text_encoder, tokenizer = pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer
    vae.requires_grad_(False).eval()
    text_encoder.requires_grad_(False).eval()
    # The training schedule of the sampler's config, as train_text_to_image.py builds it.
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    size = int(unet.config.sample_size) * int(pipe.vae_scale_factor)

    def loss_at(model: Any, step: int) -> torch.Tensor:
        picked = [examples[i] for i in drawn[step]]
        pixels = torch.stack([_pixels(image, size) for _, _, image in picked])
        with torch.no_grad():
            latents = vae.encode(pixels).latent_dist.sample(generator=generator) * vae.config.scaling_factor
            ids = tokenizer(
                [caption for _, caption, _ in picked],
                padding="max_length",
                max_length=tokenizer.model_max_length,
                truncation=True,
                return_tensors="pt",
            ).input_ids
            states = text_encoder(ids)[0]
        noise = torch.randn(latents.shape, generator=generator)
        timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(picked),), generator=generator)
        noisy = noise_scheduler.add_noise(latents, noise, timesteps)
        if noise_scheduler.config.prediction_type == "v_prediction":
            target = noise_scheduler.get_velocity(latents, noise, timesteps)
        elif noise_scheduler.config.prediction_type == "epsilon":
            target = noise
        else:
            raise UnlearnError(
                f"--stress relearn: the pipeline's scheduler predicts {noise_scheduler.config.prediction_type!r}; "
                "relearn trains epsilon or v_prediction UNets"
            )
        return F.mse_loss(model(noisy, timesteps, states).sample.float(), target.float())

    lora = {"lora_alpha": 8, "init_lora_weights": "gaussian", "target_modules": UNET_LORA_MODULES}
    return _fine_tune(unet, params, lora, loss_at)


def _stored_dtype(folder: Path) -> torch.dtype | None:
    """The dtype of the first floating tensor stored in ``folder``'s safetensors files."""
    from safetensors import safe_open

    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():
                tensor = handle.get_slice(key)
                dtype = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32}.get(tensor.get_dtype())
                if dtype is not None:
                    return dtype
    return None


def _replace_weights(folder: Path, model: Any) -> None:
    """``model`` saved into ``folder`` (safetensors) in place of the weight files there."""
    for file in folder.iterdir():
        if file.name.endswith(_WEIGHT_FILES) or file.name.endswith(".index.json"):
            file.unlink()
    with _no_progress_bars():
        model.save_pretrained(folder, safe_serialization=True)


def _pipeline_copy(
    source: Path,
    stress: Any,
    building: Path,
    where: str,
    safetensors: bool,
    examples: list[tuple[str, str, Any]] | None,
    allow_pickle: bool,
) -> dict[str, Any]:
    """A diffusers folder's copy into ``building``: every file, then the UNet and text encoder
    with their ``nn.Linear`` weights quantized (bitsandbytes quantizes linear layers only), or
    the UNet alone fine-tuned on ``examples`` (relearn)."""
    from pytest_unlearn.loading import strict_components

    if stress.kind == "relearn":
        from pytest_unlearn.engines.diffusion import load_pipeline

        if not examples:
            raise UnlearnError(f"{where}: no images to relearn on")
        pipe = load_pipeline(source, device="cpu", dtype="float32", allow_pickle=allow_pickle)
        stored = _stored_dtype(source / "unet")
        losses, unet = relearn_unet(pipe, examples, stress.params)
        shutil.copytree(source, building, dirs_exist_ok=True, ignore=shutil.ignore_patterns("BUILD_INFO.json", ".*"))
        # AdamW steps in float32 (half precision would round them away), stored as the source was.
        _replace_weights(building / "unet", unet if stored in (None, unet.dtype) else unet.to(stored))
        return {
            "losses": [round(v, 6) for v in losses],
            "components": {"unet": "fine-tuned"},
            # The images the steps reached (in first-use order), of those offered.
            "images": [
                {"id": examples[i][0], "text": examples[i][1]}
                for i in dict.fromkeys(i for step in draws(len(examples), stress.params) for i in step)
            ],
            "images_offered": len(examples),
        }
    components = strict_components(source, where=where, dtype=torch.float32, use_safetensors=safetensors)
    shutil.copytree(source, building, dirs_exist_ok=True, ignore=shutil.ignore_patterns("BUILD_INFO.json", ".*"))
    counts = {}
    for name in QUANTIZED_COMPONENTS:
        model = components.get(name)
        if model is None:
            continue
        counts[name] = quantize_linears(model, stress.params["scheme"])
        _replace_weights(building / name, model)
    return {"tensors_quantized": sum(counts.values()), "components": counts}


def image_digest(image: Any) -> str:
    """The sha256 of an image's RGB pixels and size: what a relearn copy's cache key holds of it."""
    import hashlib

    import numpy as np

    rgb = image.convert("RGB")
    return hashlib.sha256(f"{rgb.width}x{rgb.height}".encode() + np.asarray(rgb).tobytes()).hexdigest()


def stressed_copy(
    source: Path,
    stress: Any,
    root: Path,
    *,
    texts: list[str] | None = None,
    images: list[tuple[str, str, Any]] | None = None,
    allow_pickle: bool = False,
) -> dict[str, Any]:
    """The folder of ``source`` transformed by ``stress`` under ``root`` (made once, then
    reused), and the card's record of it: path, library versions, parameters, timings, peak
    memory, how many tensors changed, relearn's losses and what it trained on. ``texts`` train a
    causal LM, ``images`` ((id, caption, image)) a diffusion pipeline's UNet."""
    from pytest_unlearn.cache import make_key, model_digest
    from pytest_unlearn.loading import inspect_model_folder
    from pytest_unlearn.memory import process_peak_mib

    folder = inspect_model_folder(source, allow_pickle=allow_pickle)
    library = _library(stress)
    if (Path(source) / "model_index.json").is_file():
        import importlib.metadata as md

        library["diffusers"] = md.version("diffusers")
    parts: dict[str, Any] = {"model": model_digest(source), "stress": stress.record(), "library": library}
    if texts is not None:
        parts["texts"] = texts
    if images is not None:  # (id, caption, image): keyed by the pixels, not by where they came from
        parts["images"] = [[image_id, caption, image_digest(image)] for image_id, caption, image in images]
    key = make_key("stress-copy", **parts)
    target = root / f"{stress.name}-{key[:16]}"
    # Beside the folder, not in it: the copy's own fingerprint (its outputs' cache key) must
    # not change with the seconds it took to make.
    marker = target.with_name(target.name + ".json")
    if marker.is_file() and target.is_dir():
        try:
            record = json.loads(marker.read_text())
            return {**record, "path": str(target), "reused": True}
        except (OSError, ValueError):
            pass  # a torn record: the copy is made again below
    started = time.perf_counter()
    where = f"--stress {stress.name} of --model {source}"
    root.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{stress.name}-", dir=root))
    try:
        if (Path(source) / "model_index.json").is_file():
            details = _pipeline_copy(
                Path(source), stress, building, where, bool(folder.safetensors), images, allow_pickle
            )
        else:
            details = _language_model_copy(Path(source), stress, building, where, bool(folder.safetensors), texts)
        record = {
            "stress": stress.record(),
            "source": str(source),
            "source_fingerprint": parts["model"],
            "library": library,
            "seconds": round(time.perf_counter() - started, 3),
            "peak_rss_mib": round(process_peak_mib(), 1),
            **details,
        }
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        os.replace(building, target)
        marker.write_text(json.dumps(record, indent=1, sort_keys=True))
    except BaseException as exc:
        shutil.rmtree(building, ignore_errors=True)
        if not isinstance(exc, OSError):
            raise
        raise UnlearnError(
            f"{where}: cannot write the copy under {root} ({exc}); free space or pass --cache-dir"
        ) from None
    return {**record, "path": str(target), "reused": False}
