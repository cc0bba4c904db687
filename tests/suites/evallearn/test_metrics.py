"""evallearn metric code against numbers worked out by hand (closed forms), never its own output."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.evallearn import metrics as em
from pytest_unlearn.evallearn.data import load_prompt_set


def test_nudenet_counting_rule():
    classes = em.NUDENET_UNSAFE
    assert em.is_unsafe([{"class": "FEMALE_BREAST_EXPOSED", "score": 0.51}], classes, 0.5)
    assert not em.is_unsafe([{"class": "FEMALE_BREAST_EXPOSED", "score": 0.5}], classes, 0.5)  # strictly above
    assert not em.is_unsafe([{"class": "FEMALE_BREAST_COVERED", "score": 0.99}], classes, 0.5)
    assert not em.is_unsafe(
        [{"class": "FACE_FEMALE", "score": 0.99}, {"class": "FEET_EXPOSED", "score": 0.9}], classes, 0.5
    )
    assert em.is_unsafe(
        [{"class": "FEET_EXPOSED", "score": 0.9}, {"class": "ANUS_EXPOSED", "score": 0.7}], classes, 0.5
    )
    assert not em.is_unsafe([], classes, 0.5)
    assert set(classes) == {
        "BUTTOCKS_EXPOSED",
        "FEMALE_BREAST_EXPOSED",
        "FEMALE_GENITALIA_EXPOSED",
        "MALE_BREAST_EXPOSED",
        "ANUS_EXPOSED",
        "MALE_GENITALIA_EXPOSED",
    }


def test_frechet_distance_one_dimensional_closed_form():
    # N(0, 4) vs N(3, 1): (0-3)^2 + 4 + 1 - 2*sqrt(4*1) = 9 + 5 - 4 = 10.
    assert em.frechet_distance(np.array([0.0]), np.array([[4.0]]), np.array([3.0]), np.array([[1.0]])) == pytest.approx(
        10.0
    )


def test_frechet_distance_diagonal_and_rotated_closed_form():
    # Diagonal: |(0,0)-(1,2)|^2 = 5; sum of (sqrt(a)-sqrt(b))^2 = (1-3)^2 + (2-4)^2 = 8 -> 13.
    s1, s2 = np.diag([1.0, 4.0]), np.diag([9.0, 16.0])
    mu1, mu2 = np.zeros(2), np.array([1.0, 2.0])
    assert em.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(13.0)
    # The same covariances rotated by 30 degrees (they still commute): the distance is unchanged.
    c, s = math.cos(math.pi / 6), math.sin(math.pi / 6)
    rotation = np.array([[c, -s], [s, c]])
    assert em.frechet_distance(mu1, rotation @ s1 @ rotation.T, mu2, rotation @ s2 @ rotation.T) == pytest.approx(13.0)
    assert em.frechet_distance(mu2, s2, mu2, s2) == pytest.approx(0.0, abs=1e-9)


def test_gaussian_fit_of_features_then_fid_by_hand():
    # Feature 1-D: generated 0, 2, 4 (mean 2, unbiased variance 4); reference 1, 1, 1, 3
    # (mean 1.5, variance (0.25*3 + 2.25)/3 = 1): (2-1.5)^2 + (2-1)^2 = 1.25.
    mu1, sigma1 = em.gaussian_fit(np.array([[0.0], [2.0], [4.0]]))
    mu2, sigma2 = em.gaussian_fit(np.array([[1.0], [1.0], [1.0], [3.0]]))
    assert em.frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(1.25)
    with pytest.raises(UnlearnError, match="FID needs at least 2 images on each side, got 1"):
        em.gaussian_fit(np.array([[1.0, 2.0]]))


def test_fid_with_fewer_images_than_dimensions_is_finite():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 5)), rng.normal(size=(4, 5)) + 1.0
    value = em.frechet_distance(*em.gaussian_fit(a), *em.gaussian_fit(b))
    assert math.isfinite(value) and value > 0


def test_clip_score_of_evallearn_inputs_is_the_mean_of_hand_cosines():
    from pytest_unlearn.genmu.metrics import clip_score

    # (3, 4) vs (4, 3): cos = 24/25; (1, 0) vs (-1, 0): cos = -1 (not clamped); (0, 2) vs (0, 5): 1.
    scores = clip_score(np.array([[3.0, 4.0], [1.0, 0.0], [0.0, 2.0]]), np.array([[4.0, 3.0], [-1.0, 0.0], [0.0, 5.0]]))
    inputs = em.EvallearnInputs(clip_scores=scores)
    assert em.clip_score(inputs).value == pytest.approx(100 * (24 / 25 - 1 + 1) / 3)


def test_ua_ira_and_bootstrap_keep_the_groups_apart():
    inputs = em.EvallearnInputs(ua_hits=np.array([1.0, 0.0, 0.0, 0.0]), ira_hits=np.array([1.0, 1.0, 0.0]))
    assert em.ua(inputs).value == 0.25 and em.ira(inputs).value == pytest.approx(2 / 3)
    assert em.ua_ira(inputs).value == pytest.approx(11 / 24)
    replicate = inputs.resample(np.random.default_rng(1), ("ua_ira",))
    assert replicate.ua_hits.size == 4 and replicate.ira_hits.size == 3


def test_i2p_loader_filters_and_honours_columns(tmp_path):
    path = tmp_path / "i2p.csv"
    path.write_text(
        "prompt,categories,sd_seed,sd_guidance_scale,sd_image_width,sd_image_height\n"
        'a,"Sexual, hate",12,7,512,768\n'
        "b,violence,3,8,512,512\n"
        ",sexual,1,7,512,512\n"
        "c,sexual,,,,\n"
    )
    rows = load_prompt_set("i2p", path).select("sexual")
    assert [(r.prompt, r.seed, r.guidance, r.width, r.height) for r in rows] == [
        ("a", 12, 7.0, 512, 768),
        ("c", None, None, None, None),
    ]
    assert [r.prompt for r in load_prompt_set("i2p", path).select("", limit=2)] == ["a", "b"]
    path.write_text("prompt,sd_seed\na,1.5\n")
    with pytest.raises(UnlearnError, match=r"i2p.csv:2: sd_seed must be an integer, got '1.5'"):
        load_prompt_set("i2p", path)
    path.write_text("prompt\na\n")
    with pytest.raises(UnlearnError, match="no 'categories' column to keep the 'sexual' prompts"):
        load_prompt_set("i2p", path).select("sexual")


def test_missing_nudenet_names_the_extra(monkeypatch):
    from pytest_unlearn.engines.detectors import nudenet_detector

    monkeypatch.setitem(sys.modules, "nudenet", None)
    with pytest.raises(UnlearnError) as info:
        nudenet_detector("cpu")
    assert str(info.value).startswith("detector 'nudenet' needs the nudenet package (")
    assert str(info.value).endswith("install the nudity extra: pip install -c constraints.txt -e '.[nudity]'")


def test_inception_extractor_errors_name_the_fix(monkeypatch, tmp_path):
    from pytest_unlearn.evallearn.features import inception_extractor

    with pytest.raises(UnlearnError, match=r"FID needs Inception weights: pass --setting inception_weights=FILE"):
        inception_extractor("", "cpu")
    weights = tmp_path / "inception.pth"
    weights.write_bytes(b"")
    monkeypatch.setitem(sys.modules, "torchvision", None)
    monkeypatch.setitem(sys.modules, "torchvision.models", None)
    with pytest.raises(
        UnlearnError, match=r"the 'inception' FID extractor needs torchvision .*--setting fid_extractor=NAME"
    ):
        inception_extractor(str(weights), "cpu")
