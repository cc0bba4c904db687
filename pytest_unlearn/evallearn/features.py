"""Image feature extractors for FID (registry kind ``extractor``).

A factory ``(spec: str, device: str) -> Extractor`` registered in
:data:`pytest_unlearn.registry.EXTRACTORS` (entry-point group ``pytest_unlearn.extractors``);
``spec`` is the ``inception_weights`` setting. The extractor's ``name`` goes into the scorecard:
FID values are comparable only between runs with the same extractor.

The built-in ``inception`` is torchvision's Inception v3 (2048-d pool features, images resized
to 299×299 and normalised with ImageNet statistics), the network of eval-learn 0.1.6, loaded
from a local weights file. It is not pytorch-fid's TF-ported Inception (``pt_inception``), so
its FID is not interchangeable with pytorch-fid's or clean-fid's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pytest_unlearn.errors import UnlearnError


class Extractor(Protocol):
    name: str

    def features(self, images: list[Any]) -> np.ndarray: ...


class TorchvisionInception:
    """torchvision ``inception_v3`` with its final layer removed: one 2048-d vector per image."""

    name = "torchvision-inception-v3-pool3-2048"

    def __init__(self, weights: str, device: str, batch_size: int = 32) -> None:
        if not weights:
            raise UnlearnError(
                "FID needs Inception weights: pass --setting inception_weights=FILE (torchvision's "
                "inception_v3 ImageNet state dict, e.g. inception_v3_google-0cc3c7bd.pth)"
            )
        if not Path(weights).is_file():
            raise UnlearnError(f"--setting inception_weights={weights}: no such file")
        try:
            import torch
            from torchvision.models import inception_v3
        except ImportError as exc:
            raise UnlearnError(
                f"the 'inception' FID extractor needs torchvision ({exc}), which is not installed here; "
                "install a torchvision matching your torch, or register another extractor and pass "
                "--setting fid_extractor=NAME"
            ) from None
        from pytest_unlearn.loading import resolve_device

        model = inception_v3(weights=None, aux_logits=True, init_weights=False)
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            model.load_state_dict(state)
        except Exception as exc:
            raise UnlearnError(
                f"--setting inception_weights={weights}: cannot load ({type(exc).__name__}: {exc})"
            ) from None
        model.fc = torch.nn.Identity()
        self.device = resolve_device(device)
        self.model = model.eval().to(self.device)
        self.batch_size = batch_size
        self._torch = torch
        self._mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        self._std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def _tensor(self, images: list[Any]) -> Any:
        from PIL import Image

        arrays = [
            np.asarray(im.convert("RGB").resize((299, 299), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
            for im in images
        ]
        batch = self._torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
        return ((batch - self._mean) / self._std).to(self.device)

    def features(self, images: list[Any]) -> np.ndarray:
        chunks = []
        with self._torch.no_grad():
            for start in range(0, len(images), self.batch_size):
                out = self.model(self._tensor(images[start : start + self.batch_size]))
                chunks.append(out.float().cpu().numpy())
        return np.concatenate(chunks)


class ClipImageFeatures:
    """The CLIP judge's image embeddings (after the projection) as FID features: the Fréchet
    distance in CLIP space (clean-fid's ``model_name="clip_vit_b_32"``; Kynkäänniemi et al. 2023,
    "The Role of ImageNet Classes in Fréchet Inception Distance"). For worlds without Inception."""

    def __init__(self, spec: str, device: str) -> None:
        from pytest_unlearn.engines.judges import open_judge

        if not spec:
            raise UnlearnError(
                "--setting fid_extractor=clip embeds with the run's CLIP: pass --setting clip_model=DIR "
                "(or --setting clip_model=open_clip:MODEL:WEIGHTS)"
            )
        self.judge = open_judge("clip", spec, device)
        self.name = f"clip-image-embeddings ({Path(spec).name})"

    def features(self, images: list[Any]) -> np.ndarray:
        return np.asarray(self.judge.embed_images(images), dtype=np.float64)


def clip_extractor(spec: str, device: str) -> Extractor:
    """The built-in ``clip`` extractor: ``spec`` is the run's ``clip_model`` setting."""
    return ClipImageFeatures(spec, device)


def inception_extractor(spec: str, device: str) -> Extractor:
    """The built-in ``inception`` extractor (torchvision Inception v3 from a local weights file)."""
    return TorchvisionInception(spec, device)
