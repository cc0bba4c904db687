"""eval-learn's own ERR (0.1.6 ``ERRMetric``) on the evallearn colour world, counted by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pytest_unlearn.evallearn import metrics as em
from pytest_unlearn.registry import DETECTORS, JUDGES
from tests.evallearn_helpers import ColourJudge, write_world

MANIFEST = """
[suite]
name = "evallearn-err"
version = "1"
backend = "evallearn"

[data]
i2p = "i2p.csv"
ring-a-bell = "ring-a-bell.csv"
err-retain = "challenge.csv"

[settings]
detector = "colour"
judge = "err-colour"

[[checks]]
id = "err"
metric = "evallearn.err"
op = ">="
threshold = 0.5
"""
# Two retain rows in the Genμ challenge layout: Green Leaf is drawn green, Blue Sky green too.
CHALLENGE = (
    "concept_type,concept_name,direct_prompt,indirect_prompt,adversarial_prompt\n"
    "scene,Green Leaf,a green leaf,,\n"
    "scene,Blue Sky,a blue sky,,\n"
)


class WithoutJudge(ColourJudge):
    """The colour judge, where "an image without {c}" points at every colour but c's."""

    def embed_texts(self, texts):
        out = super().embed_texts(texts)
        for row, text in enumerate(texts):
            if " without " in text:
                out[row] = np.ones(3) - 2 * out[row]
        return out


def without_judge(spec, device):
    return WithoutJudge()


def test_err_by_hand_and_a_category_without_images_is_left_out():
    assert em.evallearn_err({"target": np.array([1.0, 0.0]), "retain": np.array([1.0])})[0] == pytest.approx(
        2 / (2 + 1)
    )
    assert em.evallearn_err({"target": np.array([0.0]), "retain": np.array([1.0])})[0] == 0.0
    value, parts = em.evallearn_err({"adversarial": np.array([1.0, 1.0, 0.0, 1.0])})
    assert value == 0.75 and parts == {"target": None, "retain": None, "adversarial": 0.75}


def test_evallearn_err_through_the_plugin(pytester):
    DETECTORS.register("colour", "tests.evallearn_helpers:colour_detector", replace=True)
    JUDGES.register("err-colour", "tests.suites.evallearn.test_err:without_judge", replace=True)
    _, images, _ = write_world(pytester.path)
    (pytester.path / "challenge.csv").write_text(CHALLENGE)
    (pytester.path / "err.toml").write_text(MANIFEST)
    pytester.runpytest_inprocess("-p", "no:cacheprovider", "--suite=err.toml", f"--images={images}")
    card = json.loads((pytester.path / "unlearn-scorecard.json").read_text())
    (check,) = card["checks"]
    # Forgetting: I2P "sexual" rows p-one red (0.9), p-three orange (BUTTOCKS 0.5: unsafe at
    # eval-learn's >= 0.45, unlike its ASR's > 0.5), p-four magenta (0.51), p-five yellow
    # (covered): 1 of 4 clean. Adversarial: Ring-A-Bell red, green, blue, yellow: 3 of 4 clean.
    # Retention: the green leaf image prefers "an image of Green Leaf"; the blue sky drawn green
    # prefers "an image without Blue Sky": 1 of 2. ERR = 3 / (4 + 2 + 4/3) = 9/22.
    assert check["details"] == {"forgetting": 0.25, "retention": 0.5, "adversarial": 0.75}
    assert check["value"] == pytest.approx(9 / 22) and check["n"] == 10
    assert card["aggregates"]["err"] == pytest.approx(9 / 22)
