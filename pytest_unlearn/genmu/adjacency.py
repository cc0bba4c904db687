"""Adjacent concepts by text-embedding similarity, as the FADE baseline chooses them.

The manifest's ``[adjacent]`` table is the default; with ``--setting adjacent_from=clip`` the
adjacent concepts of each target are instead its ``adjacent_k`` nearest concepts by cosine
similarity of the judge's text embeddings of the judge prompts ("a photo of {concept}").
Candidates are the concepts of the prompt CSV that are not targets themselves (a target's
images are supposed to lose their concept, so they cannot show that a neighbour survived).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def nearest_concepts(
    targets: Sequence[str], concepts: Sequence[str], embeddings: np.ndarray, k: int
) -> dict[str, tuple[str, ...]]:
    """For each target, the ``k`` non-target concepts whose embeddings are most cosine-similar.

    ``embeddings`` has one row per entry of ``concepts``. Ties keep the CSV order of the
    concepts (a stable sort), so the choice is deterministic.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    vectors = np.asarray(embeddings, dtype=np.float64)
    vectors = vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)
    index = {name: i for i, name in enumerate(concepts)}
    candidates = [name for name in concepts if name not in set(targets)]
    chosen = {}
    for target in targets:
        similarity = vectors[[index[c] for c in candidates]] @ vectors[index[target]]
        order = np.argsort(-similarity, kind="stable")[:k]
        chosen[target] = tuple(candidates[i] for i in order)
    return chosen
