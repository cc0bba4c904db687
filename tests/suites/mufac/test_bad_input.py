"""Bad MUFAC input is one clear line naming the flag or file, before any model loads."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from tests.test_bad_input import usage_error

DATA = Path(__file__).resolve().parents[3] / "suites" / "mufac-mini" / "data"
LAYOUT = (
    "MUFAC's layout has custom_train_dataset.csv, custom_val_dataset.csv, custom_test_dataset.csv and "
    "train_images/, val_images/, test_images/"
)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "mufac"
    shutil.copytree(DATA, folder)
    return folder


def rows(path: Path) -> list[str]:
    return path.read_text().splitlines()


def write_rows(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """A folder that passes the model-folder checks (its weights are never loaded here)."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    (folder / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"\0\0\0\0")
    return folder


def run(pytester, data: Path, *args: str) -> str:
    return usage_error(pytester, "--suite=mufac-mini", f"--data={data}", *args)


def test_missing_folder_and_files(pytester, tmp_path, data, model):
    assert run(pytester, tmp_path / "nope", f"--model={model}") == (
        f"ERROR: --data {tmp_path / 'nope'}: no such folder; pass custom_korean_family_dataset_resolution_128 "
        "(MUFAC's layout)"
    )
    (data / "custom_val_dataset.csv").unlink()
    shutil.rmtree(data / "test_images")
    assert run(pytester, data, f"--model={model}") == (
        f"ERROR: --data {data}: no custom_val_dataset.csv, test_images/; {LAYOUT}"
    )


def test_csv_columns_and_labels(pytester, data, model):
    csv = data / "custom_val_dataset.csv"
    lines = rows(csv)
    write_rows(csv, ["path,age_class", *lines[1:]])
    assert run(pytester, data, f"--model={model}") == (
        f"ERROR: --data {csv}: no image_path column (has path, age_class); MUFAC's CSV lists image_path and age_class"
    )
    lines[2] = lines[2].split(",")[0] + ",z"
    write_rows(csv, lines)
    assert run(pytester, data, f"--model={model}") == (
        f"ERROR: --data {csv}:3: age_class 'z' is not one of a, b, c, d (--setting classes lists them)"
    )


def test_a_conflicting_duplicate_names_both_lines(pytester, data, model):
    csv = data / "custom_test_dataset.csv"
    lines = rows(csv)
    name, label = lines[1].split(",")
    other = "b" if label != "b" else "c"
    write_rows(csv, [*lines, f"{name},{other}"])
    assert run(pytester, data, f"--model={model}") == (
        f"ERROR: {csv}: image {name!r} appears on lines 2 and {len(lines) + 1} with different content; keep one of "
        "them (a later row must not silently decide a verdict)"
    )


def test_an_identical_duplicate_is_a_warning_and_strict_makes_it_an_error(pytester, data, model):
    csv = data / "custom_test_dataset.csv"
    lines = rows(csv)
    write_rows(csv, [*lines, lines[1]])
    assert run(pytester, data, f"--model={model}", "--strict") == (
        f"ERROR: {csv}: 1 identical duplicate row(s) kept once ({lines[1].split(',')[0]!r} on lines 2 and "
        f"{len(lines) + 1}); multi-process runs pad their output this way (--strict turns warnings into errors)"
    )


def test_the_same_image_in_forget_and_test(pytester, data, model):
    import hashlib

    forget_image = rows(data / "custom_train_dataset.csv")[3].split(",")[0]  # line 4 of the train list
    shutil.copy(data / "train_images" / forget_image, data / "val_images" / "F0045_copy.png")
    csv = data / "custom_val_dataset.csv"
    lines = rows(csv)
    write_rows(csv, [*lines, "F0045_copy.png,a"])
    digest = hashlib.sha256((data / "val_images" / "F0045_copy.png").read_bytes()).hexdigest()[:16]
    assert run(pytester, data, f"--model={model}") == (
        f"ERROR: an image with sha256 {digest!r} is in both {data / 'custom_train_dataset.csv'} (line 4) and {csv} "
        f"(line {len(lines) + 1}); an image belongs to one split: remove it from the forget or the test list"
    )


def test_a_trained_person_among_the_unseen(pytester, data, model):
    csv = data / "custom_test_dataset.csv"
    lines = rows(csv)
    name = lines[1].split(",")[0]
    renamed = "F0002" + name[5:]  # the file name's prefix is the person: F0002 is a forget person
    (data / "test_images" / name).rename(data / "test_images" / renamed)
    lines[1] = renamed + "," + lines[1].split(",")[1]
    write_rows(csv, lines)
    first_f0002 = next(
        i for i, line in enumerate(rows(data / "custom_train_dataset.csv"), 1) if line.startswith("F0002")
    )
    assert run(pytester, data, f"--model={model}") == (
        f"ERROR: person 'F0002' is in both {data / 'custom_train_dataset.csv'} (line {first_f0002}) and {csv} "
        "(line 2); the unseen set must hold people the model was never trained on"
    )


def test_a_missing_image_and_a_forget_size_past_the_list(pytester, data, model):
    name = rows(data / "custom_train_dataset.csv")[5].split(",")[0]
    assert run(pytester, data, f"--model={model}", "--setting", "forget_size=352") == (
        "ERROR: --setting forget_size=352: the train list has 352 images; the forget set is its first forget_size "
        "rows (MUFAC: 1500), so pick 1 to 351"
    )
    (data / "train_images" / name).unlink()
    assert run(pytester, data, f"--model={model}") == (
        f"ERROR: --data {data / 'custom_train_dataset.csv'}:6: image {name} not found "
        f"({data / 'train_images' / name}); pass the folder the benchmark unpacks to"
    )


def test_not_utf8(pytester, data, model):
    csv = data / "custom_train_dataset.csv"
    csv.write_bytes(csv.read_bytes() + b"F0099_x.png,\xff\n")
    line = run(pytester, data, f"--model={model}")
    assert line == f"ERROR: --data {csv}:354: not UTF-8 text (byte {csv.stat().st_size - 2}: invalid start byte); " + (
        "save the file as UTF-8"
    )


def test_model_and_settings(pytester, tmp_path, data):
    assert usage_error(pytester, "--suite=mufac-mini") == (
        "ERROR: --suite mufac-mini needs --model PATH (a face classifier) or --predictions FILE (the "
        "predictions.json of an earlier run)"
    )
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text("{}")
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x02")
    assert usage_error(pytester, "--suite=mufac-mini", f"--model={pickled}") == (
        f"ERROR: --model {pickled}: only pickle weights (pytorch_model.bin), which can run code when loaded; "
        "convert them to safetensors or pass --allow-pickle"
    )
    assert usage_error(pytester, "--suite=mufac-mini", f"--model={pickled}", "--setting", "preprocess=crop") == (
        "ERROR: --setting preprocess=crop: expected auto (the model's image processor when it has one) or manifest "
        "(the manifest's [settings.transform])"
    )
    assert usage_error(pytester, "--suite=mufac-mini", f"--model={pickled}", "--setting", "layout=cifar") == (
        "ERROR: --setting layout=cifar: expected mufac or mucac"
    )


def test_predictions_and_original_model_files(pytester, tmp_path, data, model):
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"checks": []}))
    assert usage_error(pytester, "--suite=mufac-mini", f"--predictions={card}") == (
        f"ERROR: --predictions {card}: not a per-image file of the face suites (format "
        "'pytest-unlearn/face-predictions'); pass the predictions.json a run with --model wrote under its artifacts"
    )
    ids = [line.split(",")[0] for line in rows(DATA / "custom_val_dataset.csv")[1:]]
    partial = tmp_path / "partial.json"
    doc = {
        "format": "pytest-unlearn/face-predictions",
        "task": "multiclass",
        "label_names": ["a", "b", "c", "d"],
        "splits": {"test": {"ids": ids[1:], "logits": [[0.0] * 4] * (len(ids) - 1), "losses": [1.0] * (len(ids) - 1)}},
    }
    partial.write_text(json.dumps(doc))
    assert usage_error(pytester, "--suite=mufac-mini", f"--predictions={partial}") == (
        f"ERROR: --predictions {partial}: 1 test image(s) of the data have no prediction (e.g. {ids[0]!r}); "
        "score the same data"
    )
    doc["splits"]["test"] = {"ids": ids, "logits": [["x"] * 4] * len(ids), "losses": [1.0] * len(ids)}
    partial.write_text(json.dumps(doc))
    assert usage_error(pytester, "--suite=mufac-mini", f"--predictions={partial}") == (
        f"ERROR: --predictions {partial}: the test split needs 4 logits and a finite loss per image"
    )
    doc["label_names"] = ["a", "b", "c", "d", "e", "f", "g", "h"]
    partial.write_text(json.dumps(doc))
    assert usage_error(pytester, "--suite=mufac-mini", f"--predictions={partial}") == (
        f"ERROR: --predictions {partial}: it scores multiclass labels ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'], the "
        "data multiclass labels ['a', 'b', 'c', 'd']; pass the file of a run on this data"
    )
    assert usage_error(pytester, "--suite=mufac-mini", f"--model={model}", f"--original-model={tmp_path / 'gone'}") == (
        f"ERROR: --original-model {tmp_path / 'gone'}: no such file or folder; pass the model before unlearning "
        "or the predictions.json of its run"
    )


def test_a_classifier_of_another_task_fails_its_checks_with_one_line(pytester, tmp_path):
    from transformers import ResNetConfig, ResNetForImageClassification

    folder = tmp_path / "eight"
    config = ResNetConfig(embedding_size=8, hidden_sizes=[8], depths=[1], layer_type="basic", num_labels=8)
    ResNetForImageClassification(config).save_pretrained(folder)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--suite=mufac-mini", f"--model={folder}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    card = json.loads((pytester.path / "unlearn-scorecard.json").read_text())
    errors = {c["error"] for c in card["checks"] if c["metric"] != "mufac.accuracy_ratio"}
    assert errors == {
        f"--model {folder}: the classifier has 8 outputs, the mufac data 4 classes (a, b, c, d); pass a classifier "
        "of this task"
    }


MUCAC = Path(__file__).resolve().parents[3] / "suites" / "mucac-mini" / "data"


@pytest.fixture
def celeba(tmp_path: Path) -> Path:
    folder = tmp_path / "celeba"
    shutil.copytree(MUCAC, folder)
    return folder


def test_mucac_layout_and_files(pytester, tmp_path, celeba, model):
    def run_mucac(*args: str) -> str:
        return usage_error(pytester, "--suite=mucac-mini", f"--data={celeba}", f"--model={model}", *args)

    (celeba / "CelebA-HQ-identity.txt").rename(tmp_path / "identity.txt")
    assert run_mucac() == (
        f"ERROR: --data {celeba}: no CelebA-HQ-identity.txt; MUCAC's layout has CelebA-HQ-identity.txt, "
        "CelebA-HQ-attribute.txt and CelebAMask-HQ/CelebA-HQ-img/"
    )
    (tmp_path / "identity.txt").rename(celeba / "CelebA-HQ-identity.txt")
    assert run_mucac("--setting", "retain_index=5") == (
        "ERROR: --setting train_index=12, retain_index=5, unseen_index=56: need 0 < train_index < retain_index < "
        "unseen_index (MUCAC: 190, 1250, 4855)"
    )
    attributes = celeba / "CelebA-HQ-attribute.txt"
    lines = rows(attributes)
    write_rows(attributes, [lines[0], lines[1].replace("Smiling", "Smile"), *lines[2:]])
    assert run_mucac() == (
        f"ERROR: --data {attributes}:2: no attribute Smiling in the header line; CelebA's attribute file has a "
        "count line, then the 40 attribute names"
    )
    lines[4] = lines[4].rsplit(" ", 1)[0] + " 0"
    write_rows(attributes, lines)
    assert run_mucac() == f"ERROR: --data {attributes}:5: expected the file name and 40 values of 1 or -1"
    lines[4] = "999.png" + lines[4][lines[4].index(" ") :].rsplit(" ", 1)[0] + " 1"
    write_rows(attributes, lines)
    assert run_mucac() == f"ERROR: --data {attributes}:5: image '999.png' has no identity in CelebA-HQ-identity.txt"


def test_stray_ids_in_a_per_image_file_are_a_warning_and_strict_makes_them_an_error(pytester, tmp_path):
    def ids(csv: str, rows_: slice = slice(None)) -> list[str]:
        return [line.split(",")[0] for line in rows(DATA / csv)[1:]][rows_]

    splits = {"test": ids("custom_val_dataset.csv"), "forget": ids("custom_train_dataset.csv", slice(0, 96))}
    splits["unseen"] = ids("custom_test_dataset.csv") + ["F9999_stray.png"]
    doc = {
        "format": "pytest-unlearn/face-predictions",
        "task": "multiclass",
        "label_names": ["a", "b", "c", "d"],
        # ln 4: the cross-entropy of four equal logits, whatever the label (losses match their logits).
        "splits": {
            k: {"ids": v, "logits": [[0.0] * 4] * len(v), "losses": [math.log(4)] * len(v)} for k, v in splits.items()
        },
    }
    path = tmp_path / "predictions.json"
    path.write_text(json.dumps(doc))
    assert usage_error(pytester, "--suite=mufac-mini", f"--predictions={path}", "--strict") == (
        f"ERROR: --predictions {path}: 1 id(s) are in no data file and were ignored ('F9999_stray.png') "
        "(--strict turns warnings into errors)"
    )
    pytester.runpytest_inprocess("-p", "no:cacheprovider", "--suite=mufac-mini", f"--predictions={path}")
    card = json.loads((pytester.path / "unlearn-scorecard.json").read_text())
    assert card["warnings"] == [
        f"--predictions {path}: 1 id(s) are in no data file and were ignored ('F9999_stray.png')"
    ]
    # Every loss equal: the attack cannot tell forget from unseen.
    assert {c["id"]: c["value"] for c in card["checks"] if c["value"] is not None}["forgetting-score"] == 0.0


class _Hostile:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def test_pickle_weights_need_allow_pickle_and_load_with_weights_only(pytester, tmp_path, mufac_models):
    import torch
    from transformers import ResNetForImageClassification

    model = ResNetForImageClassification.from_pretrained(mufac_models["retrained"])
    benign, hostile = tmp_path / "benign", tmp_path / "hostile"
    for folder, weights in ((benign, model.state_dict()), (hostile, {"w": _Hostile()})):
        folder.mkdir()
        model.config.save_pretrained(folder)
        shutil.copy(mufac_models["retrained"] / "preprocessor_config.json", folder)
        torch.save(weights, folder / "pytorch_model.bin")
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--suite=mufac-mini", f"--model={benign}", "--allow-pickle", "--no-cache"
    )
    card = json.loads((pytester.path / "unlearn-scorecard.json").read_text())
    values = {c["id"]: c["value"] for c in card["checks"]}
    assert values["nomus"] == pytest.approx(0.7712, abs=1e-4)  # the retrained model's, as in docs/suites/mufac.md
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--suite=mufac-mini", f"--model={hostile}", "--allow-pickle", "--no-cache"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    card = json.loads((pytester.path / "unlearn-scorecard.json").read_text())
    assert {c["error"] for c in card["checks"] if c["id"] != "test-accuracy-ratio"} == {
        f"--model {hostile}: pytorch_model.bin holds more than tensors and torch.load(weights_only=True) refused "
        "it (Trying to load unsupported GLOBAL posix.system whose module posix is blocked); it may run code when "
        "loaded: do not load it, convert a trusted copy to safetensors"
    }
    assert "pwned" not in result.stdout.str()


def test_an_identity_column_names_the_person(pytester, data, model):
    """With an identity column the person is that column, not the file name's prefix: a test
    image of a forget person is then an error even under another household's file name."""
    for csv in ("custom_train_dataset.csv", "custom_val_dataset.csv", "custom_test_dataset.csv"):
        lines = rows(data / csv)
        body = [f"{line},{line.split('_')[0]}" for line in lines[1:]]
        write_rows(data / csv, ["image_path,age_class,identity", *body])
    csv = data / "custom_val_dataset.csv"
    lines = rows(csv)
    lines[3] = lines[3].rsplit(",", 1)[0] + ",F0007"
    write_rows(csv, lines)
    first = next(i for i, line in enumerate(rows(data / "custom_train_dataset.csv"), 1) if line.endswith(",F0007"))
    assert run(pytester, data, f"--model={model}") == (
        f"ERROR: person 'F0007' is in both {data / 'custom_train_dataset.csv'} (line {first}) and {csv} (line 4); "
        "the test set must hold people the model was never trained on"
    )
