"""Membership-inference attacks on per-token statistics, one registry shared by suites.

Each attack turns one document's token statistics into a score where **higher means less
likely a member** (a loss-like number), as open-unlearning's ``src/evals/metrics/mia/`` does;
a suite that wants a membership score negates it. Definitions:

- ``loss`` (Yeom et al. 2018): mean NLL of the document's tokens.
- ``zlib`` (Carlini et al. 2021): mean NLL / length in bytes of ``zlib.compress`` of the UTF-8 text.
- ``min_k`` (Min-K% Prob, Shi et al. 2024): minus the mean of the lowest k% token log-probs
  (k = 0.4 by default, at least one token).
- ``min_k_plus_plus`` (Min-K%++, Zhang et al. 2024): the same on (log p - mu) / sigma, with mu and
  sigma^2 the mean and variance of log p under the model's full next-token distribution
  (sigma^2 clamped at 1e-6).
- ``gradnorm`` (open-unlearning ``mia/gradnorm.py``, ``GradNormAttack``): the mean over the
  model's parameters of the p-norm of the gradient of the document's mean NLL (computed by
  :mod:`pytest_unlearn.openunlearning_passes`; more norm, more loss: less likely a member).
- ``reference`` (open-unlearning ``mia/reference.py``, ``ReferenceAttack.compute_score``): the
  document's mean NLL under the model minus that under a reference model (``--reference``).

Third-party attacks join through the entry-point group ``pytest_unlearn.attacks`` (an
:class:`Attack`). Pure numpy; no torch.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.registry import Registry


@dataclass(frozen=True)
class TokenStats:
    """One document as an attack sees it: the log-prob of each token given its prefix, and
    (for Min-K%++) mean and variance of log p over the vocabulary at each position."""

    text: str
    logprobs: np.ndarray
    mu: np.ndarray | None = None
    sigma2: np.ndarray | None = None
    #: The same tokens' log-probs under the reference model (the ``reference`` attack).
    reference_logprobs: np.ndarray | None = None
    #: The gradient norm of the document's mean NLL (the ``gradnorm`` attack).
    grad_norm: float | None = None


@dataclass(frozen=True)
class Attack:
    name: str
    fn: Callable[..., float]
    description: str
    source: str
    needs_vocab: bool = False  # needs mu and sigma^2 of the full next-token distribution
    needs_reference: bool = False  # needs the reference model's log-probs of the same tokens
    needs_gradient: bool = False  # needs the per-sample gradient norm

    def score(self, stats: TokenStats, **params: Any) -> float:
        if stats.logprobs.size == 0:
            raise UnlearnError(f"the {self.name} attack needs at least one scored token per document")
        if self.needs_vocab and (stats.mu is None or stats.sigma2 is None):
            raise UnlearnError(f"internal: the {self.name} attack needs the vocabulary statistics")
        if self.needs_reference and stats.reference_logprobs is None:
            raise UnlearnError(f"the {self.name} attack needs a reference model: pass --reference PATH")
        if self.needs_gradient and stats.grad_norm is None:
            raise UnlearnError(f"internal: the {self.name} attack needs the per-sample gradient norm")
        return float(self.fn(stats, **params))


def loss(stats: TokenStats) -> float:
    return float(-stats.logprobs.mean())


def zlib_ratio(stats: TokenStats) -> float:
    return loss(stats) / len(zlib.compress(stats.text.encode("utf-8")))


def _lowest_mean(values: np.ndarray, k: float) -> float:
    if not 0 < k <= 1:
        raise UnlearnError(f"--setting mia_k={k}: k must be in (0, 1]")
    count = max(1, int(len(values) * k))
    return float(np.mean(np.sort(values)[:count]))


def min_k(stats: TokenStats, k: float = 0.4) -> float:
    return -_lowest_mean(stats.logprobs, k)


def min_k_plus_plus(stats: TokenStats, k: float = 0.4) -> float:
    sigma = np.sqrt(np.maximum(stats.sigma2, 1e-6))  # type: ignore[arg-type]
    return -_lowest_mean((stats.logprobs - stats.mu) / sigma, k)


def reference(stats: TokenStats) -> float:
    return loss(stats) - float(-stats.reference_logprobs.mean())  # type: ignore[union-attr]


def grad_norm(stats: TokenStats) -> float:
    return float(stats.grad_norm)  # type: ignore[arg-type]


LOSS = Attack("loss", loss, "mean token NLL", "Yeom et al. 2018; open-unlearning mia/loss.py")
ZLIB = Attack(
    "zlib", zlib_ratio, "mean token NLL / zlib-compressed bytes", "Carlini et al. 2021; open-unlearning mia/zlib.py"
)
MIN_K = Attack("min_k", min_k, "minus the mean of the lowest k% token log-probs", "Shi et al. 2024; mia/min_k.py")
MIN_K_PLUS_PLUS = Attack(
    "min_k_plus_plus",
    min_k_plus_plus,
    "Min-K% on (log p - mu) / sigma over the next-token distribution",
    "Zhang et al. 2024; open-unlearning mia/min_k_plus_plus.py",
    needs_vocab=True,
)


GRAD_NORM = Attack(
    "gradnorm",
    grad_norm,
    "mean over parameters of the p-norm of the gradient of the mean token NLL",
    "Maini et al. 2024 (arXiv 2402.17012); open-unlearning mia/gradnorm.py GradNormAttack",
    needs_gradient=True,
)
REFERENCE = Attack(
    "reference",
    reference,
    "mean token NLL under the model minus under the reference model",
    "Carlini et al. 2021; open-unlearning mia/reference.py ReferenceAttack",
    needs_reference=True,
)


def _as_attack(obj: Any) -> Attack:
    if not isinstance(obj, Attack):
        raise UnlearnError(f"attack entry {obj!r} is not a pytest_unlearn.attacks.Attack")
    return obj


# Entry-point group ``pytest_unlearn.attacks``; the built-in attacks are declared here, beside
# their definitions (open-unlearning's src/evals/metrics/mia/).
ATTACKS: Registry[Attack] = Registry("attack", _as_attack)
for _name, _attr in {
    "loss": "LOSS",
    "zlib": "ZLIB",
    "min_k": "MIN_K",
    "min_k_plus_plus": "MIN_K_PLUS_PLUS",
    # open-unlearning's white-box and reference attacks: they need a gradient or a reference pass.
    "gradnorm": "GRAD_NORM",
    "reference": "REFERENCE",
}.items():
    ATTACKS.register(_name, f"{__name__}:{_attr}")


#: open-unlearning's metric name of each built-in attack's AUC (``configs/eval/*_metrics/mia_*.yaml``),
#: as their TOFU_EVAL.json / MUSE_EVAL.json name the per-sample scores.
OPEN_UNLEARNING_METRICS = {
    "loss": "mia_loss",
    "zlib": "mia_zlib",
    "min_k": "mia_min_k",
    "min_k_plus_plus": "mia_min_k_plus_plus",
    "gradnorm": "mia_gradnorm",
    "reference": "mia_reference",
}


def get_attack(name: str, flag: str = "--setting mia_attack") -> Attack:
    try:
        return ATTACKS.get(name)
    except UnlearnError as exc:
        raise UnlearnError(f"{flag}={name}: {exc}") from None
