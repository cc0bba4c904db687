"""model changes: weight files rewritten, added or removed while the run goes on: the card carries the fingerprint of the weights as loaded, and a change is an error naming the file."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from tests.attack_helpers import card, run

RUN = ("--suite=semeval", "-k", "mia", "--unlearn-partial")

# After the first check has run (the weights are loaded and scored), something writes to the folder.
CHANGE = {
    "rewrite": "p = folder / 'model.safetensors'; data = bytearray(p.read_bytes()); data[-1] ^= 1; p.write_bytes(bytes(data))",
    "add": "(folder / 'extra.safetensors').write_bytes(b'not weights')",
    "remove": "(folder / 'model.safetensors').unlink()",
}
NAMED = {"rewrite": "model.safetensors", "add": "extra.safetensors", "remove": "model.safetensors"}


def weights_fingerprint(folder: Path) -> str:
    """fingerprint.py's definition, written out: sha256 over (name, NUL, sha256 of the file)."""
    outer = hashlib.sha256()
    for file in sorted(folder.rglob("*.safetensors")):
        outer.update(file.relative_to(folder).as_posix().encode() + b"\0" + hashlib.sha256(file.read_bytes()).digest())
    return "sha256:" + outer.hexdigest()


@pytest.fixture(scope="module")
def mia_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-change-cache")


@pytest.mark.parametrize("change", sorted(CHANGE))
def test_weights_changed_during_the_run(pytester, tmp_path, semeval_models, mia_cache, change):
    folder = tmp_path / "model"
    shutil.copytree(semeval_models["target"], folder)
    loaded = weights_fingerprint(folder)
    pytester.makeconftest(
        f"""
        import pathlib

        def pytest_runtest_teardown(item):
            folder = pathlib.Path({str(folder)!r})
            {CHANGE[change]}
        """
    )
    result = run(pytester, f"--model={folder}", f"--cache-dir={mia_cache}", *RUN)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    line = (
        f"--model {folder}: weight file(s) changed since the run loaded it ({NAMED[change]}); the values cannot be "
        "tied to one set of weights: rerun on a model folder nothing writes to during the run"
    )
    assert [x for x in result.outlines if x.startswith("ERROR")] == [f"ERROR: {line}"]
    found = card(pytester)
    assert found["passed"] is False and found["gate"]["weights_changed"] == [line]
    # The card names the weights that were evaluated, not what the folder holds now.
    assert found["model"]["fingerprint"] == loaded != (weights_fingerprint(folder) if change != "remove" else None)
    assert found["provenance"]["checks"]["mia-score"][0]["fingerprint"] == loaded


def test_unchanged_weights_pass_the_verification(pytester, tmp_path, semeval_models, mia_cache):
    folder = tmp_path / "model"
    shutil.copytree(semeval_models["target"], folder)
    pytester.makeconftest(
        f"""
        import os, pathlib

        def pytest_runtest_teardown(item):
            # Touching a file (a new mtime, the same bytes) is not a change of weights.
            os.utime(pathlib.Path({str(folder)!r}) / "model.safetensors")
        """
    )
    result = run(pytester, f"--model={folder}", f"--cache-dir={mia_cache}", *RUN)
    found = card(pytester)
    assert found["gate"]["weights_changed"] == []
    assert found["model"]["fingerprint"] == weights_fingerprint(folder)
    assert found["provenance"]["weights"]["--model"]["files"] == {
        "model.safetensors": hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    }
    # The target remembers its forget set: the MIA check fails on its own merits, no ERROR line.
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert not [x for x in result.outlines if x.startswith("ERROR")]
