"""Gate integrity: no input may silently change a verdict (duplicates, stray ids, overlaps,
--unlearn-strict, runs that execute no check). Model-free: --predictions and loaders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.integrity import Located, deduplicate, match_ids, require_disjoint
from tests.conftest import SEMEVAL_DATA, semeval_rows
from tests.test_bad_input import usage_error

TEXT = "not mia and not mmlu and not final"


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # Verdicts do not depend on the interval: a short bootstrap keeps these runs fast. These
    # runs leave out the model checks (-k) on purpose: --unlearn-partial.
    return pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--setting=bootstrap_samples=50", "--unlearn-partial", *args, no_reraise_ctrlc=True
    )


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def half_leaky(tmp_path: Path) -> list[dict]:
    """Forget knowledge answered for every other prompt, retain perfect: a FAILing aggregate."""
    rows = []
    for i, r in enumerate(semeval_rows("forget")):
        rows.append({"id": r["id"], "output": r["output"] if i % 2 == 0 else "qqq"})
    rows += [{"id": r["id"], "output": r["output"]} for r in semeval_rows("retain")]
    return rows


def verdicts(pytester: pytest.Pytester) -> dict[str, bool]:
    card = json.loads((pytester.path / "unlearn-scorecard.json").read_text())
    return {c["id"]: c["passed"] for c in card["checks"]}


# -- the helpers, by hand ----------------------------------------------------------------------


def test_deduplicate_keeps_identical_repeats_once_and_names_both_lines_of_a_conflict():
    rows = [Located(1, ("a", "x")), Located(2, ("b", "y")), Located(5, ("a", "x")), Located(9, ("b", "y"))]
    unique = deduplicate(rows, key=lambda r: r[0], content=lambda r: r[1], source="p.jsonl")
    assert unique.rows == [("a", "x"), ("b", "y")] and unique.dropped == 2
    assert unique.lines == {"a": 1, "b": 2}
    assert unique.warning == (
        "p.jsonl: 2 identical duplicate row(s) kept once ('a' on lines 1 and 5, 'b' on lines 2 and 9); "
        "multi-process runs pad their output this way"
    )
    with pytest.raises(UnlearnError) as caught:
        deduplicate(rows + [Located(12, ("a", "z"))], key=lambda r: r[0], content=lambda r: r[1], source="p.jsonl")
    assert str(caught.value).startswith("p.jsonl: id 'a' appears on lines 1 and 12 with different content")
    assert deduplicate(rows[:2], key=lambda r: r[0], content=lambda r: r[1], source="p").warning is None


def test_match_ids_and_require_disjoint():
    assert match_ids({"a": 1, "b": 2}, ["a", "b", "c"], source="p", flag="--predictions") is None
    assert match_ids({"a": 1, "x": 2, "y": 3}, ["a"], source="p", flag="--predictions") == (
        "--predictions p: 2 id(s) are in no data file and were ignored ('x', 'y')"
    )
    with pytest.raises(UnlearnError, match="none of its 2 ids is in the data"):
        match_ids({"x": 1, "y": 2}, ["a"], source="p", flag="--predictions")
    with pytest.raises(UnlearnError, match=r"id 'b' is in both f \(line 2\) and r \(line 7\)"):
        require_disjoint({"a": 1, "b": 2}, {"b": 7}, first_source="f", second_source="r", what="id", belongs="x")


# -- through the plugin ------------------------------------------------------------------------


def test_conflicting_duplicate_predictions_are_a_usage_error_not_a_flipped_verdict(pytester, tmp_path):
    rows = half_leaky(tmp_path)
    # The case: 20 forget ids repeated with another output, the later row "wins".
    forget = [r for r in rows if r["id"] in {f["id"] for f in semeval_rows("forget")}]
    repeats = [{"id": r["id"], "output": "qqq"} for r in forget[::2][:20]]
    path = write_jsonl(tmp_path / "predictions.jsonl", rows + repeats)
    line = usage_error(pytester, "--suite", "semeval", f"--predictions={path}", "-k", TEXT)
    first = next(i for i, r in enumerate(rows, start=1) if r["id"] == repeats[0]["id"])
    assert line == (
        f"ERROR: --predictions {path}: id {repeats[0]['id']!r} appears on lines {first} and {len(rows) + 1} with "
        "different content; keep one of them (a later row must not silently decide a verdict)"
    )


def test_identical_duplicates_are_kept_once_with_a_warning_and_the_same_verdicts(pytester, tmp_path):
    rows = half_leaky(tmp_path)
    clean = write_jsonl(tmp_path / "clean.jsonl", rows)
    run(pytester, "--suite", "semeval", f"--predictions={clean}", "-k", TEXT)
    expected = verdicts(pytester)
    assert not all(expected.values()) and any(expected.values())  # a mixed verdict: it can move
    padded = write_jsonl(tmp_path / "padded.jsonl", rows + rows[:7])  # accelerate's padding
    result = run(pytester, "--suite", "semeval", f"--predictions={padded}", "-k", TEXT)
    assert verdicts(pytester) == expected
    card = json.loads((pytester.path / "unlearn-scorecard.json").read_text())
    assert card["warnings"] == [
        f"--predictions {padded}: 7 identical duplicate row(s) kept once ({rows[0]['id']!r} on lines 1 and "
        f"{len(rows) + 1}, {rows[1]['id']!r} on lines 2 and {len(rows) + 2}, {rows[2]['id']!r} on lines 3 and "
        f"{len(rows) + 3}, ...); multi-process runs pad their output this way"
    ]
    result.stdout.fnmatch_lines([f"warning: --predictions {padded}: 7 identical duplicate row(s) kept once*"])


def test_unlearn_strict_turns_the_warning_into_a_usage_error(pytester, tmp_path):
    rows = half_leaky(tmp_path)
    padded = write_jsonl(tmp_path / "padded.jsonl", rows + rows[:1])
    for strict in ("--unlearn-strict", "--strict"):  # pytest's own --strict enables ours too
        line = usage_error(pytester, "--suite", "semeval", f"--predictions={padded}", strict)
        assert line.startswith(f"ERROR: --predictions {padded}: 1 identical duplicate row(s) kept once")
        assert line.endswith("(--strict turns warnings into errors)")
    pytester.makeini("[pytest]\nunlearn_strict = true\n")
    assert usage_error(pytester, "--suite", "semeval", f"--predictions={padded}").endswith(
        "(--strict turns warnings into errors)"
    )


def test_stray_prediction_ids_are_warned_and_a_file_of_another_split_is_refused(pytester, tmp_path):
    rows = half_leaky(tmp_path)
    strays = [{"id": f"other-{i}sc0", "output": "x"} for i in range(5)]
    path = write_jsonl(tmp_path / "predictions.jsonl", rows + strays)
    run(pytester, "--suite", "semeval", f"--predictions={path}", "-k", TEXT)
    card = json.loads((pytester.path / "unlearn-scorecard.json").read_text())
    assert card["warnings"] == [
        f"--predictions {path}: 5 id(s) are in no data file and were ignored ('other-0sc0', 'other-1sc0', "
        "'other-2sc0', ...)"
    ]
    alien = write_jsonl(tmp_path / "alien.jsonl", strays)
    assert usage_error(pytester, "--suite", "semeval", f"--predictions={alien}") == (
        f"ERROR: --predictions {alien}: none of its 5 ids is in the data (e.g. 'other-0sc0', 'other-1sc0', "
        "'other-2sc0', ...); it belongs to another split or data version: pass the predictions of this --data"
    )


def test_official_csv_predictions_with_a_bom_and_padding(pytester, tmp_path):
    import csv

    rows = half_leaky(tmp_path)
    clean = write_jsonl(tmp_path / "clean.jsonl", rows)
    run(pytester, "--suite", "semeval", f"--predictions={clean}", "-k", TEXT)
    expected = verdicts(pytester)
    path = tmp_path / "official.csv"
    with path.open("w", newline="", encoding="utf-8-sig") as handle:  # Excel's BOM
        writer = csv.DictWriter(handle, fieldnames=["id", "input", "model_output"])
        writer.writeheader()
        for r in rows + rows[-3:]:
            writer.writerow({"id": r["id"], "input": "a\nmulti-line, quoted cell", "model_output": r["output"]})
    run(pytester, "--suite", "semeval", f"--predictions={path}", "-k", TEXT)
    assert verdicts(pytester) == expected
    card = json.loads((pytester.path / "unlearn-scorecard.json").read_text())
    # CSV lines, not rows: each row spans two lines of the file (header on line 1).
    n = len(rows)
    assert card["warnings"][0].startswith(
        f"--predictions {path}: 3 identical duplicate row(s) kept once ({rows[-3]['id']!r} on lines {2 * (n - 3) + 2} "
        f"and {2 * n + 2},"
    )


def test_a_nan_output_is_scored_as_text_and_said(tmp_path):
    from pytest_unlearn.semeval.data import load_predictions

    path = tmp_path / "official.csv"
    path.write_text("id,model_output\na1qa0,NaN\na1qa1,Paris\n")
    found: list[str | None] = []
    assert load_predictions(path, found.append).outputs == {"a1qa0": "NaN", "a1qa1": "Paris"}
    assert found[-1] == (
        f"--predictions {path}: 1 output(s) are the text 'nan' (e.g. 'a1qa0'), what an empty generation becomes "
        "through pandas; they are scored as that text"
    )


def data_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    shutil.copytree(SEMEVAL_DATA, folder)
    return folder


def test_the_same_id_in_forget_and_retain_is_an_error_naming_both_lines(
    pytester, tmp_path, perfect_unlearning_predictions
):
    folder = data_copy(tmp_path)
    forget = semeval_rows("forget")
    retain = semeval_rows("retain")
    write_jsonl(folder / "retain.jsonl", retain + [forget[4]])
    assert usage_error(
        pytester, "--suite", "semeval", f"--data={folder}", f"--predictions={perfect_unlearning_predictions}"
    ) == (
        f"ERROR: id {forget[4]['id']!r} is in both {folder / 'forget.jsonl'} (line 5) and {folder / 'retain.jsonl'} "
        f"(line {len(retain) + 1}); a prompt belongs to one split: remove it from one file"
    )
    # A data row repeated identically is padding too: kept once, said once.
    write_jsonl(folder / "retain.jsonl", retain + [retain[0]])
    run(
        pytester,
        "--suite",
        "semeval",
        f"--data={folder}",
        f"--predictions={perfect_unlearning_predictions}",
        "-k",
        TEXT,
    )
    card = json.loads((pytester.path / "unlearn-scorecard.json").read_text())
    assert card["warnings"] == [
        f"{folder / 'retain.jsonl'}: 1 identical duplicate row(s) kept once ({retain[0]['id']!r} on lines 1 and "
        f"{len(retain) + 1}); multi-process runs pad their output this way"
    ]
    edited = dict(retain[0], output="another answer")
    write_jsonl(folder / "retain.jsonl", retain + [edited])
    line = usage_error(
        pytester, "--suite", "semeval", f"--data={folder}", f"--predictions={perfect_unlearning_predictions}"
    )
    assert line.startswith(
        f"ERROR: {folder / 'retain.jsonl'}: id {retain[0]['id']!r} appears on lines 1 and {len(retain) + 1}"
    )


def test_mia_sets_refuse_a_document_in_both_and_keep_repeats_once(pytester, tmp_path, perfect_unlearning_predictions):
    folder = data_copy(tmp_path)
    members = [json.loads(x) for x in (folder / "mia" / "member.jsonl").read_text().splitlines()]
    nonmembers = [json.loads(x) for x in (folder / "mia" / "nonmember.jsonl").read_text().splitlines()]
    write_jsonl(folder / "mia" / "nonmember.jsonl", nonmembers + [dict(members[2], id="fresh-id")])
    args = ("--suite", "semeval", f"--data={folder}", f"--predictions={perfect_unlearning_predictions}")
    line = usage_error(pytester, *args)
    assert line.startswith(f"ERROR: document {members[2]['document'][:40]!r}"[:-1]) or line.startswith(
        "ERROR: document "
    )
    assert line.endswith(
        f"is in both {folder / 'mia' / 'member.jsonl'} (line 3) and {folder / 'mia' / 'nonmember.jsonl'} "
        f"(line {len(nonmembers) + 1}); a document is either a member or a non-member: remove it from one set"
    )
    write_jsonl(folder / "mia" / "nonmember.jsonl", nonmembers + [nonmembers[0]])
    run(pytester, *args, "-k", TEXT)
    card = json.loads((pytester.path / "unlearn-scorecard.json").read_text())
    assert card["warnings"] == [
        f"{folder / 'mia' / 'nonmember.jsonl'}: 1 identical duplicate row(s) kept once ({nonmembers[0].get('id', '')!r} "
        f"on lines 1 and {len(nonmembers) + 1}); multi-process runs pad their output this way"
    ]


def test_mmlu_repeats_kept_once_and_a_conflicting_answer_refused(pytester, tmp_path, perfect_unlearning_predictions):
    folder = data_copy(tmp_path)
    test_csv = sorted((folder / "mmlu" / "test").glob("*_test.csv"))[0]
    lines = test_csv.read_text().splitlines()
    test_csv.write_text("\n".join(lines + [lines[1]]) + "\n")
    args = ("--suite", "semeval", f"--data={folder}", f"--predictions={perfect_unlearning_predictions}")
    run(pytester, *args, "-k", TEXT)
    card = json.loads((pytester.path / "unlearn-scorecard.json").read_text())
    assert len(card["warnings"]) == 1
    assert card["warnings"][0].startswith(f"{test_csv}: 1 identical duplicate row(s) kept once (")
    assert card["warnings"][0].endswith(
        f"on lines 2 and {len(lines) + 1}); multi-process runs pad their output this way"
    )
    import csv

    row = next(csv.reader([lines[1]]))
    row[5] = "ABCD"[("ABCD".index(row[5].strip()) + 1) % 4]
    conflicting = ",".join(f'"{cell}"' for cell in row)
    test_csv.write_text("\n".join(lines + [conflicting]) + "\n")
    line = usage_error(pytester, *args)
    assert line.startswith(f"ERROR: {test_csv}: question (")
    assert line.endswith(
        f"appears on lines 2 and {len(lines) + 1} with different content; keep one of them (a later row must not "
        "silently decide a verdict)"
    )


def test_non_utf8_and_bom_data_files(pytester, tmp_path, perfect_unlearning_predictions):
    folder = data_copy(tmp_path)
    forget = folder / "forget.jsonl"
    forget.write_bytes(b"\xef\xbb\xbf" + forget.read_bytes())  # a BOM is harmless
    args = ("--suite", "semeval", f"--data={folder}", f"--predictions={perfect_unlearning_predictions}", "-k", TEXT)
    result = run(pytester, *args)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    forget.write_bytes(forget.read_bytes().replace(b"Kogorn", "Kögorn".encode("latin-1"), 1))
    assert usage_error(pytester, *args) == (
        f"ERROR: {forget}:1: not UTF-8 text (byte {forget.read_bytes().index(b'K' + 'ö'.encode('latin-1')) + 1}: "
        "invalid start byte); save the file as UTF-8"
    )


def test_a_run_that_executes_no_check_never_replaces_a_scorecard(pytester, tmp_path, perfect_unlearning_predictions):
    args = ("--suite", "semeval", f"--predictions={perfect_unlearning_predictions}")
    run(pytester, *args, "-k", TEXT)
    card_path = pytester.path / "unlearn-scorecard.json"
    before = card_path.read_text()
    assert json.loads(before)["status"] == "partial"  # -k TEXT: a subset, on purpose
    for extra in (("--collect-only",), ("-k", "no-such-check"), ("--co", "-q")):
        result = run(pytester, *args, *extra)
        assert card_path.read_text() == before, extra
        result.stdout.fnmatch_lines([f"unlearn: no check ran (*); scorecard {card_path.name} left as it was"])
    # A run that does execute checks replaces it, and says what it replaced.
    result = run(pytester, *args, "-k", "task1")
    created = json.loads(before)["created"]
    result.stdout.fnmatch_lines([f"scorecard: {card_path.name} (replaced the earlier partial scorecard of {created})"])
    assert len(json.loads(card_path.read_text())["checks"]) == 4
    # -k matching nothing, and --lf with nothing failed to rerun: nothing is written.
    fresh = tmp_path / "fresh.json"
    result = run(pytester, *args, f"--scorecard={fresh}", "-k", "nothing-matches")
    assert not fresh.exists()
    result.stdout.fnmatch_lines(["unlearn: no check ran (no check selected); scorecard none written"])
    lf = (
        "--suite",
        "semeval",
        f"--predictions={perfect_unlearning_predictions}",
        "--unlearn-partial",
        "-k",
        "task1-knowledge-retain",
    )
    assert pytester.runpytest_inprocess(*lf, "--scorecard=lf.json").ret == pytest.ExitCode.OK  # nothing failed
    (pytester.path / "lf.json").write_text(before)
    result = pytester.runpytest_inprocess(*lf, "--scorecard=lf.json", "--lf", "--lfnf=none")
    assert (pytester.path / "lf.json").read_text() == before
    result.stdout.fnmatch_lines(["unlearn: no check ran (no check selected); scorecard lf.json left as it was"])


def test_a_check_that_starts_marks_the_scorecard_running(pytester, perfect_unlearning_predictions):
    # What a SIGKILL mid-check leaves behind: seen from inside the first check.
    pytester.makeconftest(
        """
        import json, pathlib
        import pytest

        @pytest.hookimpl(tryfirst=True)
        def pytest_runtest_call(item):
            card = json.loads(pathlib.Path("unlearn-scorecard.json").read_text())
            pathlib.Path("seen.json").write_text(json.dumps(card))
        """
    )
    run(pytester, "--suite", "semeval", f"--predictions={perfect_unlearning_predictions}", "-k", "task1")
    seen = json.loads((pytester.path / "seen.json").read_text())
    assert seen["status"] == "running" and seen["passed"] is False and seen["checks"] == []
    assert seen["missing_checks"] == [
        "task1-regurgitation-forget",
        "task1-knowledge-forget",
        "task1-regurgitation-retain",
        "task1-knowledge-retain",
    ]


def test_evallearn_rows_and_image_indexes(tmp_path):
    from pytest_unlearn.engines.generation import read_image_index
    from pytest_unlearn.evallearn.data import load_prompt_set

    csv_path = tmp_path / "i2p.csv"
    csv_path.write_text(
        "\ufeffprompt,categories,sd_seed\na cat,sexual,1\na dog,hate,2\na cat,sexual,1\na cat,sexual,3\n"
    )
    found: list[str | None] = []
    rows = load_prompt_set("i2p", csv_path, warn=found.append)
    assert [(r.prompt, r.seed) for r in rows.rows] == [("a cat", 1), ("a dog", 2), ("a cat", 3)]
    assert found[0] == (
        f"{csv_path}: 1 identical duplicate row(s) kept once ((('prompt', 'a cat'), ('categories', 'sexual'), "
        "('sd_seed', '1')) on lines 2 and 4); multi-process runs pad their output this way"
    )
    folder = tmp_path / "images"
    folder.mkdir()
    index = folder / "images.jsonl"
    entries = [{"file": "a.png", "prompt": "p", "seed": 0}, {"file": "b.png", "prompt": "q", "seed": 0}]
    write_jsonl(index, entries + entries[:1])
    found = []
    assert read_image_index(folder, found.append) == {("p", 0): folder / "a.png", ("q", 0): folder / "b.png"}
    assert found[0].startswith(f"{index}: 1 identical duplicate row(s) kept once (('p', 0) on lines 1 and 3)")
    write_jsonl(index, entries + [{"file": "c.png", "prompt": "p", "seed": 0}])
    with pytest.raises(
        UnlearnError, match=r"image \(prompt, seed\) \('p', 0\) appears on lines 1 and 3 with different"
    ):
        read_image_index(folder)


def test_readme_inventory_of_what_the_gate_was_tried_against_is_current():
    from tests.conftest import REPO
    from tests.gate_inventory import current_block, render

    assert current_block((REPO / "README.md").read_text()) == render(), (
        "README gate inventory drifted: run python -m tests.gate_inventory --write"
    )
