"""UA, IRA and CRA against numbers counted by hand, and the benchmark's prompt and file names."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.unlearncanvas import data as ucd
from pytest_unlearn.unlearncanvas import metrics as ucm

STYLES = ("Van_Gogh", "Monet", "Seed_Images")
OBJECTS = ("Dogs", "Cats")


def _rows(hits: dict[str, list[int]]) -> dict[str, np.ndarray]:
    return {name: np.array(row, dtype=bool) for name, row in hits.items()}


def _inputs() -> ucm.CanvasInputs:
    # Van_Gogh's model: style rows are 2 objects x 2 seeds, object rows 3 styles x 2 seeds.
    van_gogh = {
        "style": _rows({"Van_Gogh": [1, 0, 0, 0], "Monet": [1, 1, 1, 0], "Seed_Images": [1, 1, 1, 1]}),
        "object": _rows({"Dogs": [1, 1, 1, 1, 0, 1], "Cats": [1, 1, 1, 1, 1, 1]}),
    }
    cats = {
        "style": _rows({"Van_Gogh": [1, 1, 0, 1], "Monet": [1, 1, 1, 1], "Seed_Images": [1, 1, 1, 1]}),
        "object": _rows({"Dogs": [1, 1, 1, 0, 1, 1], "Cats": [0, 0, 1, 0, 0, 0]}),
    }
    return ucm.CanvasInputs(STYLES, OBJECTS, ("Van_Gogh", "Cats"), {"Van_Gogh": van_gogh, "Cats": cats})


def test_a_style_target_by_hand():
    inputs = _inputs()
    # UA = 1 - 1/4; IRA = mean(3/4, 4/4); CRA = mean(5/6, 6/6).
    assert ucm.ua(inputs, target="Van_Gogh").value == pytest.approx(0.75)
    assert ucm.ira(inputs, target="Van_Gogh").value == pytest.approx(0.875)
    assert ucm.cra(inputs, target="Van_Gogh").value == pytest.approx(11 / 12)
    assert ucm.ua(inputs, target="Van_Gogh").n == 12
    assert ucm.ua(inputs, target="Van_Gogh").details == {"kind": "style"}


def test_an_object_target_by_hand():
    inputs = _inputs()
    # UA = 1 - 1/6; IRA = Dogs 5/6 (the only other object); CRA = mean(3/4, 1, 1).
    assert ucm.ua(inputs, target="Cats").value == pytest.approx(5 / 6)
    assert ucm.ira(inputs, target="Cats").value == pytest.approx(5 / 6)
    assert ucm.cra(inputs, target="Cats").value == pytest.approx(11 / 12)


def test_the_averages_are_over_targets():
    inputs = _inputs()
    assert ucm.ua(inputs).value == pytest.approx((0.75 + 5 / 6) / 2)
    assert ucm.ira(inputs).value == pytest.approx((0.875 + 5 / 6) / 2)
    assert ucm.cra(inputs).details["per_target"] == pytest.approx({"Van_Gogh": 11 / 12, "Cats": 11 / 12})
    assert ucm.cra(inputs).n == 24


def test_a_target_without_images_cannot_be_scored():
    inputs = ucm.CanvasInputs(STYLES, OBJECTS, ("Monet",), {})
    with pytest.raises(UnlearnError, match="no classified images of the 'Monet' model"):
        ucm.ua(inputs, target="Monet")


def test_resampling_keeps_each_cell_and_its_size():
    inputs = _inputs()
    drawn = inputs.resample(np.random.default_rng(0), ("answers",))
    for target in inputs.correct:
        for kind, rows in inputs.correct[target].items():
            for name, row in rows.items():
                again = drawn.correct[target][kind][name]
                assert len(again) == len(row) and set(again.tolist()) <= set(row.tolist())


def test_the_prompt_and_file_names_of_the_sampling_scripts():
    test_theme, object_class, seed = "Van_Gogh", "Dogs", 188
    # sampling_unlearned_models/esd.py and uce.py, and accuracy.py's img_path:
    assert ucd.prompt(ucd.TEMPLATE, test_theme, object_class) == (
        f"A {object_class} image in {test_theme.replace('_', ' ')} style."
    )
    assert ucd.image_name(test_theme, object_class, seed) == f"{test_theme}_{object_class}_seed{seed}.jpg"
    assert ucd.parse_seeds(ucd.SEEDS) == (188, 288, 588, 688, 888)
    assert ucd.parse_seeds("1, 2 3") == (1, 2, 3)
    assert ucd.name_key("Van_Gogh") == ucd.name_key("van-gogh") == ucd.name_key("Van Gogh")


def test_the_bundled_lists_are_the_benchmarks():
    from pytest_unlearn.manifest import resolve_suite

    manifest = resolve_suite("unlearncanvas")
    styles = ucd.read_names(manifest.data["styles"], "data")
    objects = ucd.read_names(manifest.data["objects"], "data")
    # constants/const.py: the 50-style version's theme_available (51 with Seed_Images), class_available.
    assert (len(styles), len(objects)) == (51, 20)
    assert styles[:3] == ("Abstractionism", "Artist_Sketch", "Blossom_Season") and styles[38] == "Seed_Images"
    assert objects[0] == "Architectures" and objects[-1] == "Waterfalls"
