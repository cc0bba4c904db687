"""Genμ's own inputs (prompt CSVs, image folders, the original model): each bad input is one
clear line, and a run that loses its artifacts folder keeps its scores."""

from __future__ import annotations

import json

# The inner runs load models: their C extensions must be imported by this process first.
import diffusers  # noqa: F401
import pytest
import safetensors.torch  # noqa: F401
import torch  # noqa: F401

from pytest_unlearn.registry import JUDGES
from tests.genmu_helpers import write_world
from tests.test_bad_input import BREAK_AFTER_COLLECTION, failed_checks, usage_error
from tests.tiny_models import write_tiny_sd

WEIGHT_CHECK = """
[[checks]]
id = "weight-change"
metric = "genmu.weight_change_ratio"
op = "<="
threshold = 1.0
"""


@pytest.fixture
def colour_world(pytester):
    JUDGES.register("colour", "tests.genmu_helpers:colour_judge", replace=True)
    return write_world(pytester.path)


def test_genmu_prompt_csv_without_a_required_column(pytester, colour_world):
    manifest, images = colour_world
    csv = pytester.path / "prompts.csv"
    csv.write_text("\n".join(line.rsplit(",", 1)[0] for line in csv.read_text().splitlines()) + "\n")
    line = usage_error(pytester, f"--suite={manifest}", f"--images={images}")
    assert line == (
        f"ERROR: {csv}: the prompt CSV lacks the column(s) adversarial_prompt; Genμ CSVs have concept_type, "
        "concept_name, direct_prompt, indirect_prompt, adversarial_prompt (map other headers under [columns] in the manifest)"
    )


def test_genmu_images_folder_without_its_index(pytester, colour_world):
    manifest, images = colour_world
    (images / "images.jsonl").unlink()
    line = usage_error(pytester, f"--suite={manifest}", f"--images={images}")
    assert line == (
        f"ERROR: --images {images}: no images.jsonl index; it lists one JSON object per image with file, prompt, seed"
    )


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_genmu_unreadable_png_fails_the_image_checks_with_one_line(pytester, colour_world, damage):
    manifest, images = colour_world
    png = images / "3.png"
    data = png.read_bytes()
    png.write_bytes(b"definitely not a png" if damage == "garbage" else data[: len(data) // 2])
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", f"--suite={manifest}", f"--images={images}", "-k", "err or forget-direct"
    )
    errors = failed_checks(result, pytester.path / "unlearn-scorecard.json")
    assert set(errors) == {"red-ball-forget-direct", "err"}
    (error,) = set(errors.values())
    assert error.startswith(f"--images: cannot read {png} (") and error.endswith("); replace the file or regenerate it")


def test_genmu_original_model_of_another_architecture(pytester, colour_world, tmp_path):
    manifest, images = colour_world
    manifest.write_text(manifest.read_text() + WEIGHT_CHECK)
    write_tiny_sd(tmp_path / "unlearned", width=8)
    write_tiny_sd(tmp_path / "original", width=16)
    result = pytester.runpytest_inprocess(
        "-p",
        "no:cacheprovider",
        f"--suite={manifest}",
        f"--images={images}",
        f"--model={tmp_path / 'unlearned'}",
        f"--original-model={tmp_path / 'original'}",
        "-k",
        "weight-change",
    )
    errors = failed_checks(result, pytester.path / "unlearn-scorecard.json")
    assert errors["weight-change"].startswith("--original-model has another architecture than --model: ")
    assert (
        errors["weight-change"].endswith("here") or "compare checkpoints of the same model" in errors["weight-change"]
    )


def test_genmu_artifacts_folder_lost_during_the_run_keeps_the_scores(pytester, colour_world):
    """The images cannot be kept, the verdicts on them are: one warning, every value as usual
    (the colour world's hand counts: A_fgt 1/2, A_ind 1, A_ret 3/4)."""
    manifest, images = colour_world
    artifacts = pytester.path / "artifacts"
    pytester.makeconftest(BREAK_AFTER_COLLECTION.format(target=str(artifacts)))
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", f"--suite={manifest}", f"--images={images}", f"--artifacts={artifacts}"
    )
    output = result.stdout.str()
    assert "Traceback" not in output
    result.assert_outcomes(passed=6, failed=1)  # the adversarial check fails, as in the intact world
    card = json.loads((pytester.path / "unlearn-scorecard.json").read_text())
    values = {c["id"]: c["value"] for c in card["checks"]}
    assert values["red-ball-forget-direct"] == 0.5 and values["red-ball-forget-indirect"] == 1.0
    assert values["red-ball-retain"] == 0.75
    # No image grid without the images: the page beside the scorecard is the generic one.
    assert "images_unlearned" not in card["artifacts"]
    assert "<img" not in (pytester.path / card["artifacts"]["report"]).read_text()
    warning = (
        f"--artifacts {artifacts}: cannot write the unlearned images (Not a directory); the scores are kept, "
        "the images and the HTML report are not: pass a writable folder to keep them"
    )
    assert card["warnings"] == [warning]
    result.stdout.fnmatch_lines([f"warning: {warning}"])
