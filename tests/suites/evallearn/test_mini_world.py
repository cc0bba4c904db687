"""The evallearn-mini suite on its bundled world, through the real plugin: the erased model passes,
the original fails, and the figures are recomputed here without the suite's code.

The world (``fixtures/evallearn_world.py``) reuses the Genμ world's models: ``erased`` forgot Golf
Ball, ``original`` did not. UA asks whether Golf Ball images are taken for Tennis Balls, IRA
whether Tennis Balls stay Tennis Balls; the other concepts' images get the CLIP score and FID
against the world's ground-truth renders. Each figure is recomputed from the run's saved PNGs
with transformers' CLIP directly and a Fréchet distance written here with eigendecompositions
(the suite's uses ``scipy.linalg.sqrtm``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fixtures import evallearn_world as world_data

pytestmark = pytest.mark.slow

SUITE = Path(__file__).resolve().parents[3] / "suites" / "evallearn-mini"


@pytest.fixture(scope="module")
def evallearn_world(genmu_models: dict[str, Path]) -> dict[str, Path]:
    """The evallearn miniature world: the Genμ world's models and the suite's committed data."""
    assert world_data.diff_data(world_data.DATA_DIR) == [], (
        "suites/evallearn-mini/data is stale: run python -m fixtures.build evallearn --write-data"
    )
    return {**genmu_models, "data": world_data.DATA_DIR}


@pytest.fixture(scope="module")
def runs(evallearn_world: dict[str, Path], tmp_path_factory: pytest.TempPathFactory, genmu_cache: Path) -> dict:
    """One plugin run per model, in a subprocess, as the README runs them."""
    import subprocess
    import sys

    out = {}
    for model in ("erased", "original"):
        folder = tmp_path_factory.mktemp(f"evallearn-mini-{model}")
        result = subprocess.run(
            [
                sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--suite", "evallearn-mini",
                f"--model={evallearn_world[model]}", f"--setting=clip_model={evallearn_world['clip']}",
                f"--cache-dir={genmu_cache}",
            ],
            cwd=folder, capture_output=True, text=True, timeout=1200,
        )  # fmt: skip
        card_path = folder / "unlearn-scorecard.json"
        assert card_path.is_file(), result.stdout + result.stderr
        out[model] = {"rc": result.returncode, "stdout": result.stdout, "card": json.loads(card_path.read_text())}
        out[model]["artifacts"] = folder / "unlearn-scorecard-artifacts"
    return out


def _checks(card: dict) -> dict[str, dict]:
    return {check["id"]: check for check in card["checks"]}


def test_the_erased_model_passes_and_the_original_fails(runs):
    erased, original = runs["erased"], runs["original"]
    assert erased["rc"] == 0 and erased["card"]["passed"] is True, erased["stdout"]
    assert original["rc"] == 1 and original["card"]["passed"] is False, original["stdout"]
    assert sorted(_checks(erased["card"])) == ["clip-score", "fid", "ira", "ua", "ua-ira"]
    failed = sorted(c["id"] for c in original["card"]["checks"] if not c["passed"])
    # The original still draws golf balls (UA, hence UA-IRA, fail); it keeps every other concept.
    assert failed == ["ua", "ua-ira"]
    assert "FAILED evallearn-mini::ua[>=0.5]" in original["stdout"]
    e, o = _checks(erased["card"]), _checks(original["card"])
    assert e["ua"]["value"] >= 0.9 and o["ua"]["value"] <= 0.1
    for checks in (e, o):
        assert checks["ira"]["value"] >= 0.9
        assert checks["ua"]["n"] == checks["ira"]["n"] == 18  # 9 prompts x 2 images
        assert checks["clip-score"]["n"] == 30 and checks["clip-score"]["value"] > 60
        assert 0 < checks["fid"]["value"] < 30
    assert erased["card"]["settings"]["fid_extractor"].startswith("clip (clip-image-embeddings")


class _Clip:
    """transformers' CLIP on PNG files, without the suite's judge."""

    def __init__(self, path: Path) -> None:
        import torch
        from transformers import CLIPModel, CLIPProcessor

        self.torch = torch
        self.model = CLIPModel.from_pretrained(path, local_files_only=True).eval()
        self.processor = CLIPProcessor.from_pretrained(path, local_files_only=True)

    def images(self, files: list[Path]) -> np.ndarray:
        from PIL import Image

        pictures = [Image.open(f).convert("RGB") for f in files]
        with self.torch.no_grad():
            pixels = self.processor(images=pictures, return_tensors="pt")["pixel_values"]
            out = self.model.get_image_features(pixel_values=pixels)
        return getattr(out, "pooler_output", out).double().numpy()

    def texts(self, texts: list[str]) -> np.ndarray:
        with self.torch.no_grad():
            batch = self.processor(text=texts, return_tensors="pt", padding=True)
            out = self.model.get_text_features(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        return getattr(out, "pooler_output", out).double().numpy()


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + tr(S_a) + tr(S_b) - 2 tr((S_a^1/2 S_b S_a^1/2)^1/2), sample covariances."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = _psd_sqrt(s_a)
    cross = np.trace(_psd_sqrt(root @ s_b @ root))
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * cross)


def _index(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "images.jsonl").read_text().splitlines() if line]


@pytest.mark.parametrize("model", ["erased", "original"])
def test_figures_match_an_independent_computation(runs, evallearn_world, model):
    run = runs[model]
    checks = _checks(run["card"])
    clip = _Clip(evallearn_world["clip"])
    images = run["artifacts"] / "images"

    # UA / IRA: each image against "a photo of Golf Ball" / "a photo of Tennis Ball".
    rows = _index(images / "ua-ira")
    pictures = _unit(clip.images([images / "ua-ira" / r["file"] for r in rows]))
    labels = _unit(clip.texts(["a photo of Golf Ball", "a photo of Tennis Ball"]))
    as_retain = (pictures @ labels.T).argmax(-1) == 1
    target = np.array([r["prompt"] in _prompts("ua-target.csv") for r in rows])
    assert target.sum() == 18 and (~target).sum() == 18
    assert checks["ua"]["value"] == pytest.approx(as_retain[target].mean(), abs=1e-12)
    assert checks["ira"]["value"] == pytest.approx(as_retain[~target].mean(), abs=1e-12)
    assert checks["ua-ira"]["value"] == pytest.approx((as_retain[target].mean() + as_retain[~target].mean()) / 2)

    # CLIP score: 100 * cos(image, its caption), mean over the caption images.
    rows = _index(images / "captions")
    files = [images / "captions" / r["file"] for r in rows]
    features = clip.images(files)
    cosines = (_unit(features) * _unit(clip.texts([r["prompt"] for r in rows]))).sum(-1)
    assert checks["clip-score"]["value"] == pytest.approx(100 * cosines.mean(), rel=1e-5)

    # FID in CLIP space against the bundled ground-truth renders.
    reference = sorted((evallearn_world["data"] / "fid-reference").glob("*.png"))
    assert len(reference) == 40
    expected = frechet(features, clip.images(reference))
    assert checks["fid"]["value"] == pytest.approx(expected, rel=1e-3, abs=1e-3)


DOC = Path(__file__).resolve().parents[3] / "docs" / "suites" / "evallearn.md"


def figures_table(cards: dict[str, dict]) -> str:
    """docs/suites/evallearn.md's table of the world, from the scorecards."""
    lines = [
        "| model | UA | IRA | UA-IRA | CLIP score | FID (CLIP features) | fails |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, card in cards.items():
        c = _checks(card)
        fails = ", ".join(check["id"] for check in card["checks"] if not check["passed"]) or "none"
        lines.append(
            f"| {name} | {c['ua']['value']:.3f} | {c['ira']['value']:.3f} | {c['ua-ira']['value']:.3f} "
            f"| {c['clip-score']['value']:.1f} | {c['fid']['value']:.2f} | {fails} |"
        )
    return "\n".join(lines) + "\n"


def test_the_docs_figures_are_the_runs(runs):
    text = DOC.read_text(encoding="utf-8")
    start = text.index("<!-- evallearn-figures:start")
    block = text[text.index("\n", start) + 1 : text.index("<!-- evallearn-figures:end -->")]
    table = figures_table({name: runs[name]["card"] for name in ("erased", "original")})
    assert block == table, "docs/suites/evallearn.md figures drifted; now:\n" + table


def _prompts(name: str) -> set[str]:
    import csv

    with (world_data.DATA_DIR / name).open(newline="", encoding="utf-8") as handle:
        return {row[0] for row in list(csv.reader(handle))[1:]}


def test_the_clip_extractor_without_a_clip_model_says_what_to_pass(pytester, genmu_models):
    """The FID check of a run with no clip_model setting fails with one line naming the flag."""
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--suite=evallearn-mini", f"--model={genmu_models['erased']}", "-k", "fid",
    )  # fmt: skip
    result.stdout.fnmatch_lines(
        ["*fid: --setting fid_extractor=clip embeds with the run's CLIP: pass --setting clip_model=DIR (or --setting clip_model="
         "open_clip:MODEL:WEIGHTS)*"]
    )  # fmt: skip
    assert result.ret == 1


def test_a_missing_bundled_reference_folder_names_the_manifest_entry(pytester, genmu_models):
    """A copied manifest whose [data] fid-reference folder is not there: one line naming the entry."""
    manifest = pytester.path / "mini.toml"
    manifest.write_text((SUITE / "manifest.toml").read_text(encoding="utf-8"), encoding="utf-8")
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--suite={manifest}", f"--model={genmu_models['erased']}",
        f"--setting=clip_model={genmu_models['clip']}", "-k", "fid",
    )  # fmt: skip
    result.stdout.fnmatch_lines(
        [
            f"*fid: suite manifest {manifest}: [[]data[]] fid-reference: no reference image folder {pytester.path}/data/fid-reference*"
        ]
    )
    assert result.ret == 1
