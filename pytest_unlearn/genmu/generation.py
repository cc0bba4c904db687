"""Generation settings of the diffusion suites (no torch here: validated at configuration)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Scheduler names accepted in the manifest / --setting scheduler=…, and their diffusers classes.
SCHEDULERS = {
    "ddim": "DDIMScheduler",
    "pndm": "PNDMScheduler",
    "dpm": "DPMSolverMultistepScheduler",
    "euler": "EulerDiscreteScheduler",
    "lms": "LMSDiscreteScheduler",
}


@dataclass(frozen=True)
class GenerationSettings:
    steps: int
    guidance: float
    resolution: int
    scheduler: str  # "default" keeps the pipeline's own
    # A non-square size (I2P's per-prompt sd_image_width/height); None: ``resolution``.
    width: int | None = None
    height: int | None = None

    def record(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "guidance": self.guidance,
            "resolution": self.resolution,
            "scheduler": self.scheduler,
        }
