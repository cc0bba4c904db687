"""Text-to-image models for the diffusion suites: loading, seeded batched generation, weights.

Imported only when a diffusion suite runs (it imports torch and diffusers).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pytest_unlearn.engines.generation import SCHEDULERS, GenerationSettings
from pytest_unlearn.engines.weight_change import WeightChange, combine_weight_change
from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.loading import (
    PICKLE_SUFFIXES,
    check_finite,
    first_line,
    inspect_model_folder,
    pickle_refusal,
    resolve_device,
    single_file_problems,
    strict_components,
)
from pytest_unlearn.noise import import_quietly

# Components whose parameters define "the model" for the weight-change ratio.
WEIGHT_COMPONENTS = ("unet", "text_encoder", "vae")


def diffusion_dtype(name: str, device: str) -> torch.dtype:
    """``auto``: float16 on CUDA (how SD v1.4 is evaluated), float32 elsewhere."""
    if name == "auto":
        return torch.float16 if device.startswith("cuda") else torch.float32
    return getattr(torch, name)


def load_pipeline(
    path: Path,
    *,
    device: str,
    dtype: str,
    allow_pickle: bool,
    model_config: Path | None = None,
    flag: str = "--model",
) -> Any:
    """A ``StableDiffusionPipeline`` from a local diffusers folder or a single checkpoint file.

    A single original-format checkpoint needs ``--model-config``: a local diffusers folder
    whose configs describe the architecture (``from_single_file`` offline). The safety checker
    is never loaded: it would black out exactly the images an unlearning test must see.
    """
    import_quietly("bitsandbytes")  # diffusers imports it when installed (the stress extra): without its noise
    try:
        from diffusers import StableDiffusionPipeline
    except ImportError as exc:
        raise UnlearnError(
            f"diffusion suites need diffusers ({exc}); pip install -c constraints.txt -e '.[diffusion]'"
        ) from None
    device = resolve_device(device)
    torch_dtype = diffusion_dtype(dtype, device)
    try:
        if path.is_file():
            if path.suffix in PICKLE_SUFFIXES and not allow_pickle:
                raise UnlearnError(
                    f"{flag} {path}: a pickle checkpoint, which can run code when loaded; "
                    "convert it to safetensors or pass --allow-pickle"
                )
            if model_config is None:
                raise UnlearnError(
                    f"{flag} {path}: a single checkpoint file needs --model-config DIR, a local "
                    "diffusers folder describing its architecture"
                )
            pipe = StableDiffusionPipeline.from_single_file(
                str(path),
                config=str(model_config),
                local_files_only=True,
                torch_dtype=torch_dtype,
                safety_checker=None,
                requires_safety_checker=False,
                # With accelerate installed (peft, the stress extra, needs it) diffusers would load
                # onto empty weights and raise its own multi-line shape error; loaded plainly, a
                # mismatch reaches single_file_problems, which names the component and tensor.
                low_cpu_mem_usage=False,
            )
            # The single-file loader has no loading report: check the file's tensors ourselves.
            problem = single_file_problems(pipe, path)
            if problem is not None:
                raise UnlearnError(
                    f"{flag} {path}: the checkpoint does not match the architecture of --model-config "
                    f"{model_config}: {problem}; convert the checkpoint again, or pass the config it was made for"
                )
        else:
            folder = inspect_model_folder(path, allow_pickle=allow_pickle, flag=flag)
            pipe = StableDiffusionPipeline.from_pretrained(
                path,
                # The weighted components load strictly (a missing tensor is an error, not noise).
                **strict_components(
                    path, where=f"{flag} {path}", dtype=torch_dtype, use_safetensors=bool(folder.safetensors)
                ),
                torch_dtype=torch_dtype,
                local_files_only=True,
                use_safetensors=bool(folder.safetensors),
                safety_checker=None,
                requires_safety_checker=False,
            )
    except UnlearnError:
        raise
    except Exception as exc:
        refused = pickle_refusal(exc)
        if refused is not None:
            raise UnlearnError(
                f"{flag} {path}: the pickle checkpoint was refused by torch.load(weights_only=True) ({refused}); "
                "it holds more than weights: convert it to safetensors from a trusted source"
            ) from None
        reason = f"{type(exc).__name__}: {first_line(exc)}"
        raise UnlearnError(f"{flag} {path}: cannot load the pipeline ({reason})") from None
    # A NaN UNet draws black images, in which no concept is present: it would *pass* every forget
    # check. Broken weights must never reach the metrics.
    for component in WEIGHT_COMPONENTS:
        module = getattr(pipe, component, None)
        if module is not None:
            check_finite(module, path, torch_dtype, flag=flag)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def set_scheduler(pipe: Any, name: str) -> None:
    if name == "default":
        return
    import diffusers

    cls = getattr(diffusers, SCHEDULERS[name])
    pipe.scheduler = cls.from_config(pipe.scheduler.config)


@torch.no_grad()
def generate(
    pipe: Any,
    requests: Sequence[tuple[str, int]],
    settings: GenerationSettings,
    *,
    batch_size: int,
    progress: Callable[[int], None] | None = None,
    source: str | Path | None = None,
) -> list[Any]:
    """One PIL image per (prompt, seed), batched; each image's noise comes from its own seed.

    Generators live on the CPU so a seed gives the same initial latents on every device. The
    pipeline returns float pixels, checked for NaN/inf before they become PIL images: diffusers
    casts NaN to black, and a black image shows no concept, so a model that overflows (float16,
    broken weights) would pass every forget check. ``source`` names the model in that error.
    """
    from diffusers.image_processor import VaeImageProcessor

    set_scheduler(pipe, settings.scheduler)
    images: list[Any] = []
    for start in range(0, len(requests), batch_size):
        batch = requests[start : start + batch_size]
        result = pipe(
            prompt=[prompt for prompt, _ in batch],
            generator=[torch.Generator(device="cpu").manual_seed(seed) for _, seed in batch],
            num_inference_steps=settings.steps,
            guidance_scale=settings.guidance,
            height=settings.height or settings.resolution,
            width=settings.width or settings.resolution,
            output_type="np",
        )
        pixels = np.asarray(result.images)
        finite = np.isfinite(pixels.reshape(len(pixels), -1)).all(axis=1)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            where = source or getattr(pipe, "name_or_path", None) or "the pipeline"
            raise UnlearnError(
                f"{where}: the pipeline produced non-finite pixels for {len(bad)} of {len(batch)} images of a "
                f"batch (first: prompt {batch[bad[0]][0]!r}, seed {batch[bad[0]][1]}); the check cannot be "
                "scored (check the weights, the dtype or --setting device)"
            )
        # The same conversion the pipeline's output_type="pil" does (round half away, uint8).
        images.extend(VaeImageProcessor.numpy_to_pil(pixels))
        if progress:
            progress(len(batch))
    return images


def named_parameters(pipe: Any) -> dict[str, torch.Tensor]:
    """``component.param`` → tensor for the UNet, text encoder and VAE."""
    params: dict[str, torch.Tensor] = {}
    for component in WEIGHT_COMPONENTS:
        module = getattr(pipe, component, None)
        if module is None:
            continue
        # Parameters only: buffers such as position ids are not weights an unlearning method changes.
        for name, tensor in module.named_parameters():
            params[f"{component}.{name}"] = tensor
    return params


@torch.no_grad()
def weight_change(original: dict[str, torch.Tensor], unlearned: dict[str, torch.Tensor]) -> WeightChange:
    """‖θ_orig − θ_un‖₂ in float64, with a clear error when the architectures differ."""
    missing = sorted(set(original) ^ set(unlearned))
    if missing:
        raise UnlearnError(
            f"--original-model has another architecture than --model: parameter {missing[0]!r} "
            f"exists in only one of them ({len(missing)} differ); compare checkpoints of the same model"
        )
    squared: dict[str, tuple[float, int]] = {}
    for key, a in original.items():
        b = unlearned[key]
        if a.shape != b.shape:
            raise UnlearnError(
                f"--original-model has another architecture than --model: {key!r} has shape "
                f"{tuple(a.shape)} there and {tuple(b.shape)} here; compare checkpoints of the same model"
            )
        diff = a.detach().to("cpu", torch.float64) - b.detach().to("cpu", torch.float64)
        squared[key] = (float(torch.sum(diff * diff)), a.numel())
    return combine_weight_change(squared)
