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
    assert sources and all((page.parent / src).is_file() for src in sources)
    # Every <img> decoded in the browser (a broken one has naturalWidth 0).
    script = tmp_path / "check.html"
    script.write_text(
        f"<iframe id=f src='{page.resolve().as_uri()}'></iframe><script>"
        "document.getElementById('f').onload=function(){var d=this.contentDocument;"
        "var bad=[].filter.call(d.images,function(i){return !i.complete||i.naturalWidth===0}).length;"
        "document.title='images '+d.images.length+' broken '+bad;};</script>"
    )
    dom = browse(script, tmp_path, "--dump-dom", "--virtual-time-budget=5000").stdout
    assert f"<title>images {len(sources)} broken 0</title>" in dom, dom[:500]
