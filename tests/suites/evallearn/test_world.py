"""evallearn's UA / IRA and CLIP score on the Genμ miniature world, with its real tiny pipelines.

The target concept is Golf Ball and the retain concept Tennis Ball: the judge chooses between
"Image of Golf Ball" and "Image of Tennis Ball" for images of golf-ball prompts (UA: share
classified as the retain concept) and of tennis-ball prompts (IRA). The original model still
draws golf balls, so its UA is low; the erased model does not, so its UA is much higher, and both keep
tennis balls (IRA).
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

GOLF = ["a photo of a golf ball", "a golf ball on a table", "close-up of a white golf ball"]
TENNIS = ["a photo of a tennis ball", "a tennis ball on the floor", "close-up of a yellow tennis ball"]


def write_data(folder: Path) -> Path:
    folder.mkdir()
    for name, column, prompts in (
        ("ua-target.csv", "prompt", GOLF),
        ("ua-retain.csv", "prompt", TENNIS),
        ("captions.csv", "caption", TENNIS),
    ):
        with (folder / name).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow([column])
            writer.writerows([p] for p in prompts)
    return folder


def run(pytester: pytest.Pytester, models: dict[str, Path], model: str, data: Path) -> dict:
    result = pytester.runpytest_inprocess(
        "-p",
        "no:cacheprovider",
        "--suite=evallearn",
        f"--model={models[model]}",
        f"--setting=clip_model={models['clip']}",
        f"--data={data}",
        "--setting=steps=10",
        "--setting=guidance=4.0",
        "--setting=resolution=32",
        "--setting=images_per_prompt=4",
        "--setting=ua_target_concept=Golf Ball",
        "--setting=ua_retain_concept=Tennis Ball",
        f"--scorecard={model}.json",
        "-k",
        "ua or ira or clip",
        # A subset of the suite's checks: the gate needs it said out loud (and never passes it).
        "--unlearn-partial",
        no_reraise_ctrlc=True,
    )
    path = pytester.path / f"{model}.json"
    assert path.is_file(), result.stdout.str()
    return {c["id"]: c for c in json.loads(path.read_text())["checks"]}


def test_ua_separates_the_erased_model_from_the_original_and_ira_stays(pytester, genmu_models, tmp_path):
    data = write_data(tmp_path / "data")
    original = run(pytester, genmu_models, "original", data)
    erased = run(pytester, genmu_models, "erased", data)
    assert sorted(original) == ["clip-score", "ira", "ua", "ua-ira"]
    assert original["ua"]["value"] <= 0.25 and original["ua"]["passed"] is False
    # An erased golf ball is mostly an empty backdrop, which the two-way judge calls a tennis ball
    # more often than not (measured 2/3): far above the original, though not a clean 1.
    assert erased["ua"]["value"] >= 0.5 and erased["ua"]["value"] - original["ua"]["value"] >= 0.4
    for checks in (original, erased):
        assert checks["ira"]["value"] >= 0.9 and checks["ira"]["n"] == 12
        assert checks["ua"]["n"] == 12
        assert checks["ua-ira"]["value"] == pytest.approx((checks["ua"]["value"] + checks["ira"]["value"]) / 2)
        assert checks["clip-score"]["value"] > 25
    # The report shows each image set as a grid: every image embedded in the page, and a link to
    # its full-size file by a path relative to the page.
    page = (pytester.path / "erased.html").read_text()
    assert "<h2>Images: " in page and "<h2>Checks</h2>" in page
    images = re.findall(r"<a href='([^']+)'[^>]*><img[^>]*src='([^']+)'>", page)
    assert images and all(src.startswith("data:image/") for _, src in images)
    assert all((pytester.path / href).is_file() for href, _ in images)
