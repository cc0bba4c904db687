"""UnlearnCanvas' unlearning accuracy (UA), in-domain (IRA) and cross-domain (CRA) retain accuracy.

From ``machine_unlearning/evaluation/quantitative/accuracy.py`` and the README beside it: the
style classifier gives each style its accuracy over every object and seed of that style (the
``acc[theme]`` of ``--task style``), the object classifier each object its accuracy over every
style and seed (``--task class``). For a target of one kind (a style, or an object):

- UA = 1 − acc[target] (images of the target not classified as the target);
- IRA = mean of acc over the other names of the same kind;
- CRA = mean of acc over every name of the other kind (all images, the target's included, as the
  other task's ``acc`` counts them).

FID (``quantitative/fid.py``): the Fréchet distance between the features of the model's answer set
and of a reference answer set (the original model's), both without the target's images.

Each metric is scored on one target's model (``target=``) or averaged over the targets.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from pytest_unlearn.engines.fid import frechet_distance, gaussian_fit
from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.registry import Measurement, metric

KINDS = ("style", "object")


@dataclass(frozen=True)
class CanvasInputs:
    """What the checks score: per target, per kind, per name, whether each image of that name
    was classified as it (style images ordered object-major then seed, object images style-major)."""

    styles: tuple[str, ...] = ()
    objects: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    correct: dict[str, dict[str, dict[str, np.ndarray]]] = field(default_factory=dict)
    # FID: the answer sets' image features (rows in style, object, seed order) per target, and
    # the reference answer set's; None when no reference was given.
    seeds: tuple[int, ...] = ()
    features: dict[str, np.ndarray] = field(default_factory=dict)
    reference_features: np.ndarray | None = None
    extractor: str = ""

    def kind_of(self, name: str) -> str:
        return "style" if name in self.styles else "object"

    def names(self, kind: str) -> tuple[str, ...]:
        return self.styles if kind == "style" else self.objects

    def resample(self, rng: np.random.Generator, requires: tuple[str, ...]) -> CanvasInputs:
        """Each name's images drawn again with replacement (the cell sizes stay fixed)."""
        drawn = {
            target: {
                kind: {name: row[rng.integers(0, len(row), len(row))] for name, row in rows.items()}
                for kind, rows in kinds.items()
            }
            for target, kinds in self.correct.items()
        }
        return replace(self, correct=drawn)


def accuracies(inputs: CanvasInputs, target: str, kind: str) -> dict[str, float]:
    """accuracy.py's ``results["acc"]`` of the target's answer set for one task."""
    if target not in inputs.correct:
        raise UnlearnError(f"no classified images of the {target!r} model; the check cannot be scored")
    return {name: float(np.mean(row)) for name, row in inputs.correct[target][kind].items()}


def scores(inputs: CanvasInputs, target: str) -> dict[str, float]:
    """UA, IRA and CRA of one target."""
    kind = inputs.kind_of(target)
    other = "object" if kind == "style" else "style"
    own, cross = accuracies(inputs, target, kind), accuracies(inputs, target, other)
    rest = [own[name] for name in inputs.names(kind) if name != target]
    return {
        "ua": 1.0 - own[target],
        "ira": float(np.mean(rest)) if rest else float("nan"),
        "cra": float(np.mean([cross[name] for name in inputs.names(other)])),
    }


def _measure(inputs: CanvasInputs, which: str, target: str | None) -> Measurement:
    targets = [target] if target else list(inputs.targets)
    if not targets:
        raise UnlearnError("no targets to score; name them with --setting targets=NAME")
    per = {t: scores(inputs, t)[which] for t in targets}
    # Every image is classified twice (style and object): count it once.
    images = sum(len(row) for t in targets for row in inputs.correct[t]["style"].values())
    details: dict[str, Any] = {"per_target": per} if target is None else {"kind": inputs.kind_of(target)}
    return Measurement(float(np.mean(list(per.values()))), images, details)


@metric("unlearncanvas.ua", higher_is_better=True, unit="fraction", requires=("answers",))
def ua(inputs: CanvasInputs, target: str | None = None) -> Measurement:
    """UA: share of the target's images not classified as the target (UnlearnCanvas accuracy.py)."""
    return _measure(inputs, "ua", target)


@metric("unlearncanvas.ira", higher_is_better=True, unit="fraction", requires=("answers",))
def ira(inputs: CanvasInputs, target: str | None = None) -> Measurement:
    """IRA: mean accuracy of the other styles (objects) of the target's kind (UnlearnCanvas)."""
    return _measure(inputs, "ira", target)


@metric("unlearncanvas.cra", higher_is_better=True, unit="fraction", requires=("answers",))
def cra(inputs: CanvasInputs, target: str | None = None) -> Measurement:
    """CRA: mean accuracy of every object (style) when a style (object) was unlearned (UnlearnCanvas)."""
    return _measure(inputs, "cra", target)


def _without(inputs: CanvasInputs, target: str) -> np.ndarray:
    """Rows of the answer set (style, object, seed order) not involving ``target`` (fid.py's
    ``exclude``)."""
    return np.array(
        [style != target and obj != target for style in inputs.styles for obj in inputs.objects for _ in inputs.seeds]
    )


def fid_of(inputs: CanvasInputs, target: str) -> float:
    """The Fréchet distance of one target's answer set to the reference, the target excluded."""
    if inputs.reference_features is None:
        raise UnlearnError(
            "FID needs a reference answer set: pass --setting fid_reference=DIR (the original model's images)"
        )
    if target not in inputs.features:
        raise UnlearnError(f"no image features of the {target!r} model; the check cannot be scored")
    keep = _without(inputs, target)
    mu1, sigma1 = gaussian_fit(inputs.reference_features[keep])
    mu2, sigma2 = gaussian_fit(inputs.features[target][keep])
    return frechet_distance(mu1, sigma1, mu2, sigma2)


@metric("unlearncanvas.fid", higher_is_better=False, unit="fid", requires=("answers",), sampled=False)
def fid(inputs: CanvasInputs, target: str | None = None) -> Measurement:
    """FID of the answer set against the original model's, the target's images left out (UnlearnCanvas fid.py)."""
    targets = [target] if target else list(inputs.targets)
    per = {t: fid_of(inputs, t) for t in targets}
    images = sum(int(_without(inputs, t).sum()) for t in targets)
    details: dict[str, Any] = {"extractor": inputs.extractor}
    if target is None:
        details["per_target"] = per
    return Measurement(float(np.mean(list(per.values()))), images, details)
