"""Model folders: validation before anything heavy is imported, and safe loading.

Checkpoints are often someone else's: only safetensors load by default; pickle-based weights
(``.bin``, ``.pt``, ``.ckpt``) need ``--allow-pickle`` and even then load with
``weights_only=True``; ``trust_remote_code`` is never enabled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_unlearn.errors import UnlearnError

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
        raise UnlearnError(f"--model {path}: cannot load the tokenizer ({type(exc).__name__}: {exc})") from None
    if tokenizer.eos_token is None:
        raise UnlearnError(
            f"--model {path}: the tokenizer has no eos token, which the scorer uses for padding "
            "and stopping; set eos_token in tokenizer_config.json"
        )
    tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path,
            dtype=torch_dtype,
            local_files_only=True,
            trust_remote_code=False,
            use_safetensors=bool(folder.safetensors),
            weights_only=True,
        )
    except Exception as exc:
        raise UnlearnError(f"--model {path}: cannot load the weights ({type(exc).__name__}: {exc})") from None
    model.to(device)
    model.eval()
    return model, tokenizer, device
