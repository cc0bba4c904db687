"""Fixtures of the miniature world (tiny models trained offline), shared by the repo's tests.

Models are built once and cached on disk by ``fixtures/`` (keyed by the builder's inputs), so
only the first run on a fresh clone pays for training.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def semeval_models() -> dict[str, Path]:
    """Paths of the tiny OLMo models: target, retrained, over_unlearned."""
    # Import the C-extension stack here, in the outer process: pytester's in-process runs
    # cannot import torch or tokenizers a second time after dropping them.
    import safetensors  # noqa: F401
    import tokenizers  # noqa: F401
    import torch  # noqa: F401
    import torch.distributed._functional_collectives  # noqa: F401  (registers a torch library once)
    import transformers  # noqa: F401
    import transformers.models.olmo.modeling_olmo  # noqa: F401

    from fixtures.worlds import models

    return models("semeval")


@pytest.fixture(scope="session")
def semeval_target(semeval_models: dict[str, Path]):
    """The memorizing target model, loaded in float32 on CPU, with its tokenizer."""
    from pytest_unlearn.loading import load_causal_lm

    model, tokenizer, _ = load_causal_lm(semeval_models["target"], device="cpu", dtype="float32", allow_pickle=False)
    return model, tokenizer


@pytest.fixture(scope="session")
def genmu_models() -> dict[str, Path]:
    """Paths of the Genμ miniature world: original and erased pipelines, and the CLIP judge."""
    import diffusers  # noqa: F401
    import PIL.Image  # noqa: F401
    import safetensors  # noqa: F401
    import tokenizers  # noqa: F401
    import torch  # noqa: F401
    import torch.distributed._functional_collectives  # noqa: F401
    import transformers  # noqa: F401
    import transformers.models.clip.modeling_clip  # noqa: F401
    from diffusers import StableDiffusionPipeline  # noqa: F401  (resolves diffusers' lazy modules once)

    from fixtures.worlds import models

    return models("genmu")


@pytest.fixture(scope="session")
def genmu_extra_models(genmu_models: dict[str, Path]) -> dict[str, Path]:
    """Two more single-concept erased models of the Genμ world: erased-sunset, erased-neon."""
    from fixtures.worlds import models

    return models("genmu-extra")


@pytest.fixture(scope="session")
def genmu_classifier(genmu_models: dict[str, Path]) -> Path:
    """The Genμ world's tiny image classifier (a transformers ResNet), for the classifier judge."""
    from fixtures.worlds import models

    return models("genmu-classifier")["classifier"]


@pytest.fixture(scope="session")
def genmu_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One artifact cache for the world runs of several test modules: a (model, prompt, seed)
    batch one test generated is read by the next instead of generated again."""
    return tmp_path_factory.mktemp("genmu-artifact-cache")


@pytest.fixture(scope="session")
def tofu_models() -> dict[str, Path]:
    """Paths of the miniature TOFU world's tiny OLMo models: target, retain, retain2, over_unlearned."""
    import safetensors  # noqa: F401
    import tokenizers  # noqa: F401
    import torch  # noqa: F401
    import torch.distributed._functional_collectives  # noqa: F401
    import transformers  # noqa: F401
    import transformers.models.olmo.modeling_olmo  # noqa: F401

    from fixtures.worlds import models

    return models("tofu")


@pytest.fixture(scope="session")
def wmdp_models() -> dict[str, Path]:
    """Paths of the miniature WMDP world's tiny OLMo models: target, unlearned, damaged."""
    import safetensors  # noqa: F401
    import tokenizers  # noqa: F401
    import torch  # noqa: F401
    import torch.distributed._functional_collectives  # noqa: F401
    import transformers  # noqa: F401
    import transformers.models.olmo.modeling_olmo  # noqa: F401

    from fixtures.worlds import models

    return models("wmdp")


@pytest.fixture(scope="session")
def mufac_models() -> dict[str, Path]:
    """Paths of the miniature face world's tiny ResNet classifiers: target, retrained, damaged."""
    import sklearn.linear_model  # noqa: F401
    import sklearn.model_selection  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401
    import transformers.models.resnet.modeling_resnet  # noqa: F401
    import transformers.models.vit.image_processing_pil_vit  # noqa: F401

    import pytest_unlearn.mufac.evaluation  # noqa: F401
    from fixtures.worlds import models

    return models("mufac")


@pytest.fixture(scope="session")
def mucac_models(mufac_models: dict[str, Path]) -> dict[str, Path]:
    """The miniature face world's multi-label (Male, Smiling, Young) classifiers: target, retrained, damaged."""
    from fixtures.worlds import models

    return models("mucac")


@pytest.fixture(scope="session")
def muse_models() -> dict[str, Path]:
    """Paths of the miniature MUSE world's tiny OLMo models: target, retrained, over_unlearned."""
    import safetensors  # noqa: F401
    import tokenizers  # noqa: F401
    import torch  # noqa: F401
    import torch.distributed._functional_collectives  # noqa: F401
    import transformers  # noqa: F401
    import transformers.models.olmo.modeling_olmo  # noqa: F401

    from fixtures.worlds import models

    return models("muse")


@pytest.fixture(scope="session")
def muse_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One artifact cache for the MUSE world runs: a model's generations and token log-probs,
    computed when it is first --model, --original-model or --reference, are read afterwards."""
    return tmp_path_factory.mktemp("muse-artifact-cache")
