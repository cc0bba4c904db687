"""Model folders: validation before anything heavy is imported, and safe loading.

Checkpoints are often someone else's: only safetensors load by default; pickle-based weights
(``.bin``, ``.pt``, ``.ckpt``) need ``--allow-pickle`` and even then load with
``weights_only=True``; ``trust_remote_code`` is never enabled.
"""

from __future__ import annotations

import contextlib
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.fingerprint import fingerprint, weight_files

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")


@dataclass(frozen=True)
class ModelFolder:
    path: Path
    safetensors: tuple[Path, ...]
    pickles: tuple[Path, ...]


def inspect_model_folder(path: Path, *, allow_pickle: bool, flag: str = "--model") -> ModelFolder:
    """Check that ``path`` is a local transformers/diffusers folder with loadable weights."""
    if not path.exists():
        raise UnlearnError(f"{flag} {path}: no such file or folder; pass a local model folder")
    if not path.is_dir():
        raise UnlearnError(f"{flag} {path}: expected a model folder (with config.json), got a file")
    if not (path / "config.json").is_file() and not (path / "model_index.json").is_file():
        raise UnlearnError(
            f"{flag} {path}: not a model folder (no config.json); pass the folder written by save_pretrained"
        )
    safetensors = tuple(sorted(path.rglob("*.safetensors")))
    pickles = tuple(sorted(p for p in path.rglob("*") if p.suffix in PICKLE_SUFFIXES))
    for file in safetensors:
        check_safetensors_file(file, flag)
    if not safetensors:
        if pickles and not allow_pickle:
            names = ", ".join(p.name for p in pickles[:3])
            raise UnlearnError(
                f"{flag} {path}: only pickle weights ({names}), which can run code when loaded; "
                "convert them to safetensors or pass --allow-pickle"
            )
        if not pickles:
            raise UnlearnError(f"{flag} {path}: no weight files (*.safetensors) in the folder")
    return ModelFolder(path, safetensors, pickles)


def check_safetensors_file(path: Path, flag: str = "--model") -> None:
    """Read the header of a safetensors file and check the file holds every byte it promises.

    A truncated download or a garbage file is then a usage error before any model loads
    (reading the header costs a few kilobytes, even for a 7B checkpoint).
    Format: 8-byte little-endian header length, a JSON header of tensor offsets, the data.
    """
    try:
        reason = _safetensors_problem(path)
    except OSError as exc:
        raise UnlearnError(f"{flag} {path}: cannot read the file ({exc.strerror or exc})") from None
    if reason is not None:
        raise UnlearnError(
            f"{flag} {path}: truncated or corrupt safetensors file ({reason}); re-download it or "
            "re-save the model with save_pretrained"
        )


def _read_header(path: Path) -> tuple[dict[str, Any] | None, int, str | None]:
    """(header, its length, the problem) of a safetensors file; the header is None on a problem."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            return None, 0, f"{size} bytes, shorter than a header"
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > size - 8:
            return None, 0, "the header length points past the end of the file"
        raw = handle.read(header_len)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None, 0, "the header is not JSON"
    if not isinstance(header, dict):
        return None, 0, "the header is not a JSON object"
    return header, header_len, None


def _safetensors_problem(path: Path) -> str | None:
    size = path.stat().st_size
    header, header_len, problem = _read_header(path)
    if header is None:
        return problem
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            return f"tensor {name!r} has no data_offsets"
        end = max(end, offsets[1])
    held = size - 8 - header_len
    if end != held:
        return f"the header describes {end} bytes of tensors, the file holds {held}"
    return None


# -- strict loading ------------------------------------------------------------------------------
# transformers and diffusers load a checkpoint that lacks a tensor with that tensor randomly
# initialised, and skip a tensor the architecture does not have, with a log line at most: such a
# model scores differently on every run and can pass. Every model load goes through
# :func:`strict_from_pretrained`, which asks the library for its loading report and refuses any
# mismatch. Tied weights (an lm_head sharing the embeddings) are not reported missing by the
# libraries, so they are never flagged.

_SHOWN = 5  # tensor names spelled out per kind of mismatch; the rest are counted


def tensor_files(folder: Path) -> dict[str, Path]:
    """Tensor name -> the safetensors file of ``folder`` (not recursive) that holds it."""
    found: dict[str, Path] = {}
    for file in sorted(folder.glob("*.safetensors")):
        try:
            header, _, _ = _read_header(file)
        except OSError:
            continue
        for name in header or {}:
            if name != "__metadata__":
                found.setdefault(name, file)
    return found


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


def _shape(shape: Any) -> str:
    return "[" + ", ".join(str(int(n)) for n in shape) + "]"


def loading_problems(info: dict[str, Any], folder: Path, root: Path | None = None) -> str | None:
    """What a transformers/diffusers loading report (``output_loading_info=True``) says is wrong
    with the checkpoint in ``folder``, as one line naming the tensors and their files; None
    when every tensor of the model came from the checkpoint and every tensor was used."""
    root = root or folder
    where = tensor_files(folder)
    weights = sorted(folder.glob("*.safetensors")) or sorted(p for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)

    def name_of(file: Path) -> str:
        return file.relative_to(root).as_posix() if file.is_relative_to(root) else str(file)

    parts: list[str] = []
    missing = sorted(str(k) for k in info.get("missing_keys") or ())
    if missing:
        files = ", ".join(name_of(f) for f in weights) or name_of(folder)
        parts.append(
            f"{files} lacks {len(missing)} tensor(s) of the model, which the loader would initialise randomly: "
            f"{_names(missing)}"
        )
    unexpected = sorted(str(k) for k in info.get("unexpected_keys") or ())
    by_file: dict[str, list[str]] = {}
    for key in unexpected:
        by_file.setdefault(name_of(where[key]) if key in where else name_of(folder), []).append(key)
    for file, keys in by_file.items():
        parts.append(f"{file} holds {len(keys)} tensor(s) the model does not have: {_names(keys)}")
    mismatched: list[str] = []
    for entry in sorted(info.get("mismatched_keys") or (), key=str):
        if isinstance(entry, (tuple, list)) and len(entry) == 3:
            key, in_file, in_model = entry
            file = name_of(where[key]) if key in where else name_of(folder)
            mismatched.append(f"{key} in {file} is {_shape(in_file)}, the model's is {_shape(in_model)}")
        else:
            mismatched.append(str(entry))
    if mismatched:
        parts.append(f"{len(mismatched)} tensor(s) of the wrong shape: {_names(mismatched)}")
    errors = [
        next((line.strip() for line in str(e).splitlines() if line.strip()), "") for e in info.get("error_msgs") or ()
    ]
    if errors:
        parts.append(f"the loader reported {_names(errors)}")
    return "; ".join(parts) or None


@contextlib.contextmanager
def _quiet_loaders() -> Iterator[None]:
    """The libraries print their own multi-line load report on a mismatch; ours is the one line."""
    import logging

    loggers = [logging.getLogger(name) for name in ("transformers", "diffusers")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def strict_from_pretrained(cls: Any, path: Path, *, where: str, subfolder: str | None = None, **kwargs: Any) -> Any:
    """``cls.from_pretrained(path, **kwargs)`` that refuses a checkpoint not matching the model.

    Missing, unexpected and wrong-shaped tensors are an :class:`UnlearnError` starting with
    ``where`` ("--model DIR") and naming the tensors and the file that holds (or lacks) them.
    ``cls`` is a transformers or diffusers model class; a diffusers pipeline loads its weighted
    components through :func:`strict_components`.
    """
    if subfolder is not None:
        kwargs["subfolder"] = subfolder
    with _quiet_loaders():
        # Shapes are compared by the report rather than raised as a traceback-like RuntimeError.
        model, info = cls.from_pretrained(path, output_loading_info=True, ignore_mismatched_sizes=True, **kwargs)
    folder = Path(path) / subfolder if subfolder else Path(path)
    problem = loading_problems(info, folder, root=Path(path))
    if problem is not None:
        raise UnlearnError(
            f"{where}: the checkpoint does not match the model's architecture: {problem}; re-save the "
            "model with save_pretrained, or check that the weights and config.json belong together"
        )
    return model


#: Components of a diffusers pipeline whose weights an unlearning method changes.
WEIGHTED_COMPONENTS = ("unet", "text_encoder", "vae")


def strict_components(path: Path, *, where: str, dtype: Any, use_safetensors: bool) -> dict[str, Any]:
    """The weighted components of a diffusers folder, each loaded by :func:`strict_from_pretrained`,
    to pass to ``Pipeline.from_pretrained(path, **components)`` (which has no loading report)."""
    import importlib

    from pytest_unlearn.noise import import_quietly

    import_quietly("bitsandbytes")  # diffusers imports it when installed: without its noise

    try:
        index = json.loads((path / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    components: dict[str, Any] = {}
    for name in WEIGHTED_COMPONENTS:
        entry = index.get(name)
        if not (isinstance(entry, list) and len(entry) == 2 and entry[0] in ("diffusers", "transformers")):
            continue
        if not (path / name).is_dir() or not isinstance(entry[1], str):
            continue
        cls = getattr(importlib.import_module(entry[0]), entry[1], None)
        if cls is None:
            continue
        dtype_kwarg = {"dtype": dtype} if entry[0] == "transformers" else {"torch_dtype": dtype}
        components[name] = strict_from_pretrained(
            cls,
            path,
            where=where,
            subfolder=name,
            local_files_only=True,
            use_safetensors=use_safetensors,
            **dtype_kwarg,
        )
    return components


def same_model_roles(settings: Any) -> str | None:
    """The warning when ``--model`` is also given as ``--original-model`` or ``--reference``
    (the same path, or the same weights): every check relative to that role then compares the
    model with itself and cannot fail for the reason it exists."""
    model = getattr(settings, "model", None)
    if model is None:
        return None
    model = Path(model)
    if not model.exists():
        return None
    for flag, attr in (("--original-model", "original_model"), ("--reference", "reference")):
        other = getattr(settings, attr, None)
        if other is None or not Path(other).exists():
            continue
        other = Path(other)
        if model.is_dir() != other.is_dir():
            continue  # a model folder against a logs or predictions file: not the same thing
        same = model.resolve() == other.resolve()
        how = "the same path"
        if not same:
            try:
                # Hash only when the weight files have the same names and sizes (hashes are memoised
                # and the cache keys need them anyway).
                layout = _weight_layout(model)
                same = bool(layout) and layout == _weight_layout(other) and fingerprint(model) == fingerprint(other)
            except OSError:
                same = False
            how = "the same weights"
        if same:
            return (
                f"--model {model} is also {flag} {other} ({how}): the checks relative to {flag} compare the model "
                f"with itself and cannot fail for the reason they exist; pass the model {flag} stands for"
            )
    return None


def _weight_layout(path: Path) -> list[tuple[str, int]]:
    files = weight_files(path)
    return [(f.name if path.is_file() else f.relative_to(path).as_posix(), f.stat().st_size) for f in files]


def first_line(exc: BaseException) -> str:
    """``Type: first line`` of an exception: library errors can span a screen."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def pickle_refusal(exc: BaseException) -> str | None:
    """The reason ``torch.load(weights_only=True)`` refused a file, when that is what ``exc`` is."""
    import pickle

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, pickle.UnpicklingError):
            # torch words it two ways: "WeightsUnpickler error: Unsupported global: GLOBAL io.open
            # was not an allowed global by default. Please …" and "Trying to load unsupported
            # GLOBAL posix.system whose module posix is blocked."
            for line in str(seen).splitlines():
                if "GLOBAL" in line:
                    reason = line.split("WeightsUnpickler error:", 1)[-1].strip()
                    return reason.split(". ")[0].rstrip(".")
            return first_line(seen)
        seen = seen.__cause__ or seen.__context__
    return None


def check_finite(model: Any, path: Path, dtype: Any, flag: str = "--model") -> None:
    """Refuse weights holding NaN or infinity: such a model outputs garbage that can *pass*
    forget checks (it regurgitates nothing), so it must never reach the metrics."""
    import torch

    def finite(tensor: Any) -> bool:
        # One read of the tensor, nothing allocated: a NaN or an infinity makes the sum NaN or
        # infinite, so a finite sum proves every value finite; only a sum that overflowed (or a
        # real bad value) is looked at value by value. torch.isfinite(t).all() writes a bool
        # tensor as large as the weights: 1.9-2.2 s for SmolLM2-135M warm, the sum 0.38 s.
        # Half-precision sums run in float32: float16's own would overflow at 65,504.
        total = tensor.sum(dtype=torch.float32) if tensor.element_size() < 4 else tensor.sum()
        return bool(torch.isfinite(total)) or bool(torch.isfinite(tensor).all())

    weights = model.state_dict()
    bad = [name for name, tensor in weights.items() if tensor.is_floating_point() and not finite(tensor)]
    if bad:
        total = len(weights)
        raise UnlearnError(
            f"{flag} {path}: the weights hold NaN or infinite values ({len(bad)} of {total} tensors, "
            f"first {bad[0]!r}, loaded as {str(dtype).removeprefix('torch.')}); the checkpoint is broken: "
            "check the training run or the conversion"
        )


def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UnlearnError(f"--device {name}: CUDA is not available here; use --device cpu")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise UnlearnError(f"--device {name}: only {torch.cuda.device_count()} GPU(s) visible; pick a lower index")
    return name


def resolve_dtype(name: str, device: str) -> Any:
    """``auto``: bfloat16 on CUDA (what the SemEval scorer loads), float32 elsewhere."""
    import torch

    if name == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, name)


def model_config(path: Path | None) -> dict[str, Any]:
    """A model folder's config.json (empty when absent or unreadable)."""
    import json

    try:
        return json.loads((Path(path) / "config.json").read_text(encoding="utf-8")) if path else {}
    except (OSError, ValueError):
        return {}


def default_token_budget(path: Path | None, device: str) -> tuple[int, str]:
    """Padded tokens per batch that a forward pass without full logits can afford: a quarter of
    the device's memory over the bytes one token's hidden states, key/value cache and MLP take
    in float32 (the chunked logits are bounded apart). Returns (tokens, how it was derived)."""
    import os

    config = model_config(path)
    hidden = int(config.get("hidden_size", 1024))
    layers = int(config.get("num_hidden_layers", 24))
    inner = int(config.get("intermediate_size", 4 * hidden))
    per_token = 4 * (2 * layers * hidden + 6 * hidden + 2 * inner)
    where = "CPU memory"
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            index = int(device.split(":")[1]) if ":" in device else 0
            memory, where = torch.cuda.get_device_properties(index).total_memory, "GPU memory"
    tokens = max(1024, min(262144, int(memory * 0.25 / per_token)))
    return tokens, f"{memory / 2**30:.1f} GiB {where}, {per_token} B per token"


def token_budget(manifest_settings: dict[str, Any], settings: Any) -> tuple[int | None, str]:
    """``--setting max_batch_tokens`` (a positive integer), else the default of the device's
    memory for ``--model`` (None without a model); and where the number came from."""
    from pytest_unlearn.errors import UnlearnError

    raw = manifest_settings.get("max_batch_tokens")
    if raw is not None:
        if not isinstance(raw, int) or isinstance(raw, bool) or raw < 1:
            raise UnlearnError(f"--setting max_batch_tokens must be a positive integer, got {raw!r}")
        return raw, "--setting max_batch_tokens"
    if settings.model is None or not Path(settings.model).is_dir():
        return None, "no model"
    tokens, source = default_token_budget(settings.model, settings.device)
    return tokens, f"from {source}"


def load_causal_lm(path: Path, *, device: str, dtype: str, allow_pickle: bool) -> tuple[Any, Any, str]:
    """Model (eval mode, on ``device``) and tokenizer with the scorer's padding conventions.

    Returns ``(model, tokenizer, device)``. The official scorer sets ``pad_token = eos_token``;
    we pad on the left so batched greedy decoding matches one-prompt-at-a-time decoding.
    """
    folder = inspect_model_folder(path, allow_pickle=allow_pickle)
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise UnlearnError(
            f"the semeval suite needs transformers ({exc}); pip install -c constraints.txt -e '.[llm]'"
        ) from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    except Exception as exc:
        raise UnlearnError(f"--model {path}: cannot load the tokenizer ({first_line(exc)})") from None
    if tokenizer.eos_token is None:
        raise UnlearnError(
            f"--model {path}: the tokenizer has no eos token, which the scorer uses for padding "
            "and stopping; set eos_token in tokenizer_config.json"
        )
    tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    try:
        model = strict_from_pretrained(
            AutoModelForCausalLM,
            path,
            where=f"--model {path}",
            dtype=torch_dtype,
            local_files_only=True,
            trust_remote_code=False,
            use_safetensors=bool(folder.safetensors),
            weights_only=True,
        )
    except UnlearnError:
        raise
    except Exception as exc:
        refused = pickle_refusal(exc)
        if refused is not None:
            names = ", ".join(p.name for p in folder.pickles[:3])
            raise UnlearnError(
                f"--model {path}: {names} holds more than tensors and torch.load(weights_only=True) "
                f"refused it ({refused}); it may run code when loaded: do not load it, convert a trusted "
                "copy to safetensors"
            ) from None
        raise UnlearnError(f"--model {path}: cannot load the weights ({first_line(exc)})") from None
    check_finite(model, path, torch_dtype)
    model.to(device)
    model.eval()
    return model, tokenizer, device


def load_image_classifier(
    path: Path, *, device: str, where: str, allow_pickle: bool = False, need_processor: bool = True
) -> tuple[Any, Any]:
    """A transformers ``AutoModelForImageClassification`` (or a timm ViT folder, converted in
    memory: :mod:`pytest_unlearn.timm_vit`) (eval mode, on ``device``) and its
    ``AutoImageProcessor`` from a local folder: the genmu ``classifier`` judge and the face
    suites (mufac, mucac) load through here. Safetensors unless ``allow_pickle`` (then
    ``weights_only=True``); the processor is None when the folder has none and
    ``need_processor`` is false (the suite's manifest transform is used then). ``where``
    starts every error ("--model DIR", "--setting classifier_model=DIR")."""
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    from pytest_unlearn.timm_vit import is_timm_folder, load_timm_vit

    if is_timm_folder(path):
        model = load_timm_vit(path, where=where)
        processor = None
        if (path / "preprocessor_config.json").is_file():
            try:
                processor = AutoImageProcessor.from_pretrained(path, local_files_only=True)
            except Exception as exc:
                raise UnlearnError(f"{where}: cannot load preprocessor_config.json ({first_line(exc)})") from None
        elif need_processor:
            raise UnlearnError(
                f"{where}: a timm folder has no image processor; add a preprocessor_config.json (e.g. a "
                "ViTImageProcessor with the size, mean and std the classifier was trained with)"
            )
        return model.to(device).eval(), processor
    pickles = [p for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES] if path.is_dir() else []
    use_safetensors = not (allow_pickle and pickles and not list(path.glob("*.safetensors")))
    try:
        model = strict_from_pretrained(
            AutoModelForImageClassification,
            path,
            where=where,
            local_files_only=True,
            use_safetensors=use_safetensors,
            weights_only=True,
        )
        processor = None
        if need_processor or (path / "preprocessor_config.json").is_file():
            processor = AutoImageProcessor.from_pretrained(path, local_files_only=True)
    except UnlearnError:
        raise
    except Exception as exc:
        refused = pickle_refusal(exc)
        if refused is not None:
            names = ", ".join(p.name for p in pickles[:3])
            raise UnlearnError(
                f"{where}: {names} holds more than tensors and torch.load(weights_only=True) refused it "
                f"({refused}); it may run code when loaded: do not load it, convert a trusted copy to safetensors"
            ) from None
        raise UnlearnError(f"{where}: cannot load the classifier ({type(exc).__name__}: {exc})") from None
    return model.to(device).eval(), processor


def single_file_problems(pipe: Any, checkpoint_path: Path) -> str | None:
    """What a single original-format checkpoint lacks, or holds in excess, for the pipeline that
    ``from_single_file`` built from it (None: every tensor accounted for).

    diffusers' single-file loader loads each component with ``load_state_dict(strict=False)``: a
    tensor the file lacks stays randomly initialised, without a word. Each weighted component's
    part of the file is converted here with diffusers' own mapping (the one the loader used) and
    compared with the component's parameters by name and shape.
    """
    from diffusers.loaders.single_file_utils import (
        convert_ldm_clip_checkpoint,
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
        load_single_file_checkpoint,
    )

    checkpoint = load_single_file_checkpoint(str(checkpoint_path), local_files_only=True)
    converters = {
        "unet": lambda component: convert_ldm_unet_checkpoint(dict(checkpoint), config=dict(component.config)),
        "vae": lambda component: convert_ldm_vae_checkpoint(dict(checkpoint), config=dict(component.config)),
        "text_encoder": lambda component: convert_ldm_clip_checkpoint(dict(checkpoint)),
    }
    problems = []
    for name, convert in converters.items():
        component = getattr(pipe, name, None)
        if component is None:
            continue
        expected = dict(component.named_parameters())
        converted = convert(component)
        # transformers' CLIPTextModel may name its parameters without the "text_model." the
        # conversion writes (the loader maps them the same way).
        if not any(key.startswith("text_model.") for key in expected):
            converted = {key.removeprefix("text_model."): value for key, value in converted.items()}
        missing = sorted(key for key in expected if key not in converted)
        unexpected = sorted(key for key in converted if key not in component.state_dict())
        wrong = sorted(
            key
            for key, tensor in expected.items()
            if key in converted and tuple(converted[key].shape) != tuple(tensor.shape)
        )
        if missing:
            problems.append(
                f"{name} lacks {len(missing)} tensor(s), which the loader would initialise randomly: {_names(missing)}"
            )
        if unexpected:
            problems.append(f"{name} has {len(unexpected)} tensor(s) the model does not: {_names(unexpected)}")
        if wrong:
            problems.append(f"{name} has {len(wrong)} tensor(s) of the wrong shape: {_names(wrong)}")
    return "; ".join(problems) or None
