"""``--predictions`` for rwku: the answers RWKU's evaluation wrote (``forget.json`` and
``neighbor.json``: ``{"results": [probe + "prediction"], ...}``), in one folder (a batch, or our
own ``rwku/`` artifacts) or one sub-folder per target (RWKU's ``results/.../<target>/``).

Each probe of the selected targets is matched by set, level, subject and query; the forget and
neighbour checks are then rescored from the answers alone (MIA needs the weights).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pytest_unlearn import domains
from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.integrity import read_text
from pytest_unlearn.rwku.data import Probe, RwkuData

FIX = "pass the folder RWKU's evaluation (or a previous run's rwku/ artifacts) wrote"


class Predicted(Probe):
    """A result row: the probe and the model's answer."""

    prediction: domains.Text


def _files(folder: Path, name: str) -> list[Path]:
    if (folder / name).is_file():
        return [folder / name]
    return sorted(p for p in folder.glob(f"*/{name}") if p.is_file())


def _rows(path: Path) -> list[Any]:
    try:
        content = json.loads(read_text(path, "--predictions"))
    except json.JSONDecodeError as exc:
        raise UnlearnError(f"--predictions {path}: not JSON ({exc.msg} at line {exc.lineno}); {FIX}") from None
    rows = content.get("results") if isinstance(content, dict) else None
    if not isinstance(rows, list):
        raise UnlearnError(f'--predictions {path}: no "results" list (RWKU\'s result files hold one); {FIX}')
    return rows


def load_predictions(folder: Path, data: RwkuData) -> dict[str, list[str]]:
    """Per set, the answer to each probe of ``data`` in its order."""
    if not folder.is_dir():
        raise UnlearnError(f"--predictions {folder}: expected a folder with forget.json and neighbor.json; {FIX}")
    out: dict[str, list[str]] = {}
    for set_name in ("forget", "neighbor"):
        files = _files(folder, f"{set_name}.json")
        if not files:
            raise UnlearnError(f"--predictions {folder}: no {set_name}.json (nor */{set_name}.json); {FIX}")
        answers: dict[tuple[str, str, str], str] = {}
        for path in files:
            for number, row in enumerate(_rows(path), 1):
                result = domains.validate(Predicted, row, f"--predictions {path} result {number}", FIX)
                answers[(result.level or "", result.subject, result.query)] = result.prediction
        found = []
        for probe in data.probes(set_name):
            key = (probe.level, probe.subject, probe.query)
            if key not in answers:
                raise UnlearnError(
                    f"--predictions {folder}: no {set_name} answer to the level-{probe.level} probe {probe.query!r} "
                    f"of {probe.target}; {FIX} for the same data and targets"
                )
            found.append(answers[key])
        out[set_name] = found
    return out
