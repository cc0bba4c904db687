"""One evaluation over several xdist workers: device pinning, groups, identical scorecards."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.genmu.metrics import GenmuInputs, WeightChange
from pytest_unlearn.workers import (
    check_devices,
    decode,
    encode,
    input_groups,
    parse_devices,
    pinned_device,
    split_cpu_threads,
    threads_per_worker,
    worker_number,
)

REPO = Path(__file__).resolve().parent.parent


# -- index arithmetic (no pytest run) -----------------------------------------------------------
def test_parse_devices():
    assert parse_devices("0,1,2,3") == (0, 1, 2, 3)
    assert parse_devices(" 2 ") == (2,)
    for bad in ("", "0,,1", "a", "-1", "1.5"):
        with pytest.raises(ValueError, match="comma-separated list of GPU indices"):
            parse_devices(bad)


def test_worker_number():
    assert worker_number("gw0") == 0 and worker_number("gw13") == 13
    with pytest.raises(ValueError):
        worker_number("master")


@pytest.mark.parametrize(
    ("index", "devices", "environ", "expected"),
    [
        (0, (0, 1, 2, 3), {}, "0"),
        (3, (0, 1, 2, 3), {}, "3"),
        (5, (0, 1, 2, 3), {}, "1"),  # more workers than GPUs: wrap, never past the list
        (2, (2,), {}, "2"),
        (0, None, {"CUDA_VISIBLE_DEVICES": "3,5"}, "3"),
        (1, None, {"CUDA_VISIBLE_DEVICES": "3,5"}, "5"),
        (2, None, {"CUDA_VISIBLE_DEVICES": "3,5"}, "3"),
        (0, (1, 0), {"CUDA_VISIBLE_DEVICES": "3,5"}, "5"),  # --devices indexes the visible list
        (1, (1, 0), {"CUDA_VISIBLE_DEVICES": "3,5"}, "3"),
        (1, None, {"CUDA_VISIBLE_DEVICES": "GPU-aa, GPU-bb"}, "GPU-bb"),
        (0, None, {}, None),  # nothing to pin by
        (0, None, {"CUDA_VISIBLE_DEVICES": ""}, None),
    ],
)
def test_pinned_device(index, devices, environ, expected):
    assert pinned_device(index, devices, environ) == expected


def test_check_devices():
    check_devices((0, 1), {"CUDA_VISIBLE_DEVICES": "3,5"}, lambda: pytest.fail("no torch when the list is set"))
    check_devices((3,), {}, lambda: 4)
    with pytest.raises(UnlearnError, match=r"^--devices 0,2: GPU 2 is beyond the 2 visible .*\(valid: 0-1\)$"):
        check_devices((0, 2), {"CUDA_VISIBLE_DEVICES": "3,5"}, lambda: 8)
    with pytest.raises(UnlearnError, match="^--devices 0: this machine has no visible GPU; drop --devices"):
        check_devices((0,), {}, lambda: 0)


def test_threads_per_worker():
    assert threads_per_worker(16, 4) == 4
    assert threads_per_worker(2, 3) == 1
    assert threads_per_worker(7, 2) == 3


def test_split_cpu_threads_only_in_workers_on_cpu():
    assert split_cpu_threads("cpu", {}) is None
    assert split_cpu_threads("cuda:0", {"PYTEST_XDIST_WORKER_COUNT": "2"}) is None


def test_input_groups_are_connected_components():
    groups = input_groups(
        {
            "forget": ("images",),
            "drop": ("images", "original_images"),
            "weights": ("weights",),
            "other": ("original_images",),
            "free": (),
        }
    )
    assert groups["forget"] == groups["drop"] == groups["other"] == "images+original_images"
    assert groups["weights"] == "weights"
    assert groups["free"] == "check:free"
    semeval = input_groups({"t": ("text",), "m": ("mia",), "u": ("mmlu",)})
    assert len(set(semeval.values())) == 3
    semeval["final"] = input_groups({"t": ("text",), "m": ("mia",), "u": ("mmlu",), "f": ("text", "mia", "mmlu")})["f"]
    assert semeval["final"] == "mia+mmlu+text"


def test_worker_state_round_trip_is_exact():
    inputs = GenmuInputs(
        targets=("Golf Ball",),
        adjacent={"Golf Ball": ("Juggling",)},
        model_of={"Golf Ball": "Golf Ball"},
        erased={"Golf Ball": ("Golf Ball",)},
        presence={("Golf Ball", "Golf Ball", "direct"): np.array([0.0, 1.0])},
        clip_scores={"Golf Ball": np.array([0.1 + 0.2, 1 / 3], dtype=np.float64)},
        weight_change={"Golf Ball": WeightChange(1.5, 10, {"unet": (1.5, 10)}, {"unet.a": (1.5, 10)})},
    )
    wire = json.loads(json.dumps(encode(inputs)))  # builtin types only, as execnet needs
    back = decode(wire)
    assert back.presence[("Golf Ball", "Golf Ball", "direct")].tolist() == [0.0, 1.0]
    assert back.clip_scores["Golf Ball"].tolist() == inputs.clip_scores["Golf Ball"].tolist()
    assert back.weight_change == inputs.weight_change and back.adjacent == inputs.adjacent
    assert back.erased == inputs.erased and back.model_of == inputs.model_of
    with pytest.raises(UnlearnError, match="foreign class"):
        decode({"__dataclass__": "os:stat_result", "fields": {}})


# -- through pytest-xdist -----------------------------------------------------------------------
RECORD_CONFTEST = """
import json, os

def pytest_sessionstart(session):
    workerid = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with open(os.path.join(os.environ["RECORD_DIR"], workerid + ".json"), "w") as handle:
        json.dump({"cuda": os.environ.get("CUDA_VISIBLE_DEVICES")}, handle)
"""


@pytest.fixture
def recording(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each process of the run writes the CUDA_VISIBLE_DEVICES it ended up with."""
    record = pytester.path / "record"
    record.mkdir()
    # Under the repo's own xdist run this process is a worker: its inner run's controller must
    # not inherit the outer worker's name.
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RECORD_DIR", str(record))
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    pytester.makeconftest(RECORD_CONFTEST)
    pytester.makepyfile(test_env="def test_env():\n    pass\n")
    return record


def seen(record: Path) -> dict[str, str | None]:
    return {path.stem: json.loads(path.read_text())["cuda"] for path in record.glob("*.json")}


def test_each_worker_sees_one_device_of_the_devices_list(pytester, recording, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--devices=1,0", "test_env.py")
    assert result.ret == 0, result.stdout.str()
    # --devices counts among the visible GPUs: 1 is the job's GPU 5, 0 its GPU 3.
    # The controller evaluates nothing and keeps the job's list.
    assert seen(recording) == {"main": "3,5", "gw0": "5", "gw1": "3"}


def test_workers_share_out_an_existing_cuda_visible_devices_list(
    pytester, recording, monkeypatch, perfect_unlearning_predictions
):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-n",
        "3",
        "--suite=semeval",
        f"--predictions={perfect_unlearning_predictions}",
        "-k",
        "env or knowledge-forget",
        "--unlearn-partial",
        "test_env.py",
    )
    assert result.ret == 0, result.stdout.str()
    # Three workers, two GPUs: the third wraps around to the first.
    assert seen(recording) == {"main": "3,5", "gw0": "3", "gw1": "5", "gw2": "3"}


def test_devices_beyond_the_visible_ones_is_a_usage_error(pytester, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--devices=0,2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --devices 0,2: GPU 2 is beyond the 2 visible on CUDA_VISIBLE_DEVICES='3,5' (valid: 0-1)"]
    )


def test_devices_on_a_machine_without_gpus_says_so(pytester, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--devices=0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --devices 0: this machine has no visible GPU; drop --devices to run on the CPU"]
    )


def comparable(card: dict) -> dict:
    """The scorecard without what legitimately differs between two runs."""
    card = dict(card)
    card.pop("timings")
    card.pop("created")
    return card


def run_twice(pytester: pytest.Pytester, first: tuple[str, ...], second: tuple[str, ...], *args: str):
    """The same run with two xdist settings; each writes card.json (same paths, same artifacts)."""
    cards, outputs = [], []
    for extra in (first, second):
        result = pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", "--no-cache", "--scorecard=card.json", "-v", *extra, *args
        )
        outputs.append(result)
        cards.append(json.loads((pytester.path / "card.json").read_text()))
        (pytester.path / "card.json").unlink()
    return cards, outputs


def test_semeval_scorecard_is_the_same_with_two_workers(pytester, monkeypatch, perfect_unlearning_predictions):
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    (serial, parallel), (_, result) = run_twice(
        pytester, ("-n", "0"), ("-n", "2"), "--suite=semeval", f"--predictions={perfect_unlearning_predictions}"
    )
    assert comparable(parallel) == comparable(serial)
    assert parallel["aggregates"]["task_aggregate"] == 1.0 and parallel["status"] == "complete"
    assert parallel["artifacts"]["generations"].endswith("generations.jsonl")
    # -n switched to loadgroup: every check shares the worker of its inputs' group.
    result.stdout.fnmatch_lines(["unlearn: --dist loadgroup*", "*PASSED semeval::task-aggregate*@semeval/*"])


def test_genmu_colour_world_scorecard_is_the_same_with_two_workers(pytester, monkeypatch):
    from tests.genmu_helpers import write_world

    monkeypatch.setenv("PYTHONPATH", str(REPO))
    pytester.makeconftest(
        "from pytest_unlearn.registry import JUDGES\n"
        "JUDGES.register('colour', 'tests.genmu_helpers:colour_judge', replace=True)\n"
    )
    manifest, images = write_world(pytester.path)
    (serial, parallel), _ = run_twice(pytester, ("-n", "0"), ("-n", "2"), f"--suite={manifest}", f"--images={images}")
    assert comparable(parallel) == comparable(serial)
    assert parallel["aggregates"]["err"] == pytest.approx(15 / 22)
    # The HTML report is written by the controller from the records its workers sent.
    assert parallel["artifacts"]["report"].endswith("card.html") and (pytester.path / "card.html").is_file()


def test_remote_execution_through_xdist_tx(pytester, monkeypatch, perfect_unlearning_predictions):
    """xdist's own gateways (here two local popen ones; ssh=... for other machines)."""
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    (serial, remote), (_, result) = run_twice(
        pytester,
        ("-n", "0"),
        ("--tx", "2*popen", "--dist", "loadgroup"),
        "--suite=semeval",
        f"--predictions={perfect_unlearning_predictions}",
        # Without the final score, text, MIA and MMLU checks are three groups: both workers work.
        "-k",
        "not final-score",
    )
    assert comparable(remote) == comparable(serial)
    out = result.stdout.str()
    assert "[gw0]" in out and "[gw1]" in out, out
    for group in ("text", "mia", "mmlu"):
        workers = set(re.findall(rf"\[(gw\d)\] .* semeval::\S+@semeval/{group} ", out))
        assert len(workers) == 1, (group, workers)  # a group never spans two workers


def test_user_choice_of_dist_mode_is_kept(pytester, monkeypatch, perfect_unlearning_predictions):
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-n",
        "2",
        "--dist",
        "load",
        "--suite=semeval",
        f"--predictions={perfect_unlearning_predictions}",
        "-k",
        "knowledge-forget",
        "--unlearn-partial",
    )
    assert result.ret == 0, result.stdout.str()
    assert "--dist loadgroup" not in result.stdout.str()
    assert os.path.isfile(pytester.path / "unlearn-scorecard.json")
