"""The organizers' prompt CSV as shipped, through the real plugin, on the model-free colour world.

Every quirk at once: a byte-order mark, a quoted header, a trailing space in a concept name,
typos inside prompts, the same prompt text in two rows (one image, counted for each row), a
row repeated identically (kept once, with a warning), a manifest target without a row (a
warning, not an error) and an adjacent concept without a row (tested from the template).
"""

from __future__ import annotations

import json

import pytest
from PIL import Image

from pytest_unlearn.registry import JUDGES
from tests.genmu_helpers import COLOURS, MANIFEST

# Lines 2 and 3: two Red Ball rows sharing the direct and the adversarial prompt (a typo in the
# second's indirect one); lines 4 and 5: the same Green Leaf row twice.
CSV = (
    "\ufeff"
    '"concept_type","concept_name","direct_prompt","indirect_prompt","adversarial_prompt"\n'
    '"object","Red Ball ","a red ball","a crimson sphere","a r3d b4ll"\n'
    '"object","Red Ball","a red ball","a crimsn spher","a r3d b4ll"\n'
    '"scene","Green Leaf","a green leaf","",""\n'
    '"scene","Green Leaf","a green leaf","",""\n'
)

# The manifest lists a target the CSV lacks, and Red Ball's neighbours by other spellings
# ("green leaf") and one without a row (Blue Sky).
ORGANIZERS_MANIFEST = MANIFEST.replace(
    'targets = ["Red Ball"]', 'targets = ["Red Ball", "Welsh Springer Spaniel"]'
).replace('"Red Ball" = ["Green Leaf"]', '"Red Ball" = ["green leaf", "Blue Sky"]')

# (prompt, seed) -> the colour drawn; one image per distinct pair.
DRAWN = {
    ("a red ball", 0): "red",  # direct: present, absent (counted for both rows)
    ("a red ball", 1): "blue",
    ("a crimson sphere", 0): "green",  # row 2's indirect: absent twice
    ("a crimson sphere", 1): "blue",
    ("a crimsn spher", 0): "red",  # row 3's indirect: present, absent
    ("a crimsn spher", 1): "green",
    ("a r3d b4ll", 0): "red",  # adversarial: present, absent (counted for both rows)
    ("a r3d b4ll", 1): "green",
    ("a green leaf", 0): "green",  # retention: present twice
    ("a green leaf", 1): "green",
    ("an image of Blue Sky", 0): "blue",  # the adjacent concept without a row: present, absent
    ("an image of Blue Sky", 1): "green",
}


@pytest.fixture
def organizers_world(pytester):
    JUDGES.register("colour", "tests.genmu_helpers:colour_judge", replace=True)
    (pytester.path / "prompts.csv").write_bytes(CSV.encode("utf-8"))
    manifest = pytester.path / "organizers.toml"
    manifest.write_text(ORGANIZERS_MANIFEST)
    images = pytester.path / "images"
    images.mkdir()
    rows = []
    for number, ((prompt, seed), colour) in enumerate(DRAWN.items()):
        Image.new("RGB", (8, 8), COLOURS[colour]).save(images / f"{number}.png")
        rows.append({"file": f"{number}.png", "prompt": prompt, "seed": seed})
    (images / "images.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest, images


def run(pytester, manifest, images, *args):
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", f"--suite={manifest}", f"--images={images}", *args)


def test_the_organizers_csv_with_every_quirk_counts_by_hand(pytester, organizers_world):
    manifest, images = organizers_world
    result = run(pytester, manifest, images)
    card = json.loads((pytester.path / "unlearn-scorecard.json").read_text())
    values = {c["id"]: c["value"] for c in card["checks"]}
    n = {c["id"]: c["n"] for c in card["checks"]}
    # A_fgt: "a red ball" present/absent, counted for both rows -> 2 of 4 absent.
    assert (values["red-ball-forget-direct"], n["red-ball-forget-direct"]) == (0.5, 4)
    # A_ind: "a crimson sphere" absent twice, "a crimsn spher" present once -> 3 of 4 absent.
    assert (values["red-ball-forget-indirect"], n["red-ball-forget-indirect"]) == (0.75, 4)
    assert (values["red-ball-forget-adversarial"], n["red-ball-forget-adversarial"]) == (0.5, 4)
    # A_ret: Green Leaf's row kept once -> 2 images, both green (not 4). Blue Sky has no row: it
    # is an adjacent concept only, never retention.
    assert (values["red-ball-retain"], n["red-ball-retain"]) == (1.0, 2)
    # A_adj: Green Leaf 2/2 and the templated Blue Sky 1/2 -> 3/4.
    assert (values["red-ball-adjacent"], n["red-ball-adjacent"]) == (0.75, 4)
    adjacent = next(c for c in card["checks"] if c["id"] == "red-ball-adjacent")
    assert adjacent["details"] == {"concepts": ["Green Leaf", "Blue Sky"], "from_template": ["Blue Sky"]}
    assert card["aggregates"]["adjacent_from_template"] == ["Blue Sky"]
    assert card["settings"]["adjacent_template"] == "an image of {concept}"
    # ERR = 5 / (2 + 4/3 + 2 + 1 + 4/3) = 15/23.
    assert values["err"] == pytest.approx(15 / 23)
    assert card["settings"]["targets"] == ["Red Ball"]
    # Each distinct (prompt, seed) is one image, its record says how many rows it counts for.
    index = [json.loads(line) for line in open(card["artifacts"]["images_unlearned"])]
    assert len(index) == len(DRAWN) == 12
    assert {(r["prompt"], r["seed"]): r["rows"] for r in index}[("a red ball", 0)] == 2
    # Two warnings, on the terminal and in the scorecard: never an error.
    warnings = card["warnings"]
    assert len(warnings) == 2, warnings
    assert warnings[0].endswith(
        "prompts.csv: 1 identical duplicate row(s) kept once (('scene', 'Green Leaf', 'a green leaf', '', '') "
        "on lines 4 and 5); multi-process runs pad their output this way"
    ), warnings[0]
    assert warnings[1].endswith(
        "prompts.csv: 1 of the 2 targets of the suite manifest have no row and are not tested: Welsh Springer Spaniel"
    )
    result.stdout.fnmatch_lines(["warning: *on lines 4 and 5*", "warning: *not tested: Welsh Springer Spaniel"])


def test_errors_name_their_true_source(pytester, organizers_world):
    manifest, images = organizers_world
    # --concept not in the CSV stays an error, naming --concept.
    result = run(pytester, manifest, images, "--concept=Welsh Springer Spaniel")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --concept 'Welsh Springer Spaniel' is not a concept of *prompts.csv."])
    # None of the manifest's targets in the CSV: an error naming the manifest (and what to do).
    manifest.write_text(ORGANIZERS_MANIFEST.replace('"Red Ball", "Welsh', '"Welsh'))
    result = run(pytester, manifest, images)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: suite manifest *organizers.toml: none of its targets is a concept of *prompts.csv "
            "(Welsh Springer Spaniel); pass --concept NAME"
        ]
    )
    # Under --unlearn-strict the warnings are errors.
    manifest.write_text(ORGANIZERS_MANIFEST)
    result = run(pytester, manifest, images, "--unlearn-strict")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: *on lines 4 and 5*(--strict turns warnings into errors)"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
