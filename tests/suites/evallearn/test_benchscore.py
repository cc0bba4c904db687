"""BenchScore on small tables worked out by hand, and the ``benchscore`` command's errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_unlearn.__main__ import main
from pytest_unlearn.evallearn.benchscore import Entry, benchscore, ranks

TABLE = {
    "A": {"asr_i2p": 0.1, "asr_ring_a_bell": 0.3, "ua": 0.9, "clip_score": 30.0, "ira": 0.8, "fid": 50.0},
    "B": {"asr_i2p": 0.3, "asr_ring_a_bell": 0.3, "ua": 0.5, "clip_score": 32.0, "ira": 0.6, "fid": 70.0},
    "C": {"asr_i2p": 0.5, "asr_ring_a_bell": 0.3, "ua": 0.7, "clip_score": 31.0, "ira": 0.7, "fid": 60.0},
}
# Normalised (min-max across A, B, C; a constant column counts 0.5):
#   asr_i2p A 0, B .5, C 1 | asr_ring_a_bell .5 all | ua A 1, B 0, C .5
#   clip A 0, B 1, C .5    | ira A 1, B 0, C .5     | fid A 0, B 1, C .5
# eval-learn (UA as 1 - norm): S_A = (1 + .5 + 0)/3 = .5, S_B = (.5 + .5 + 1)/3 = 2/3, S_C = (0 + .5 + .5)/3 = 1/3
# Q = mean(norm clip, norm ira, 1 - norm fid): Q_A = (0 + 1 + 1)/3 = 2/3, Q_B = (1 + 0 + 0)/3 = 1/3, Q_C = .5
# BenchScore-S = .6 S + .4 Q: A .3 + .8/3 = .566667, B .4 + .4/3 = .533333, C .2 + .2 = .4
# BenchScore-Q = .4 S + .6 Q: A .2 + .4 = .6, B .8/3 + .2 = .466667, C .4/3 + .3 = .433333
# Corrected (UA as norm): S_A = (1 + .5 + 1)/3 = 5/6, S_B = (.5 + .5 + 0)/3 = 1/3, S_C = 1/3
#   BenchScore-S: A .5 + .8/3 = .766667, B .2 + .4/3 = .333333, C .2 + .2 = .4
#   BenchScore-Q: A 1/3 + .4 = .733333, B .4/3 + .2 = .333333, C .4/3 + .3 = .433333


def _entries(table=TABLE):
    return [Entry(name, Path(f"{name}.json"), values) for name, values in table.items()]


def _by_name(result):
    return {row["technique"]: row for row in result["techniques"]}


def test_benchscore_by_hand_eval_learn_formula():
    rows = _by_name(benchscore(_entries()))
    expected = {
        "A": (0.5, 2 / 3, 0.566667, 0.6, 1, 1),
        "B": (2 / 3, 1 / 3, 0.533333, 0.466667, 2, 2),
        "C": (1 / 3, 0.5, 0.4, 0.433333, 3, 3),
    }
    for name, (s, q, bs_s, bs_q, rank_s, rank_q) in expected.items():
        row = rows[name]
        assert (row["safety"], row["quality"]) == (pytest.approx(s), pytest.approx(q))
        assert (row["benchscore_s"], row["benchscore_q"]) == (
            pytest.approx(bs_s, abs=1e-6),
            pytest.approx(bs_q, abs=1e-6),
        )
        assert (row["rank_s"], row["rank_q"]) == (rank_s, rank_q)
    assert rows["A"]["normalised"]["asr_ring_a_bell"] == 0.5


def test_benchscore_by_hand_corrected_ua():
    result = benchscore(_entries(), corrected_ua=True)
    rows = _by_name(result)
    assert rows["A"]["safety"] == pytest.approx(5 / 6)
    assert [(r["technique"], round(r["benchscore_s"], 6), r["rank_s"]) for r in result["techniques"]] == [
        ("A", 0.766667, 1),
        ("C", 0.4, 2),
        ("B", 0.333333, 3),
    ]
    assert [rows[n]["benchscore_q"] for n in "ABC"] == [
        pytest.approx(0.733333, abs=1e-6),
        pytest.approx(1 / 3),
        pytest.approx(0.433333, abs=1e-6),
    ]
    assert result["ua_convention"] == "corrected: norm(UA)"


def test_ties_share_the_minimum_rank_and_tifa_counts_when_present():
    assert ranks([0.5, 0.7, 0.5, 0.1]) == [2, 1, 2, 4]
    assert ranks([0.3, None, 0.3]) == [1, 3, 1]
    # A and B tie on every metric: all normalised 0.5, S = Q = .5, both rank 1.
    same = {"asr_i2p": 0.2, "clip_score": 30.0}
    rows = _by_name(benchscore(_entries({"A": same, "B": dict(same)})))
    assert rows["A"]["benchscore_s"] == rows["B"]["benchscore_s"] == pytest.approx(0.5)
    assert rows["A"]["rank_s"] == rows["B"]["rank_s"] == 1
    # TIFA only on A: a one-value column counts 0.5 for A and is left out of B's quality.
    # asr .5 both (S = .5); clip A 0, B 1: Q_A = (0 + .5)/2 = .25, Q_B = 1.
    rows = _by_name(benchscore(_entries({"A": {**same, "tifa": 0.9}, "B": {**same, "clip_score": 32.0}})))
    assert rows["A"]["quality"] == pytest.approx(0.25) and rows["B"]["quality"] == pytest.approx(1.0)
    assert rows["A"]["benchscore_s"] == pytest.approx(0.6 * 0.5 + 0.4 * 0.25)


def _card(path: Path, technique: str, aggregates: dict, suite: str = "evallearn") -> Path:
    card = {
        "schema": "pytest-unlearn/scorecard/1",
        "suite": {"name": suite, "version": "0.1.6"},
        "model": {"path": f"/models/{technique}-folder"},
        "settings": {"technique": technique, "backend": suite},
        "checks": [],
        "aggregates": {**aggregates, "conventions": {"clip_score": "100*cos"}},
    }
    path.write_text(json.dumps(card))
    return path


def test_command_prints_the_leaderboard_and_writes_json(tmp_path, capsys):
    cards = [_card(tmp_path / f"{name}.json", name, values) for name, values in TABLE.items()]
    out = tmp_path / "board.json"
    assert main(["benchscore", *map(str, cards), "--json", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "BenchScore over 3 scorecards (UA under safety as eval-learn: 1 - norm(UA))"
    assert lines[3] == "| 1 | A | 0.5000 | 0.6667 | 0.5667 | 0.6000 | 1 |"
    assert lines[5] == "| 3 | C | 0.3333 | 0.5000 | 0.4000 | 0.4333 | 3 |"
    board = json.loads(out.read_text())
    assert board["schema"] == "pytest-unlearn/benchscore/1"
    assert [r["technique"] for r in board["techniques"]] == ["A", "B", "C"]
    assert main(["benchscore", *map(str, cards), "--json", str(out), "--corrected-ua"]) == 0
    assert [r["technique"] for r in json.loads(out.read_text())["techniques"]] == ["A", "C", "B"]


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    good = _card(tmp_path / "good.json", "A", TABLE["A"])
    other = _card(tmp_path / "semeval.json", "S", {"final_score": 0.5}, suite="semeval")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    stranger = tmp_path / "stranger.json"
    stranger.write_text('{"hello": 1}')
    cases = {
        tmp_path
        / "missing.json": f"ERROR: {tmp_path / 'missing.json'}: no such file; pass scorecards written by pytest --suite evallearn",
        other: f"ERROR: {other}: a scorecard of suite 'semeval', not evallearn; BenchScore compares evallearn runs",
        broken: f"ERROR: {broken}: not a scorecard (invalid JSON: Expecting property name enclosed in double quotes at line 1)",
        stranger: f'ERROR: {stranger}: not a pytest-unlearn scorecard (no "schema": "pytest-unlearn/scorecard/1")',
    }
    for bad, message in cases.items():
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest_unlearn",
                "benchscore",
                str(good),
                str(bad),
                "--json",
                str(tmp_path / "o.json"),
            ],
            capture_output=True,
            text=True,
        )
        assert completed.returncode == 2
        assert completed.stderr.strip() == message
        assert completed.stdout == ""
