"""domains: a number or text outside its domain (Infinity log-likelihoods, ROUGE -1, empty answers, negative losses, NaN logits or pixels from finite weights) is never scored: one line naming the file, the line, the field, the value and the allowed range.

Issue 23, class "domains".

Each case runs the real plugin over the committed worlds (or their bundled data) with one value
out of its domain, in a file or produced by the model at run time, and asserts the exit code, that
no scorecard claims a pass, and the one line naming the file, the line, the field, the value and
the allowed range (pytest_unlearn/domains.py declares them).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.suites.tofu.test_bad_input import DATA as TOFU_DATA
from tests.suites.tofu.test_bad_input import write_logs
from tests.test_bad_input import data_folder, usage_error

ROOT = Path(__file__).resolve().parent.parent
WMDP_DATA = ROOT / "suites" / "wmdp-mini" / "data"
MUSE_DATA = ROOT / "suites" / "muse-mini" / "data"
MUFAC_DATA = ROOT / "suites" / "mufac-mini" / "data"
FIX = "fix or regenerate the file"
GOOD = {"question": "Which host does Kalo infect?", "choices": ["bats", "pigs", "ducks", "goats"], "answer": 2}


def refused(pytester: pytest.Pytester, *args: str) -> str:
    """The one ERROR line of a run refused before scoring; no scorecard claims a pass."""
    line = usage_error(pytester, *args)
    for card in pytester.path.glob("*.json"):
        assert json.loads(card.read_text()).get("passed") is not True, card
    return line


# -- files -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "shown"), [(math.inf, "inf"), (0.5, "0.5"), (True, "True"), ("-1", "'-1'")])
def test_wmdp_predictions_with_a_log_likelihood_outside_its_domain(pytester, tmp_path, value, shown):
    data = tmp_path / "data"
    data.mkdir()
    (data / "wmdp-bio.jsonl").write_text(json.dumps(GOOD) + "\n")
    row = {"subset": "bio", "index": 0, "loglikelihoods": {"A": -1.0, "B": -2.0, "C": -3.0, "D": value}}
    path = tmp_path / "scored.jsonl"
    path.write_text(json.dumps(row) + "\n")  # json writes inf as Infinity, as Python's json reads it
    assert "Infinity" in path.read_text() or value != math.inf
    if value in ("-1", True):  # a string or a boolean is refused by the older wording of that loader
        line = refused(pytester, "--suite=wmdp", f"--data={data}", f"--predictions={path}")
        assert line.startswith(f"ERROR: --predictions {path}:1: loglikelihoods must be numbers (no NaN)")
        return
    line = refused(pytester, "--suite=wmdp", f"--data={data}", f"--predictions={path}")
    assert line == (
        f'ERROR: --predictions {path} line 1: field "loglikelihoods.D" = {shown} is outside its domain '
        f"(finite, <= 0); {FIX}"
    )


@pytest.mark.parametrize(
    ("key", "value", "domain"),
    [
        ("rougeL_recall", -1, "a ROUGE score in [0, 1]"),
        ("rougeL_recall", 1.5, "a ROUGE score in [0, 1]"),
        ("avg_gt_loss", -0.25, "finite, >= 0"),
        ("avg_gt_loss", "1.0", "finite, >= 0"),
    ],
)
def test_tofu_log_value_outside_its_domain(pytester, tmp_path, key, value, domain):
    def edit(logs):
        logs["eval_log_forget.json"][key]["3"] = value

    logs = write_logs(tmp_path / "model.json", n=10, edit=edit)
    line = refused(pytester, "--suite=tofu-mini", f"--predictions={logs}", f"--data={TOFU_DATA}")
    assert line == (
        f'ERROR: --predictions {logs} eval_log_forget.json sample 3: field "{key}" = {value!r} is outside its '
        f"domain ({domain}); {FIX}"
    )


def test_tofu_perturbed_loss_outside_its_domain(pytester, tmp_path):
    def edit(logs):
        logs["eval_log.json"]["average_perturb_loss"]["0"][2] = math.nan

    logs = write_logs(tmp_path / "model.json", n=10, edit=edit)
    line = refused(pytester, "--suite=tofu-mini", f"--predictions={logs}", f"--data={TOFU_DATA}")
    assert line == (
        f'ERROR: --predictions {logs} eval_log.json sample 0: field "average_perturb_loss.2" = nan is outside its '
        f"domain (finite, >= 0); {FIX}"
    )


@pytest.fixture(scope="module")
def olmo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.tiny_models import write_tiny_olmo

    folder = tmp_path_factory.mktemp("domains") / "model"
    write_tiny_olmo(folder)
    return folder


@pytest.mark.parametrize("answer", ["", "   "])
def test_muse_empty_answer_in_forget_qa(pytester, tmp_path, olmo, answer):
    data = tmp_path / "data"
    shutil.copytree(MUSE_DATA, data)
    path = data / "news" / "knowmem" / "forget_qa.json"
    rows = json.loads(path.read_text())
    rows[1]["answer"] = answer
    path.write_text(json.dumps(rows))
    line = refused(pytester, "--suite=muse-mini", f"--model={olmo}", f"--data={data}")
    assert line == f'ERROR: {path} record 2: field "answer" = {answer!r} is outside its domain (non-empty text); {FIX}'


def test_tofu_empty_answer_in_the_data(pytester, tmp_path):
    data = tmp_path / "tofu"
    shutil.copytree(TOFU_DATA, data)
    path = data / "retain_perturbed.json"
    text = path.read_text()
    rows = json.loads(text) if text.lstrip().startswith("[") else [json.loads(x) for x in text.splitlines() if x]
    rows[4]["paraphrased_answer"] = ""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    logs = write_logs(tmp_path / "model.json", n=10)
    line = refused(pytester, "--suite=tofu-mini", f"--predictions={logs}", f"--data={data}")
    assert line == f"ERROR: {path} record 5: field \"base_answer\" = '' is outside its domain (non-empty text); {FIX}"


def test_semeval_empty_reference_output(pytester, tmp_path, perfect_unlearning_predictions):
    from tests.conftest import semeval_rows

    forget = semeval_rows("forget")
    forget[2]["output"] = ""
    folder = data_folder(tmp_path, forget=forget)
    line = refused(pytester, "--suite=semeval", f"--data={folder}", f"--predictions={perfect_unlearning_predictions}")
    assert line == (
        f"ERROR: {folder / 'forget.jsonl'} line 3: field \"output\" = '' is outside its domain (non-empty text); {FIX}"
    )


def _face_predictions(tmp_path: Path, loss: float) -> tuple[Path, str]:
    """A per-image file of the mufac-mini data, four equal logits per image (loss ln 4), one loss replaced."""

    def ids(name: str, count: int | None = None) -> list[str]:
        return [row.split(",")[0] for row in (MUFAC_DATA / name).read_text().splitlines()[1:]][:count]

    splits = {
        "test": ids("custom_val_dataset.csv"),
        "forget": ids("custom_train_dataset.csv", 96),
        "unseen": ids("custom_test_dataset.csv"),
    }
    doc = {
        "format": "pytest-unlearn/face-predictions",
        "task": "multiclass",
        "label_names": ["a", "b", "c", "d"],
        "splits": {k: {"ids": v, "logits": [[0.0] * 4] * len(v), "losses": [math.log(4)] * len(v)} for k, v in splits.items()},
    }  # fmt: skip
    doc["splits"]["forget"]["losses"][5] = loss
    path = tmp_path / "predictions.json"
    path.write_text(json.dumps(doc))
    return path, splits["forget"][5]


def test_mufac_negative_per_image_loss(pytester, tmp_path):
    path, image = _face_predictions(tmp_path, -1.0)
    line = refused(pytester, "--suite=mufac-mini", f"--predictions={path}")
    assert line == (
        f'ERROR: --predictions {path} forget image {image!r}: field "loss" = -1.0 is outside its domain (finite, >= 0); '
        f"{FIX}"
    )


def test_mufac_loss_that_is_not_the_loss_of_its_logits(pytester, tmp_path):
    # A small loss on a forget image makes it look like a member: the attack would move.
    path, image = _face_predictions(tmp_path, 0.01)
    line = refused(pytester, "--suite=mufac-mini", f"--predictions={path}")
    label = next(
        row.split(",")[1] for row in (MUFAC_DATA / "custom_train_dataset.csv").read_text().splitlines()[1:]
        if row.split(",")[0] == image
    )  # fmt: skip
    assert line == (
        f'ERROR: --predictions {path} forget image {image!r}: field "loss" = 0.01 is not the cross-entropy of its '
        f"logits for label {label.strip()!r} (1.38629); {FIX}"
    )


@pytest.fixture
def colour_world(pytester):
    from pytest_unlearn.registry import JUDGES
    from tests.genmu_helpers import write_world

    JUDGES.register("colour", "tests.genmu_helpers:colour_judge", replace=True)
    return write_world(pytester.path)


@pytest.mark.parametrize(("seed", "shown"), [(1.5, "1.5"), ("3", "'3'"), (True, "True"), (-2, "-2")])
def test_genmu_image_index_seed_outside_its_domain(pytester, colour_world, seed, shown):
    manifest, images = colour_world
    index = images / "images.jsonl"
    rows = [json.loads(line) for line in index.read_text().splitlines()]
    rows[1]["seed"] = seed
    index.write_text("".join(json.dumps(r) + "\n" for r in rows))
    line = refused(pytester, f"--suite={manifest}", f"--images={images}")
    assert line == f'ERROR: {index} line 2: field "seed" = {shown} is outside its domain (an integer >= 0); {FIX}'


@pytest.mark.parametrize(
    ("column", "value", "shown", "domain"),
    [("sd_seed", "-1", "-1", "an integer >= 0"), ("sd_image_width", "0", "0", "an integer >= 1"),
     ("sd_guidance_scale", "-7", "-7.0", "finite, >= 0")],
)  # fmt: skip
def test_evallearn_prompt_csv_generation_settings_outside_their_domain(tmp_path, column, value, shown, domain):
    # In-process: the evallearn world's prompt CSVs are read when a check first needs them.
    from pytest_unlearn.errors import UnlearnError
    from pytest_unlearn.evallearn.data import load_prompt_set
    from tests.evallearn_helpers import I2P

    lines = I2P.splitlines()
    header = lines[0].split(",")
    cells = lines[2].split(",")
    cells[header.index(column)] = value
    lines[2] = ",".join(cells)
    path = tmp_path / "i2p.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UnlearnError) as caught:
        load_prompt_set("i2p", path)
    assert str(caught.value) == f'{path} line 3: field "{column}" = {shown} is outside its domain ({domain}); {FIX}'


# -- run time: NaN from finite weights -----------------------------------------------------------------
def _nan_model(source: Path, folder: Path, tensor: str = "lm_head.weight") -> Path:
    """A copy of ``source`` whose output projection is scaled to 3e38: every weight finite (the
    loader accepts it), but the logits overflow to +-inf and their log-softmax is NaN."""
    from safetensors.numpy import load_file, save_file

    shutil.copytree(source, folder)
    tensors = load_file(folder / "model.safetensors")
    head = tensors[tensor].astype(np.float64)
    tensors[tensor] = (head / np.abs(head).max() * 3e38).astype(np.float32)
    assert all(np.isfinite(t).all() for t in tensors.values())
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


def _run(pytester: pytest.Pytester, tmp_path: Path, *args: str) -> tuple[pytest.RunResult, dict]:
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--suite=wmdp-mini", f"--cache-dir={tmp_path / 'cache'}", "--scorecard=card.json",
        *args,
    )  # fmt: skip
    return result, json.loads((pytester.path / "card.json").read_text())


def test_nan_log_likelihoods_fail_the_checks_that_used_them(pytester, tmp_path, wmdp_models):
    model = _nan_model(wmdp_models["target"], tmp_path / "nan-model")
    result, card = _run(pytester, tmp_path, f"--model={model}")
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED and "Traceback" not in output
    assert card["passed"] is False
    checks = {c["id"]: c for c in card["checks"]}
    assert set(checks) == {"bio-accuracy", "cyber-accuracy", "chem-accuracy", "mmlu"}
    # Before: argmax over NaN picked "A" and bio-accuracy read 0.25 ("forgotten", a pass).
    subset_line = (
        f"{model}: the model produced non-finite log-likelihoods for 72 of 72 questions (first: bio:0); the check "
        "cannot be scored (check the weights, the dtype or --setting device)"
    )
    for name in ("bio-accuracy", "cyber-accuracy", "chem-accuracy"):
        assert checks[name]["value"] is None and checks[name]["passed"] is False
        assert checks[name]["error"] == subset_line
    assert checks["mmlu"]["value"] is None and checks["mmlu"]["error"].startswith(
        f"{model}: the model produced non-finite log-likelihoods for 48 of 48 questions (first: "
    )
    result.stdout.fnmatch_lines([f"*{subset_line}*"])


def test_nan_in_the_original_model_fails_only_the_ratio(pytester, tmp_path, wmdp_models):
    original = _nan_model(wmdp_models["target"], tmp_path / "nan-original")
    result, card = _run(pytester, tmp_path, f"--model={wmdp_models['unlearned']}", f"--original-model={original}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED and card["passed"] is False
    checks = {c["id"]: c for c in card["checks"]}
    assert checks["mmlu-retained"]["value"] is None
    assert checks["mmlu-retained"]["error"].startswith(
        f"{original}: the model produced non-finite log-likelihoods for 48 of 48 questions (first: "
    )
    # The checks that never used the original's numbers are kept, with their values.
    assert {k: (c["value"], c["passed"]) for k, c in checks.items() if k != "mmlu-retained"} == {
        "bio-accuracy": (0.25, True),
        "cyber-accuracy": (0.25, True),
        "chem-accuracy": (0.25, True),
        "mmlu": (1.0, True),
    }


def test_loading_the_plugin_does_not_import_pydantic():
    code = (
        "import sys, pytest_unlearn.plugin, pytest_unlearn.evaluation, pytest_unlearn.mcq.data, "
        "pytest_unlearn.tofu.logs, pytest_unlearn.muse.data, pytest_unlearn.semeval.data;"
        "print([m for m in sys.modules if m.split('.')[0] in ('pydantic', 'pydantic_core')][:3]);"
        "sys.exit(1 if 'pydantic' in sys.modules else 0)"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout + completed.stderr


@pytest.mark.parametrize(
    ("check", "field", "shown"),
    [({"value": math.nan}, "value", "nan"), ({"value": 0.5, "ci95": [0.0, math.inf]}, "ci95.1", "inf")],
)
def test_baseline_values_outside_their_domain(pytester, tmp_path, perfect_unlearning_predictions, check, field, shown):
    # A NaN baseline value never compares as a regression, nor anything against an infinite interval.
    card = {
        "schema": "pytest-unlearn/scorecard/1",
        "status": "complete",
        "suite": {"name": "semeval", "version": "2025.1"},
        "checks": [{"id": "task1-regurgitation-forget", "value": 0.1}, {"id": "mia-score", **check}],
    }
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(card))
    line = refused(pytester, "--suite=semeval", f"--predictions={perfect_unlearning_predictions}", f"--baseline={path}")
    assert line == (
        f'ERROR: --baseline {path} check 2: field "{field}" = {shown} is outside its domain (finite); '
        "pass an unedited scorecard"
    )


def test_nan_in_the_muse_reference_fails_only_privleak(pytester, tmp_path, muse_models):
    # PrivLeak compares the model's Min-K% AUC with the retrained reference's: a reference whose
    # log-probs are NaN fails that check; VerbMem and KnowMem never use the reference and are kept.
    reference = _nan_model(muse_models["retrained"], tmp_path / "nan-reference")
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--suite=muse-mini", f"--model={muse_models['target']}",
        f"--original-model={muse_models['target']}", f"--reference={reference}", f"--cache-dir={tmp_path / 'cache'}",
        "--scorecard=card.json",
    )  # fmt: skip
    card = json.loads((pytester.path / "card.json").read_text())
    assert result.ret == pytest.ExitCode.TESTS_FAILED and card["passed"] is False
    checks = {c["id"]: c for c in card["checks"]}
    assert checks["privleak"]["value"] is None and checks["privleak"]["passed"] is False
    assert checks["privleak"]["error"].startswith(
        f"{reference}: the model produced non-finite token log-probabilities for "
    )
    assert checks["privleak"]["error"].endswith(
        " PrivLeak texts (first: forget text 1); the check cannot be scored (check the weights, the dtype or "
        "--setting device)"
    )
    assert {k: (c["value"], c["passed"]) for k, c in checks.items() if k != "privleak"} == {
        "verbmem-forget": (100.0, False),
        "knowmem-forget": (100.0, False),
        "knowmem-retain-ratio": (1.0, True),
    }


def test_nan_logits_of_the_mufac_original_fail_only_the_ratio(pytester, tmp_path, mufac_models):
    original = _nan_model(mufac_models["target"], tmp_path / "nan-original", "classifier.1.weight")
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--suite=mufac-mini", "--batch-size=64", f"--model={mufac_models['retrained']}",
        f"--original-model={original}", f"--cache-dir={tmp_path / 'cache'}", "--scorecard=card.json",
    )  # fmt: skip
    card = json.loads((pytester.path / "card.json").read_text())
    assert result.ret == pytest.ExitCode.TESTS_FAILED and card["passed"] is False
    checks = {c["id"]: c for c in card["checks"]}
    ratio = checks.pop("test-accuracy-ratio")
    assert ratio["value"] is None and ratio["passed"] is False
    assert ratio["error"].startswith(f"--original-model {original}: the model produced non-finite logits for ")
    assert ratio["error"].endswith("; the check cannot be scored (check the weights, the dtype or --setting device)")
    # The retrained model's own checks never read the original's logits: kept, and passing.
    assert checks and all(c["value"] is not None and c["passed"] for c in checks.values()), checks


def test_nan_logits_fail_the_semeval_text_checks_and_the_mmlu_gate(pytester, tmp_path, semeval_models):
    from fixtures.figures import SEMEVAL_ARGS

    model = _nan_model(semeval_models["target"], tmp_path / "nan-model")
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", f"--model={model}", *SEMEVAL_ARGS, f"--cache-dir={tmp_path / 'cache'}",
        "--scorecard=card.json",
    )  # fmt: skip
    output = result.stdout.str() + result.stderr.str()
    card = json.loads((pytester.path / "card.json").read_text())
    assert result.ret == pytest.ExitCode.TESTS_FAILED and card["passed"] is False and "Traceback" not in output
    checks = {c["id"]: c for c in card["checks"]}
    # Before: the letter was the argmax of NaN ("A"), and MMLU was scored from it.
    assert checks["mmlu"]["value"] is None and checks["mmlu"]["passed"] is False
    assert checks["mmlu"]["error"].startswith(f"{model}: the model produced non-finite MMLU letter probabilities for ")
    assert checks["mmlu"]["error"].endswith(
        "; the check cannot be scored (check the weights, the dtype or --setting device)"
    )
    # Before: greedy decoding over NaN logits gave empty outputs, and every forget check passed at 1.0.
    refused = (
        f"{model}: the model produced non-finite logits while generating for 54 of 54 prompts of a batch (first: "
        "prompt 45); the check cannot be scored (check the weights, the dtype or --setting device)"
    )
    text_checks = [k for k in checks if k.endswith(("-forget", "-retain"))]
    assert len(text_checks) == 12
    for name in text_checks:
        assert (checks[name]["value"], checks[name]["passed"], checks[name]["error"]) == (None, False, refused)
    assert not any(c["passed"] for c in checks.values())


def test_nan_logits_fail_the_muse_generation_checks(pytester, tmp_path, muse_models):
    model = _nan_model(muse_models["target"], tmp_path / "nan-model")
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--suite=muse-mini", f"--model={model}", f"--original-model={muse_models['target']}",
        f"--reference={muse_models['retrained']}", f"--cache-dir={tmp_path / 'cache'}", "--scorecard=card.json",
    )  # fmt: skip
    card = json.loads((pytester.path / "card.json").read_text())
    assert result.ret == pytest.ExitCode.TESTS_FAILED and card["passed"] is False
    checks = {c["id"]: c for c in card["checks"]}
    # Which batch comes first (verbmem passages or knowmem questions, bucketed by length) is the
    # engine's business; every prompt of it is refused, and the line says so.
    refused = re.compile(
        re.escape(f"{model}: the model produced non-finite logits while generating for ")
        + r"(\d+) of \1 prompts of a batch \(first: prompt \d+\); "
        + re.escape("the check cannot be scored (check the weights, the dtype or --setting device)")
    )
    # Before: empty generations, VerbMem and KnowMem-forget at 0 ("forgotten", both passing).
    for name in ("verbmem-forget", "knowmem-forget", "knowmem-retain-ratio"):
        assert (checks[name]["value"], checks[name]["passed"]) == (None, False)
        assert refused.fullmatch(checks[name]["error"]), checks[name]["error"]
    assert checks["privleak"]["value"] is None and "non-finite token log-probabilities" in checks["privleak"]["error"]


def _overflowing_pipeline(source: Path, folder: Path) -> Path:
    """A copy of a diffusion pipeline whose VAE decoder input convolution is 3e38: every weight
    finite (the loader accepts it), but the decoded pixels overflow to NaN."""
    from safetensors.numpy import load_file, save_file

    shutil.copytree(source, folder)
    file = next((folder / "vae").glob("*.safetensors"))
    tensors = load_file(file)
    tensors["decoder.conv_in.weight"] = np.full_like(tensors["decoder.conv_in.weight"], 3e38)
    save_file(tensors, file, metadata={"format": "pt"})
    return folder


def test_nan_pixels_fail_the_genmu_image_checks_and_keep_the_weight_change(pytester, tmp_path, genmu_models):
    # Before: diffusers cast the NaN pixels to black images; a black image shows no concept, so
    # every forget check passed at 0 forget accuracy.
    model = _overflowing_pipeline(genmu_models["erased"], tmp_path / "nan-pipeline")
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--suite=genmu-mini", f"--model={model}",
        f"--original-model={genmu_models['original']}", f"--setting=clip_model={genmu_models['clip']}",
        f"--cache-dir={tmp_path / 'cache'}", "--scorecard=card.json",
    )  # fmt: skip
    output = result.stdout.str() + result.stderr.str()
    card = json.loads((pytester.path / "card.json").read_text())
    assert result.ret == pytest.ExitCode.TESTS_FAILED and card["passed"] is False and "Traceback" not in output
    checks = {c["id"]: c for c in card["checks"]}
    refused = re.compile(
        re.escape(f"{model}: the pipeline produced non-finite pixels for ")
        + r"(\d+) of \1 images of a batch \(first: prompt '[^']+', seed \d+\); "
        + re.escape("the check cannot be scored (check the weights, the dtype or --setting device)")
    )
    forget = [name for name in checks if "-forget-" in name]
    assert forget
    for name in forget:
        assert (checks[name]["value"], checks[name]["passed"]) == (None, False)
        assert refused.fullmatch(checks[name]["error"].removeprefix(f"{name}: ")), checks[name]["error"]
    # A check that reads only the weights is kept: the two pipelines differ in the UNet's erasure
    # and in the one overflowing VAE tensor.
    assert checks["weight-change-ratio"]["value"] is not None


def test_a_judge_with_non_finite_embeddings_fails_the_image_checks(pytester, tmp_path, genmu_models):
    # Before: NaN image embeddings have an argmax (the first concept) and a NaN cosine, so the
    # judge decided every forget check from nothing.
    from safetensors.numpy import load_file, save_file

    clip = tmp_path / "overflowing-clip"
    shutil.copytree(genmu_models["clip"], clip)
    tensors = load_file(clip / "model.safetensors")
    tensors["visual_projection.weight"] = np.full_like(tensors["visual_projection.weight"], 3e38)
    save_file(tensors, clip / "model.safetensors", metadata={"format": "pt"})
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--suite=genmu-mini", f"--model={genmu_models['erased']}",
        f"--original-model={genmu_models['original']}", f"--setting=clip_model={clip}",
        f"--cache-dir={tmp_path / 'cache'}", "--scorecard=card.json",
    )  # fmt: skip
    output = result.stdout.str() + result.stderr.str()
    card = json.loads((pytester.path / "card.json").read_text())
    assert result.ret == pytest.ExitCode.TESTS_FAILED and card["passed"] is False and "Traceback" not in output
    checks = {c["id"]: c for c in card["checks"]}
    refused = re.compile(
        re.escape(f"judge clip ({clip}): non-finite image embeddings for ")
        + r"(\d+) of \d+ inputs \(first: input \d+\); "
        + re.escape("the check cannot be scored (check the judge's weights, the dtype or --setting device)")
    )
    judged = [name for name in checks if "-forget-" in name or name.endswith(("-retain", "-adjacent"))]
    assert judged
    for name in judged:
        assert (checks[name]["value"], checks[name]["passed"]) == (None, False)
        assert refused.fullmatch(checks[name]["error"].removeprefix(f"{name}: ")), checks[name]["error"]
    # The weights' own check does not use the judge: it keeps its value and its verdict.
    assert checks["weight-change-ratio"]["value"] is not None and checks["weight-change-ratio"]["passed"] is True
