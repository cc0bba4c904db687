"""FADE's image adjacency and the classifier judge, on the Genμ miniature world."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pytest_unlearn.engines.judges import present_concepts

CONCEPTS = ["Golf Ball", "Tennis Ball", "Blue Jay", "Goldfish", "Sunset", "Night Sky", "Neon", "Juggling"]


def run(pytester, cache, *args):
    result = pytester.runpytest_inprocess(
        "-p",
        "no:cacheprovider",
        "--suite=genmu-mini",
        "--batch-size=32",
        "--scorecard=card.json",
        f"--cache-dir={cache}",
        *args,
    )
    return result, json.loads((pytester.path / "card.json").read_text())


def test_present_concepts_by_hand():
    labels = {"Golf Ball": ("golf ball",), "Juggling": ("juggler", "Ball")}
    assert present_concepts(["golf ball", "ball"], ["Golf Ball", "Juggling"], labels) == ["Golf Ball", "Juggling"]
    assert present_concepts(["Juggler"], ["Golf Ball", "Juggling"], labels) == ["Juggling"]
    assert present_concepts(["jay"], ["Golf Ball", "Juggling"], labels) == []


@pytest.mark.slow
def test_clip_image_neighbours_of_golf_ball_as_fade_ranks_them(pytester, genmu_models, genmu_cache):
    """The neighbours are recomputed here from the original's images with transformers' CLIP
    directly: per image features L2-normalised, averaged per concept, cosine × logit scale."""
    import torch
    from PIL import Image
    from transformers import CLIPModel, CLIPProcessor

    result, card = run(
        pytester,
        genmu_cache,
        f"--model={genmu_models['erased']}",
        f"--original-model={genmu_models['original']}",
        f"--setting=clip_model={genmu_models['clip']}",
        "--setting=adjacent_from=clip-image",
        "-k",
        "golf-ball-adjacent or clip-score-drop",
    )
    folder = pytester.path / "card-artifacts" / "images" / "original"
    records = [json.loads(line) for line in (folder / "images.jsonl").read_text().splitlines()]
    model = CLIPModel.from_pretrained(genmu_models["clip"]).eval()
    processor = CLIPProcessor.from_pretrained(genmu_models["clip"])
    means = {}
    for concept in CONCEPTS:
        images = [
            Image.open(folder / r["file"]) for r in records if r["concept"] == concept and r["prompt_type"] == "direct"
        ]
        with torch.no_grad():
            out = model.get_image_features(pixel_values=processor(images=images, return_tensors="pt")["pixel_values"])
        features = getattr(out, "pooler_output", out).double().numpy()
        means[concept] = (features / np.linalg.norm(features, axis=-1, keepdims=True)).mean(axis=0)
    scale = float(model.logit_scale.detach().exp())
    target = means["Golf Ball"]
    expected = {
        c: scale * float(target @ means[c] / (np.linalg.norm(target) * np.linalg.norm(means[c])))
        for c in CONCEPTS
        if c != "Golf Ball"
    }
    ranking = sorted(expected, key=lambda c: -expected[c])
    assert card["aggregates"]["adjacent"] == {"Golf Ball": ranking[:2]}
    assert card["aggregates"]["adjacent_scores"]["Golf Ball"] == pytest.approx(expected, rel=1e-5)
    assert card["settings"]["adjacent_from"] == "clip-image" and card["settings"]["adjacent_k"] == 2
    print("clip-image neighbours of Golf Ball:", [(c, round(expected[c], 2)) for c in ranking])


@pytest.mark.slow
def test_classifier_judge_tells_the_erased_model_from_the_original(
    pytester, genmu_models, genmu_classifier, genmu_cache
):
    info = json.loads((genmu_classifier / "BUILD_INFO.json").read_text())
    assert info["held_out_accuracy"] >= 0.95, info
    # The same images as the clip-image test's (the shared cache): only the judge runs here.
    args = ["--judge=classifier", f"--setting=classifier_model={genmu_classifier}"]
    selected = ["-k", "golf-ball-forget or golf-ball-retain"]
    _, erased = run(pytester, genmu_cache, f"--model={genmu_models['erased']}", *args, *selected)
    checks = {c["id"]: c for c in erased["checks"]}
    assert all(checks[f"golf-ball-forget-{k}"]["passed"] for k in ("direct", "indirect", "adversarial")), checks
    assert checks["golf-ball-retain"]["value"] >= 0.7, checks["golf-ball-retain"]
    assert erased["settings"]["judge"] == "classifier"
    assert erased["settings"]["judge_model"] == str(genmu_classifier)
    _, original = run(pytester, genmu_cache, f"--model={genmu_models['original']}", *args, *selected)
    checks = {c["id"]: c for c in original["checks"]}
    assert not any(checks[f"golf-ball-forget-{k}"]["passed"] for k in ("direct", "indirect", "adversarial"))
    # Without a CLIP model the CLIP-score checks say what they need.
    result, card = run(pytester, genmu_cache, f"--model={genmu_models['erased']}", *args, "-k", "clip-score-retain")
    result.stdout.fnmatch_lines(
        ["*no CLIP scores: the judge is not CLIP; pass --setting clip_model=DIR to score retention images"]
    )


def test_classifier_judge_errors_are_one_line(pytester, tmp_path):
    from tests.genmu_helpers import write_world

    manifest, images = write_world(pytester.path)
    cases = [
        (
            [],
            "ERROR: --judge classifier needs --setting classifier_model=DIR (a transformers image-classification folder)",
        ),
        (
            [f"--setting=classifier_model={tmp_path}"],
            f"ERROR: --setting classifier_model={tmp_path}: not an image-classification folder (no config.json)",
        ),
    ]
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    cases.append(
        (
            [f"--setting=classifier_model={tmp_path / 'model'}"],
            "ERROR: suite manifest *colours.toml: [[]labels[]] has no classifier labels for Red Ball, Green Leaf, "
            "Blue Sky (--judge classifier needs a label set for every concept)",
        )
    )
    for extra, line in cases:
        result = pytester.runpytest_inprocess(
            "-p", "no:cacheprovider", f"--suite={manifest}", f"--images={images}", "--judge=classifier", *extra
        )
        assert result.ret == pytest.ExitCode.USAGE_ERROR, extra
        result.stderr.fnmatch_lines([line])


def test_the_classifier_reads_the_world_classifier_folder_and_gives_top_k_labels(genmu_classifier):
    from fixtures.genmu_world import HELD_OUT_SEED, render
    from pytest_unlearn.engines.judges import classifier_judge

    judge = classifier_judge(str(genmu_classifier), "cpu")
    images = [render(concept, HELD_OUT_SEED) for concept in ("Golf Ball", "Blue Jay", "Juggling")]
    top = judge.top_labels(images, 2)
    assert [labels[0] for labels in top] == ["golf ball", "jay", "juggler"]
    assert all(len(labels) == 2 and labels[0] != labels[1] for labels in top)
