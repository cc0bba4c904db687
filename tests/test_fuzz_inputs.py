"""Fuzzing the input paths through the real plugin: damaged files end in one ERROR line (exit 4)
or in a scorecard, and damage that means nothing (reordering, identical duplicates, a BOM, blank
lines) leaves every verdict as it was. Never a traceback.

CI runs a few examples per (file, damage) pair; ``--hypothesis-profile=unlearn-fuzz`` runs many.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import SEMEVAL_DATA, semeval_rows

CI_EXAMPLES = 2
EXAMPLES = settings.default.max_examples if settings.get_current_profile_name() == "unlearn-fuzz" else CI_EXAMPLES
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], database=None
)

# Damage that must not move a verdict, and damage that may (then: an error, or a warning, or a
# value the model could really have produced).
NEUTRAL = ("reorder", "duplicate", "bom", "blank-lines")
DESTRUCTIVE = ("truncate", "drop-field", "rename-field", "utf16", "latin1-char", "nan", "empty", "long-line")
DAMAGES = NEUTRAL + DESTRUCTIVE


def damage(data: bytes, kind: str, rng: random.Random, *, csv_header: bool) -> bytes:
    """``data`` (a jsonl or csv file whose rows are single lines) damaged one way."""
    lines = data.splitlines(keepends=True)
    head, body = (lines[:1], lines[1:]) if csv_header else ([], lines)
    pick = rng.randrange(len(body))
    if kind == "reorder":
        rng.shuffle(body)
    elif kind == "duplicate":
        for _ in range(rng.randint(1, 5)):
            body.append(body[rng.randrange(len(body))])
    elif kind == "bom":
        return b"\xef\xbb\xbf" + data
    elif kind == "blank-lines":
        body.insert(pick, b"\n")
    elif kind == "truncate":
        return data[: rng.randrange(1, len(data))]
    elif kind in ("drop-field", "rename-field"):
        if csv_header:
            columns = head[0].rstrip(b"\r\n").split(b",")
            victim = rng.randrange(len(columns))
            if kind == "drop-field":
                return b",".join(c for i, c in enumerate(columns) if i != victim) + b"\n" + b"".join(body)
            columns[victim] = columns[victim] + b"_x"
            head = [b",".join(columns) + b"\n"]
        else:
            record = json.loads(body[pick])
            field = rng.choice(sorted(record))
            value = record.pop(field)
            if kind == "rename-field":
                record[field.upper() + "_"] = value
            body[pick] = (json.dumps(record) + "\n").encode()
    elif kind == "utf16":
        return data.decode("utf-8").encode("utf-16")
    elif kind == "latin1-char":
        body[pick] = body[pick].replace(b" ", " é ".encode("latin-1"), 1)
    elif kind in ("nan", "empty", "long-line"):
        if csv_header:
            import csv
            import io

            # Parsed, not split on commas: a quoted output holds commas of its own.
            cells = next(csv.reader([body[pick].decode()]))
            at = rng.randrange(len(cells))
            cells[at] = {"nan": "NaN", "empty": "", "long-line": "x" * 200_000}[kind]
            out = io.StringIO()
            csv.writer(out, lineterminator="\n").writerow(cells)
            body[pick] = out.getvalue().encode()
        else:
            record = json.loads(body[pick])
            field = rng.choice(sorted(record))
            record[field] = {"nan": float("nan"), "empty": "", "long-line": "x" * 200_000}[kind]
            body[pick] = (json.dumps(record) + "\n").encode()
    return b"".join(head + body)


# -- the files under test ----------------------------------------------------------------------


def _predictions_rows() -> list[dict]:
    rows = [
        {"id": r["id"], "output": r["output"] if i % 3 == 0 else "qqq"} for i, r in enumerate(semeval_rows("forget"))
    ]
    return rows + [
        {"id": r["id"], "output": r["output"] if i % 4 else "zzz"} for i, r in enumerate(semeval_rows("retain"))
    ]


def _csv(rows: list[dict]) -> bytes:
    import csv
    import io

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["id", "model_output"], lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({"id": r["id"], "model_output": r["output"]})
    return out.getvalue().encode()


def setup_world(root: Path) -> tuple[Path, Path]:
    """A --data copy of the bundled SemEval data and a predictions file (jsonl and csv)."""
    data = root / "data"
    if not data.exists():
        shutil.copytree(SEMEVAL_DATA, data)
    rows = _predictions_rows()
    (root / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "predictions.csv").write_bytes(_csv(rows))
    return data, root / "predictions.jsonl"


TARGETS: dict[str, tuple[Callable[[Path], Path], bool]] = {
    # name: (which file, given the root; whether it has a CSV header)
    "predictions.jsonl": (lambda root: root / "predictions.jsonl", False),
    "predictions.csv": (lambda root: root / "predictions.csv", True),
    "forget.jsonl": (lambda root: root / "data" / "forget.jsonl", False),
    "retain.jsonl": (lambda root: root / "data" / "retain.jsonl", False),
    "mia/member.jsonl": (lambda root: root / "data" / "mia" / "member.jsonl", False),
}


def run_gate(pytester: pytest.Pytester, predictions: Path, data: Path) -> pytest.RunResult:
    card = pytester.path / "unlearn-scorecard.json"
    card.unlink(missing_ok=True)
    return pytester.runpytest_inprocess(
        "-p",
        "no:cacheprovider",
        "--suite",
        "semeval",
        f"--data={data}",
        f"--predictions={predictions}",
        "--setting=bootstrap_samples=20",
        "-k",
        "not mia and not mmlu and not final",
        "--unlearn-partial",  # the model checks are left out on purpose (no model)
    )


def outcome(result: pytest.RunResult, pytester: pytest.Pytester) -> tuple[str, object]:
    output = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in output and "INTERNALERROR" not in output, output
    if result.ret == pytest.ExitCode.USAGE_ERROR:
        errors = [line for line in result.stderr.lines if line.startswith("ERROR: ")]
        assert len(errors) == 1, output
        return "error", errors[0]
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), output
    card = json.loads((pytester.path / "unlearn-scorecard.json").read_text())
    # "partial": the text checks only, on purpose (--unlearn-partial); every one of them ran.
    assert card["status"] == "partial" and card["missing_checks"] == ["mia-score", "mmlu", "final-score"]
    return "card", ({c["id"]: c["passed"] for c in card["checks"]}, card["warnings"])


_BASELINE: dict[str, dict[str, bool]] = {}


@pytest.fixture
def baseline(pytester: pytest.Pytester) -> dict[str, bool]:
    """The undamaged files' verdicts (the same for every case: computed once)."""
    if "verdicts" not in _BASELINE:
        data, predictions = setup_world(pytester.path)
        kind, value = outcome(run_gate(pytester, predictions, data), pytester)
        assert kind == "card"
        verdicts, warnings = value
        assert warnings == [] and len(set(verdicts.values())) == 2  # a mix of verdicts, so they can move
        _BASELINE["verdicts"] = verdicts
    return _BASELINE["verdicts"]


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("kind", DAMAGES)
@FUZZ
@given(seed=st.integers(0, 2**32 - 1))
def test_damaged_inputs_end_in_one_error_line_or_an_honest_scorecard(pytester, baseline, target, kind, seed):
    where, csv_header = TARGETS[target]
    data, predictions = setup_world(pytester.path)
    if target == "predictions.csv":
        predictions = pytester.path / "predictions.csv"
    path = where(pytester.path)
    original = path.read_bytes()
    path.write_bytes(damage(original, kind, random.Random(seed), csv_header=csv_header))
    try:
        result, value = outcome(run_gate(pytester, predictions, data), pytester)
    finally:
        path.write_bytes(original)
    if kind in NEUTRAL:
        assert result == "card", value
        verdicts, warnings = value
        assert verdicts == baseline
        if kind == "duplicate":
            assert any("identical duplicate row(s) kept once" in w for w in warnings), warnings
    elif result == "card":
        verdicts, warnings = value
        # A verdict may move only with a warning, or when the damage changed a value itself
        # (an empty or long output is something a model can produce; NaN never reaches a score).
        if verdicts != baseline:
            assert warnings or kind in ("empty", "long-line", "truncate"), (kind, warnings)
