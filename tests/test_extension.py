"""Third-party packages extend pytest-unlearn through entry points."""

from __future__ import annotations

import textwrap

from tests.conftest import SEMEVAL_DATA


def test_a_metric_from_another_package_runs_in_a_custom_manifest(pytester, perfect_unlearning_predictions, monkeypatch):
    # A fake installed distribution "mylab" that registers one metric through an entry point.
    site = pytester.mkdir("site")
    dist = site / "mylab-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mylab\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[pytest_unlearn.metrics]\nmylab.worst_retain = mylab_metrics:worst_retain\n"
    )
    (site / "mylab_metrics.py").write_text(
        textwrap.dedent(
            """
            from pytest_unlearn.registry import Measurement, metric

            @metric("mylab.worst_retain", higher_is_better=True, unit="score", requires=("text",))
            def worst_retain(inputs):
                '''The lowest retain subtask term.'''
                terms = [v for (split, _, _), v in inputs.subtask_terms().items() if split == "retain"]
                return Measurement(min(terms), len(terms))
            """
        )
    )
    manifest = pytester.path / "mylab.toml"
    manifest.write_text(
        textwrap.dedent(
            f"""
            [suite]
            name = "mylab"
            version = "0.1"
            backend = "semeval"

            [data]
            forget = "{SEMEVAL_DATA / "forget.jsonl"}"
            retain = "{SEMEVAL_DATA / "retain.jsonl"}"

            [settings]
            bootstrap_samples = 50

            [[checks]]
            id = "worst-retain"
            metric = "mylab.worst_retain"
            op = ">="
            threshold = 0.99
            """
        )
    )
    monkeypatch.setenv("PYTHONPATH", str(site))
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--suite={manifest}", f"--predictions={perfect_unlearning_predictions}", "-v"
    )
    result.stdout.fnmatch_lines(["mylab::worst-retain[[]>=0.99] PASSED*", "worst-retain  1.0000  >= 0.9900*PASS*"])
    assert result.ret == 0
