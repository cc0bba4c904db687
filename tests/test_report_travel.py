"""Reports that travel (issue 26): one HTML file that renders the same from any folder, offline,
its images embedded as thumbnails linked to full-size artifacts whose names carry the model's
fingerprint; at the top the verdict, the failed checks and their distance from the threshold."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pytest_unlearn.registry import DETECTORS, EXTRACTORS, JUDGES, LOADERS
from pytest_unlearn.report import Thumbnails, page
from pytest_unlearn.scorecard import CheckResult, render_table
from tests import evallearn_helpers

RUN = ("-p", "no:cacheprovider")
IMG = re.compile(r"<a href='([^']+)'[^>]*><img[^>]*src='data:image/(png|jpeg);base64,([^']+)'>")


def weights_tag(model: Path) -> str:
    """The fingerprint by its definition (sha256 over name + NUL + sha256 of each weight file),
    computed here, not by the code under test: its first 12 hex digits."""
    outer = hashlib.sha256()
    for file in sorted(model.rglob("*.safetensors")):
        outer.update(file.relative_to(model).as_posix().encode() + b"\0" + hashlib.sha256(file.read_bytes()).digest())
    return outer.hexdigest()[:12]


@pytest.fixture
def evallearn_world(pytester):
    JUDGES.register("evallearn-colour", "tests.evallearn_helpers:colour_judge", replace=True)
    DETECTORS.register("colour", "tests.evallearn_helpers:colour_detector", replace=True)
    EXTRACTORS.register("red-channel", "tests.evallearn_helpers:red_channel", replace=True)
    LOADERS.register("recording", "tests.evallearn_helpers:recording_loader", replace=True)
    return evallearn_helpers.write_world(pytester.path)


def embedded(report: Path) -> list[tuple[str, Image.Image]]:
    """(full-size link, decoded thumbnail) of every image of the page."""
    text = report.read_text()
    found = IMG.findall(text)
    assert len(found) == text.count("<img"), "every image is a data URI inside its link"
    return [(href, Image.open(io.BytesIO(base64.b64decode(data, validate=True)))) for href, _, data in found]


def test_an_evallearn_report_embeds_its_images_and_a_second_model_cannot_replace_them(pytester, evallearn_world):
    manifest, _, model = evallearn_world
    args = (*RUN, f"--suite={manifest}", "--setting=loader=recording", "-k", "asr-ring-a-bell")
    pytester.runpytest_inprocess(*args, f"--model={model}", "--scorecard=gate/card.json")
    report = pytester.path / "gate" / "card.html"
    images = embedded(report)
    assert len(images) == 3  # the ring-a-bell prompts the world scores (asr_limit = 3)
    tag = weights_tag(model)
    first_files = {}
    for href, thumbnail in images:
        full = report.parent / href
        assert full.name.startswith(f"{tag}-") and full.is_file()
        first_files[full] = full.read_bytes()
        # The thumbnail shows the same picture as the full-size file (8x8 drawn colours).
        assert np.array_equal(np.asarray(thumbnail.convert("RGB")), np.asarray(Image.open(full).convert("RGB")))
    # A second model into the same folder: new names, the first report's files untouched.
    other = pytester.path / "other-model"
    shutil.copytree(model, other)
    from safetensors.numpy import save_file

    save_file({"w": np.ones(1, dtype=np.float32)}, str(other / "weights.safetensors"))
    pytester.runpytest_inprocess(*args, f"--model={other}", "--scorecard=gate/second.json")
    second = [href for href, _ in embedded(pytester.path / "gate" / "second.html")]
    assert second and all(Path(href).name.startswith(f"{weights_tag(other)}-") for href in second)
    assert weights_tag(other) != tag
    assert all(file.read_bytes() == data for file, data in first_files.items())


def test_the_top_says_verdict_failed_checks_and_how_far_each_is(pytester, evallearn_world):
    manifest, images, _ = evallearn_world
    pytester.runpytest_inprocess(*RUN, f"--suite={manifest}", f"--images={images}", "--scorecard=card.json")
    card = json.loads((pytester.path / "card.json").read_text())
    text = (pytester.path / "card.html").read_text()
    failing = [c for c in card["checks"] if not c["passed"]]
    assert failing and len(failing) < len(card["checks"])
    top = text.split("<h2>Checks</h2>", 1)[0]
    assert f'<b class="FAIL">FAILED</b>: {len(failing)} of {len(card["checks"])} checks failed' in top
    assert "Bar: grey is the range shown, green the passing side" in top
    for c in failing:
        distance = abs(c["value"] - c["threshold"])
        op = c["op"].replace(">", "&gt;").replace("<", "&lt;")
        assert f"<li>{c['id']}: {c['value']:.4f}, needs {op} {c['threshold']:.4f} — {distance:.4f} short of" in top
    # The table lists the failing checks first.
    table = text.split("<h2>Checks</h2>", 1)[1].split("</table>", 1)[0]
    order = re.findall(r"<tr><td>([\w-]+)</td>", table)
    assert order[: len(failing)] == [c["id"] for c in failing]
    # No raw floats (74.72368621826172): outcomes in the image grids read to 4 digits.
    assert not re.search(r"\d\.\d{7,}", text.split("</table>", 1)[1])


def test_an_interrupted_card_a_long_error_and_an_absolute_value_check_read_right():
    card = {
        "suite": {"name": "muse", "version": "1"},
        "status": "running",
        "passed": False,
        "missing_checks": [],
        "checks": [
            {"id": "privleak", "value": 31.5, "op": "<=", "threshold": 20.0, "passed": False, "unit": "|%|"},
            {"id": "x", "value": None, "op": ">=", "threshold": 1.0, "passed": False, "error": "long " * 80},
        ],
    }
    text = page(card, [])
    assert "status interrupted (the run did not finish)" in text
    assert "privleak: 31.5000, needs |x| &lt;= 20.0000 — 11.5000 short of the threshold" in text
    # The error sits in its own row across the table, not in the check column.
    assert "<tr><td>x</td>" in text and f"<tr class=errorrow><td colspan=8>{'long ' * 80}</td></tr>" in text
    rows = render_table([CheckResult("privleak", "muse.privleak", 31.5, 20.0, "<=", False, unit="|% of AUC|")])
    assert rows[2].split()[1:5] == ["31.5000", "|x|", "<=", "20.0000"]


def test_the_page_keeps_its_images_under_the_cap(tmp_path):
    files = []
    rng = np.random.default_rng(0)
    for number in range(6):  # noise: the thumbnails do not compress
        file = tmp_path / f"{number}.png"
        Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(file)
        files.append(file)
    thumbnails = Thumbnails(tmp_path / "report.html", budget=60_000)
    cells = [thumbnails.img(file) for file in files]
    assert thumbnails.used <= 60_000 and 0 < thumbnails.left_out < 6
    shown = [cell for cell in cells if "<img" in cell]
    assert len(shown) == 6 - thumbnails.left_out
    assert f"{thumbnails.left_out} images not embedded" in thumbnails.note()
    width, height = Image.open(io.BytesIO(base64.b64decode(shown[0].split("base64,")[1].split("'")[0]))).size
    assert max(width, height) == 160  # downscaled from 256


def test_empty_generations_say_so_in_the_semeval_report(pytester, tmp_path):
    from tests.conftest import semeval_rows

    rows = [{"id": r["id"], "output": "qqq"} for r in semeval_rows("forget")]
    # Retain answers lost: the retain checks fail, their worst examples are the empty outputs.
    rows += [{"id": r["id"], "output": "" if i % 2 else " \n"} for i, r in enumerate(semeval_rows("retain"))]
    predictions = tmp_path / "p.jsonl"
    predictions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pytester.runpytest_inprocess(
        *RUN, "--suite", "semeval", f"--predictions={predictions}", "--scorecard=card.json",
        "-k", "task1-knowledge-retain",
    )  # fmt: skip
    text = (pytester.path / "card.html").read_text()
    section = text.split("<h3>task1-knowledge-retain</h3>", 1)[1].split("</table>", 1)[0]
    examples = section.split("<tr>")[2:]
    assert examples and all(
        "<td><i>(empty generation)</i></td>" in row or "<td><i>(empty generation, whitespace only)</i></td>" in row
        for row in examples
    )
    assert "<td><pre></pre></td>" not in text
