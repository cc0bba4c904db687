"""Adjacent concepts chosen by embedding similarity, instead of the manifest's ``[adjacent]``.

- ``adjacent_from = "clip-text"``: each target's ``adjacent_k`` nearest candidates by cosine
  similarity of the judge's text embeddings of the judge prompts ("a photo of {concept}").
- ``adjacent_from = "clip-image"``: as FADE ranks a concept's neighbourhood
  (IAB-IITJ/FADE, ``concept_neighborhood/calculate_similarity.py``): CLIP image features of
  the images the *original* model generates for each concept, each L2-normalised, averaged per
  concept; neighbours by cosine similarity of the averages (× CLIP's logit scale), highest first.

Candidates are the CSV's concepts (or the manifest's ``[candidates]``) other than the target
and the concepts its model is meant to forget (their images are supposed to lose the concept,
so they cannot show that a neighbour survived). Ties keep the candidates' order (a stable
sort), so the choice is deterministic. Pure numpy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _top(
    target: str, scores: Mapping[str, float], candidates: Sequence[str], excluded: set[str], k: int
) -> tuple[str, ...]:
    allowed = [c for c in candidates if c != target and c not in excluded]
    order = np.argsort(-np.asarray([scores[c] for c in allowed], dtype=np.float64), kind="stable")[:k]
    return tuple(allowed[i] for i in order)


def nearest_concepts(
    targets: Sequence[str],
    concepts: Sequence[str],
    embeddings: np.ndarray | Mapping[str, np.ndarray],
    k: int,
    excluded: Mapping[str, set[str]] | None = None,
    candidates: Sequence[str] | None = None,
) -> dict[str, tuple[str, ...]]:
    """clip-text: for each target, the ``k`` candidates whose embeddings are most cosine-similar.

    ``embeddings`` has one row per entry of ``concepts`` (or maps names to vectors);
    ``candidates`` default to ``concepts``; ``excluded[target]`` default to every target.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    if not isinstance(embeddings, Mapping):
        embeddings = dict(zip(concepts, np.asarray(embeddings, dtype=np.float64)))
    vectors = {name: _unit(np.asarray(v, dtype=np.float64)) for name, v in embeddings.items()}
    pool = list(candidates if candidates is not None else concepts)
    chosen = {}
    for target in targets:
        scores = {c: float(vectors[c] @ vectors[target]) for c in pool}
        gone = set(targets) if excluded is None else set(excluded.get(target, ()))
        chosen[target] = _top(target, scores, pool, gone, k)
    return chosen


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def concept_features(features: np.ndarray) -> np.ndarray:
    """FADE's per-concept feature: the mean of the L2-normalised image features (not renormalised)."""
    return _unit(np.asarray(features, dtype=np.float64)).mean(axis=0)


def fade_neighbours(
    targets: Sequence[str],
    candidates: Sequence[str],
    features: Mapping[str, np.ndarray],
    k: int,
    excluded: Mapping[str, set[str]] | None = None,
    logit_scale: float = 1.0,
) -> tuple[dict[str, tuple[str, ...]], dict[str, dict[str, float]]]:
    """clip-image: each target's ``k`` neighbours and every candidate's score
    ``logit_scale · cos(mean_t, mean_c)``, ``features[c]`` being one image feature per row."""
    if k < 1:
        raise ValueError("k must be at least 1")
    means = {name: concept_features(rows) for name, rows in features.items() if len(rows)}
    chosen, scores = {}, {}
    for target in targets:
        a = means[target]
        ranked = [c for c in candidates if c in means]  # a concept without images cannot be ranked
        table = {c: float(logit_scale * _cosine(a, means[c])) for c in ranked}
        gone = set(targets) if excluded is None else set(excluded.get(target, ()))
        chosen[target] = _top(target, table, ranked, gone, k)
        scores[target] = {c: v for c, v in table.items() if c != target}
    return chosen, scores
