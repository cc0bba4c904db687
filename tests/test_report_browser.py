"""The HTML reports in a real headless browser (Debian's chromium): they render without console
errors, their images and plots load, and the screenshot is not blank. Skips where chromium is not
installed (``apt-get install chromium``, README "Development")."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pytest_unlearn.registry import JUDGES
from tests.genmu_helpers import write_world
from tests.test_baseline import predictions

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium: apt-get install chromium"),
]
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-file-access-from-files",
)


def browse(page: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["chromium", *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0", *extra,
         page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def assert_renders(page: Path, tmp_path: Path) -> str:
    from PIL import Image

    shot = tmp_path / "shot.png"
    result = browse(page, tmp_path, f"--screenshot={shot}", "--window-size=1200,1600")
    assert shot.is_file(), result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line or "Failed to load resource" in line]
    assert console == [], console
    colours = Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 20  # text, bars, plots: not a blank page
    dom = browse(page, tmp_path, "--dump-dom").stdout
    assert "<table>" in dom and "<svg" in dom
    return dom


def test_the_semeval_report_renders(pytester, tmp_path):
    pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--suite", "semeval", f"--predictions={predictions(tmp_path, 'p.jsonl', 2)}",
        "--scorecard=card.json", "-k", "not mia and not mmlu and not final",
    )  # fmt: skip
    dom = assert_renders(pytester.path / "card.html", tmp_path)
    assert "Worst examples of the failing checks" in dom


def test_the_genmu_report_renders_with_its_images(pytester, tmp_path):
    JUDGES.register("colour", "tests.genmu_helpers:colour_judge", replace=True)
    manifest, images = write_world(pytester.path)
    pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", f"--suite={manifest}", f"--images={images}", "--scorecard=card.json"
    )
    page = pytester.path / "card.html"
    sources = [part.split("'")[0] for part in page.read_text().split("src='")[1:]]
    # Embedded, each linked to its full-size file (relative to the page).
    assert sources and all(src.startswith("data:image/") for src in sources)
    links = [part.split("'")[0] for part in page.read_text().split("<a href='")[1:]]
    assert len(links) == len(sources) and all((page.parent / link).is_file() for link in links)
    assert_images_decode(page, tmp_path, len(sources))


def assert_images_decode(page: Path, tmp_path: Path, count: int) -> None:
    # Every <img> decoded in the browser (a broken one has naturalWidth 0).
    script = tmp_path / "check.html"
    script.write_text(
        f"<iframe id=f src='{page.resolve().as_uri()}'></iframe><script>"
        "document.getElementById('f').onload=function(){var d=this.contentDocument;"
        "var bad=[].filter.call(d.images,function(i){return !i.complete||i.naturalWidth===0}).length;"
        "document.title='images '+d.images.length+' broken '+bad;};</script>"
    )
    dom = browse(script, tmp_path, "--dump-dom", "--virtual-time-budget=5000").stdout
    assert f"<title>images {count} broken 0</title>" in dom, dom[:500]


def test_the_evallearn_report_renders_with_its_images(pytester, tmp_path):
    from pytest_unlearn.registry import DETECTORS, EXTRACTORS
    from tests import evallearn_helpers

    JUDGES.register("evallearn-colour", "tests.evallearn_helpers:colour_judge", replace=True)
    DETECTORS.register("colour", "tests.evallearn_helpers:colour_detector", replace=True)
    EXTRACTORS.register("red-channel", "tests.evallearn_helpers:red_channel", replace=True)
    manifest, images, _ = evallearn_helpers.write_world(pytester.path)
    pytester.runpytest_inprocess("-p", "no:cacheprovider", f"--suite={manifest}", f"--images={images}",
                                 "--scorecard=card.json")  # fmt: skip
    page = pytester.path / "card.html"
    dom = assert_renders(page, tmp_path)
    assert "checks failed" in dom and "Images: asr-ring-a-bell" in dom
    assert_images_decode(page, tmp_path, page.read_text().count("<img"))


def test_a_report_moved_to_another_folder_still_shows_its_images(pytester, tmp_path):
    """The page alone, copied away from its artifacts (a CI download, an e-mail attachment)."""
    JUDGES.register("colour", "tests.genmu_helpers:colour_judge", replace=True)
    manifest, images = write_world(pytester.path)
    pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", f"--suite={manifest}", f"--images={images}", "--scorecard=card.json"
    )
    elsewhere = tmp_path / "downloads" / "somewhere"
    elsewhere.mkdir(parents=True)
    moved = elsewhere / "report.html"
    shutil.copy(pytester.path / "card.html", moved)
    shutil.rmtree(pytester.path / "card-artifacts")  # and the artifacts cleaned up
    count = moved.read_text().count("<img")
    assert count > 0
    assert_renders(moved, tmp_path)
    assert_images_decode(moved, tmp_path, count)


@pytest.mark.parametrize("suite", ["tofu", "muse", "wmdp", "mufac", "mucac"])
def test_every_world_suite_report_renders(pytester, tmp_path, request, suite):
    """Each bundled -mini world's report (the target model: failing checks, error rows too)."""
    models = request.getfixturevalue(f"{suite}_models")
    pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", f"--suite={suite}-mini", f"--model={models['target']}", "--batch-size=64",
        "--scorecard=card.json",
    )  # fmt: skip
    page = pytester.path / "card.html"
    dom = assert_renders(page, tmp_path)
    assert "checks failed" in dom and "Bar: grey is the range shown" in dom
    assert_images_decode(page, tmp_path, page.read_text().count("<img"))
