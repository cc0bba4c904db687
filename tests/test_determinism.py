"""Two runs of the same model and suite give the same bytes, apart from timestamps and timings.

Compared: the scorecard (re-serialised after dropping ``created`` and ``timings``), the JUnit XML
(minus its ``time``/``timestamp`` attributes) and every artifact file. The seeds that make a run
reproducible are printed in the report header.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

# The inner runs load models: their C extensions must be imported by this process first.
import pytest
import torch
import transformers.models.olmo.modeling_olmo  # noqa: F401

from pytest_unlearn.registry import JUDGES
from tests.genmu_helpers import write_world
from tests.tiny_models import write_tiny_olmo

torch.set_num_threads(1)

# The only scorecard keys allowed to differ between two runs of the same inputs ("cache_reuse":
# whether this run found each cache entry or wrote it; the entries' keys and hashes are compared).
VOLATILE_KEYS = ("created", "timings", "cache_reuse")
JUNIT_VOLATILE = re.compile(r' (time|timestamp)="[^"]*"')


def normalised_scorecard(path: Path) -> bytes:
    card = json.loads(path.read_text(encoding="utf-8"))
    for key in VOLATILE_KEYS:
        card.pop(key)  # KeyError if the contract lost one: then this test needs a look
    return json.dumps(card, indent=2, ensure_ascii=False).encode("utf-8")


def normalised_junit(path: Path) -> bytes:
    return JUNIT_VOLATILE.sub("", path.read_text(encoding="utf-8")).encode("utf-8")


def run_twice(pytester: pytest.Pytester, *args: str) -> tuple[Path, Path]:
    """Run the same command twice in the same folder; the first run's outputs are moved aside."""
    outputs = ("card.json", "card.html", "card-artifacts", "junit.xml")
    first = pytester.path / "first"
    for attempt in (1, 2):
        result = pytester.runpytest_inprocess(
            "-p", "no:cacheprovider", "--scorecard=card.json", "--junitxml=junit.xml", *args, no_reraise_ctrlc=True
        )
        assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), result.stdout.str()
        assert "Traceback" not in result.stdout.str()
        if attempt == 1:
            first.mkdir()
            for name in outputs:
                if (pytester.path / name).exists():
                    shutil.move(pytester.path / name, first / name)
    return first, pytester.path


def assert_same_bytes(first: Path, second: Path) -> None:
    assert normalised_scorecard(first / "card.json") == normalised_scorecard(second / "card.json")
    assert normalised_junit(first / "junit.xml") == normalised_junit(second / "junit.xml")
    artifacts = sorted(p.relative_to(first) for p in (first / "card-artifacts").rglob("*") if p.is_file())
    assert artifacts, "the run wrote no artifacts to compare"
    assert artifacts == sorted(p.relative_to(second) for p in (second / "card-artifacts").rglob("*") if p.is_file())
    for name in artifacts:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    if (first / "card.html").exists():
        assert (first / "card.html").read_bytes() == (second / "card.html").read_bytes()


def test_the_normaliser_drops_only_timestamps_and_timings(pytester, perfect_unlearning_predictions):
    first, second = run_twice(
        pytester, "--suite", "semeval", f"--predictions={perfect_unlearning_predictions}", "-k", "task-aggregate"
    )
    a = json.loads((first / "card.json").read_text())
    b = json.loads((second / "card.json").read_text())
    assert {key for key in a if a[key] != b[key]} <= set(VOLATILE_KEYS)
    assert set(a) - set(json.loads(normalised_scorecard(first / "card.json"))) == set(VOLATILE_KEYS)
    junit = (first / "junit.xml").read_text()
    assert ' time="' in junit and "unlearn.value" in junit
    assert ' time="' not in normalised_junit(first / "junit.xml").decode() and "unlearn.value" in junit


def test_semeval_predictions_mode_is_byte_identical(pytester, perfect_unlearning_predictions):
    # Every check: the ones that need a model fail the same way both times, which counts too.
    first, second = run_twice(pytester, "--suite", "semeval", f"--predictions={perfect_unlearning_predictions}")
    assert_same_bytes(first, second)
    card = json.loads((first / "card.json").read_text())
    assert any(c["ci95"] for c in card["checks"])  # the bootstrap ran, and gave the same intervals


def test_semeval_model_mode_is_byte_identical(pytester, tmp_path):
    """Greedy batched generation and document losses of a (tiny, random) model, twice."""
    model = tmp_path / "model"
    write_tiny_olmo(model)
    first, second = run_twice(
        pytester, "--suite", "semeval", f"--model={model}", "--max-new-tokens=8", "-k", "not mmlu and not final"
    )
    assert_same_bytes(first, second)
    card = json.loads((first / "card.json").read_text())
    assert card["model"]["fingerprint"].startswith("sha256:") and set(card["artifacts"]) == {
        "generations",
        "mia_losses",
        "report",  # card.html, compared byte for byte above
    }


def test_genmu_colour_world_is_byte_identical(pytester):
    JUDGES.register("colour", "tests.genmu_helpers:colour_judge", replace=True)
    manifest, images = write_world(pytester.path)
    first, second = run_twice(pytester, f"--suite={manifest}", f"--images={images}")
    assert_same_bytes(first, second)
    assert (first / "card-artifacts" / "images" / "unlearned" / "images.jsonl").is_file()


def test_the_header_prints_every_seed_a_rerun_needs(pytester, perfect_unlearning_predictions):
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--suite", "semeval", f"--predictions={perfect_unlearning_predictions}", "--co"
    )
    result.stdout.fnmatch_lines(
        [
            "unlearn: suite semeval 2025.1 (*manifest.toml), 16 checks, bootstrap_seed=0 bootstrap_samples=1000",
            "unlearn: prompts forget=54 retain=54, *generation=greedy (no sampling, no seed)",
        ]
    )
    JUDGES.register("colour", "tests.genmu_helpers:colour_judge", replace=True)
    manifest, images = write_world(pytester.path)
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", f"--suite={manifest}", f"--images={images}", "--setting=seed=7", "--co"
    )
    result.stdout.fnmatch_lines(
        [
            # --setting seed moves the run's one seed: the images' and the bootstrap's.
            "unlearn: suite colours 1 (*colours.toml), * checks, bootstrap_seed=7 bootstrap_samples=200",
            "unlearn: concepts 3, targets Red Ball; 10 images (2 per prompt, seeds from 7); *",
        ]
    )
