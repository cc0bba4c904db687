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


@pytest.fixture
def punkt_english(tmp_path, monkeypatch):
    """NLTK's punkt_tab English model as a folder on NLTK's data path, absent until
    ``write(abbreviations)`` writes it (no abbreviations: Punkt with no learned parameters)."""
    import nltk
    import nltk.tokenize

    folder = tmp_path / "nltk_data" / "tokenizers" / "punkt_tab" / "english"

    def write(abbreviations: tuple[str, ...] = ()) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("collocations.tab", "sent_starters.txt", "ortho_context.tab"):
            (folder / name).write_text("")
        (folder / "abbrev_types.txt").write_text("".join(f"{a}\n" for a in abbreviations))
        nltk.tokenize._get_punkt_tokenizer.cache_clear()

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "nltk_data"), *nltk.data.path])
    yield write
    nltk.tokenize._get_punkt_tokenizer.cache_clear()
