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
from collections.abc import Iterator
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


def relearn(model: Any, tokenizer: Any, texts: list[str], params: dict[str, Any]) -> tuple[list[float], Any]:
    """``steps`` AdamW steps of next-token loss over ``texts`` (batches of ``batch`` in a seeded
    order, cycled), on all weights or LoRA adapters merged back after: the loss of each step and
    the trained model."""
    seed, steps, batch = int(params["seed"]), int(params["steps"]), int(params["batch"])
    torch.manual_seed(seed)
    if params["lora"]:
        from pytest_unlearn.noise import import_quietly

        import_quietly("bitsandbytes")  # peft imports it: first, without its noise
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError as exc:
            raise UnlearnError(
                f"--stress relearn:lora=true needs peft ({exc}); pip install -c constraints.txt -e '.[stress]'"
            ) from None
        config = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
        with warnings.catch_warnings():
            # peft 0.21 asks transformers 5 for a renamed attribute: its deprecation, not the user's.
            warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing", category=FutureWarning)
            model = get_peft_model(model, config)
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=float(params["lr"]))
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    side = tokenizer.padding_side
    tokenizer.padding_side = "right"  # positions count from the first token in training
    losses = []
    model.train()
    try:
        for step in range(steps):
            picked = [texts[order[(step * batch + i) % len(order)]] for i in range(min(batch, len(order)))]
            encoded = tokenizer(picked, return_tensors="pt", padding=True, truncation=True, max_length=512)
            labels = encoded.input_ids.masked_fill(encoded.attention_mask == 0, -100)
            loss = model(**encoded, labels=labels).loss
            if not torch.isfinite(loss):
                raise UnlearnError(f"--stress relearn: the loss became {loss.item()} at step {step + 1}; lower lr")
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.item()))
    finally:
        tokenizer.padding_side = side
    if params["lora"]:
        model = model.merge_and_unload()
    model.eval()
    return losses, model


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


def _pipeline_copy(source: Path, stress: Any, building: Path, where: str, safetensors: bool) -> dict[str, Any]:
    """A diffusers folder's copy into ``building``: every file, then the UNet and text encoder
    with their ``nn.Linear`` weights quantized (bitsandbytes quantizes linear layers only)."""
    from pytest_unlearn.loading import strict_components

    if stress.kind != "quantize":
        raise UnlearnError(f"{where}: relearning a diffusion pipeline is not built yet; --stress quantize:* works")
    components = strict_components(source, where=where, dtype=torch.float32, use_safetensors=safetensors)
    shutil.copytree(source, building, dirs_exist_ok=True, ignore=shutil.ignore_patterns("BUILD_INFO.json", ".*"))
    counts = {}
    for name in QUANTIZED_COMPONENTS:
        model = components.get(name)
        if model is None:
            continue
        counts[name] = quantize_linears(model, stress.params["scheme"])
        for file in (building / name).iterdir():
            if file.name.endswith(_WEIGHT_FILES) or file.name.endswith(".index.json"):
                file.unlink()
        with _no_progress_bars():
            model.save_pretrained(building / name, safe_serialization=True)
    return {"tensors_quantized": sum(counts.values()), "components": counts}


def stressed_copy(
    source: Path,
    stress: Any,
    root: Path,
    *,
    texts: list[str] | None = None,
    allow_pickle: bool = False,
) -> dict[str, Any]:
    """The folder of ``source`` transformed by ``stress`` under ``root`` (made once, then
    reused), and the card's record of it: path, library versions, parameters, timings, peak
    memory, how many tensors changed."""
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
            details = _pipeline_copy(Path(source), stress, building, where, bool(folder.safetensors))
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
