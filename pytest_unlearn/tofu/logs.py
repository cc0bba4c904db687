"""Per-sample TOFU logs in, and out: locuslab/tofu's ``eval_log_aggregated.json`` (and its four
``eval_*.json`` files), open-unlearning's ``TOFU_EVAL.json``, and a pytest-unlearn scorecard
whose artifacts hold them. What we write is TOFU's aggregated layout, so our artifacts are
themselves valid ``--predictions`` / ``--reference`` input. Pure Python and numpy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.tofu.metrics import TASKS, TOFU_FILES, TaskLog

AGGREGATED = "eval_log_aggregated.json"
OPEN_UNLEARNING = "TOFU_EVAL.json"
OPEN_UNLEARNING_SUMMARY = "TOFU_SUMMARY.json"
#: open-unlearning's per-sample memorization metrics (``{"score": x}`` per index), read when present.
OPEN_UNLEARNING_SCORES = ("exact_memorization", "extraction_strength")
#: The keys of TOFU's per-task logs that the aggregation reads.
TOFU_KEYS = ("avg_gt_loss", "avg_paraphrased_loss", "average_perturb_loss", "rougeL_recall")
#: open-unlearning's metric names per task: (true answer, base answer, perturbed answers, ROUGE).
OPEN_UNLEARNING_KEYS = {
    "forget": ("forget_Q_A_Prob", "forget_Q_A_PARA_Prob", "forget_Q_A_PERT_Prob", "forget_Q_A_ROUGE"),
    "retain": ("retain_Q_A_Prob", "retain_Q_A_PARA_Prob", "retain_Q_A_PERT_Prob", "retain_Q_A_ROUGE"),
    "real_authors": ("ra_Q_A_Prob", "ra_Q_A_Prob", "ra_Q_A_PERT_Prob", "ra_Q_A_ROUGE"),
    "world_facts": ("wf_Q_A_Prob", "wf_Q_A_Prob", "wf_Q_A_PERT_Prob", "wf_Q_A_ROUGE"),
}


def _read_json(path: Path, flag: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UnlearnError(f"{flag} {path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnlearnError(f"{flag} {path}: not a readable JSON file ({exc})") from None


def _tofu_task(task: str, raw: Any, where: str) -> TaskLog:
    """One of TOFU's per-task logs: ``{key: {index: value}}``."""
    if not isinstance(raw, dict):
        raise UnlearnError(f"{where}: expected an object of per-sample values, got {type(raw).__name__}")
    missing = [k for k in TOFU_KEYS if not isinstance(raw.get(k), dict)]
    if missing:
        raise UnlearnError(
            f"{where}: no {', '.join(missing)} (has {', '.join(sorted(raw)) or 'nothing'}); "
            "pass the log TOFU's evaluate_util.py writes"
        )
    indices = list(raw["avg_gt_loss"])
    for key in TOFU_KEYS[1:]:
        if set(raw[key]) != set(indices):
            raise UnlearnError(
                f"{where}: {key} has {len(raw[key])} samples but avg_gt_loss has {len(indices)}; "
                "the values of one log must cover the same samples"
            )
    perturbed = [raw["average_perturb_loss"][i] for i in indices]
    widths = {len(p) if isinstance(p, list) else -1 for p in perturbed}
    if len(widths) > 1 or -1 in widths:
        raise UnlearnError(f"{where}: average_perturb_loss needs a list of the same length for every sample")
    generated = raw.get("generated_text")
    generations = None
    if isinstance(generated, dict) and set(generated) == set(indices):
        generations = tuple(str(g[1]) if isinstance(g, list) and len(g) > 1 else str(g) for g in generated.values())
    from pytest_unlearn import domains

    # Each sample's values in their domains (losses >= 0, ROUGE in [0, 1]): a "missing" sentinel
    # such as rougeL_recall = -1 would otherwise be averaged into the verdict.
    samples = [
        domains.validate(domains.TofuSample, {key: raw[key][i] for key in TOFU_KEYS}, f"{where} sample {i}")
        for i in indices
    ]
    return TaskLog(
        task=task,
        indices=tuple(str(i) for i in indices),
        gt_loss=np.array([s.avg_gt_loss for s in samples], dtype=float),
        paraphrased_loss=np.array([s.avg_paraphrased_loss for s in samples], dtype=float),
        perturbed_loss=np.array([s.average_perturb_loss for s in samples], dtype=float).reshape(len(indices), -1),
        rouge=np.array([s.rougeL_recall for s in samples], dtype=float),
        generations=generations,
    )


def _from_tofu(data: dict[str, Any], where: str) -> dict[str, TaskLog]:
    return {task: _tofu_task(task, data[name], f"{where} {name}") for task, name in TOFU_FILES.items() if name in data}


def _values(data: dict[str, Any], name: str, field: str, where: str) -> dict[str, Any]:
    entry = data.get(name)
    by_index = entry.get("value_by_index") if isinstance(entry, dict) else None
    if not isinstance(by_index, dict):
        raise UnlearnError(f"{where}: no {name}.value_by_index; run open-unlearning's TOFU eval with {name}")
    out = {}
    for index, value in by_index.items():
        if not isinstance(value, dict) or field not in value:
            raise UnlearnError(f"{where}: {name}.value_by_index[{index}] has no {field!r}")
        out[str(index)] = value[field]
    return out


def _from_open_unlearning(data: dict[str, Any], where: str) -> dict[str, TaskLog]:
    logs = {}
    for task, (true_key, base_key, pert_key, rouge_key) in OPEN_UNLEARNING_KEYS.items():
        if true_key not in data:
            continue
        true = _values(data, true_key, "avg_loss", where)
        base = _values(data, base_key, "avg_loss", where)
        pert = _values(data, pert_key, "avg_loss", where)
        rouge = _values(data, rouge_key, "rougeL_recall", where)
        raw = {"avg_gt_loss": true, "avg_paraphrased_loss": base, "average_perturb_loss": pert, "rougeL_recall": rouge}
        logs[task] = _tofu_task(task, raw, f"{where} ({true_key}, {base_key}, {pert_key}, {rouge_key})")
    return logs


def load_logs(path: Path, flag: str) -> dict[str, TaskLog]:
    """The task logs in ``path``: a TOFU aggregated log, a folder of TOFU's ``eval_*.json``, an
    open-unlearning ``TOFU_EVAL.json``, or a pytest-unlearn tofu scorecard / artifacts folder."""
    where = f"{flag} {path}"
    if path.is_dir():
        for name in (AGGREGATED, OPEN_UNLEARNING):
            if (path / name).is_file():
                return load_logs(path / name, flag)
        present = {name: path / name for name in TOFU_FILES.values() if (path / name).is_file()}
        if not present and (path / OPEN_UNLEARNING_SUMMARY).is_file():
            return load_logs(path / OPEN_UNLEARNING_SUMMARY, flag)
        if not present:
            raise UnlearnError(
                f"{where}: no {AGGREGATED}, {OPEN_UNLEARNING} or eval_log*.json in this folder; "
                "pass TOFU's or open-unlearning's evaluation logs"
            )
        data = {name: _read_json(p, flag) for name, p in present.items()}
        return _from_tofu(data, where)
    data = _read_json(path, flag)
    if not isinstance(data, dict):
        raise UnlearnError(f"{where}: expected a JSON object of TOFU logs")
    schema = data.get("schema")
    if isinstance(schema, str) and schema.startswith("pytest-unlearn/scorecard"):
        logs_path = (data.get("artifacts") or {}).get("tofu_logs")
        if not logs_path:
            raise UnlearnError(f"{where}: a scorecard without tofu_logs artifacts; pass a --suite tofu scorecard")
        candidate = Path(logs_path)
        if not candidate.is_absolute() and not candidate.exists():
            candidate = path.parent / candidate
        return load_logs(candidate, flag)
    if _is_summary(data):
        raise UnlearnError(
            f"{where}: open-unlearning's {OPEN_UNLEARNING_SUMMARY} holds only aggregate values, no per-sample "
            f"scores to check or bootstrap; pass the {OPEN_UNLEARNING} beside it"
        )
    if any(name in data for name in TOFU_FILES.values()):
        logs = _from_tofu(data, where)
    elif any(keys[0] in data for keys in OPEN_UNLEARNING_KEYS.values()):
        logs = _from_open_unlearning(data, where)
    else:
        raise UnlearnError(
            f"{where}: neither TOFU's eval_log_aggregated.json (keys {', '.join(TOFU_FILES.values())}) "
            f"nor open-unlearning's TOFU_EVAL.json (keys such as forget_Q_A_Prob); got keys "
            f"{', '.join(sorted(data)[:6]) or 'none'}"
        )
    return logs


def _is_summary(data: dict[str, Any]) -> bool:
    """open-unlearning's ``*_SUMMARY.json``: metric names mapped to bare numbers."""
    known = {k for keys in OPEN_UNLEARNING_KEYS.values() for k in keys} | {"forget_quality", "model_utility"}
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in data.values())
    return bool(data) and numbers and bool(known & set(data))


def _open_unlearning_eval(path: Path, flag: str) -> tuple[Path, dict[str, Any] | None]:
    """The ``TOFU_EVAL.json`` at ``path`` (or in that folder) and its content; None when there is
    none or ``path`` is another kind of log."""
    if path.is_dir():
        path = path / OPEN_UNLEARNING
    if not path.is_file():
        return path, None
    data = _read_json(path, flag)
    if not isinstance(data, dict) or not any(keys[0] in data for keys in OPEN_UNLEARNING_KEYS.values()):
        return path, None
    return path, data


def load_open_unlearning_scores(path: Path, flag: str) -> dict[str, list[float]]:
    """``exact_memorization`` / ``extraction_strength`` per-sample scores of an open-unlearning
    ``TOFU_EVAL.json`` (empty when ``path`` is another kind of log or lacks them)."""
    path, data = _open_unlearning_eval(path, flag)
    if data is None:
        return {}
    out = {}
    for name in OPEN_UNLEARNING_SCORES:
        if name in data:
            scores = _values(data, name, "score", f"{flag} {path}")
            from pytest_unlearn import domains

            where = f"{flag} {path}"
            out[name] = [
                domains.check(domains.Share, v, where, f"{name}[{i}]") for i, v in scores.items() if v is not None
            ]
    return out


def load_open_unlearning_mia(path: Path, flag: str) -> dict[str, dict[str, list[float]]]:
    """Per attack, the per-sample ``score`` of the ``forget`` and ``holdout`` answers an
    open-unlearning ``TOFU_EVAL.json`` holds (``mia/utils.py`` ``mia_auc`` keeps both sets'
    ``value_by_index``); empty when ``path`` is another kind of log or has no ``mia_*`` entry."""
    from pytest_unlearn import domains
    from pytest_unlearn.attacks import OPEN_UNLEARNING_METRICS

    path, data = _open_unlearning_eval(path, flag)
    if data is None:
        return {}
    where = f"{flag} {path}"
    out: dict[str, dict[str, list[float]]] = {}
    for attack, name in OPEN_UNLEARNING_METRICS.items():
        if name not in data:
            continue
        entry = data[name]
        if not isinstance(entry, dict) or not all(isinstance(entry.get(s), dict) for s in ("forget", "holdout")):
            raise UnlearnError(
                f"{where}: {name} has no forget and holdout value_by_index; rerun open-unlearning's eval"
            )
        out[attack] = {}
        for split in ("forget", "holdout"):
            scores = _values(entry, split, "score", f"{where} ({name})")
            out[attack][split] = [
                domains.check(domains.Logit, v, where, f"{name}.{split}[{i}]")
                for i, v in scores.items()
                if v is not None
            ]
            if not out[attack][split]:
                raise UnlearnError(f"{where}: {name}.{split} has no scored sample; rerun open-unlearning's eval")
    return out


def dump_logs(logs: dict[str, TaskLog], inputs: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """``logs`` in TOFU's aggregated layout (``{eval file: {key: {index: value}}}``)."""
    out: dict[str, Any] = {}
    for task in TASKS:
        if task not in logs:
            continue
        log = logs[task]
        entry: dict[str, Any] = {
            "avg_gt_loss": dict(zip(log.indices, log.gt_loss.tolist())),
            "avg_paraphrased_loss": dict(zip(log.indices, log.paraphrased_loss.tolist())),
            "average_perturb_loss": dict(zip(log.indices, log.perturbed_loss.tolist())),
            "rougeL_recall": dict(zip(log.indices, log.rouge.tolist())),
        }
        if log.generations is not None:
            prompts = (inputs or {}).get(task) or [""] * log.n
            answers = (inputs or {}).get(f"{task}:answers") or [""] * log.n
            entry["generated_text"] = {
                i: [p, g, a] for i, p, g, a in zip(log.indices, prompts, log.generations, answers)
            }
        out[TOFU_FILES[task]] = entry
    return out


def encode_logs(logs: dict[str, TaskLog], inputs: dict[str, list[str]] | None = None) -> bytes:
    """The aggregated log file's bytes (TOFU's eval_log_aggregated.json layout)."""
    return (json.dumps(dump_logs(logs, inputs), indent=1, ensure_ascii=False) + "\n").encode("utf-8")
