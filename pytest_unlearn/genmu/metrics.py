"""Genμ challenge metrics (U&ME workshop, ICCV 2025): concept unlearning in Stable Diffusion v1.4.

Per target concept c, over images judged for concept presence:
- A_fgt / A_ind / A_adv: share of images of c's direct / indirect / adversarial prompts in which
  c is absent;
- A_ret: share of images of the retention concepts (every non-target concept) in which that
  concept is present;
- A_adj: the same over c's adjacent concepts;
- ERR: harmonic mean of the five (per concept), and over the run, of their averages over the
  target concepts.
Tie-breaker: the weight-change ratio ‖θ_orig − θ_un‖₂ / number of parameters. Retain quality:
CLIP score 100·cos(image, prompt) (not clamped at 0) and its drop against the original model.
Pure numpy; no torch here.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.registry import Measurement, metric
from pytest_unlearn.stats import resample

PROMPT_TYPES = ("direct", "indirect", "adversarial")
FORGET_PARTS = {"direct": "a_fgt", "indirect": "a_ind", "adversarial": "a_adv"}


def err(parts: Iterable[float]) -> float:
    """Harmonic mean of the accuracies (0 when any of them is 0)."""
    return float(statistics.harmonic_mean(list(parts)))


def clip_score(image_embeddings: np.ndarray, text_embeddings: np.ndarray) -> np.ndarray:
    """100 · cosine similarity of each image with its own prompt (rows paired), no clamp at 0."""
    a = image_embeddings / np.linalg.norm(image_embeddings, axis=-1, keepdims=True)
    b = text_embeddings / np.linalg.norm(text_embeddings, axis=-1, keepdims=True)
    return 100.0 * np.sum(a * b, axis=-1)


@dataclass(frozen=True)
class WeightChange:
    """‖θ_orig − θ_un‖₂ over the whole flattened difference, overall, per component, per layer."""

    l2: float
    parameters: int
    per_component: dict[str, tuple[float, int]] = field(default_factory=dict)
    per_layer: dict[str, tuple[float, int]] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.l2 / self.parameters if self.parameters else float("nan")

    def summary(self, top: int = 10) -> dict[str, object]:
        """The scorecard's breakdown: every component and the layers that changed most."""
        # Layers that did not change are left out: "where did the change go" is the question.
        layers = sorted(((k, v) for k, v in self.per_layer.items() if v[0] > 0), key=lambda item: -item[1][0])[:top]
        return {
            "l2": self.l2,
            "parameters": self.parameters,
            "ratio": self.ratio,
            "per_component": {
                name: {"l2": l2, "parameters": n, "ratio": l2 / n if n else None}
                for name, (l2, n) in self.per_component.items()
            },
            "top_layers": [{"layer": name, "l2": l2, "parameters": n} for name, (l2, n) in layers],
        }


def combine_weight_change(squared: Mapping[str, tuple[float, int]]) -> WeightChange:
    """Build a :class:`WeightChange` from per-tensor (sum of squared differences, size).

    Keys are ``component.module.path.param``; the norm of the whole difference is the square
    root of the summed squares, so components and layers add up exactly.
    """
    total_sq = 0.0
    total_n = 0
    components: dict[str, list[float]] = {}
    layers: dict[str, list[float]] = {}
    for key, (sq, n) in squared.items():
        total_sq += sq
        total_n += n
        component = key.split(".", 1)[0]
        layer = key.rsplit(".", 1)[0]
        for table, name in ((components, component), (layers, layer)):
            entry = table.setdefault(name, [0.0, 0])
            entry[0] += sq
            entry[1] += n
    return WeightChange(
        l2=float(np.sqrt(total_sq)),
        parameters=total_n,
        per_component={k: (float(np.sqrt(v[0])), int(v[1])) for k, v in components.items()},
        per_layer={k: (float(np.sqrt(v[0])), int(v[1])) for k, v in layers.items()},
    )


@dataclass(frozen=True)
class GenmuInputs:
    """Judged images and weight changes that every Genμ metric is computed from.

    ``presence`` maps (concept, prompt type) to one 0/1 per image: was the prompted concept
    seen by the judge. Target concepts have all three prompt types; retention concepts have
    their direct prompts. ``clip_scores``/``original_clip_scores`` are per retention image.
    """

    targets: tuple[str, ...]
    adjacent: dict[str, tuple[str, ...]]
    presence: dict[tuple[str, str], np.ndarray] | None = None
    clip_scores: np.ndarray | None = None
    original_clip_scores: np.ndarray | None = None
    weight_change: WeightChange | None = None

    def resample(self, rng: np.random.Generator, requires: tuple[str, ...]) -> GenmuInputs:
        """A stratified bootstrap replicate of the required image sets (weights are fixed)."""
        changes: dict[str, object] = {}
        if "images" in requires and self.presence is not None:
            changes["presence"] = {k: resample(v, rng) for k, v in self.presence.items()}
            if self.clip_scores is not None:
                changes["clip_scores"] = resample(self.clip_scores, rng)
        if "original_images" in requires and self.original_clip_scores is not None:
            changes["original_clip_scores"] = resample(self.original_clip_scores, rng)
        return replace(self, **changes)

    # -- the five accuracies -------------------------------------------------------------------
    def _presence(self) -> dict[tuple[str, str], np.ndarray]:
        if self.presence is None:
            raise UnlearnError("internal: images were not judged")
        return self.presence

    def forget_accuracy(self, concept: str, prompt_type: str) -> tuple[float, int]:
        images = self._presence().get((concept, prompt_type))
        if images is None or images.size == 0:
            raise UnlearnError(f"no {prompt_type} prompts for concept {concept!r} in the prompt CSV")
        return 1.0 - float(images.mean()), int(images.size)

    def presence_accuracy(self, concepts: Iterable[str]) -> tuple[float, int]:
        pooled = [self._presence().get((c, "direct")) for c in concepts]
        pooled = [p for p in pooled if p is not None and p.size]
        if not pooled:
            return float("nan"), 0
        joined = np.concatenate(pooled)
        return float(joined.mean()), int(joined.size)

    def retention_concepts(self) -> list[str]:
        return sorted({c for c, _ in self._presence() if c not in self.targets})

    def adjacent_concepts(self, concept: str) -> list[str]:
        # An adjacent concept that is itself a target is meant to be erased: it cannot count.
        return [c for c in self.adjacent.get(concept, ()) if c not in self.targets]

    def parts(self, concept: str) -> dict[str, float]:
        out = {FORGET_PARTS[t]: self.forget_accuracy(concept, t)[0] for t in PROMPT_TYPES}
        out["a_ret"] = self.presence_accuracy(self.retention_concepts())[0]
        out["a_adj"] = self.presence_accuracy(self.adjacent_concepts(concept))[0]
        return out

    def averages(self) -> dict[str, float]:
        per_concept = [self.parts(c) for c in self.targets]
        return {key: float(np.mean([p[key] for p in per_concept])) for key in per_concept[0]}


def _finite_parts(parts: dict[str, float], where: str) -> list[float]:
    missing = [k for k, v in parts.items() if np.isnan(v)]
    if missing:
        raise UnlearnError(
            f"{where}: no images for {', '.join(missing)} (no retention or adjacent concepts); "
            "add concepts to the prompt CSV or adjacency to the manifest"
        )
    return list(parts.values())


@metric(
    "genmu.forget",
    higher_is_better=True,
    unit="accuracy",
    requires=("images",),
    description="Share of images of the concept's prompts (direct/indirect/adversarial) without it.",
)
def forget(inputs: GenmuInputs, *, concept: str, prompt_type: str) -> Measurement:
    value, n = inputs.forget_accuracy(concept, prompt_type)
    return Measurement(value, n)


@metric(
    "genmu.retain",
    higher_is_better=True,
    unit="accuracy",
    requires=("images",),
    description="Share of images of the retention concepts in which that concept is present.",
)
def retain(inputs: GenmuInputs, *, concept: str) -> Measurement:
    concepts = inputs.retention_concepts()
    value, n = inputs.presence_accuracy(concepts)
    if n == 0:
        raise UnlearnError("no retention concepts: every concept of the prompt CSV is a target")
    return Measurement(value, n, {"concepts": concepts})


@metric(
    "genmu.adjacent",
    higher_is_better=True,
    unit="accuracy",
    requires=("images",),
    description="Share of images of the concept's adjacent concepts in which they are present.",
)
def adjacent(inputs: GenmuInputs, *, concept: str) -> Measurement:
    concepts = inputs.adjacent_concepts(concept)
    value, n = inputs.presence_accuracy(concepts)
    if n == 0:
        raise UnlearnError(
            f"concept {concept!r} has no adjacent (non-target) concepts with prompts; list them "
            "under [adjacent] in the manifest"
        )
    return Measurement(value, n, {"concepts": concepts})


@metric(
    "genmu.err",
    higher_is_better=True,
    unit="score",
    requires=("images",),
    description="Harmonic mean of A_fgt, A_ind, A_adv, A_ret, A_adj (of one concept, or of their averages).",
)
def err_metric(inputs: GenmuInputs, *, concept: str | None = None) -> Measurement:
    parts = inputs.parts(concept) if concept else inputs.averages()
    values = _finite_parts(parts, f"ERR of {concept!r}" if concept else "ERR")
    n = sum(int(v.size) for v in inputs._presence().values())
    return Measurement(err(values), n, dict(parts))


@metric(
    "genmu.weight_change_ratio",
    higher_is_better=False,
    unit="l2/parameter",
    requires=("weights",),
    description="‖θ_orig − θ_un‖₂ / number of parameters (Genμ tie-breaker).",
    sampled=False,
)
def weight_change_ratio(inputs: GenmuInputs) -> Measurement:
    if inputs.weight_change is None:
        raise UnlearnError("internal: weights were not compared")
    change = inputs.weight_change
    return Measurement(change.ratio, change.parameters, change.summary())


@metric(
    "genmu.clip_score",
    higher_is_better=True,
    unit="100*cos",
    requires=("images",),
    description="Mean CLIP score (100 · cosine, no clamp) of retention images and their prompts.",
)
def clip_score_metric(inputs: GenmuInputs) -> Measurement:
    if inputs.clip_scores is None or inputs.clip_scores.size == 0:
        raise UnlearnError("no retention images to score: every concept of the prompt CSV is a target")
    return Measurement(float(inputs.clip_scores.mean()), int(inputs.clip_scores.size))


@metric(
    "genmu.clip_score_drop",
    higher_is_better=False,
    unit="100*cos",
    requires=("images", "original_images"),
    description="Original model's retention CLIP score minus the unlearned model's.",
)
def clip_score_drop(inputs: GenmuInputs) -> Measurement:
    if inputs.clip_scores is None or inputs.original_clip_scores is None:
        raise UnlearnError("internal: CLIP scores were not computed")
    drop = float(inputs.original_clip_scores.mean() - inputs.clip_scores.mean())
    return Measurement(
        drop,
        int(inputs.clip_scores.size),
        {"original": float(inputs.original_clip_scores.mean()), "unlearned": float(inputs.clip_scores.mean())},
    )


def aggregates(inputs: GenmuInputs) -> dict[str, object]:
    out: dict[str, object] = dict.fromkeys(
        ("a_fgt", "a_ind", "a_adv", "a_ret", "a_adj", "err", "weight_change_ratio", "clip_score", "clip_score_original")
    )
    if inputs.presence is not None and inputs.targets:
        averages = inputs.averages()
        out.update(averages)
        if not any(np.isnan(v) for v in averages.values()):
            out["err"] = err(averages.values())
        out["per_concept"] = {c: inputs.parts(c) for c in inputs.targets}
        out["adjacent"] = {c: inputs.adjacent_concepts(c) for c in inputs.targets}
    if inputs.clip_scores is not None and inputs.clip_scores.size:
        out["clip_score"] = float(inputs.clip_scores.mean())
    if inputs.original_clip_scores is not None and inputs.original_clip_scores.size:
        out["clip_score_original"] = float(inputs.original_clip_scores.mean())
    if inputs.weight_change is not None:
        out["weight_change_ratio"] = inputs.weight_change.ratio
        out["weight_change"] = inputs.weight_change.summary()
    return out
