"""mixed sources: --model with --predictions (flag, environment variable left in CI, ini), values from the cache: each check's provenance says what produced it, the headline names only weights that produced values, --strict refuses a mix."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.attack_helpers import card, run

MIXED = ("-k", "mia or task1-knowledge-forget", "--unlearn-partial")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def weights_fingerprint(folder: Path) -> str:
    """fingerprint.py's definition, written out: sha256 over (name, NUL, sha256 of the file)."""
    outer = hashlib.sha256()
    for file in sorted(folder.rglob("*.safetensors")):
        outer.update(file.relative_to(folder).as_posix().encode() + b"\0" + hashlib.sha256(file.read_bytes()).digest())
    return "sha256:" + outer.hexdigest()


@pytest.fixture(scope="module")
def mia_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One artifact cache: the model's MIA losses are computed by the first test, reused after."""
    return tmp_path_factory.mktemp("sources-cache")


def test_model_and_another_models_predictions(pytester, semeval_models, perfect_unlearning_predictions, mia_cache):
    """The issue's case: the text checks came from the file and were credited to the model."""
    target = semeval_models["target"]
    result = run(
        pytester, f"--model={target}", f"--predictions={perfect_unlearning_predictions}", "--suite=semeval",
        f"--cache-dir={mia_cache}", *MIXED,
    )  # fmt: skip
    found = card(pytester)
    sources = found["provenance"]["checks"]
    assert sources["task1-knowledge-forget"] == [
        {
            "input": "text",
            "kind": "predictions",
            "path": str(perfect_unlearning_predictions),
            "sha256": sha256(perfect_unlearning_predictions),
            "from": "--predictions",
        }
    ]
    (mia,) = sources["mia-score"]
    assert mia["kind"] == "model" and mia["path"] == str(target)
    assert mia["fingerprint"] == weights_fingerprint(target) == found["model"]["fingerprint"]
    assert found["model"]["checks"] == ["mia-score"]
    assert found["provenance"]["predictions"]["checks"] == ["task1-knowledge-forget"]
    line = (
        f"mixed sources: 1 check(s) scored from --predictions {perfect_unlearning_predictions} (sha256 "
        f"{sha256(perfect_unlearning_predictions)[:12]}…), not from the --model {target} weights (provenance.checks "
        "says which); --strict refuses the mix"
    )
    assert line in found["warnings"]
    result.stdout.fnmatch_lines([f"warning: {line}"])
    # The MIA losses were computed here and stored: their cache entry is named, not reused.
    (entry,) = mia["cache"]
    assert entry["kind"] == "semeval-mia"
    assert found["cache_reuse"]["checks"]["mia-score"] == [{"key": entry["key"], "reused": False}]
    from pytest_unlearn.cache import decode_entry

    raw = (mia_cache / "semeval-mia" / entry["key"][:2] / f"{entry['key']}.json").read_bytes()
    content, problem = decode_entry("semeval-mia", entry["key"], raw)  # entries carry a checksummed header
    assert problem is None
    stored = json.loads(content)
    assert entry["sha256"] == hashlib.sha256(json.dumps(stored, sort_keys=True).encode()).hexdigest()


def test_predictions_left_in_the_environment(
    pytester, semeval_models, perfect_unlearning_predictions, mia_cache, monkeypatch
):
    monkeypatch.setenv("PYTEST_UNLEARN_PREDICTIONS", str(perfect_unlearning_predictions))
    target = semeval_models["target"]
    result = run(pytester, f"--model={target}", "--suite=semeval", f"--cache-dir={mia_cache}", *MIXED)
    found = card(pytester)
    assert found["provenance"]["options"]["unlearn_predictions"] == {
        "flag": "--predictions",
        "value": str(perfect_unlearning_predictions),
        "from": "PYTEST_UNLEARN_PREDICTIONS",
    }
    assert found["provenance"]["checks"]["task1-knowledge-forget"][0]["from"] == "PYTEST_UNLEARN_PREDICTIONS"
    result.stdout.fnmatch_lines(["warning: mixed sources: 1 check(s) scored from --predictions *"])
    # The second run read the MIA losses from the cache: marked reused, same entry.
    (entry,) = found["provenance"]["checks"]["mia-score"][0]["cache"]
    assert found["cache_reuse"]["checks"]["mia-score"] == [{"key": entry["key"], "reused": True}]
    assert found["cache_reuse"]["cache_dir"] == {"flag": "--cache-dir", "value": str(mia_cache), "from": "--cache-dir"}


def test_strict_refuses_the_mix(pytester, semeval_models, perfect_unlearning_predictions):
    result = run(
        pytester, f"--model={semeval_models['target']}", f"--predictions={perfect_unlearning_predictions}",
        "--suite=semeval", "--unlearn-strict",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: --model {semeval_models['target']} and --predictions {perfect_unlearning_predictions} together: "
            "some checks would be scored from the file, not the weights (--strict refuses a mix); pass one of them"
        ]
    )


def test_headline_never_names_weights_that_produced_nothing(pytester, semeval_models, perfect_unlearning_predictions):
    target = semeval_models["target"]
    pytester.makeini(f"[pytest]\nunlearn_predictions = {perfect_unlearning_predictions}\n")
    result = run(pytester, f"--model={target}", "--suite=semeval", "-k", "task1", "--unlearn-partial")
    assert result.ret == pytest.ExitCode.OK
    found = card(pytester)
    # Every value came from the file: the model is "given", not the one evaluated.
    assert found["model"]["path"] is None and found["model"]["fingerprint"] is None
    assert found["model"]["given"] == str(target) and found["model"]["checks"] == []
    assert found["provenance"]["options"]["unlearn_predictions"]["from"] == "ini option unlearn_predictions"
    assert {s[0]["kind"] for s in found["provenance"]["checks"].values()} == {"predictions"}
    assert not any(w.startswith("mixed sources") for w in found["warnings"])


def test_predictions_only_run_names_the_file(pytester, perfect_unlearning_predictions):
    run(
        pytester,
        f"--predictions={perfect_unlearning_predictions}",
        "--suite=semeval",
        "-k",
        "task2",
        "--unlearn-partial",
    )
    found = card(pytester)
    assert found["model"]["path"] is None
    assert found["provenance"]["predictions"]["sha256"] == sha256(perfect_unlearning_predictions)
    assert found["provenance"]["checks"]["task2-knowledge-forget"][0]["sha256"] == sha256(
        perfect_unlearning_predictions
    )


def test_user_checks_are_credited_to_their_test(pytester, perfect_unlearning_predictions):
    pytester.makepyfile(
        test_mine="""
        def test_mine(unlearn_check):
            unlearn_check("my-metric", 0.9, ">=", 0.5)
        """
    )
    run(pytester, f"--predictions={perfect_unlearning_predictions}", "--suite=semeval", "test_mine.py", "-k", "mine",
        "--unlearn-partial")  # fmt: skip
    found = card(pytester)
    assert found["provenance"]["checks"]["my-metric"] == [{"kind": "unlearn_check", "test": "test_mine.py::test_mine"}]
    assert len(found["missing_checks"]) == 16 and found["passed"] is False
