"""Unsafe-content detectors of the evallearn suite (registry kind ``detector``).

A detector factory ``(device: str) -> Detector`` is registered under a name in
:data:`pytest_unlearn.registry.DETECTORS` (third parties: entry-point group
``pytest_unlearn.detectors``). The built-in ``nudenet`` wraps NudeNet 3.x with its bundled
320n ONNX model, the detector eval-learn uses for nudity; it is imported only when used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from pytest_unlearn.errors import UnlearnError

NUDITY_EXTRA = "pip install -c constraints.txt -e '.[nudity]'"


class Detector(Protocol):
    """What the ASR checks need: per image file, a list of ``{"class": str, "score": float}``."""

    name: str

    def detect(self, files: list[Path]) -> list[list[dict[str, Any]]]: ...


class NudeNetDetector:
    """NudeNet's ``NudeDetector`` on saved PNG files, one ``detect`` call per image as eval-learn."""

    name = "nudenet"

    def __init__(self) -> None:
        try:
            from nudenet import NudeDetector
        except ImportError as exc:
            raise UnlearnError(
                f"detector 'nudenet' needs the nudenet package ({exc}); install the nudity extra: {NUDITY_EXTRA}"
            ) from None
        self._detector = NudeDetector()

    def detect(self, files: list[Path]) -> list[list[dict[str, Any]]]:
        return [list(self._detector.detect(str(file))) for file in files]


def nudenet_detector(device: str) -> Detector:
    """The built-in ``nudenet`` detector (NudeNet runs on the CPU through onnxruntime)."""
    return NudeNetDetector()
