"""FID of each target's answer set against the original model's, the target's images left out
(UnlearnCanvas' fid.py), by hand from the same .jpg files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import linalg

from fixtures import unlearncanvas_world as world
from pytest_unlearn.registry import EXTRACTORS
from tests.suites.unlearncanvas.conftest import REPO, classifiers
from tests.suites.unlearncanvas.helpers import ColourStats
from tests.test_bad_input import usage_error

MANIFEST = """
[suite]
name = "canvas-fid"
extends = "{parent}"

[[checks]]
id = "{{concept}}-fid"
for_each = "concept"
metric = "unlearncanvas.fid"
params = {{ target = "{{concept}}" }}
op = "<="
threshold = 1.0

[[checks]]
id = "fid"
metric = "unlearncanvas.fid"
op = "<="
threshold = 1.0
"""


def _fid_by_hand(folder, reference, target):
    """fid.py's load_style_generated_images (exclude=target) and calculate_frechet_distance."""
    names = [
        world.image_name(s, o, seed)
        for s in world.STYLES
        for o in world.OBJECTS
        for seed in world.SEEDS
        if target not in (s, o)
    ]
    f1 = ColourStats().features([Image.open(reference / n) for n in names])
    f2 = ColourStats().features([Image.open(folder / n) for n in names])
    mu1, mu2 = f1.mean(axis=0), f2.mean(axis=0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = linalg.sqrtm(s1.dot(s2)).real
    return float((mu1 - mu2).dot(mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


@pytest.fixture
def fid_manifest(pytester):
    EXTRACTORS.register("canvas-colour", "tests.suites.unlearncanvas.helpers:colour_extractor", replace=True)
    path = pytester.path / "fid.toml"
    path.write_text(MANIFEST.format(parent=REPO / "suites" / "unlearncanvas-mini" / "manifest.toml"))
    return path


def test_fid_against_the_original_answer_set_by_hand(pytester, canvas, fid_manifest):
    result = pytester.runpytest_inprocess(
        "-p",
        "no:cacheprovider",
        f"--suite={fid_manifest}",
        f"--setting=images={canvas['erased']}",
        f"--setting=fid_reference={canvas['original']}",
        "--setting=fid_extractor=canvas-colour",
        "--scorecard=card.json",
        *classifiers(canvas),
    )
    import json

    card = json.loads((pytester.path / "card.json").read_text())
    checks = {c["id"]: c for c in card["checks"]}
    expected = {t: _fid_by_hand(canvas["erased"] / t, canvas["original"], t) for t in ("Neon_Lines", "Flowers")}
    assert checks["neon-lines-fid"]["value"] == pytest.approx(expected["Neon_Lines"], rel=1e-9)
    assert checks["flowers-fid"]["value"] == pytest.approx(expected["Flowers"], rel=1e-9)
    assert checks["fid"]["value"] == pytest.approx(sum(expected.values()) / 2, rel=1e-9)
    assert checks["neon-lines-fid"]["n"] == 3 * 3 * 5 and checks["flowers-fid"]["n"] == 4 * 2 * 5
    assert card["aggregates"]["fid_extractor"] == "canvas-colour (colour statistics)"
    # The erased answer sets redraw the target only: without it they are close to the original's.
    assert all(value < 0.01 for value in expected.values()), expected
    result.assert_outcomes(passed=3)


def test_fid_without_a_reference_fails_its_checks_with_one_line(pytester, canvas, fid_manifest):
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", f"--suite={fid_manifest}", f"--setting=images={canvas['erased']}",
        "--scorecard=card.json", "-k", "neon-lines", *classifiers(canvas),
    )  # fmt: skip
    result.stdout.fnmatch_lines(
        [
            "*neon-lines-fid: FID needs a reference answer set: pass --setting fid_reference=DIR (the original model's images)"
        ]
    )
    line = usage_error(
        pytester, f"--suite={fid_manifest}", f"--setting=images={canvas['erased']}",
        f"--setting=fid_reference={pytester.path / 'nope'}", *classifiers(canvas),
    )  # fmt: skip
    assert line == (
        f"ERROR: --setting fid_reference={pytester.path / 'nope'}: no such folder; pass the original model's answer set"
    )
