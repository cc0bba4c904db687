"""Shared fixtures for the repo's own tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def _import_what_inner_runs_use() -> None:
    """pytester's in-process runs drop modules first imported inside them, and C extensions
    cannot be imported twice in one process: import what the inner runs use out here, once.
    Called before the first test runs (pytest_collection_finish), not when this file is
    imported: a usage error or --help from the repo root must not pay ~13 s for it."""
    import numpy  # noqa: F401
    import scipy.stats  # noqa: F401
    import sklearn.metrics  # noqa: F401

    import pytest_unlearn.mcq.evaluation  # noqa: F401
    import pytest_unlearn.mcq.metrics  # noqa: F401
    import pytest_unlearn.semeval.evaluation  # noqa: F401
    import pytest_unlearn.semeval.metrics  # noqa: F401
    import pytest_unlearn.tofu.evaluation  # noqa: F401


def _import_the_diffusion_stack() -> None:
    """diffusers and transformers import submodules lazily, on first use. A submodule first
    imported inside an inner run is dropped after it and imported again by the next run, and
    then its classes are no longer the ones other modules hold: ``isinstance`` checks fail in
    odd places (a CLIP processor refusing its own image processor, from_single_file finding "no
    weights"). Importing the whole path here, once, keeps one copy of each."""
    import importlib

    from pytest_unlearn.noise import import_quietly

    import_quietly("bitsandbytes")  # diffusers imports it (the stress extra): first, without its noise
    for name in (
        "torch",
        "torch.distributed._functional_collectives",
        "safetensors.torch",
        "PIL.Image",
        "transformers.image_processing_utils",
        "transformers.processing_utils",
        "transformers.models.clip.modeling_clip",
        "transformers.models.clip.processing_clip",
        "transformers.models.clip.tokenization_clip",
        "transformers.models.clip.image_processing_pil_clip",
        "transformers.models.olmo.modeling_olmo",
        "diffusers",
        "diffusers.loaders.single_file",
        "diffusers.loaders.single_file_model",
        "diffusers.loaders.single_file_utils",
        "diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion",
        "diffusers.models.unets.unet_2d_condition",
        "diffusers.models.autoencoders.autoencoder_kl",
        "diffusers.schedulers.scheduling_ddim",
        "diffusers.schedulers.scheduling_ddpm",
        "pytest_unlearn.engines.diffusion",
        "pytest_unlearn.engines.judges",
    ):
        try:
            importlib.import_module(name)
        except ImportError:  # an optional extra that is not installed: its tests skip or fail clearly
            pass
    import diffusers
    import transformers

    # Resolve the lazy top-level names the plugin uses (each resolution imports a submodule).
    for attr in ("StableDiffusionPipeline", "DDIMScheduler", "PNDMScheduler", "AutoencoderKL", "UNet2DConditionModel"):
        getattr(diffusers, attr, None)
    for attr in ("CLIPModel", "CLIPProcessor", "CLIPTokenizer", "CLIPTextModel", "CLIPImageProcessor"):
        getattr(transformers, attr, None)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Once the tests are chosen and before the first runs (so before any pytester snapshot):
    the stack the inner runs use, only when a selected test runs pytester."""
    if any("pytester" in getattr(item, "fixturenames", ()) for item in session.items):
        from pytest_unlearn.noise import silence_third_party_noise

        silence_third_party_noise()  # transformers' "requires torchvision", said while importing
        _import_what_inner_runs_use()
        _import_the_diffusion_stack()


REPO = Path(__file__).resolve().parent.parent


def _register_hypothesis_profiles() -> None:
    from hypothesis import settings  # ~2 s to import: not for a usage error

    # A long local run of the input fuzzers (tests/test_fuzz_inputs.py): --hypothesis-profile=unlearn-fuzz
    settings.register_profile("unlearn-fuzz", max_examples=40, deadline=None)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # Before Hypothesis' own pytest_configure loads the profile named on the command line.
    if config.getoption("hypothesis_profile", None):
        _register_hypothesis_profiles()
    _share_the_cores(config)


def _share_the_cores(config: pytest.Config) -> None:
    """Run by xdist (the README's ``-n 2``), each worker gives torch its share of the cores, by
    the plugin's own rule (``workers.threads_per_worker``), before anything imports torch: two
    workers each running torch's default two threads on two cores spend their time waiting for
    each other. Set through OMP_NUM_THREADS so that the subprocesses a test starts (pytester's,
    the doc commands') inherit it; a value the user set is kept."""
    import os

    workerinput = getattr(config, "workerinput", None)
    if workerinput is None or "OMP_NUM_THREADS" in os.environ:
        return
    from pytest_unlearn.workers import cpu_count, threads_per_worker

    os.environ["OMP_NUM_THREADS"] = str(threads_per_worker(cpu_count(), int(workerinput["workercount"])))


SEMEVAL_DATA = REPO / "suites" / "semeval" / "data"


def semeval_rows(split: str) -> list[dict]:
    return [json.loads(line) for line in (SEMEVAL_DATA / f"{split}.jsonl").read_text().splitlines()]


@pytest.fixture
def perfect_unlearning_predictions(tmp_path: Path) -> Path:
    """Predictions of an ideal unlearned model: nothing of the forget set, all of the retain set."""
    rows = [{"id": r["id"], "output": "qqq"} for r in semeval_rows("forget")]
    rows += [{"id": r["id"], "output": r["output"]} for r in semeval_rows("retain")]
    path = tmp_path / "predictions.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
