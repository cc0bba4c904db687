"""A suite is a folder: built-in suites are found by scanning suites/*/manifest.toml, declared
through the same entry-point tables a third-party package uses, -mini manifests extend their
full twin, and registries refuse a second declaration of a name unless it is an explicit,
logged override."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

import pytest_unlearn.suites as bundled
from pytest_unlearn import builtins
from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.manifest import load_manifest, resolve_suite, tomllib
from pytest_unlearn.registry import SUITES, Registry

ROOT = Path(__file__).resolve().parents[1]
SUITES_DIR = Path(bundled.__file__).resolve().parent


def test_every_suite_folder_is_a_registered_suite_of_its_name():
    folders = sorted(p.name for p in SUITES_DIR.iterdir() if (p / "manifest.toml").is_file())
    assert folders == [name for name in SUITES.names() if SUITES.package(name) == "pytest-unlearn"]
    for name in folders:
        assert load_manifest(SUITES_DIR / name / "manifest.toml").name == name


def test_pyproject_declares_the_builtin_entry_points_that_builtins_registers():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {group: dict(table) for group, table in project["entry-points"].items() if group != "pytest11"}
    assert declared == builtins.ENTRY_POINTS


@pytest.mark.parametrize("mini", sorted(p.name for p in SUITES_DIR.iterdir() if p.name.endswith("-mini")))
def test_a_mini_manifest_extends_its_full_twin(mini):
    full = mini.removesuffix("-mini")
    raw = tomllib.loads((SUITES_DIR / mini / "manifest.toml").read_text(encoding="utf-8"))
    assert raw["suite"]["extends"] == full
    child, parent = resolve_suite(mini), resolve_suite(full)
    assert (child.name, child.backend, child.root) == (mini, parent.backend, SUITES_DIR / mini)
    if "checks" not in raw:
        assert child.checks == parent.checks
    # Every setting the mini manifest does not give is its twin's.
    for key, value in parent.settings.items():
        assert child.settings[key] == raw.get("settings", {}).get(key, value)
    assert child.sha256 != parent.sha256


def test_tofu_mini_takes_the_prompt_families_and_checks_of_tofu():
    child, parent = resolve_suite("tofu-mini"), resolve_suite("tofu")
    assert (child.settings["max_new_tokens"], parent.settings["max_new_tokens"]) == (24, 200)
    assert child.settings["families"]["phi"] == {
        "question_start_tag": "Question: ",
        "question_end_tag": "\n",
        "answer_tag": "Answer: ",
    }
    assert [c.id for c in child.checks] == [c.id for c in parent.checks]
    assert child.data == {"tofu": SUITES_DIR / "tofu-mini" / "data"}


def test_extends_keeps_the_parents_data_relative_to_the_parent(tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "manifest.toml").write_text(
        '[suite]\nname = "base"\nversion = "1"\nbackend = "semeval"\n[data]\nforget = "data/forget.jsonl"\n'
        '[settings]\nseed = 3\nbootstrap_samples = 10\n[[checks]]\nid = "a"\nmetric = "m"\nop = ">="\nthreshold = 0.5\n'
    )
    (tmp_path / "child.toml").write_text(
        '[suite]\nname = "child"\nextends = "base/manifest.toml"\n[settings]\nseed = 4\n'
    )
    child = load_manifest(tmp_path / "child.toml")
    assert child.data == {"forget": tmp_path / "base" / "data" / "forget.jsonl"}
    assert child.settings == {"seed": 4, "bootstrap_samples": 10}
    assert (child.version, child.backend, [c.id for c in child.checks]) == ("1", "semeval", ["a"])


def test_extends_an_unknown_suite_or_itself_is_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[suite]\nname = "bad"\nextends = "tofu-mni"\n')
    with pytest.raises(UnlearnError, match=r"extends 'tofu-mni': Unknown suite 'tofu-mni'. Did you mean: tofu-mini\?"):
        load_manifest(bad)
    loop = tmp_path / "loop.toml"
    loop.write_text('[suite]\nname = "loop"\nextends = "loop.toml"\n')
    with pytest.raises(UnlearnError, match="leads back to .*loop.toml; a suite cannot extend itself"):
        load_manifest(loop)


def test_a_second_declaration_names_both_packages():
    registry: Registry[object] = Registry("metric")
    registry.register("tofu.rouge", "pytest_unlearn.tofu.metrics:rouge_metric")
    registry.register("tofu.rouge", "pytest_unlearn.tofu.metrics:rouge_metric")  # the same declaration: one
    with pytest.raises(UnlearnError) as refused:
        registry.register("tofu.rouge", "mylab.metrics:rouge", package="mylab")
    assert str(refused.value) == (
        "metric 'tofu.rouge' is registered twice: by pytest-unlearn (pytest_unlearn.tofu.metrics:rouge_metric) and by "
        "mylab (mylab.metrics:rouge); rename one, or override it explicitly (register(..., override=True))"
    )


def test_an_explicit_override_is_logged(caplog):
    registry: Registry[object] = Registry("judge")
    registry.register("clip", "pytest_unlearn.engines.judges:clip_judge")
    with caplog.at_level(logging.WARNING, logger="pytest_unlearn.registry"):
        registry.register("clip", "json:loads", package="mylab", override=True)
    assert registry.get("clip") is __import__("json").loads
    assert registry.overrides == [("clip", "pytest-unlearn", "mylab")]
    assert caplog.messages == [
        "judge 'clip' of pytest-unlearn (pytest_unlearn.engines.judges:clip_judge) overridden by mylab (json:loads)"
    ]


def test_a_third_party_package_cannot_silently_replace_a_builtin_metric(
    pytester, perfect_unlearning_predictions, monkeypatch
):
    site = pytester.mkdir("site")
    dist = site / "mylab-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mylab\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[pytest_unlearn.metrics]\nsemeval.subtask = mylab_metrics:subtask\n")
    (site / "mylab_metrics.py").write_text("subtask = None\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--suite=semeval", f"--predictions={perfect_unlearning_predictions}"
    )
    result.stderr.fnmatch_lines(
        [
            "ERROR: suite manifest *semeval*manifest.toml: check '*': metric 'semeval.subtask' is registered twice: "
            "by pytest-unlearn (pytest_unlearn.semeval.metrics:subtask) and by mylab (mylab_metrics:subtask); "
            "rename one, or override it explicitly (register(..., override=True))"
        ]
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
