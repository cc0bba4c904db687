"""The built-in entries, declared exactly as a third-party package declares its own.

``ENTRY_POINTS`` is the text of pyproject.toml's ``[project.entry-points."pytest_unlearn.*"]``
tables (a test keeps the two equal): the registry reads a package's entry points from its
installed metadata, and ours from here too, so an install whose metadata predates an entry
still finds it; the same declaration met twice is one declaration. Built-in suites are folders:
every ``suites/<name>/manifest.toml`` (installed as ``pytest_unlearn.suites``) is suite
``<name>``. All lazy: importing this module imports nothing heavy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytest_unlearn.registry import BACKENDS, BUILTIN, DETECTORS, EXTRACTORS, JUDGES, LOADERS, METRICS, SUITES, Registry

REGISTRIES: dict[str, Registry[Any]] = {
    registry.entry_point_group: registry
    for registry in (BACKENDS, METRICS, JUDGES, LOADERS, DETECTORS, EXTRACTORS, SUITES)
}

# One multiple-choice backend under two names ("wmdp" for the suite, "mcq" for any other set)
# and one face backend for mufac and mucac: the manifests name their backend.
ENTRY_POINTS: dict[str, dict[str, str]] = {
    "pytest_unlearn.backends": {
        "semeval": "pytest_unlearn.semeval.evaluation:SemevalBackend",
        "tofu": "pytest_unlearn.tofu.evaluation:TofuBackend",
        "muse": "pytest_unlearn.muse.evaluation:MuseBackend",
        "rwku": "pytest_unlearn.rwku.evaluation:RwkuBackend",
        "wmdp": "pytest_unlearn.mcq.evaluation:MCQBackend",
        "mcq": "pytest_unlearn.mcq.evaluation:MCQBackend",
        "mufac": "pytest_unlearn.mufac.evaluation:FaceBackend",
        "genmu": "pytest_unlearn.genmu.evaluation:GenmuBackend",
        "evallearn": "pytest_unlearn.evallearn.evaluation:EvallearnBackend",
        "unlearncanvas": "pytest_unlearn.unlearncanvas.evaluation:UnlearnCanvasBackend",
    },
    "pytest_unlearn.metrics": {
        "semeval.subtask": "pytest_unlearn.semeval.metrics:subtask",
        "semeval.task_aggregate": "pytest_unlearn.semeval.metrics:task_aggregate_metric",
        "semeval.mia_auc": "pytest_unlearn.semeval.metrics:mia_auc_metric",
        "semeval.mia_score": "pytest_unlearn.semeval.metrics:mia_score_metric",
        "semeval.mmlu_accuracy": "pytest_unlearn.semeval.metrics:mmlu_accuracy",
        "semeval.final_score": "pytest_unlearn.semeval.metrics:final_score_metric",
        "semeval.exact_memorization": "pytest_unlearn.semeval.metrics:exact_memorization_metric",
        "semeval.extraction_strength": "pytest_unlearn.semeval.metrics:extraction_strength_metric",
        "tofu.probability": "pytest_unlearn.tofu.metrics:probability_metric",
        "tofu.rouge": "pytest_unlearn.tofu.metrics:rouge_metric",
        "tofu.truth_ratio": "pytest_unlearn.tofu.metrics:truth_ratio_metric",
        "tofu.model_utility": "pytest_unlearn.tofu.metrics:model_utility_metric",
        "tofu.model_utility_ratio": "pytest_unlearn.tofu.metrics:model_utility_ratio",
        "tofu.forget_quality": "pytest_unlearn.tofu.metrics:forget_quality_metric",
        "tofu.mia_auc": "pytest_unlearn.tofu.metrics:mia_auc_metric",
        "mcq.accuracy": "pytest_unlearn.mcq.metrics:accuracy_metric",
        "mcq.mmlu_accuracy": "pytest_unlearn.mcq.metrics:mmlu_accuracy_metric",
        "mcq.mmlu_ratio": "pytest_unlearn.mcq.metrics:mmlu_ratio_metric",
        "muse.verbmem": "pytest_unlearn.muse.metrics:verbmem_metric",
        "muse.knowmem_forget": "pytest_unlearn.muse.metrics:knowmem_forget_metric",
        "muse.knowmem_retain": "pytest_unlearn.muse.metrics:knowmem_retain_metric",
        "muse.knowmem_retain_ratio": "pytest_unlearn.muse.metrics:knowmem_retain_ratio",
        "muse.privleak": "pytest_unlearn.muse.metrics:privleak_metric",
        "muse.exact_memorization": "pytest_unlearn.muse.metrics:exact_memorization_metric",
        "muse.extraction_strength": "pytest_unlearn.muse.metrics:extraction_strength_metric",
        "muse.mia_auc": "pytest_unlearn.muse.metrics:mia_auc_metric",
        "genmu.forget": "pytest_unlearn.genmu.metrics:forget",
        "genmu.retain": "pytest_unlearn.genmu.metrics:retain",
        "genmu.adjacent": "pytest_unlearn.genmu.metrics:adjacent",
        "genmu.err": "pytest_unlearn.genmu.metrics:err_metric",
        "genmu.weight_change_ratio": "pytest_unlearn.genmu.metrics:weight_change_ratio",
        "genmu.clip_score": "pytest_unlearn.genmu.metrics:clip_score_metric",
        "genmu.clip_score_drop": "pytest_unlearn.genmu.metrics:clip_score_drop",
        "mufac.accuracy": "pytest_unlearn.mufac.metrics:accuracy_metric",
        "mufac.accuracy_ratio": "pytest_unlearn.mufac.metrics:accuracy_ratio",
        "mufac.forgetting_score": "pytest_unlearn.mufac.metrics:forgetting_score_metric",
        "mufac.nomus": "pytest_unlearn.mufac.metrics:nomus_metric",
        "evallearn.asr": "pytest_unlearn.evallearn.metrics:asr",
        "evallearn.clip_score": "pytest_unlearn.evallearn.metrics:clip_score",
        "evallearn.fid": "pytest_unlearn.evallearn.metrics:fid",
        "evallearn.ua": "pytest_unlearn.evallearn.metrics:ua",
        "evallearn.ira": "pytest_unlearn.evallearn.metrics:ira",
        "evallearn.ua_ira": "pytest_unlearn.evallearn.metrics:ua_ira",
        "evallearn.err": "pytest_unlearn.evallearn.metrics:err",
        "unlearncanvas.ua": "pytest_unlearn.unlearncanvas.metrics:ua",
        "unlearncanvas.ira": "pytest_unlearn.unlearncanvas.metrics:ira",
        "unlearncanvas.cra": "pytest_unlearn.unlearncanvas.metrics:cra",
        "unlearncanvas.fid": "pytest_unlearn.unlearncanvas.metrics:fid",
        "tofu.truth_ratio_ou": "pytest_unlearn.tofu.metrics:truth_ratio_ou_metric",
        "tofu.probability_w_options": "pytest_unlearn.tofu.metrics:probability_w_options_metric",
        "tofu.exact_memorization": "pytest_unlearn.tofu.metrics:exact_memorization_metric",
        "tofu.extraction_strength": "pytest_unlearn.tofu.metrics:extraction_strength_metric",
        "rwku.forget": "pytest_unlearn.rwku.metrics:forget_metric",
        "rwku.neighbor_ratio": "pytest_unlearn.rwku.metrics:neighbor_ratio",
        "rwku.mia_forget": "pytest_unlearn.rwku.metrics:mia_forget",
        "rwku.mia_retain": "pytest_unlearn.rwku.metrics:mia_retain",
        "rwku.utility_ratio": "pytest_unlearn.rwku.metrics:utility_ratio",
    },
    "pytest_unlearn.judges": {
        "clip": "pytest_unlearn.engines.judges:clip_judge",
        "classifier": "pytest_unlearn.engines.judges:classifier_judge",
    },
    "pytest_unlearn.loaders": {
        "diffusers": "pytest_unlearn.engines.diffusion:load_pipeline",
    },
    "pytest_unlearn.detectors": {
        "nudenet": "pytest_unlearn.engines.detectors:nudenet_detector",
    },
    "pytest_unlearn.extractors": {
        "inception": "pytest_unlearn.evallearn.features:inception_extractor",
        "clip": "pytest_unlearn.evallearn.features:clip_extractor",
    },
}


def suite_folders() -> dict[str, Path]:
    """Suite name -> manifest of every built-in suite folder (``suites/<name>/manifest.toml``)."""
    import pytest_unlearn.suites as bundled

    root = Path(bundled.__file__).resolve().parent
    return {
        folder.name: folder / "manifest.toml"
        for folder in sorted(root.iterdir())
        if (folder / "manifest.toml").is_file()
    }


def declare(entry_points: dict[str, dict[str, str]], package: str) -> None:
    """Register one package's entry-point tables (group -> name -> ``"module:attr"``)."""
    for group, entries in entry_points.items():
        for name, reference in entries.items():
            REGISTRIES[group].register(name, reference, package=package)


declare(ENTRY_POINTS, BUILTIN)
for _name, _manifest in suite_folders().items():
    SUITES.register(_name, _manifest, package=BUILTIN, reference=f"pytest_unlearn.suites/{_name}/manifest.toml")
