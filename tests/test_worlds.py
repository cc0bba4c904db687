"""The miniature worlds are committed and match their builders (fixtures/worlds.py says why)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fixtures import worlds
from fixtures.cache import complete


@pytest.mark.parametrize("name", sorted(worlds.WORLDS))
def test_the_committed_world_matches_its_builder(name):
    found = worlds.committed(name)
    expected = sorted(p.name for p in worlds.committed_paths(name).values())
    assert found is not None, (
        f"fixtures/worlds/{name} is not the world of the current builder (expected {expected}): "
        f"run python -m fixtures.build {name} --commit and git add fixtures/worlds/{name}"
    )
    folder = worlds.COMMITTED / name
    info = json.loads((folder / "WORLD.json").read_text())
    assert info["models"] == expected
    # Nothing stale beside it: exactly the current models (and the record of where they were built).
    assert sorted(p.name for p in folder.iterdir()) == sorted([*expected, "WORLD.json"])
    assert all(complete(p) for p in found.values())


def test_local_builds_are_cached_per_machine_type():
    import torch

    tag = worlds.machine_tag()
    assert tag.endswith("-" + torch.backends.cpu.get_cpu_capability().lower())
    assert worlds.local_cache_dir("semeval") == worlds.world_module("semeval").default_cache_dir() / tag


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("UNLEARN_REBUILD_WORLDS") != "1",
    reason="rebuilds the SemEval world from scratch (~3 min): set UNLEARN_REBUILD_WORLDS=1",
)
def test_a_local_rebuild_gives_every_verdict_of_the_committed_world(pytester, tmp_path):
    import numpy as np
    from safetensors.numpy import load_file

    from fixtures import semeval_world
    from fixtures.figures import SEMEVAL_ARGS

    rebuilt = semeval_world.build_models(tmp_path / "rebuilt")
    committed = worlds.committed("semeval")
    assert committed is not None
    worst = 0.0
    for name in rebuilt:
        a = load_file(Path(rebuilt[name], "model.safetensors"))
        b = load_file(Path(committed[name], "model.safetensors"))
        worst = max(worst, *(float(np.abs(a[k].astype(np.float64) - b[k]).max()) for k in a))

        def verdicts(model: Path) -> dict[str, bool]:
            pytester.runpytest_inprocess("-p", "no:cacheprovider", f"--model={model}", *SEMEVAL_ARGS, "--no-cache")
            card = json.loads((pytester.path / "unlearn-scorecard.json").read_text())
            return {c["id"]: c["passed"] for c in card["checks"]}

        assert verdicts(rebuilt[name]) == verdicts(committed[name]), name
    print(f"largest weight difference between the rebuilt and the committed world: {worst:.3g}")
    assert worst < 1.0  # same training, same data: a drift, not another model
