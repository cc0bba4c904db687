"""Hypothesis properties of the metric functions and the bootstrap."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_unlearn.semeval import metrics as sm
from pytest_unlearn.stats import bootstrap_ci, resample

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
losses = st.lists(st.floats(min_value=0.0, max_value=20.0, allow_nan=False), min_size=1, max_size=30)


@given(st.lists(unit, min_size=1, max_size=12))
def test_harmonic_mean_bounds_and_zero_rule(values):
    aggregate = sm.task_aggregate(values)
    if min(values) == 0.0:
        assert aggregate == 0.0
    else:
        assert min(values) - 1e-12 <= aggregate <= min(values) * len(values) + 1e-12
        assert aggregate <= sum(values) / len(values) + 1e-12  # HM <= AM


@given(st.floats(min_value=0.0, max_value=1.0))
def test_mia_score_is_symmetric_around_one_half_and_in_unit_interval(auc):
    score = sm.mia_score(auc)
    assert 0.0 <= score <= 1.0
    assert abs(score - sm.mia_score(1.0 - auc)) < 1e-12


@given(losses)
def test_auc_of_identical_score_lists_is_one_half(values):
    assert abs(sm.mia_auc(values, values) - 0.5) < 1e-12


@given(losses, losses)
def test_auc_swaps_to_one_minus_auc_when_sets_swap(members, nonmembers):
    assert abs(sm.mia_auc(members, nonmembers) + sm.mia_auc(nonmembers, members) - 1.0) < 1e-9


@given(unit)
def test_forget_inversion(value):
    assert sm.aggregated_term("forget", value) == 1.0 - value
    assert sm.aggregated_term("retain", value) == value


@given(st.text(max_size=40), st.text(max_size=40))
def test_exact_match_is_binary_and_symmetric(a, b):
    score = sm.knowledge_score(a, b)
    assert score in (0.0, 1.0)
    assert score == sm.knowledge_score(b, a)
    assert sm.knowledge_score(a, f"  {a.upper()}  ") == float(a.strip().lower() == a.upper().strip().lower())


@settings(max_examples=30, deadline=None)
@given(st.text(alphabet="abcde ", max_size=30), st.text(alphabet="abcde ", max_size=30))
def test_rouge_recall_in_unit_interval_and_full_on_identity(expected, generated):
    assert 0.0 <= sm.regurgitation_score(expected, generated) <= 1.0
    if expected.split():
        assert sm.regurgitation_score(expected, expected + " " + generated) == 1.0


@settings(max_examples=25, deadline=None)
@given(st.lists(unit, min_size=2, max_size=20), st.integers(0, 2**31))
def test_bootstrap_interval_brackets_the_resampled_means_and_is_deterministic(values, seed):
    data = np.asarray(values)
    ci = bootstrap_ci(lambda rng: float(resample(data, rng).mean()), samples=200, seed=seed)
    again = bootstrap_ci(lambda rng: float(resample(data, rng).mean()), samples=200, seed=seed)
    assert ci == again
    assert data.min() - 1e-12 <= ci[0] <= ci[1] <= data.max() + 1e-12


# --- Genμ ------------------------------------------------------------------------------------

five_parts = st.lists(unit, min_size=5, max_size=5)
embeddings = st.integers(min_value=1, max_value=6).flatmap(
    lambda d: st.lists(
        st.lists(st.floats(min_value=-10, max_value=10, allow_nan=False), min_size=d, max_size=d).filter(
            lambda v: sum(x * x for x in v) > 1e-6
        ),
        min_size=1,
        max_size=8,
    )
)


@given(five_parts)
def test_err_is_zero_when_any_part_is_zero_and_at_most_five_times_the_minimum(parts):
    from pytest_unlearn.genmu import metrics as gm

    value = gm.err(parts)
    if min(parts) == 0.0:
        assert value == 0.0
    else:
        assert min(parts) - 1e-12 <= value <= 5 * min(parts) + 1e-12
        assert value <= max(parts) + 1e-12
    assert abs(value - gm.err(list(reversed(parts)))) < 1e-12  # order of the parts does not matter


@given(five_parts, st.integers(min_value=0, max_value=4), unit)
def test_err_never_decreases_when_one_part_improves(parts, index, gain):
    from pytest_unlearn.genmu import metrics as gm

    better = list(parts)
    better[index] = min(1.0, better[index] + gain)
    assert gm.err(better) >= gm.err(parts) - 1e-12


@given(embeddings, st.floats(min_value=0.01, max_value=100))
@settings(max_examples=50)
def test_clip_score_is_a_bounded_scale_invariant_cosine(vectors, scale):
    from pytest_unlearn.genmu import metrics as gm

    images = np.asarray(vectors, dtype=np.float64)
    texts = images[::-1].copy()
    scores = gm.clip_score(images, texts)
    assert np.all(np.abs(scores) <= 100 + 1e-9)
    np.testing.assert_allclose(gm.clip_score(images * scale, texts), scores, atol=1e-9)
    np.testing.assert_allclose(gm.clip_score(texts, images), scores, atol=1e-9)  # symmetric
    np.testing.assert_allclose(gm.clip_score(images, images), 100.0, atol=1e-9)  # an embedding with itself


# --- Suite manifests ------------------------------------------------------------------------------

MANIFEST = """[suite]
name = "demo"
version = "1"
backend = "semeval"

[settings]
seed = 3

[[checks]]
id = "mmlu"
metric = "semeval.mmlu_accuracy"
params = { split = "forget" }
op = ">="
threshold = 0.4
"""
toml_text = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FFF, exclude_categories=("Cs", "Cc")), max_size=20
)
toml_scalars = st.one_of(
    toml_text, st.integers(-(2**31), 2**31), st.floats(allow_nan=False, allow_infinity=False), st.booleans()
)


def _toml(value) -> str:
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON's escapes are TOML basic-string escapes
    return repr(value)


@given(
    st.dictionaries(st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True), toml_scalars, max_size=4),
    st.dictionaries(st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True), toml_scalars, max_size=4),
    toml_text,
)
def test_manifest_round_trip_keeps_params_settings_and_description(params, settings, description):
    from pathlib import Path

    from pytest_unlearn.manifest import parse_manifest

    inline = ", ".join(f"{k} = {_toml(v)}" for k, v in params.items())
    text = (
        '[suite]\nname = "s"\nversion = "1"\nbackend = "b"\n\n[settings]\n'
        + "".join(f"{k} = {_toml(v)}\n" for k, v in settings.items())
        + f'\n[[checks]]\nid = "c"\nmetric = "m"\nop = "<="\nthreshold = 1\nparams = {{ {inline} }}\n'
        + f"description = {_toml(description)}\n"
    )
    manifest = parse_manifest(text, Path("/x/s.toml"))
    (check,) = manifest.checks
    assert check.params == params and manifest.settings == settings and check.description == description
    assert check.threshold == 1.0 and isinstance(check.threshold, float)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_damaged_manifest_is_parsed_or_refused_with_one_clear_line(data):
    """Whatever the damage (a line dropped, text spliced in), the parser returns a manifest or
    raises UnlearnError with a one-line message naming the file; never another exception."""
    from pathlib import Path

    from pytest_unlearn.errors import UnlearnError
    from pytest_unlearn.manifest import parse_manifest

    lines = MANIFEST.splitlines(keepends=True)
    if data.draw(st.booleans(), label="drop a line"):
        del lines[data.draw(st.integers(0, len(lines) - 1), label="line")]
    text = "".join(lines)
    at = data.draw(st.integers(0, len(text)), label="splice at")
    text = text[:at] + data.draw(st.text(max_size=12), label="spliced") + text[at:]
    try:
        parse_manifest(text, Path("/x/demo.toml"))
    except UnlearnError as exc:
        message = str(exc)
        assert message.startswith("suite manifest /x/demo.toml") and "\n" not in message, message
