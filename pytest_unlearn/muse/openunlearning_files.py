"""open-unlearning's MUSE result files, both ways: ``MUSE_EVAL.json`` read as ``--predictions`` /
``--reference`` logs, and written from our inputs (``--setting write_openunlearning=true``) with
``MUSE_SUMMARY.json`` beside it, as ``src/evals/base.py`` (``Evaluator.save_logs``,
``summarize``) saves them for ``src/evals/muse.py`` (``MUSEEvaluator``), under the metric names
of ``configs/eval/muse.yaml``. Pure Python and numpy.

Per metric (``src/evals/metrics/memorization.py``, ``utils.py``, ``privacy.py``, ``mia/utils.py``):
``forget_verbmem_ROUGE``, ``forget_knowmem_ROUGE``, ``retain_knowmem_ROUGE``: per index
``rougeL_f1`` (``eval_text_similarity``), ``agg_value`` their mean in [0, 1] (ours is x 100);
``mia_min_k`` (``privleak``'s pre-compute, kept in the file by their cache): ``forget`` and
``holdout`` each with per-index ``score`` (minus the mean of the lowest k% token log-probs, as
ours), and ``auc`` = ``agg_value`` = ROC AUC with holdout labelled 1 scored by ``score``, which
is 1 - MUSE's AUC that we report; ``privleak``: ``agg_value`` only; ``exact_memorization``,
``extraction_strength``: per-index ``score``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pytest_unlearn import openunlearning as ou
from pytest_unlearn.attacks import OPEN_UNLEARNING_METRICS
from pytest_unlearn.errors import UnlearnError

EVAL_FILE = "MUSE_EVAL.json"
SUMMARY_FILE = "MUSE_SUMMARY.json"
ROUGE = {"verbmem": "forget_verbmem_ROUGE", "knowmem_forget": "forget_knowmem_ROUGE",
         "knowmem_retain": "retain_knowmem_ROUGE"}  # fmt: skip
MIA = "mia_min_k"
MEMORIZATION = ("exact_memorization", "extraction_strength")


@dataclass(frozen=True)
class MuseLog:
    """The per-sample values one MUSE_EVAL.json carries (a metric it lacks is absent)."""

    path: Path
    rouge: dict[str, np.ndarray] = field(default_factory=dict)  # keyed as ROUGE's keys
    privleak: dict[str, np.ndarray] | None = None  # "forget" / "holdout" Min-K scores
    memorization: dict[str, list[float]] = field(default_factory=dict)
    # Per attack of its mia_* entries: "forget" / "holdout" per-sample scores.
    mia: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def require_rouge(self, key: str, flag: str) -> np.ndarray:
        if key not in self.rouge:
            raise UnlearnError(
                f"{flag} {self.path}: the MUSE_EVAL.json has no {ROUGE[key]}; run open-unlearning's MUSE eval with it"
            )
        return self.rouge[key]

    def require_privleak(self, flag: str) -> dict[str, np.ndarray]:
        if self.privleak is None:
            raise UnlearnError(
                f"{flag} {self.path}: the MUSE_EVAL.json has no per-sample {MIA} (privleak's pre-compute); run "
                "open-unlearning's MUSE eval with privleak"
            )
        return self.privleak


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UnlearnError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def _scores(entry: Any, key: str, where: str) -> list[float]:
    by_index = entry.get("value_by_index") if isinstance(entry, dict) else None
    if not isinstance(by_index, dict):
        raise UnlearnError(f"{where}: no value_by_index (per-sample values)")
    out = []
    for index, value in by_index.items():
        if not isinstance(value, dict) or key not in value:
            raise UnlearnError(f"{where}: value_by_index[{index}] has no {key!r}")
        if value[key] is not None:  # their None: a sample without a scorable token
            out.append(_number(value[key], f"{where}: value_by_index[{index}].{key}"))
    return out


def load_muse_eval(path: Path, flag: str) -> MuseLog:
    """Read an open-unlearning ``MUSE_EVAL.json`` (or the folder holding it); a
    ``MUSE_SUMMARY.json`` is refused in one line: it has no per-sample values (as ``--reference``
    it gives PrivLeak's AUC_retrain: ``summary_auc_retrain``)."""
    if path.is_dir():
        path = path / EVAL_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UnlearnError(f"{flag} {path}: no such file; pass open-unlearning's {EVAL_FILE}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnlearnError(f"{flag} {path}: not a readable JSON file ({exc})") from None
    if not isinstance(data, dict):
        raise UnlearnError(f"{flag} {path}: expected open-unlearning's {EVAL_FILE} (a JSON object of metrics)")
    if path.name == SUMMARY_FILE or (data and all(not isinstance(v, dict) for v in data.values())):
        raise UnlearnError(
            f"{flag} {path}: open-unlearning's {SUMMARY_FILE} holds only aggregate values, no per-sample scores to "
            f"check or bootstrap; pass the {EVAL_FILE} beside it"
        )
    known = (*ROUGE.values(), *OPEN_UNLEARNING_METRICS.values(), *MEMORIZATION)
    if not any(name in data for name in known):
        raise UnlearnError(f"{flag} {path}: none of open-unlearning's MUSE metrics ({', '.join(known)}) is in it")
    where = f"{flag} {path}"
    rouge = {
        key: np.array(_scores(data[name], "rougeL_f1", f"{where}: {name}"))
        for key, name in ROUGE.items()
        if name in data
    }
    mia = {}
    for attack, name in OPEN_UNLEARNING_METRICS.items():
        if name not in data:
            continue
        entry = data[name]
        if not isinstance(entry, dict) or not all(isinstance(entry.get(s), dict) for s in ("forget", "holdout")):
            raise UnlearnError(f"{where}: {name} has no forget and holdout per-sample scores")
        mia[attack] = {s: np.array(_scores(entry[s], "score", f"{where}: {name}.{s}")) for s in ("forget", "holdout")}
    memorization = {name: _scores(data[name], "score", f"{where}: {name}") for name in MEMORIZATION if name in data}
    return MuseLog(path, rouge, mia.get("min_k"), memorization, mia)


def is_summary(path: Path) -> bool:
    """A ``MUSE_SUMMARY.json`` (by name, or a JSON object of bare numbers)."""
    if path.name == SUMMARY_FILE:
        return True
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and bool(data) and all(not isinstance(v, dict) for v in data.values())


def summary_auc_retrain(path: Path, flag: str) -> float:
    """The retrained model's AUC (our orientation) from its ``MUSE_SUMMARY.json``: PrivLeak
    needs only that number of the retrained model (open-unlearning's ``privleak`` reads the
    ``mia_min_k`` ``agg_value`` of its ``retain_logs_path`` the same way). Their AUC scores
    forget as 0 and holdout as 1, ours the other way round: ours is ``1 - theirs``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnlearnError(f"{flag} {path}: not a readable JSON file ({exc})") from None
    if not isinstance(data, dict) or MIA not in data:
        raise UnlearnError(
            f"{flag} {path}: the {SUMMARY_FILE} has no {MIA} (the retrained model's MIA AUC PrivLeak needs); run "
            "open-unlearning's MUSE eval with privleak, or pass its MUSE_EVAL.json or the model's folder"
        )
    value = data[MIA]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise UnlearnError(f"{flag} {path}: {MIA} = {value!r}; expected an AUC in [0, 1]")
    return 1.0 - float(value)


def _rouge_entry(values: np.ndarray) -> dict[str, Any]:
    return {
        "agg_value": float(np.mean(values)) if values.size else None,
        "value_by_index": {str(i): {"rougeL_f1": float(v)} for i, v in enumerate(values)},
    }


def dump_muse_eval(
    rouge: dict[str, np.ndarray],
    privleak: dict[str, np.ndarray] | None,
    signed_privleak: float | None,
    memorization: dict[str, list[float]],
    mia: dict[str, dict[str, np.ndarray]] | None = None,
) -> dict[str, Any]:
    """``MUSE_EVAL.json`` of what was computed, metrics sorted by name (``save_logs``); ``mia``:
    per attack of the ``muse.mia_auc`` checks, the forget and holdout scores (PrivLeak's own
    Min-K% scores, when computed, are its ``mia_min_k``)."""
    out: dict[str, Any] = {ROUGE[key]: _rouge_entry(values) for key, values in rouge.items()}
    for attack, sets in (mia or {}).items():
        out[OPEN_UNLEARNING_METRICS[attack]] = ou.mia_entry(sets["forget"], sets["holdout"])
    if privleak is not None:
        out[MIA] = ou.mia_entry(privleak["forget"], privleak["holdout"])
    if signed_privleak is not None:
        out["privleak"] = {"agg_value": signed_privleak}
    for name, values in memorization.items():
        out[name] = ou.score_entry(values)
    return dict(sorted(out.items()))


def summary(evals: dict[str, Any]) -> dict[str, Any]:
    """``MUSE_SUMMARY.json``: every metric's ``agg_value`` (``Evaluator.summarize``)."""
    return {name: entry["agg_value"] for name, entry in evals.items() if entry.get("agg_value") is not None}


def encode(value: dict[str, Any]) -> bytes:
    return (json.dumps(value, indent=4) + "\n").encode("utf-8")
