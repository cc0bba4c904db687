"""The benchmark's classifier format through the real plugin: timm ViT folders (config.json with
``architecture``, model.safetensors, no image processor) as the style and object judges give the
numbers of accuracy.py run with timm's forward pass (written out in tests/test_timm_vit.py)."""

from __future__ import annotations

import pytest

from fixtures import unlearncanvas_world as world
from tests.suites.unlearncanvas import reference
from tests.suites.unlearncanvas.conftest import run
from tests.test_timm_vit import timm_folder, timm_state, timm_vit_forward


def _seeing(state: dict) -> dict:
    """``state`` with the image outweighing the class token and position embeddings, so that the
    random classifier gives the world's images several labels rather than one (a constant label
    would agree with any preprocessing)."""
    scaled = {"cls_token": 0.05, "pos_embed": 0.05, "patch_embed.proj.weight": 3.0}
    return {key: tensor * scaled.get(key, 1.0) for key, tensor in state.items()}


def test_timm_classifiers_score_as_accuracy_py_with_timm(pytester, canvas, tmp_path):
    # Random weights: the numbers mean nothing, but every image's argmax must agree with timm's.
    states = {"style": _seeing(timm_state(11, num_classes=4)), "object": _seeing(timm_state(11, num_classes=3))}
    folders = {kind: timm_folder(tmp_path / kind, state) for kind, state in states.items()}
    result, card = run(
        pytester,
        f"--setting=images={canvas['erased']}",
        f"--setting=style_classifier={folders['style']}",
        f"--setting=object_classifier={folders['object']}",
    )
    assert card is not None, result.stdout.str()
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert not any(c.get("error") for c in card["checks"]), card["checks"]
    args = (list(world.STYLES), list(world.OBJECTS), list(world.SEEDS))
    for target in ("Neon_Lines", "Flowers"):
        folder = str(canvas["erased"] / target)
        style = reference.accuracy(lambda x: timm_vit_forward(states["style"], x, 3), folder, *args, task="style")
        objects = reference.accuracy(lambda x: timm_vit_forward(states["object"], x, 3), folder, *args, task="class")
        expected = reference.ua_ira_cra(style, objects, target)
        assert card["aggregates"]["per_target"][target] == pytest.approx(expected, abs=1e-6)
