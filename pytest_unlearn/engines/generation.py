"""Generation settings of the diffusion suites (no torch here: validated at configuration)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_unlearn.integrity import Warn, no_warning
from pytest_unlearn.settings import Setting, typed_setting

# Scheduler names accepted in the manifest / --setting scheduler=…, and their diffusers classes.
SCHEDULERS = {
    "ddim": "DDIMScheduler",
    "pndm": "PNDMScheduler",
    "dpm": "DPMSolverMultistepScheduler",
    "euler": "EulerDiscreteScheduler",
    "lms": "LMSDiscreteScheduler",
}


# The settings of a suite that makes images with the diffusion engine (the suite checks their
# values itself, with generation_settings below).
DIFFUSION_SETTINGS: tuple[Setting, ...] = (
    Setting("steps", int, 50, "denoising steps", own_check=True),
    Setting("guidance", float, 7.5, "classifier-free guidance scale", own_check=True),
    Setting("resolution", int, 512, "image side in pixels", own_check=True),
    Setting("scheduler", str, "default", "default or one of " + ", ".join(SCHEDULERS), own_check=True),
    Setting("images_per_prompt", int, 1, "images per prompt (seeds seed, seed+1, ...)", own_check=True),
    Setting(
        "images",
        str,
        None,
        "score images generated elsewhere: a folder with images.jsonl (file, prompt, seed); was --images",
        path=True,
    ),
    Setting(
        "model_config",
        str,
        None,
        "local diffusers folder describing the architecture of a single-file checkpoint; was --model-config",
        path=True,
    ),
    Setting(
        "clip_model",
        str,
        None,
        "CLIP for the judge and CLIP scores: a transformers CLIP folder, or open_clip:MODEL_NAME:WEIGHTS_FILE; "
        "was --clip-model",
    ),
)


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


def generation_settings(settings: dict[str, Any], where: str) -> GenerationSettings:
    """The diffusion suites' steps, guidance, resolution and scheduler, validated."""
    from pytest_unlearn.errors import UnlearnError

    generation = GenerationSettings(
        steps=typed_setting(settings, "steps", int, where),
        guidance=typed_setting(settings, "guidance", float, where),
        resolution=typed_setting(settings, "resolution", int, where),
        scheduler=typed_setting(settings, "scheduler", str, where),
    )
    if generation.scheduler not in ("default", *SCHEDULERS):
        raise UnlearnError(
            f"{where}: scheduler must be default or one of {', '.join(SCHEDULERS)}, got {generation.scheduler!r}"
        )
    return generation


def read_image_index(folder: Path, warn: Warn = no_warning) -> dict[tuple[str, int], Path]:
    """An ``--images`` folder's ``images.jsonl``: one JSON object per image with file, prompt, seed.

    An image listed twice with the same file is kept once (with a warning); the same (prompt,
    seed) listed with two different files is an error: either could decide the verdict.
    """
    import json

    from pytest_unlearn import domains
    from pytest_unlearn.errors import UnlearnError
    from pytest_unlearn.integrity import Located, deduplicate, read_text

    index_path = folder / "images.jsonl"
    if not index_path.is_file():
        raise UnlearnError(
            f"--images {folder}: no images.jsonl index; it lists one JSON object per image with file, prompt, seed"
        )
    text = read_text(index_path)
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            raise UnlearnError(f"{index_path}:{number}: each line needs file, prompt and seed") from None
        if not isinstance(row, dict) or any(k not in row for k in ("file", "prompt", "seed")):
            raise UnlearnError(f"{index_path}:{number}: each line needs file, prompt and seed")
        # A seed of 1.5, "3" or true was once read as 1, 3 or 1: an image of another seed.
        entry = domains.validate(domains.ImageIndexRow, row, f"{index_path} line {number}")
        entries.append(Located(number, ((entry.prompt, entry.seed), entry.file)))
    unique = deduplicate(
        entries, key=lambda e: e[0], content=lambda e: e[1], source=index_path, what="image (prompt, seed)"
    )
    warn(unique.warning)
    return {key: folder / file for key, file in unique.rows}
