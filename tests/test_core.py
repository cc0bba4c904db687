"""Manifest parser, registry and option resolution (pytest-free core modules)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.manifest import apply_threshold_overrides, parse_manifest, resolve_suite
from pytest_unlearn.options import OPTIONS_BY_DEST, parse_threshold, resolve
from pytest_unlearn.registry import Measurement, Registry, metric

MINIMAL = """
[suite]
name = "demo"
version = "1"
backend = "semeval"

[[checks]]
id = "mmlu"
metric = "semeval.mmlu_accuracy"
op = ">="
threshold = 0.4
"""


def parse(text: str):
    return parse_manifest(text, Path("/x/demo.toml"))


def test_bundled_semeval_manifest_has_the_sixteen_official_checks():
    manifest = resolve_suite("semeval")
    ids = [c.id for c in manifest.checks]
    assert len(ids) == 16
    assert {"task2-knowledge-forget", "task-aggregate", "mia-score", "mmlu", "final-score"} <= set(ids)
    assert manifest.check("mmlu").threshold == 0.371


@pytest.mark.parametrize(
    ("fragment", "replacement", "message"),
    [
        ('op = ">="', 'op = "=>"', "op must be one of >=, <="),
        ("threshold = 0.4\n", "", "missing required key 'threshold'"),
        ("threshold = 0.4", 'threshold = "high"', "'threshold' must be a number"),
        ('id = "mmlu"', 'id = "bad id"', "check ids use letters"),
        ('backend = "semeval"\n', "", "missing required key 'backend'"),
    ],
)
def test_invalid_manifests_are_rejected_with_the_reason(fragment, replacement, message):
    with pytest.raises(UnlearnError, match=message.replace("(", r"\(")):
        parse(MINIMAL.replace(fragment, replacement))


def test_manifest_without_checks_and_duplicate_ids_are_rejected():
    with pytest.raises(UnlearnError, match="no \\[\\[checks\\]\\] defined"):
        parse(MINIMAL.split("[[checks]]")[0])
    with pytest.raises(UnlearnError, match="appears twice"):
        parse(MINIMAL + MINIMAL[MINIMAL.index("[[checks]]") :])


checks = st.lists(
    st.tuples(
        st.from_regex(r"[a-z][a-z0-9\-]{0,12}", fullmatch=True),
        st.sampled_from([">=", "<="]),
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    ),
    min_size=1,
    max_size=6,
    unique_by=lambda c: c[0],
)


@given(checks)
def test_manifest_round_trip(generated):
    body = "".join(
        f'\n[[checks]]\nid = "{cid}"\nmetric = "m"\nop = "{op}"\nthreshold = {thr!r}\n' for cid, op, thr in generated
    )
    manifest = parse('[suite]\nname = "s"\nversion = "1"\nbackend = "b"\n' + body)
    assert [(c.id, c.op, c.threshold) for c in manifest.checks] == [(c, o, float(t)) for c, o, t in generated]


def test_threshold_overrides_apply_and_unknown_ids_suggest_the_closest():
    manifest = parse(MINIMAL)
    assert apply_threshold_overrides(manifest, {"mmlu": 0.9}).check("mmlu").threshold == 0.9
    with pytest.raises(UnlearnError, match="Did you mean: mmlu"):
        apply_threshold_overrides(manifest, {"mmlu2": 0.9})


def test_check_pass_rule_handles_both_directions_and_nan():
    manifest = parse(MINIMAL)
    spec = manifest.check("mmlu")
    assert spec.passes(0.4) and not spec.passes(0.39) and not spec.passes(float("nan"))


def test_registry_lazy_references_duplicates_and_did_you_mean():
    registry: Registry[object] = Registry("widget")
    registry.register("json-dumps", "json:dumps")
    import json

    assert registry.get("json-dumps") is json.dumps
    with pytest.raises(UnlearnError, match="registered twice"):
        registry.register("json-dumps", "json:loads")
    with pytest.raises(UnlearnError, match="Unknown widget 'json-dump'. Did you mean: json-dumps?"):
        registry.get("json-dump")


def test_metric_decorator_records_direction_unit_and_requirements():
    registry = Registry("metric")

    @metric("demo.mean", higher_is_better=False, unit="nats", requires=("mia",), registry=registry)
    def demo(inputs, *, scale=1.0):
        """Mean of the inputs."""
        return Measurement(sum(inputs) / len(inputs) * scale, len(inputs))

    entry = registry.get("demo.mean")
    assert (entry.higher_is_better, entry.unit, entry.requires) == (False, "nats", ("mia",))
    assert entry.description == "Mean of the inputs."
    assert entry([1.0, 3.0], scale=2.0).value == 4.0


def test_options_resolve_cli_over_environment_over_ini():
    spec = OPTIONS_BY_DEST["unlearn_batch_size"]
    env = {"PYTEST_UNLEARN_BATCH_SIZE": "4"}
    assert resolve(spec, "8", env, "2") == (8, "--batch-size")
    assert resolve(spec, None, env, "2") == (4, "PYTEST_UNLEARN_BATCH_SIZE")
    assert resolve(spec, None, {}, "2") == (2, "ini option unlearn_batch_size")
    assert resolve(spec, None, {}, "") == (16, "default")


def test_option_errors_name_the_flag_and_the_source():
    spec = OPTIONS_BY_DEST["unlearn_batch_size"]
    with pytest.raises(UnlearnError, match=r"^--batch-size must be a positive integer, got '0'$"):
        resolve(spec, "0", {}, "")
    with pytest.raises(UnlearnError, match=r"\(from PYTEST_UNLEARN_BATCH_SIZE\)"):
        resolve(spec, None, {"PYTEST_UNLEARN_BATCH_SIZE": "x"}, "")


def test_threshold_option_parses_pairs():
    assert parse_threshold("mmlu=0.5") == ("mmlu", 0.5)
    for bad in ("mmlu", "=0.5", "mmlu=high", "mmlu=nan"):
        with pytest.raises(ValueError):
            parse_threshold(bad)


def test_readme_option_table_is_generated_from_the_option_definitions():
    from pytest_unlearn.__main__ import options_table
    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text()
    start = readme.index("<!-- options-table:start")
    start = readme.index("\n", start) + 1
    end = readme.index("<!-- options-table:end -->")
    assert readme[start:end] == options_table(), (
        "README option table drifted: run python -m pytest_unlearn options-table"
    )


def test_fingerprint_is_memoised_but_sees_a_rewritten_file(tmp_path):
    """sha256 over (name, sha256 of content), by hand; a second call hashes nothing again;
    rewriting the file (other content, same size) changes the fingerprint."""
    import hashlib

    from pytest_unlearn import fingerprint as fp

    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"abcd")
    expected = hashlib.sha256(b"model.safetensors\0" + hashlib.sha256(b"abcd").digest()).hexdigest()
    assert fp.fingerprint(tmp_path) == f"sha256:{expected}"
    hits = fp._cached_file_digest.cache_info().hits
    assert fp.fingerprint(tmp_path) == f"sha256:{expected}"
    assert fp._cached_file_digest.cache_info().hits == hits + 1
    weights.write_bytes(b"wxyz")
    changed = hashlib.sha256(b"model.safetensors\0" + hashlib.sha256(b"wxyz").digest()).hexdigest()
    assert fp.fingerprint(tmp_path) == f"sha256:{changed}"


def test_numbers_in_messages_and_tables_keep_their_digits():
    """A weight-change ratio of 4.65e-6 against a budget of 1e-6 must not read "0.0000 <= 0.0000"."""
    from pytest_unlearn.scorecard import CheckResult, format_number

    assert [format_number(v) for v in (0.0, 0.5, 4.65e-06, 1e-05, 6676.93, -3.7413, None)] == [
        "0.0000",
        "0.5000",
        "4.65e-06",
        "1e-05",
        "6676.93",
        "-3.7413",
        "n/a",
    ]
    result = CheckResult(
        id="weight-change-ratio",
        metric="genmu.weight_change_ratio",
        value=4.65e-06,
        threshold=1e-06,
        op="<=",
        passed=False,
    )
    assert result.sentence() == "weight-change-ratio = 4.65e-06, needs <= 1e-06"
