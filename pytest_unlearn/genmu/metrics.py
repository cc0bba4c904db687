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
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from pytest_unlearn.engines.judges import clip_score  # noqa: F401  (re-exported: the suite's metric helpers)
from pytest_unlearn.engines.weight_change import WeightChange, combine_weight_change  # noqa: F401
from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.registry import Measurement, metric
from pytest_unlearn.stats import resample

PROMPT_TYPES = ("direct", "indirect", "adversarial")
FORGET_PARTS = {"direct": "a_fgt", "indirect": "a_ind", "adversarial": "a_adv"}


def err(parts: Iterable[float]) -> float:
    """Harmonic mean of the accuracies (0 when any of them is 0)."""
    return float(statistics.harmonic_mean(list(parts)))


def _stream(key: Any) -> list[int]:
    """A stable seed sequence of an image set's key (Python's ``hash`` of a str is salted)."""
    import hashlib

    digest = hashlib.sha256(repr(key).encode()).digest()
    return [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]


@dataclass(frozen=True)
class GenmuInputs:
    """Judged images and weight changes that every Genμ metric is computed from.

    Both submission forms of the challenge: one multi-concept model (``model_of`` maps every
    target to the same key, ``""``) or one single-concept model per target (keyed by the
    concept). ``erased[m]`` are the targets model ``m`` is meant to have forgotten; its
    retention and adjacent concepts are the others.

    ``presence`` maps (model, concept, prompt type) to one 0/1 per image: was the prompted
    concept seen by the judge. ``clip_scores``/``original_clip_scores`` hold, per model, the
    scores of its retention images (and of the original's images of the same prompts).
    ``template_concepts`` have no CSV row (images from ``adjacent_template``): they count as
    adjacent concepts only, never as retention.
    """

    targets: tuple[str, ...]
    adjacent: dict[str, tuple[str, ...]]
    model_of: dict[str, str] = field(default_factory=dict)
    erased: dict[str, tuple[str, ...]] = field(default_factory=dict)
    template_concepts: tuple[str, ...] = ()
    presence: dict[tuple[str, str, str], np.ndarray] | None = None
    clip_scores: dict[str, np.ndarray] | None = None
    original_clip_scores: dict[str, np.ndarray] | None = None
    weight_change: dict[str, WeightChange] | None = None

    def resample(self, rng: np.random.Generator, requires: tuple[str, ...]) -> GenmuInputs:
        """A stratified bootstrap replicate of the required image sets (weights are fixed)."""
        # Each image set draws from its own stream (one base seed per replicate, and the set's
        # key): a model's replicate must not depend on which other models this process judged
        # (an xdist worker holds only its own), nor on the order it judged them in.
        base = int(rng.integers(0, 2**63))

        def draw(table: dict[Any, np.ndarray]) -> dict[Any, np.ndarray]:
            return {k: resample(v, np.random.default_rng([base, *_stream(k)])) for k, v in table.items()}

        changes: dict[str, object] = {}
        if "images" in requires and self.presence is not None:
            changes["presence"] = draw(self.presence)
            if self.clip_scores is not None:
                changes["clip_scores"] = draw({("clip", k): v for k, v in self.clip_scores.items()})
                changes["clip_scores"] = {k[1]: v for k, v in changes["clip_scores"].items()}
        if "original_images" in requires and self.original_clip_scores is not None:
            drawn = draw({("original", k): v for k, v in self.original_clip_scores.items()})
            changes["original_clip_scores"] = {k[1]: v for k, v in drawn.items()}
        return replace(self, **changes)

    # -- the five accuracies -------------------------------------------------------------------
    def _presence(self) -> dict[tuple[str, str, str], np.ndarray]:
        if self.presence is None:
            raise UnlearnError("internal: images were not judged")
        return self.presence

    def model(self, concept: str) -> str:
        return self.model_of.get(concept, "")

    def models(self) -> list[str]:
        """The model keys, in target order."""
        return list(dict.fromkeys(self.model(c) for c in self.targets))

    def forget_accuracy(self, concept: str, prompt_type: str) -> tuple[float, int]:
        images = self._presence().get((self.model(concept), concept, prompt_type))
        if images is None or images.size == 0:
            raise UnlearnError(f"no {prompt_type} prompts for concept {concept!r} in the prompt CSV")
        return 1.0 - float(images.mean()), int(images.size)

    def presence_accuracy(self, model: str, concepts: Iterable[str]) -> tuple[float, int]:
        pooled = [self._presence().get((model, c, "direct")) for c in concepts]
        pooled = [p for p in pooled if p is not None and p.size]
        if not pooled:
            return float("nan"), 0
        joined = np.concatenate(pooled)
        return float(joined.mean()), int(joined.size)

    def retention_concepts(self, concept: str) -> list[str]:
        """Every concept of the CSV that the model of ``concept`` is not meant to forget."""
        model = self.model(concept)
        gone = set(self.erased.get(model, self.targets)) | set(self.template_concepts)
        return sorted({c for m, c, _ in self._presence() if m == model and c not in gone})

    def adjacent_concepts(self, concept: str) -> list[str]:
        # An adjacent concept that its model is meant to erase as well cannot count.
        gone = set(self.erased.get(self.model(concept), self.targets))
        return [c for c in self.adjacent.get(concept, ()) if c not in gone]

    def parts(self, concept: str) -> dict[str, float]:
        model = self.model(concept)
        out = {FORGET_PARTS[t]: self.forget_accuracy(concept, t)[0] for t in PROMPT_TYPES}
        out["a_ret"] = self.presence_accuracy(model, self.retention_concepts(concept))[0]
        out["a_adj"] = self.presence_accuracy(model, self.adjacent_concepts(concept))[0]
        return out

    def averages(self) -> dict[str, float]:
        per_concept = [self.parts(c) for c in self.targets]
        return {key: float(np.mean([p[key] for p in per_concept])) for key in per_concept[0]}

    def mean_clip_score(self, which: str = "unlearned") -> tuple[float, int]:
        """The mean over models of each model's mean retention CLIP score (one model: its mean)."""
        table = self.clip_scores if which == "unlearned" else self.original_clip_scores
        if table is None:
            raise UnlearnError("internal: CLIP scores were not computed")
        scores = [table[m] for m in self.models() if m in table and table[m].size]
        if not scores:
            return float("nan"), 0
        return float(np.mean([s.mean() for s in scores])), int(sum(s.size for s in scores))

    def weight_ratio(self) -> tuple[float, dict[str, object]]:
        """The challenge's tie-breaker: (1/N_c) Σ_i ‖θ_orig − θ_un^i‖₂ / #parameters over the
        N_c submitted models (one model: its own ratio), with each model's term."""
        if self.weight_change is None:
            raise UnlearnError("internal: weights were not compared")
        models = self.models()
        changes = {m: self.weight_change[m] for m in models}
        if models == [""]:
            return changes[""].ratio, changes[""].summary()
        value = float(np.mean([c.ratio for c in changes.values()]))
        names = {m: next(c for c in self.targets if self.model(c) == m) for m in models}
        return value, {
            "models": len(models),
            "mean_of": "ratio of each single-concept model",
            "per_model": {names[m]: change.summary() for m, change in changes.items()},
        }


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
    concepts = inputs.retention_concepts(concept)
    value, n = inputs.presence_accuracy(inputs.model(concept), concepts)
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
    value, n = inputs.presence_accuracy(inputs.model(concept), concepts)
    if n == 0:
        raise UnlearnError(
            f"concept {concept!r} has no adjacent (non-target) concepts; list them under [adjacent] in the manifest"
        )
    templated = [c for c in concepts if c in inputs.template_concepts]
    return Measurement(value, n, {"concepts": concepts, "from_template": templated})


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
    # The images behind it: its model's (one concept), or every model's (the run).
    models = {inputs.model(concept)} if concept else set(inputs.models())
    n = sum(int(v.size) for (m, _, _), v in inputs._presence().items() if m in models)
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
    value, details = inputs.weight_ratio()
    parameters = sum(inputs.weight_change[m].parameters for m in inputs.models())  # type: ignore[index]
    return Measurement(value, parameters, details)


@metric(
    "genmu.clip_score",
    higher_is_better=True,
    unit="100*cos",
    requires=("images",),
    description="Mean CLIP score (100 · cosine, no clamp) of retention images and their prompts.",
)
def clip_score_metric(inputs: GenmuInputs) -> Measurement:
    value, n = inputs.mean_clip_score()
    if n and np.isnan(value):
        raise UnlearnError(
            "no CLIP scores: the judge is not CLIP; pass --setting clip_model=DIR to score retention images"
        )
    if n == 0:
        raise UnlearnError("no retention images to score: every concept of the prompt CSV is a target")
    return Measurement(value, n)


@metric(
    "genmu.clip_score_drop",
    higher_is_better=False,
    unit="100*cos",
    requires=("images", "original_images"),
    description="Original model's retention CLIP score minus the unlearned model's.",
)
def clip_score_drop(inputs: GenmuInputs) -> Measurement:
    unlearned, n = inputs.mean_clip_score()
    original, _ = inputs.mean_clip_score("original")
    if np.isnan(unlearned) or np.isnan(original):
        raise UnlearnError(
            "no CLIP scores: the judge is not CLIP; pass --setting clip_model=DIR to score retention images"
        )
    return Measurement(original - unlearned, n, {"original": original, "unlearned": unlearned})


def aggregates(inputs: GenmuInputs) -> dict[str, object]:
    out: dict[str, object] = dict.fromkeys(
        ("a_fgt", "a_ind", "a_adv", "a_ret", "a_adj", "err", "weight_change_ratio", "clip_score", "clip_score_original")
    )
    judged = {m for m, _, _ in inputs.presence} if inputs.presence is not None else set()
    done = [c for c in inputs.targets if inputs.model(c) in judged]  # -k may select some models only
    if done:
        if len(done) == len(inputs.targets):
            averages = inputs.averages()
            out.update(averages)
            if not any(np.isnan(v) for v in averages.values()):
                out["err"] = err(averages.values())
        out["per_concept"] = {c: inputs.parts(c) for c in done}
        out["adjacent"] = {c: inputs.adjacent_concepts(c) for c in done}
        out["adjacent_from_template"] = sorted(
            {a for c in done for a in inputs.adjacent_concepts(c) if a in inputs.template_concepts}
        )
    if inputs.clip_scores is not None and all(m in inputs.clip_scores for m in inputs.models()):
        value, n = inputs.mean_clip_score()
        out["clip_score"] = value if n else None
    if inputs.original_clip_scores is not None and all(m in inputs.original_clip_scores for m in inputs.models()):
        value, n = inputs.mean_clip_score("original")
        out["clip_score_original"] = value if n else None
    if inputs.weight_change is not None and all(m in inputs.weight_change for m in inputs.models()):
        out["weight_change_ratio"], out["weight_change"] = inputs.weight_ratio()
    return out
