"""Genμ counting rules through the real plugin, on a colour world scored by a fake judge."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pytest_unlearn.genmu import metrics as gm
from pytest_unlearn.registry import JUDGES
from tests.genmu_helpers import write_world


@pytest.fixture
def colour_world(pytester):
    JUDGES.register("colour", "tests.genmu_helpers:colour_judge", replace=True)
    return write_world(pytester.path)


def test_images_mode_counts_by_hand(pytester, colour_world):
    manifest, images = colour_world
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", f"--suite={manifest}", f"--images={images}", "-v")
    result.stdout.fnmatch_lines(
        [
            "colours::red-ball-forget-direct[[]>=0.5] PASSED*",
            "colours::red-ball-forget-indirect[[]>=0.9] PASSED*",
            "colours::red-ball-forget-adversarial[[]>=0.9] FAILED*",
            "colours::red-ball-retain[[]>=0.7] PASSED*",
            "colours::red-ball-adjacent[[]>=0.7] PASSED*",
            "colours::err[[]>=0.6] PASSED*",
            "colours::clip-score-retain[[]>=70] PASSED*",
        ]
    )
    card = json.loads((pytester.path / "unlearn-scorecard.json").read_text())
    values = {c["id"]: c["value"] for c in card["checks"]}
    # Red Ball: direct present/absent -> A_fgt 1/2; indirect absent twice -> A_ind 1;
    # adversarial present/absent -> A_adv 1/2. Retention: green 2/2 present, blue 1/2 -> A_ret 3/4.
    # Adjacent (Green Leaf) 2/2 -> A_adj 1. ERR = 5 / (2 + 1 + 2 + 4/3 + 1) = 15/22.
    assert values["red-ball-forget-direct"] == 0.5
    assert values["red-ball-forget-indirect"] == 1.0
    assert values["red-ball-forget-adversarial"] == 0.5
    assert values["red-ball-retain"] == 0.75
    assert values["red-ball-adjacent"] == 1.0
    assert values["err"] == pytest.approx(15 / 22)
    # CLIP scores of retention images: the image embedding is the mean RGB, e.g. (20, 220, 20),
    # against the one-hot colour word: a match scores 100 * 220 / |(20, 220, 20)|, a miss 100 * 20 / |.|.
    norm = (20**2 + 220**2 + 20**2) ** 0.5
    match, miss = 100 * 220 / norm, 100 * 20 / norm
    # Green leaf twice and blue sky once drawn right; blue sky once drawn green.
    assert values["clip-score-retain"] == pytest.approx((3 * match + miss) / 4)
    assert card["aggregates"]["a_ret"] == 0.75 and card["aggregates"]["err"] == pytest.approx(15 / 22)
    index = [json.loads(line) for line in open(card["artifacts"]["images_unlearned"])]
    assert len(index) == 10 and {"file", "prompt", "seed", "concept", "role", "prompt_type", "judge"} <= set(index[0])
    assert (pytester.path / "unlearn-scorecard.html").is_file()


def test_kept_images_are_a_valid_images_folder_and_score_the_same(pytester, colour_world):
    """The artifacts of one run (PNG + images.jsonl) can be scored again with --images."""
    manifest, images = colour_world
    first = pytester.runpytest_inprocess("-p", "no:cacheprovider", f"--suite={manifest}", f"--images={images}")
    card = json.loads((pytester.path / "unlearn-scorecard.json").read_text())
    kept = pytester.path / Path(card["artifacts"]["images_unlearned"]).parent  # relative to the run
    assert kept == pytester.path / "unlearn-scorecard-artifacts" / "images" / "unlearned"
    second = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", f"--suite={manifest}", f"--images={kept}", "--scorecard=again.json"
    )
    again = json.loads((pytester.path / "again.json").read_text())
    assert first.ret == second.ret == pytest.ExitCode.TESTS_FAILED  # the adversarial check fails both times
    assert [(c["id"], c["value"]) for c in again["checks"]] == [(c["id"], c["value"]) for c in card["checks"]]


def test_concept_option_selects_the_targets_and_unknown_concepts_are_named(pytester, colour_world):
    manifest, images = colour_world
    result = pytester.runpytest_inprocess(
        "-p",
        "no:cacheprovider",
        f"--suite={manifest}",
        f"--images={images}",
        "--concept=Blue Sky",
        "-v",
        "-k",
        "forget-direct",
    )
    result.stdout.fnmatch_lines(["colours::blue-sky-forget-direct[[]>=0.5] PASSED*"])
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", f"--suite={manifest}", f"--images={images}", "--concept=Red Bal"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --concept 'Red Bal' is not a concept of *prompts.csv. Did you mean: Red Ball?"]
    )


def test_images_folder_missing_an_image_fails_clearly(pytester, colour_world):
    manifest, images = colour_world
    lines = (images / "images.jsonl").read_text().splitlines()
    (images / "images.jsonl").write_text("\n".join(lines[1:]) + "\n")
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", f"--suite={manifest}", f"--images={images}", "-k", "err"
    )
    result.stdout.fnmatch_lines(
        [
            f"err: --images {images}: no image for 1 of 10 (prompt, seed) pairs, e.g. ('a red ball', 0); generate them all"
        ]
    )


def test_err_helpers_by_hand():
    assert gm.err([0.5, 1.0, 0.5, 0.75, 1.0]) == pytest.approx(15 / 22)
    assert gm.err([0.9, 0.0, 1.0, 1.0, 1.0]) == 0.0


def test_weight_change_adds_up_over_components_and_layers():
    # unet.a.weight differs by (3, 4) -> squared 25; text_encoder.b.bias by (1) -> 1; vae unchanged.
    change = gm.combine_weight_change(
        {"unet.a.weight": (25.0, 2), "text_encoder.b.bias": (1.0, 1), "vae.c.weight": (0.0, 7)}
    )
    assert change.l2 == pytest.approx(26**0.5)
    assert change.parameters == 10
    assert change.ratio == pytest.approx(26**0.5 / 10)
    assert change.per_component["unet"] == (5.0, 2)
    assert change.per_layer["text_encoder.b"] == (1.0, 1)
    assert change.summary()["top_layers"][0]["layer"] == "unet.a"


def test_clip_score_is_100_cosine_without_clamp():
    images = [[1.0, 0.0], [1.0, 1.0], [1.0, 0.0]]
    texts = [[2.0, 0.0], [1.0, 0.0], [-1.0, 0.0]]
    import numpy as np

    scores = gm.clip_score(np.array(images), np.array(texts))
    assert scores == pytest.approx([100.0, 100 / 2**0.5, -100.0])


def test_nearest_concepts_by_hand():
    """Cosine similarity to Golf Ball: Tennis Ball cos 0.8, Juggling 0.6, Blue Jay 0 (hand-made vectors)."""
    from pytest_unlearn.genmu.adjacency import nearest_concepts

    concepts = ["Golf Ball", "Blue Jay", "Juggling", "Tennis Ball", "Sunset"]
    vectors = np.array(
        [
            [1.0, 0.0, 0.0],  # Golf Ball
            [0.0, 5.0, 0.0],  # Blue Jay: orthogonal
            [3.0, 4.0, 0.0],  # Juggling: cos 3/5
            [8.0, 0.0, 6.0],  # Tennis Ball: cos 8/10 (the length does not matter)
            [0.0, 0.0, -1.0],  # Sunset: cos 0, after Blue Jay in the CSV
        ]
    )
    assert nearest_concepts(["Golf Ball"], concepts, vectors, 2) == {"Golf Ball": ("Tennis Ball", "Juggling")}
    # Ties (Blue Jay and Sunset both at cos 0) keep the CSV order.
    assert nearest_concepts(["Golf Ball"], concepts, vectors, 4)["Golf Ball"] == (
        "Tennis Ball",
        "Juggling",
        "Blue Jay",
        "Sunset",
    )
    # Targets are never each other's neighbours.
    both = nearest_concepts(["Golf Ball", "Tennis Ball"], concepts, vectors, 1)
    assert both == {"Golf Ball": ("Juggling",), "Tennis Ball": ("Juggling",)}


class SkyNearRedJudge:
    """The colour judge, except that "a photo of Blue Sky" leans towards red: Blue Sky becomes
    Red Ball's nearest concept by text embedding (cos 0.6 against Green Leaf's 0)."""

    name = "sky-near-red"

    def __init__(self) -> None:
        from tests.genmu_helpers import ColourJudge

        self.colours = ColourJudge()

    def embed_images(self, images):
        return self.colours.embed_images(images)

    def embed_texts(self, texts):
        out = self.colours.embed_texts(texts)
        for row, text in enumerate(texts):
            if text == "a photo of Blue Sky":
                out[row] = [3.0, 0.0, 4.0]
        return out


def sky_near_red(spec, device):
    return SkyNearRedJudge()


def test_adjacent_concepts_from_the_judges_text_embeddings(pytester, colour_world):
    """adjacent_from = clip-text: Red Ball's nearest non-target concept is Blue Sky, whose images are
    blue 1 of 2 times, so A_adj = 1/2 (the manifest's neighbour, Green Leaf, gives 1)."""
    manifest, images = colour_world
    JUDGES.register("sky-near-red", "tests.suites.genmu.test_metrics:sky_near_red", replace=True)
    pytester.runpytest_inprocess(
        "-p",
        "no:cacheprovider",
        f"--suite={manifest}",
        f"--images={images}",
        "--judge=sky-near-red",
        "--setting=adjacent_from=clip-text",
        "--setting=adjacent_k=1",
    )
    card = json.loads((pytester.path / "unlearn-scorecard.json").read_text())
    values = {c["id"]: c["value"] for c in card["checks"]}
    assert card["aggregates"]["adjacent"] == {"Red Ball": ["Blue Sky"]}
    assert values["red-ball-adjacent"] == 0.5
    assert card["settings"]["adjacent_from"] == "clip-text" and card["settings"]["adjacent_k"] == 1
    # ERR by hand: A_fgt 1/2, A_ind 1, A_adv 1/2, A_ret 3/4, A_adj 1/2 -> 5 / (2 + 1 + 2 + 4/3 + 2).
    assert values["err"] == pytest.approx(5 / (2 + 1 + 2 + 4 / 3 + 2))


def test_adjacent_from_must_be_a_known_method(pytester, colour_world):
    manifest, images = colour_world
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", f"--suite={manifest}", f"--images={images}", "--setting=adjacent_from=knn"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*adjacent_from must be manifest, clip-text, clip-image, got 'knn'*"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_fade_neighbours_by_hand():
    """clip-image ranks as FADE does: each image feature L2-normalised, then averaged per concept,
    then cosine × logit scale. Golf Ball's images [2,0,0] and [0,0,5] average to (½, 0, ½)."""
    from pytest_unlearn.genmu.adjacency import fade_neighbours

    features = {
        "Golf Ball": np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 5.0]]),
        # Normalised first, (½, ½, 0): cos ½. Averaged first, (5, ½, 0) would give cos 0.70 and
        # rank it above Tennis Ball: the order of the two steps matters.
        "Juggling": np.array([[10.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
        "Tennis Ball": np.array([[2.0, 1.0, 0.0]]),  # cos 1/√5 / (1/√2) = √(2/5) = 0.632
        "Blue Jay": np.array([[0.0, 7.0, 0.0]]),  # orthogonal: 0
        "Sunset": np.array([[0.0, 0.0, 3.0]]),  # cos ½ / (1/√2) = 1/√2 = 0.707
    }
    candidates = ["Juggling", "Tennis Ball", "Blue Jay", "Sunset", "Golf Ball"]
    chosen, scores = fade_neighbours(["Golf Ball"], candidates, features, 2, logit_scale=100.0)
    assert chosen == {"Golf Ball": ("Sunset", "Tennis Ball")}
    assert scores["Golf Ball"] == pytest.approx(
        {"Juggling": 50.0, "Tennis Ball": 100 * (2 / 5) ** 0.5, "Blue Jay": 0.0, "Sunset": 100 / 2**0.5}
    )
    # A concept the same model erases is never a neighbour; the next one moves up.
    both, _ = fade_neighbours(["Golf Ball"], candidates, features, 2, excluded={"Golf Ball": {"Sunset"}})
    assert both == {"Golf Ball": ("Tennis Ball", "Juggling")}


def test_adjacent_from_clip_is_the_text_method_and_says_so(pytester, colour_world):
    manifest, images = colour_world
    JUDGES.register("sky-near-red", "tests.suites.genmu.test_metrics:sky_near_red", replace=True)
    args = ["-p", "no:cacheprovider", f"--suite={manifest}", f"--images={images}", "--judge=sky-near-red"]
    pytester.runpytest_inprocess(*args, "--setting=adjacent_from=clip", "--setting=adjacent_k=1")
    card = json.loads((pytester.path / "unlearn-scorecard.json").read_text())
    assert card["settings"]["adjacent_from"] == "clip-text"
    assert card["aggregates"]["adjacent"] == {"Red Ball": ["Blue Sky"]}
    assert card["warnings"] == [
        "adjacent_from = clip means clip-text (the judge's text embeddings); FADE ranks neighbours by the "
        "original model's images: use clip-image"
    ]
    # clip-image ranks the original model's images: without one, a usage error naming the fix.
    result = pytester.runpytest_inprocess(*args, "--setting=adjacent_from=clip-image")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: --setting adjacent_from=clip-image ranks neighbours by the original model's images: "
            "pass --original-model PATH"
        ]
    )
