"""The miniature RWKU world's models, and this checkout's rwku suite folders registered where an
editable install points ``pytest_unlearn.suites`` at another checkout (a no-op otherwise)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_unlearn import builtins  # noqa: F401  (registers the built-in suites)
from pytest_unlearn.registry import BUILTIN, SUITES

REPO = Path(__file__).resolve().parents[3]
for _name in ("rwku", "rwku-mini"):
    if _name not in SUITES.names():
        SUITES.register(_name, REPO / "suites" / _name / "manifest.toml", package=BUILTIN,
                        reference=f"pytest_unlearn.suites/{_name}/manifest.toml")  # fmt: skip


@pytest.fixture(scope="session")
def rwku_models() -> dict[str, Path]:
    """Paths of the miniature RWKU world's tiny OLMo models: original, shallow, proper."""
    import torch  # noqa: F401
    import transformers.models.olmo.modeling_olmo  # noqa: F401

    from fixtures.worlds import models

    return models("rwku")


@pytest.fixture(scope="session")
def rwku_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One artifact cache for the session: each model answers the probes once."""
    return tmp_path_factory.mktemp("rwku-cache")
