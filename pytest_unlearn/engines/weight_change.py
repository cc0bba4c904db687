"""How far unlearning moved a model's weights: the L2 norm of the whole difference, per
component and per layer (torch-free; ``diffusion.weight_change`` feeds it per-tensor sums)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np


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
