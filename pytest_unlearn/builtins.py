"""The built-in registry entries, all lazy: importing this module imports nothing heavy.

Third-party packages add theirs through entry points (``pytest_unlearn.metrics``,
``pytest_unlearn.suites``, ``pytest_unlearn.backends``, ``pytest_unlearn.loaders``,
``pytest_unlearn.judges``) with the same ``"module:attribute"`` values.
"""

from __future__ import annotations

from pytest_unlearn.registry import ATTACKS, BACKENDS, DETECTORS, EXTRACTORS, JUDGES, LOADERS, METRICS, SUITES

# module -> {metric name: attribute}
_METRICS = {
    "pytest_unlearn.semeval.metrics": {
        "semeval.subtask": "subtask",
        "semeval.task_aggregate": "task_aggregate_metric",
        "semeval.mia_auc": "mia_auc_metric",
        "semeval.mia_score": "mia_score_metric",
        "semeval.mmlu_accuracy": "mmlu_accuracy",
        "semeval.final_score": "final_score_metric",
    },
    "pytest_unlearn.tofu.metrics": {
        "tofu.probability": "probability_metric",
        "tofu.rouge": "rouge_metric",
        "tofu.truth_ratio": "truth_ratio_metric",
        "tofu.model_utility": "model_utility_metric",
        "tofu.model_utility_ratio": "model_utility_ratio",
        "tofu.forget_quality": "forget_quality_metric",
        "tofu.mia_auc": "mia_auc_metric",
        "tofu.truth_ratio_ou": "truth_ratio_ou_metric",
        "tofu.probability_w_options": "probability_w_options_metric",
        "tofu.exact_memorization": "exact_memorization_metric",
        "tofu.extraction_strength": "extraction_strength_metric",
    },
    "pytest_unlearn.mcq.metrics": {
        "mcq.accuracy": "accuracy_metric",
        "mcq.mmlu_accuracy": "mmlu_accuracy_metric",
        "mcq.mmlu_ratio": "mmlu_ratio_metric",
    },
    "pytest_unlearn.muse.metrics": {
        "muse.verbmem": "verbmem_metric",
        "muse.knowmem_forget": "knowmem_forget_metric",
        "muse.knowmem_retain": "knowmem_retain_metric",
        "muse.knowmem_retain_ratio": "knowmem_retain_ratio",
        "muse.privleak": "privleak_metric",
    },
    "pytest_unlearn.genmu.metrics": {
        "genmu.forget": "forget",
        "genmu.retain": "retain",
        "genmu.adjacent": "adjacent",
        "genmu.err": "err_metric",
        "genmu.weight_change_ratio": "weight_change_ratio",
        "genmu.clip_score": "clip_score_metric",
        "genmu.clip_score_drop": "clip_score_drop",
    },
    "pytest_unlearn.mufac.metrics": {
        "mufac.accuracy": "accuracy_metric",
        "mufac.accuracy_ratio": "accuracy_ratio",
        "mufac.forgetting_score": "forgetting_score_metric",
        "mufac.nomus": "nomus_metric",
    },
}

for _module, _entries in _METRICS.items():
    for _name, _attr in _entries.items():
        METRICS.register(_name, f"{_module}:{_attr}", replace=True)

SUITES.register("semeval", "pytest_unlearn.suites:SEMEVAL", replace=True)
SUITES.register("genmu", "pytest_unlearn.suites:GENMU", replace=True)
SUITES.register("genmu-mini", "pytest_unlearn.suites:GENMU_MINI", replace=True)
SUITES.register("tofu", "pytest_unlearn.suites:TOFU", replace=True)
SUITES.register("tofu-mini", "pytest_unlearn.suites:TOFU_MINI", replace=True)
SUITES.register("wmdp", "pytest_unlearn.suites:WMDP", replace=True)
SUITES.register("wmdp-mini", "pytest_unlearn.suites:WMDP_MINI", replace=True)
# One multiple-choice backend under two names: "wmdp" for the suite, "mcq" for any other set.
BACKENDS.register("wmdp", "pytest_unlearn.mcq.evaluation:MCQBackend", replace=True)
BACKENDS.register("mcq", "pytest_unlearn.mcq.evaluation:MCQBackend", replace=True)
# MUFAC and MUCAC (face classifiers forgetting identities): one backend, two data layouts.
_FACE_SUITES = {"mufac": "MUFAC", "mufac-mini": "MUFAC_MINI", "mucac": "MUCAC", "mucac-mini": "MUCAC_MINI"}
for _suite, _attr in _FACE_SUITES.items():
    SUITES.register(_suite, f"pytest_unlearn.suites:{_attr}", replace=True)
BACKENDS.register("mufac", "pytest_unlearn.mufac.evaluation:FaceBackend", replace=True)
SUITES.register("muse", "pytest_unlearn.suites:MUSE", replace=True)
SUITES.register("muse-mini", "pytest_unlearn.suites:MUSE_MINI", replace=True)
BACKENDS.register("muse", "pytest_unlearn.muse.evaluation:MuseBackend", replace=True)
BACKENDS.register("tofu", "pytest_unlearn.tofu.evaluation:TofuBackend", replace=True)
BACKENDS.register("semeval", "pytest_unlearn.semeval.evaluation:SemevalBackend", replace=True)
BACKENDS.register("genmu", "pytest_unlearn.genmu.evaluation:GenmuBackend", replace=True)
JUDGES.register("clip", "pytest_unlearn.genmu.judges:clip_judge", replace=True)
JUDGES.register("classifier", "pytest_unlearn.genmu.judges:classifier_judge", replace=True)

# The evallearn suite (eval-learn 0.1.6 metrics on the genmu diffusion machinery).
for _name, _attr in {
    "evallearn.asr": "asr",
    "evallearn.clip_score": "clip_score",
    "evallearn.fid": "fid",
    "evallearn.ua": "ua",
    "evallearn.ira": "ira",
    "evallearn.ua_ira": "ua_ira",
    "evallearn.err": "err",
}.items():
    METRICS.register(_name, f"pytest_unlearn.evallearn.metrics:{_attr}", replace=True)
SUITES.register("evallearn", "pytest_unlearn.evallearn:MANIFEST", replace=True)
BACKENDS.register("evallearn", "pytest_unlearn.evallearn.evaluation:EvallearnBackend", replace=True)
LOADERS.register("diffusers", "pytest_unlearn.genmu.diffusion:load_pipeline", replace=True)
DETECTORS.register("nudenet", "pytest_unlearn.evallearn.detectors:nudenet_detector", replace=True)
EXTRACTORS.register("inception", "pytest_unlearn.evallearn.features:inception_extractor", replace=True)

# Membership-inference attacks (open-unlearning's src/evals/metrics/mia/), shared by suites.
for _name, _attr in {"loss": "LOSS", "zlib": "ZLIB", "min_k": "MIN_K", "min_k_plus_plus": "MIN_K_PLUS_PLUS"}.items():
    ATTACKS.register(_name, f"pytest_unlearn.attacks:{_attr}", replace=True)
# open-unlearning's white-box and reference attacks (issue 27): they need a gradient or a reference pass.
ATTACKS.register("gradnorm", "pytest_unlearn.attacks:GRAD_NORM", replace=True)
ATTACKS.register("reference", "pytest_unlearn.attacks:REFERENCE", replace=True)
