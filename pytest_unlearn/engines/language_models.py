"""Causal LMs loaded once per path, and the cache keys of their passes: shared by the backends
that score several language models by path (the model, the original, the reference).

``LanguageModel`` is one loaded model as a test receives it; ``ModelsByPath`` is the backend
mixin that loads each path once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_unlearn.settings import Setting

# Checked by loading.token_budget, in its own words.
MAX_BATCH_TOKENS = Setting(
    "max_batch_tokens", int, None, "tokens per forward pass (default: the device's budget)", own_check=True
)


@dataclass(frozen=True)
class LanguageModel:
    """What ``unlearn_model`` gives a test: the loaded causal LM, its tokenizer, where it runs."""

    model: Any
    tokenizer: Any
    device: str
    path: Path


class ModelsByPath:
    """Mixin of a :class:`~pytest_unlearn.evaluation.Backend`; the backend's ``__init__`` sets
    ``_models``, ``_digests``, ``_resolved_device``, ``model_loads`` and ``max_batch_tokens``."""

    settings: Any
    max_batch_tokens: int | None
    _models: dict[Path, tuple[Any, Any, str]]
    _digests: dict[Path, str]
    _resolved_device: str | None
    model_loads: int

    def _model(self, path: Path) -> tuple[Any, Any, str]:
        """(model, tokenizer, device) of ``path``, loaded on first use."""
        if path not in self._models:
            from pytest_unlearn.loading import load_causal_lm
            from pytest_unlearn.workers import split_cpu_threads

            loaded = load_causal_lm(
                path, device=self.settings.device, dtype=self.settings.dtype, allow_pickle=self.settings.allow_pickle
            )
            split_cpu_threads(loaded[2])
            self._models[path] = loaded
            self.model_loads += 1
        return self._models[path]

    def _cache_key(self, path: Path, kind: str, **parts: Any) -> str:
        """The artifact-cache key of a pass of ``kind`` by the model at ``path`` over ``parts``."""
        from pytest_unlearn.cache import make_key, model_digest
        from pytest_unlearn.loading import resolve_device

        if path not in self._digests:
            self._digests[path] = model_digest(path)
        device = resolve_device(self.settings.device)
        self._resolved_device = device
        return make_key(
            kind,
            model=self._digests[path],
            device=device.split(":")[0],
            dtype=self.settings.dtype,
            batch_size=self.settings.batch_size,
            # Batch composition moves the last bits of batched passes, as the batch size does.
            **({"max_batch_tokens": self.max_batch_tokens} if self.max_batch_tokens else {}),
            **parts,
        )
