"""UnlearnCanvas' own inputs: every bad one is one line naming the flag or file and what to do."""

from __future__ import annotations

import shutil

import pytest

from tests.suites.unlearncanvas.conftest import classifiers
from tests.test_bad_input import failed_checks, usage_error

SUITE = "--suite=unlearncanvas-mini"


def test_no_classifier_names_both_ways_out(pytester, canvas):
    line = usage_error(pytester, SUITE, f"--setting=images={canvas['erased']}")
    assert line == (
        "ERROR: --suite unlearncanvas-mini needs --setting style_classifier=DIR (a transformers or timm ViT "
        "image-classification folder), or --setting judge=clip with clip_model=DIR as a fallback"
    )


def test_a_classifier_that_is_not_a_folder_of_a_model(pytester, canvas, tmp_path):
    args = [SUITE, f"--setting=images={canvas['erased']}", *classifiers(canvas)]
    line = usage_error(pytester, *args, f"--setting=object_classifier={tmp_path}")
    assert line == f"ERROR: --setting object_classifier={tmp_path}: not an image-classification folder (no config.json)"


def test_the_clip_fallback_needs_its_model(pytester, canvas):
    line = usage_error(pytester, SUITE, f"--setting=images={canvas['erased']}", "--setting=judge=clip")
    assert line == "ERROR: --setting judge=clip needs --setting clip_model=DIR (a transformers CLIP folder)"


def test_neither_model_nor_images(pytester, canvas):
    line = usage_error(pytester, SUITE, *classifiers(canvas))
    assert line == (
        "ERROR: --suite unlearncanvas-mini needs --model PATH (a diffusers model, or a folder of one model per target), "
        "or --setting images=DIR (answer sets made elsewhere)"
    )


def test_model_and_images_together(pytester, canvas):
    line = usage_error(
        pytester, SUITE, f"--model={canvas['erased']}", f"--setting=images={canvas['erased']}", *classifiers(canvas)
    )
    assert line == "ERROR: --setting images scores answer sets made elsewhere: drop --model, or drop images"


def test_an_images_folder_that_is_not_there(pytester, canvas, tmp_path):
    line = usage_error(pytester, SUITE, f"--setting=images={tmp_path / 'nope'}", *classifiers(canvas))
    assert line == f"ERROR: --setting images={tmp_path / 'nope'}: no such folder; pass the answer sets' folder"


def test_one_answer_set_needs_its_targets_named(pytester, canvas):
    line = usage_error(pytester, SUITE, f"--setting=images={canvas['original']}", *classifiers(canvas))
    assert line == (
        "ERROR: one model for every target: name what it unlearned with --setting targets=NAME (a style or object "
        "of styles.txt / objects.txt; a list for several)"
    )


def test_an_unknown_target_says_what_it_may_have_meant(pytester, canvas):
    args = [SUITE, f"--setting=images={canvas['original']}", "--setting=targets=Neon_Line", *classifiers(canvas)]
    line = usage_error(pytester, *args)
    assert line == (
        "ERROR: --setting targets: 'Neon_Line' is not a style or object of the suite's lists. Did you mean: Neon_Lines?"
    )


def test_a_target_without_its_model_folder(pytester, canvas):
    args = [SUITE, f"--setting=images={canvas['erased']}", "--setting=targets=Pastel", *classifiers(canvas)]
    line = usage_error(pytester, *args)
    assert line.startswith("ERROR: --setting targets: 'Pastel' has no model folder (--setting images=")
    assert line.endswith("2 per-target folders (Neon_Lines = Neon_Lines, Flowers = Flowers))")


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("seeds=188 x", "--setting seeds: seeds must be non-negative integers separated by spaces, got '188 x'"),
        ("seeds=188 188", "--setting seeds: seeds lists a seed twice: '188 188'"),
        (
            "template=A {object} image.",
            "--setting template: must contain {style} and {object}, got 'A {object} image.'",
        ),
    ],
)
def test_bad_seeds_and_templates(pytester, canvas, setting, message):
    line = usage_error(
        pytester, SUITE, f"--setting=images={canvas['erased']}", f"--setting={setting}", *classifiers(canvas)
    )
    assert line == f"ERROR: {message}"


def test_a_label_file_that_lacks_a_style(pytester, canvas):
    labels = pytester.path / "labels.txt"
    labels.write_text("Dapple\nPastel\nSeed_Images\n")
    args = [SUITE, f"--setting=images={canvas['erased']}", f"--setting=style_labels={labels}", *classifiers(canvas)]
    line = usage_error(pytester, *args)
    assert line == (
        f"ERROR: --setting style_labels={labels}: 'Neon_Lines' of the styles is not a label of the classifier; "
        "list every one of the styles in the classifier's order"
    )


def test_data_folders_and_name_lists(pytester, canvas):
    data = pytester.path / "data"
    data.mkdir()
    (data / "styles.txt").write_text("Dapple\nPastel\nDapple\n")
    args = [SUITE, f"--setting=images={canvas['erased']}", f"--data={data}", *classifiers(canvas)]
    assert usage_error(pytester, *args) == (
        f"ERROR: --data {data / 'styles.txt'}: 'Dapple' is listed twice; each name once, in the classifier's order"
    )
    (data / "styles.txt").write_text("Dapple\nPastel\n")
    assert usage_error(pytester, *args) == (
        f"ERROR: --data {data / 'objects.txt'}: no such file; it lists one name a line, in the classifier's order"
    )
    (data / "objects.txt").write_text("Pastel\n")
    assert usage_error(pytester, *args) == f"ERROR: --data {data}: 'Pastel' is both a style and an object; rename one"


def test_a_missing_image_fails_that_targets_checks_with_one_line(pytester, canvas):
    images = pytester.path / "answers"
    shutil.copytree(canvas["erased"], images)
    (images / "Flowers" / "Pastel_Towers_seed588.jpg").unlink()
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", SUITE, f"--setting=images={images}", "--scorecard=card.json", *classifiers(canvas)
    )
    errors = failed_checks_of(result, pytester)
    message = (
        f"--setting images={images}: 1 of 60 images missing in {images / 'Flowers'}, e.g. Pastel_Towers_seed588.jpg; "
        "an answer set has every <style>_<object>_seed<seed>.jpg"
    )
    assert errors == {"flowers-ua": message, "flowers-ira": message, "flowers-cra": message}


def failed_checks_of(result, pytester):
    """The errors of the checks that failed with one (the others passed)."""
    import json

    card = json.loads((pytester.path / "card.json").read_text())
    output = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in output
    errors = {c["id"]: c["error"] for c in card["checks"] if c["error"]}
    for check_id, error in errors.items():
        result.stdout.fnmatch_lines([f"{check_id}: {error}"])
    return {k: v for k, v in errors.items() if k.startswith("flowers")}


def test_a_classifier_with_more_outputs_than_labels(pytester, canvas):
    labels = pytester.path / "labels.txt"
    labels.write_text("Flowers\nTowers\nFlame\nTrees\n")
    result = pytester.runpytest_inprocess(
        "-p",
        "no:cacheprovider",
        SUITE,
        f"--setting=images={canvas['original']}",
        "--setting=targets=Towers",
        f"--setting=object_labels={labels}",
        "--scorecard=card.json",
        *classifiers(canvas),
    )
    errors = failed_checks(result, pytester.path / "card.json")
    assert set(errors.values()) == {
        f"--setting object_classifier={canvas['object-classifier']}: 3 outputs, but its label order (object_labels) "
        "lists 4 names; pass --setting object_labels=FILE in its order"
    }


def test_an_unreadable_image_fails_that_targets_checks_with_one_line(pytester, canvas):
    images = pytester.path / "answers"
    shutil.copytree(canvas["erased"], images)
    (images / "Flowers" / "Dapple_Flame_seed288.jpg").write_bytes(b"not a jpeg")
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", SUITE, f"--setting=images={images}", "--scorecard=card.json", *classifiers(canvas)
    )
    errors = failed_checks_of(result, pytester)
    assert set(errors) == {"flowers-ua", "flowers-ira", "flowers-cra"}
    (message,) = set(errors.values())
    assert message.startswith(
        f"--setting images={images}: cannot read {images / 'Flowers' / 'Dapple_Flame_seed288.jpg'} ("
    )
    assert message.endswith("); replace it or regenerate it")


def test_a_timm_folder_of_another_architecture_fails_every_check_in_one_line(pytester, canvas, tmp_path):
    from tests.test_timm_vit import timm_folder, timm_state

    folder = timm_folder(tmp_path / "resnet", timm_state(num_classes=4), architecture="resnet50")
    result = pytester.runpytest_inprocess(
        "-p",
        "no:cacheprovider",
        SUITE,
        f"--setting=images={canvas['erased']}",
        "--scorecard=card.json",
        f"--setting=style_classifier={folder}",
        f"--setting=object_classifier={canvas['object-classifier']}",
    )
    errors = failed_checks(result, pytester.path / "card.json")
    assert set(errors.values()) == {
        f"--setting style_classifier={folder}: {folder / 'config.json'}: architecture 'resnet50' is not a plain timm "
        "ViT; only vit_* (or deit_*) with a class token and a linear head load (convert other classifiers to a "
        "transformers image-classification folder)"
    }
