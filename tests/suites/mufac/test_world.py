"""The MUFAC suite discriminates, through the real plugin, on the miniature face world.

- target (trained on every train image): forgetting score high, NoMUS below the retrained model's;
- retrained (without the forget people): passes every check;
- damaged (target with noise in its weights): fails the utility check (test accuracy ratio).
The per-image losses of the artifact equal an independent forward pass, the forgetting score the
reference's cal_mia written out on them, and the artifact rescored with --predictions gives the
same scorecard without the model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fixtures import mufac_world

DATA = Path(__file__).resolve().parents[3] / "suites" / "mufac-mini" / "data"


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One artifact cache for the module: the target (everyone's original model) is scored once.
    return tmp_path_factory.mktemp("mufac-cache")


def run_suite(pytester: pytest.Pytester, cache_dir: Path, *args: str, card: str = "card.json") -> tuple[int, dict]:
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--suite=mufac-mini", "--batch-size=64", f"--cache-dir={cache_dir}",
        f"--scorecard={card}", *args,
    )  # fmt: skip
    return int(result.ret), json.loads((pytester.path / card).read_text())


def checks(card: dict) -> dict[str, dict]:
    return {c["id"]: c for c in card["checks"]}


def reference_losses(model_dir: Path, csv_name: str, folder: str, rows: slice) -> tuple[np.ndarray, np.ndarray]:
    """Cross-entropy and correctness per image, from the PNG files, written out without the plugin
    (the world's processor: 32 px, (x / 255 - 0.5) / 0.5)."""
    import torch
    from PIL import Image
    from transformers import ResNetForImageClassification

    model = ResNetForImageClassification.from_pretrained(model_dir).eval()
    lines = (DATA / csv_name).read_text().splitlines()[1:][rows]
    names = [line.split(",")[0] for line in lines]
    labels = torch.tensor([mufac_world.CLASSES.index(line.split(",")[1]) for line in lines])
    pixels = np.stack([np.asarray(Image.open(DATA / folder / n).convert("RGB"), dtype=np.float32) for n in names])
    x = torch.from_numpy((pixels / 255.0 - 0.5) / 0.5).permute(0, 3, 1, 2)
    with torch.no_grad():
        logits = model(pixel_values=x).logits
    loss = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    return loss.numpy(), (logits.argmax(-1) == labels).numpy()


def cal_mia(forget_losses: np.ndarray, unseen_losses: np.ndarray) -> float:
    """The reference's cal_mia and simple_mia, as the MUFAC notebooks write them."""
    from sklearn import linear_model, model_selection

    forget_losses = forget_losses.copy()
    np.random.seed(42)
    np.random.shuffle(forget_losses)
    forget_losses = forget_losses[: len(unseen_losses)]
    samples_mia = np.concatenate((unseen_losses, forget_losses)).reshape((-1, 1))
    labels_mia = [0] * len(unseen_losses) + [1] * len(forget_losses)
    cv = model_selection.StratifiedShuffleSplit(n_splits=10, random_state=0)
    scores = model_selection.cross_val_score(
        linear_model.LogisticRegression(), samples_mia, labels_mia, cv=cv, scoring="accuracy"
    )
    return abs(0.5 - scores.mean())


@pytest.mark.slow
def test_the_world_tells_target_retrained_and_damaged_apart(pytester, mufac_models, cache_dir):
    original = f"--original-model={mufac_models['target']}"
    ret, target = run_suite(pytester, cache_dir, f"--model={mufac_models['target']}", original, card="target.json")
    assert ret == pytest.ExitCode.TESTS_FAILED
    ret, retrained = run_suite(
        pytester, cache_dir, f"--model={mufac_models['retrained']}", original, card="retrained.json"
    )
    assert ret == pytest.ExitCode.OK, checks(retrained)
    ret, damaged = run_suite(pytester, cache_dir, f"--model={mufac_models['damaged']}", original, card="damaged.json")
    assert ret == pytest.ExitCode.TESTS_FAILED

    t, r, d = checks(target), checks(retrained), checks(damaged)
    # The target remembers its forget people: the attack tells them from the unseen ones.
    assert not t["forgetting-score"]["passed"] and t["forgetting-score"]["value"] > 0.25
    assert not t["nomus"]["passed"] and t["nomus"]["value"] < r["nomus"]["value"] - 0.2
    assert t["test-accuracy-ratio"]["value"] == 1.0  # against itself
    assert all(c["passed"] for c in r.values())
    assert r["forgetting-score"]["value"] < 0.05
    assert not d["test-accuracy-ratio"]["passed"] and d["test-accuracy-ratio"]["value"] < 0.6
    assert not d["nomus"]["passed"]
    for card in (target, retrained, damaged):
        for check in card["checks"]:
            low, high = check["ci95"]
            assert low <= check["value"] <= high, check

    # The artifact's losses are an independent forward pass's; the score is cal_mia's on them.
    artifact = json.loads(Path(target["artifacts"]["face_predictions"]).read_text())
    forget_n = mufac_world.FORGET_PEOPLE * mufac_world.IMAGES_PER_PERSON
    forget, forget_ok = reference_losses(mufac_models["target"], "custom_train_dataset.csv", "train_images",
                                         slice(0, forget_n))  # fmt: skip
    unseen, _ = reference_losses(mufac_models["target"], "custom_test_dataset.csv", "test_images", slice(None))
    test, test_ok = reference_losses(mufac_models["target"], "custom_val_dataset.csv", "val_images", slice(None))
    np.testing.assert_allclose(artifact["splits"]["forget"]["losses"], forget, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(artifact["splits"]["unseen"]["losses"], unseen, rtol=1e-5, atol=1e-6)
    assert t["forgetting-score"]["value"] == pytest.approx(cal_mia(forget, unseen), abs=1e-12)
    assert target["aggregates"]["test_accuracy"] == pytest.approx(float(test_ok.mean()))
    assert target["aggregates"]["forget_accuracy"] == pytest.approx(float(forget_ok.mean()))
    expected = 0.5 * test_ok.mean() + 0.5 * (1 - 2 * cal_mia(forget, unseen))
    assert t["nomus"]["value"] == pytest.approx(expected, abs=1e-12)


def test_the_per_image_file_rescores_without_the_model(pytester, mufac_models, cache_dir):
    """--predictions (the model's artifact) and --original-model (the target's artifact) give the
    model's scorecard again, with no model loaded."""
    target, retrained = mufac_models["target"], mufac_models["retrained"]
    _, first = run_suite(pytester, cache_dir, f"--model={retrained}", f"--original-model={target}")
    own = first["artifacts"]["face_predictions"]
    original = first["artifacts"]["face_original_predictions"]
    ret, again = run_suite(
        pytester, cache_dir, f"--predictions={own}", f"--original-model={original}", "--no-cache", card="again.json"
    )
    assert ret == pytest.ExitCode.OK
    assert again["model"]["path"] is None
    for a, b in zip(first["checks"], again["checks"]):
        assert (a["id"], a["value"], a["ci95"], a["passed"]) == (b["id"], b["value"], b["ci95"], b["passed"])
    # The HTML report shows the losses the attack separates.
    assert "Forget and unseen losses" in (pytester.path / "again.html").read_text()


def test_the_manifest_transform_scores_as_the_processor_does(pytester, mufac_models, tmp_path):
    """A folder without an image processor is preprocessed by the manifest's [settings.transform]
    (here the same resize and normalisation): the same losses, the same scorecard."""
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(mufac_models["retrained"], bare)
    (bare / "preprocessor_config.json").unlink()
    _, with_processor = run_suite(pytester, tmp_path / "c1", f"--model={mufac_models['retrained']}", card="a.json")
    _, with_transform = run_suite(pytester, tmp_path / "c2", f"--model={bare}", card="b.json")
    a = json.loads(Path(with_processor["artifacts"]["face_predictions"]).read_text())
    b = json.loads(Path(with_transform["artifacts"]["face_predictions"]).read_text())
    for split in ("test", "forget", "unseen"):
        np.testing.assert_allclose(a["splits"][split]["losses"], b["splits"][split]["losses"], rtol=1e-5, atol=1e-6)
        assert a["splits"][split]["predictions"] == b["splits"][split]["predictions"]
    assert checks(with_processor)["nomus"]["value"] == checks(with_transform)["nomus"]["value"]


MUCAC = Path(__file__).resolve().parents[3] / "suites" / "mucac-mini" / "data"


def mucac_reference(model_dir: Path, identities: range) -> tuple[np.ndarray, np.ndarray]:
    """BCEWithLogitsLoss averaged over Male, Smiling, Young per image, and the per-attribute
    correctness (sigmoid > 0.5), of the images of ``identities``, read from CelebA's files as
    the reference's MUCAC notebooks read them (columns 21, 32 and 40 of the attribute rows)."""
    import torch
    from PIL import Image
    from transformers import ResNetForImageClassification

    who = dict(line.split() for line in (MUCAC / "CelebA-HQ-identity.txt").read_text().splitlines())
    names, labels = [], []
    for line in (MUCAC / "CelebA-HQ-attribute.txt").read_text().splitlines()[2:]:
        parts = line.split()
        if int(who[parts[0]]) in identities:
            names.append(parts[0])
            labels.append([max(0, int(parts[i])) for i in (21, 32, 40)])
    folder = MUCAC / "CelebAMask-HQ" / "CelebA-HQ-img"
    pixels = np.stack([np.asarray(Image.open(folder / n).convert("RGB"), dtype=np.float32) for n in names])
    x = torch.from_numpy((pixels / 255.0 - 0.5) / 0.5).permute(0, 3, 1, 2)
    y = torch.tensor(labels, dtype=torch.float32)
    model = ResNetForImageClassification.from_pretrained(model_dir).eval()
    with torch.no_grad():
        logits = model(pixel_values=x).logits
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none").mean(dim=1)
    return loss.numpy(), ((torch.sigmoid(logits) > 0.5).float() == y).numpy()


@pytest.mark.slow
def test_mucac_tells_target_retrained_and_damaged_apart(pytester, mucac_models, cache_dir):
    def run(name: str) -> tuple[int, dict]:
        result = pytester.runpytest_inprocess(
            "-p", "no:cacheprovider", "--suite=mucac-mini", "--batch-size=64", f"--cache-dir={cache_dir}",
            f"--scorecard={name}.json", f"--model={mucac_models[name]}", f"--original-model={mucac_models['target']}",
        )  # fmt: skip
        return int(result.ret), json.loads((pytester.path / f"{name}.json").read_text())

    (ret_t, target), (ret_r, retrained), (ret_d, damaged) = run("target"), run("retrained"), run("damaged")
    assert (ret_t, ret_r, ret_d) == (pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
    t, r, d = checks(target), checks(retrained), checks(damaged)
    assert not t["forgetting-score"]["passed"] and t["nomus"]["value"] < r["nomus"]["value"]
    assert all(c["passed"] for c in r.values())
    assert not d["test-accuracy-ratio"]["passed"]

    forget, _ = mucac_reference(mucac_models["target"], range(12, 24))
    unseen, _ = mucac_reference(mucac_models["target"], range(56, 68))
    _, test_ok = mucac_reference(mucac_models["target"], range(0, 12))
    artifact = json.loads(Path(target["artifacts"]["face_predictions"]).read_text())
    np.testing.assert_allclose(artifact["splits"]["forget"]["losses"], forget, rtol=1e-5, atol=1e-6)
    assert t["forgetting-score"]["value"] == pytest.approx(cal_mia(forget, unseen), abs=1e-12)
    # The reference's average accuracy: (gender + smiling + young accuracy) / 3.
    assert target["aggregates"]["test_accuracy"] == pytest.approx(float(test_ok.mean(axis=0).sum() / 3))


LOADER = """
import torch

from pytest_unlearn.registry import LOADERS


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3 * 32 * 32, 4)

    def forward(self, x):
        return self.fc(x.flatten(1))


def load(path, *, device, allow_pickle):
    model = Tiny()
    model.load_state_dict(torch.load(path, map_location=device, weights_only=True))
    return model.to(device)


LOADERS.register("tiny-state-dict", load, replace=True)
"""


def test_a_plain_state_dict_through_a_registered_loader(pytester, mufac_models, tmp_path):
    """--setting model_loader=NAME: a loader from the registry (here a conftest's) builds the
    module from a torchvision-style state dict; pickle files need --allow-pickle."""
    import torch

    from tests.test_bad_input import usage_error

    pytester.makeconftest(LOADER)
    namespace: dict = {}
    exec(LOADER.replace('LOADERS.register("tiny-state-dict", load, replace=True)', ""), namespace)
    torch.manual_seed(0)
    module = namespace["Tiny"]().eval()
    weights = tmp_path / "tiny.pt"
    torch.save(module.state_dict(), weights)
    args = ["--suite=mufac-mini", f"--model={weights}", "--setting", "model_loader=tiny-state-dict"]
    assert usage_error(pytester, *args) == (
        f"ERROR: --model {weights}: pickle weights (tiny.pt), which can run code when loaded; convert them to "
        "safetensors or pass --allow-pickle (loader tiny-state-dict then reads them with torch.load(weights_only=True))"
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", *args, "--allow-pickle", "--no-cache")
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # no --original-model: the accuracy-ratio check errs
    card = json.loads((pytester.path / "unlearn-scorecard.json").read_text())
    artifact = json.loads(Path(card["artifacts"]["face_predictions"]).read_text())
    from PIL import Image

    lines = (DATA / "custom_test_dataset.csv").read_text().splitlines()[1:]
    pixels = np.stack(
        [np.asarray(Image.open(DATA / "test_images" / ln.split(",")[0]), dtype=np.float32) for ln in lines]
    )
    labels = torch.tensor([mufac_world.CLASSES.index(ln.split(",")[1]) for ln in lines])
    with torch.no_grad():
        logits = module(torch.from_numpy((pixels / 255.0 - 0.5) / 0.5).permute(0, 3, 1, 2))
    expected = torch.nn.functional.cross_entropy(logits, labels, reduction="none").numpy()
    np.testing.assert_allclose(artifact["splits"]["unseen"]["losses"], expected, rtol=1e-5, atol=1e-6)


def test_your_own_tests_get_the_data_and_the_loaded_models(pytester, mufac_models):
    pytester.makepyfile(
        test_own="""
        import torch

        def test_splits(unlearn_data):
            assert unlearn_data.task == "multiclass" and unlearn_data.label_names == ("a", "b", "c", "d")
            sizes = {k: len(v) for k, v in unlearn_data.splits.items()}
            assert sizes == {"forget": 96, "retain": 256, "test": 96, "unseen": 96}
            assert {s.identity for s in unlearn_data.splits["forget"]} == {f"F{i:04d}" for i in range(1, 13)}

        def test_models(unlearn_model, unlearn_original_model):
            x = torch.zeros(2, 3, 32, 32)
            assert unlearn_model(pixel_values=x).logits.shape == (2, 4)
            assert unlearn_original_model is not unlearn_model
        """
    )
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--suite=mufac-mini", f"--model={mufac_models['retrained']}",
        f"--original-model={mufac_models['target']}", "--no-cache", "test_own.py", "-k", "splits or models",
    )  # fmt: skip
    result.assert_outcomes(passed=2)
