"""The README's "Adding a suite" checklist, followed step by step by a throwaway third-party
suite in pytester: a folder with its manifest, a backend module, a settings declaration,
entry points (an installed distribution's dist-info), then a run of the real plugin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO

ROWS = [
    {"id": "a", "text": "one two three"},
    {"id": "b", "text": "four five"},
    {"id": "c", "text": "six seven eight nine"},
]

# Step 2: the backend, standing on the core and the engines only.
EVALUATION = """
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.evaluation import Backend
from words_suite.settings import SETTINGS


@dataclass(frozen=True)
class WordsInputs:
    lengths: np.ndarray

    def resample(self, rng, requires):
        return WordsInputs(self.lengths[rng.integers(0, len(self.lengths), len(self.lengths))])


class WordsBackend(Backend):
    SETTINGS = SETTINGS  # step 3

    def __init__(self, manifest, settings):
        super().__init__(manifest, settings)
        path = manifest.data["rows"]
        try:
            self.rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        except (OSError, json.JSONDecodeError) as exc:
            raise UnlearnError(f"{path}: cannot read the rows ({exc})") from None
        self.scale = self.setting("scale", 1.0)
        self.inputs = None

    def compute(self, name):
        self.inputs = WordsInputs(np.array([len(r["text"].split()) * self.scale for r in self.rows], dtype=float))

    def metric_inputs(self):
        return self.inputs

    def aggregates(self):
        return {"mean_words": None if self.inputs is None else float(self.inputs.lengths.mean())}
"""

# Step 3: the suite's settings, typed.
SETTINGS = """
from pytest_unlearn.settings import COMMON, Setting

SETTINGS = (*COMMON, Setting("scale", float, 1.0, "multiplies every length", minimum=0, above=True))
"""

METRICS = '''
from pytest_unlearn.registry import Measurement, metric


@metric("words.mean", higher_is_better=True, unit="words", requires=("lengths",))
def mean(inputs):
    """Mean words per row."""
    return Measurement(float(inputs.lengths.mean()), len(inputs.lengths))
'''

# Step 1: the suite folder and its manifest.
MANIFEST = """
[suite]
name = "words"
version = "1"
backend = "words"

[data]
rows = "data/rows.jsonl"

[settings]
bootstrap_samples = 50

[[checks]]
id = "mean-words"
metric = "words.mean"
op = ">="
threshold = 3.0

[[checks]]
id = "mean-words-low"
metric = "words.mean"
op = "<="
threshold = 2.5
"""


@pytest.fixture
def words_suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    site = pytester.mkdir("site")
    package = site / "words_suite"
    (package / "suites" / "words" / "data").mkdir(parents=True)
    (package / "__init__.py").write_text(
        "from pathlib import Path\n\nMANIFEST = Path(__file__).parent / 'suites' / 'words' / 'manifest.toml'\n"
    )
    (package / "suites" / "words" / "manifest.toml").write_text(MANIFEST)
    (package / "suites" / "words" / "data" / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (package / "evaluation.py").write_text(textwrap.dedent(EVALUATION))
    (package / "settings.py").write_text(textwrap.dedent(SETTINGS))
    (package / "metrics.py").write_text(textwrap.dedent(METRICS))
    # Step 4: entry points, as an installed distribution declares them.
    dist = site / "words_suite-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: words-suite\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[pytest_unlearn.suites]\nwords = words_suite:MANIFEST\n"
        "[pytest_unlearn.backends]\nwords = words_suite.evaluation:WordsBackend\n"
        "[pytest_unlearn.metrics]\nwords.mean = words_suite.metrics:mean\n"
    )
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    return pytester


def test_the_readme_lists_the_steps_this_test_takes():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Adding a suite") :]
    section = section[: section.index("\n## ", 1)]
    for step in (
        "suites/<name>/manifest.toml",
        "pytest_unlearn/<name>/evaluation.py",
        "pytest_unlearn/<name>/settings.py",
        '[project.entry-points."pytest_unlearn.backends"]',
        "tests/suites/<name>/test_metrics.py",
        "tests/suites/<name>/test_world.py",
        "tests/suites/<name>/test_bad_input.py",
        "docs/suites/<name>.md",
        "python -m pytest_unlearn settings <name>",
    ):
        assert step in section, step


def test_a_suite_made_from_the_checklist_runs(words_suite):
    result = words_suite.runpytest_subprocess("-p", "no:cacheprovider", "--suite=words", "-v")
    mean = sum(len(r["text"].split()) for r in ROWS) / len(ROWS)  # 3.0
    assert mean == 3.0
    result.stdout.fnmatch_lines(
        [
            "words::mean-words[[]>=3[]] PASSED*",
            "words::mean-words-low[[]<=2.5[]] FAILED*",
            "mean-words * 3.0000 * >= 3.0000 * PASS",
        ]
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    card = json.loads((words_suite.path / "unlearn-scorecard.json").read_text())
    assert card["aggregates"]["mean_words"] == mean


def test_its_settings_are_typed_and_listed(words_suite):
    result = words_suite.runpytest_subprocess("-p", "no:cacheprovider", "--suite=words", "--setting=scale=2")
    result.stdout.fnmatch_lines(["mean-words * 6.0000 * >= 3.0000 * PASS"])
    result = words_suite.runpytest_subprocess("-p", "no:cacheprovider", "--suite=words", "--setting=scale=0")
    result.stderr.fnmatch_lines(
        [
            "ERROR: --setting scale=0: scale must be a finite number > 0, got 0 "
            "(see python -m pytest_unlearn settings words)"
        ]
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    listing = subprocess.run(
        [sys.executable, "-m", "pytest_unlearn", "settings", "words"],
        capture_output=True,
        text=True,
        check=True,
        cwd=words_suite.path,
    ).stdout
    assert "  scale  " in listing and "float > 0" in listing and "multiplies every length" in listing


def test_a_suite_package_that_takes_a_builtin_name_is_refused(words_suite):
    dist = words_suite.path / "site" / "words_suite-0.1.dist-info" / "entry_points.txt"
    dist.write_text(
        dist.read_text().replace(
            "words = words_suite:MANIFEST\n", "words = words_suite:MANIFEST\ntofu = words_suite:MANIFEST\n"
        )
    )
    result = words_suite.runpytest_subprocess("-p", "no:cacheprovider", "--suite=words")
    result.stderr.fnmatch_lines(
        [
            "ERROR: --suite: suite 'tofu' is registered twice: by pytest-unlearn (pytest_unlearn.suites/tofu/manifest.toml) "
            "and by words-suite (words_suite:MANIFEST); rename one, or override it explicitly (register(..., override=True))*"
        ]
    )
