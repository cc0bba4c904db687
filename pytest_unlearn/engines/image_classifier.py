"""Image classifiers: a local classifier folder loaded once, and its logits over image files in
batches. Knows nothing of any suite: the face suites (mufac, mucac) turn the logits into losses
and accuracies, the genmu classifier judge into labels.

A model is a transformers ``AutoModelForImageClassification`` folder (loaded strictly through
:func:`pytest_unlearn.loading.load_image_classifier`) or whatever a registered ``LOADERS`` entry
returns (a ``torch.nn.Module`` mapping pixels to logits).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pytest_unlearn.errors import UnlearnError


def load_classifier(path: Path, *, loader: str, device: str, allow_pickle: bool, where: str) -> tuple[Any, Any]:
    """(model in eval mode on ``device``, image processor or None). ``loader`` "transformers" loads
    the folder strictly; any other name is a registered ``LOADERS`` entry (``where`` starts errors)."""
    if loader == "transformers":
        from pytest_unlearn.loading import load_image_classifier

        return load_image_classifier(path, device=device, where=where, allow_pickle=allow_pickle, need_processor=False)
    from pytest_unlearn.registry import LOADERS

    try:
        factory = LOADERS.get(loader)
    except UnlearnError as exc:
        raise UnlearnError(f"--setting model_loader={loader}: {exc}") from None
    model = factory(path, device=device, allow_pickle=allow_pickle)
    model.eval()
    return model, None


def pixel_batch(images: list[Any], processor: Any, transform: dict[str, Any] | None) -> Any:
    """The ``pixel_values`` of PIL images: the model's own processor, else ``transform`` (a
    resize to ``size`` x ``size`` and a per-channel ``mean``/``std`` normalisation)."""
    import torch

    if processor is not None:
        return processor(images=images, return_tensors="pt")["pixel_values"]
    from PIL import Image

    assert transform is not None  # the caller gives one whenever the model has no processor
    size = transform["size"]
    mean = np.array(transform["mean"], dtype=np.float32)[:, None, None]
    std = np.array(transform["std"], dtype=np.float32)[:, None, None]
    arrays = []
    for img in images:
        if img.size != (size, size):
            img = img.resize((size, size), Image.BILINEAR)
        arrays.append((np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0 - mean) / std)
    return torch.from_numpy(np.stack(arrays))


def batched_logits(
    model: Any,
    processor: Any,
    device: str,
    files: Sequence[tuple[Path, str]],
    *,
    batch_size: int,
    transform: dict[str, Any] | None,
    keyword_call: bool,
) -> Iterator[tuple[int, Any]]:
    """(start index, float logits of shape [batch, outputs]) for each batch of image files.

    ``files`` holds (image path, where it was listed, for errors); ``keyword_call``: the model takes
    ``pixel_values=`` (transformers) rather than a positional tensor. Runs under ``no_grad``.
    """
    import torch
    from PIL import Image

    batch = max(1, batch_size)
    with torch.no_grad():
        for start in range(0, len(files), batch):
            images = []
            for path, where in files[start : start + batch]:
                try:
                    with Image.open(path) as img:
                        images.append(img.convert("RGB"))
                except OSError as exc:
                    raise UnlearnError(f"{where}: cannot read image {path} ({exc})") from None
            pixels = pixel_batch(images, processor, transform).to(device)
            output = model(pixel_values=pixels) if keyword_call else model(pixels)
            yield start, getattr(output, "logits", output).float()
