"""The content-addressed artifact cache: keys, atomic locked writes, warm reruns, killed runs."""

from __future__ import annotations

import importlib
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pytest_unlearn.cache import ArtifactCache, NoCache, make_key, model_digest

REPO = Path(__file__).resolve().parent.parent


# -- the cache alone ----------------------------------------------------------------------------
def test_key_covers_every_part_and_ignores_order_of_keywords():
    base = make_key("k", model="sha256:a", prompts=["p"], settings={"steps": 10})
    assert base == make_key("k", settings={"steps": 10}, prompts=["p"], model="sha256:a")
    assert base != make_key("k", model="sha256:b", prompts=["p"], settings={"steps": 10})
    assert base != make_key("k", model="sha256:a", prompts=["q"], settings={"steps": 10})
    assert base != make_key("k", model="sha256:a", prompts=["p"], settings={"steps": 11})
    assert base != make_key("other", model="sha256:a", prompts=["p"], settings={"steps": 10})


def test_code_version_is_part_of_the_key(monkeypatch):
    before = make_key("k", x=1)
    monkeypatch.setattr("pytest_unlearn.cache.CODE_VERSION", 999)
    assert make_key("k", x=1) != before


def test_model_digest_sees_tokenizer_files_too(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    (tmp_path / "tokenizer.json").write_text("{}")
    before = model_digest(tmp_path)
    (tmp_path / "tokenizer.json").write_text('{"changed": 1}')
    assert model_digest(tmp_path) != before


def test_get_or_create_produces_once_and_leaves_no_temporary_files(tmp_path):
    cache = ArtifactCache(tmp_path)
    calls = []
    for _ in range(2):
        value = cache.get_or_create_json("kind", "ab" * 32, lambda: calls.append(1) or {"x": [1.5, float("nan")]})
    assert value["x"][0] == 1.5 and len(calls) == 1 and (cache.hits, cache.misses) == (1, 1)
    files = [p.name for p in tmp_path.rglob("*") if p.is_file()]
    assert not [name for name in files if name.endswith(".tmp")], files
    assert (tmp_path / ".gitignore").read_text().endswith("*\n")


def test_no_cache_produces_every_time():
    cache = NoCache()
    calls = []
    for _ in range(2):
        assert cache.get_or_create_json("k", "0" * 64, lambda: calls.append(1) or [1, 2]) == [1, 2]
    assert len(calls) == 2


def _slow_producer(root: str, log: str) -> None:
    def produce() -> bytes:
        with open(log, "a") as handle:
            handle.write(f"{os.getpid()}\n")
        time.sleep(1.0)
        return b"made once"

    assert ArtifactCache(Path(root)).get_or_create("kind", "cd" * 32, ".bin", produce) == b"made once"


def test_concurrent_workers_produce_an_entry_once(tmp_path):
    """Two processes ask for the same key at once: one produces, the other waits, then reads."""
    log = tmp_path / "producers.log"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_slow_producer, args=(str(tmp_path / "cache"), str(log))) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert len(log.read_text().splitlines()) == 1


# -- warm reruns do not touch the model -----------------------------------------------------------
def evaluate_all(backend) -> dict[str, object]:
    results = {spec.id: backend.evaluate(spec) for spec in backend.manifest.checks}
    errors = {k: r.error for k, r in results.items() if r.error}
    assert not errors, errors
    return {k: (r.value, r.ci95) for k, r in results.items()}


def test_semeval_rerun_reuses_generations_losses_and_mmlu(tmp_path, semeval_models, monkeypatch):
    import torch

    from pytest_unlearn.evaluation import RunSettings, create_backend
    from pytest_unlearn.manifest import resolve_suite

    # The module the backend's lazy imports will find (sys.modules), not the package attribute:
    # after an in-process pytester run restores sys.modules, `from pytest_unlearn.semeval import
    # backend` can still give the module that run imported, and patching it would patch nothing.
    passes = importlib.import_module("pytest_unlearn.engines.causal_lm")
    torch.set_num_threads(1)
    calls: list[str] = []
    for name in ("generate_greedy", "document_nll", "mmlu_predict"):
        original = getattr(passes, name)
        monkeypatch.setattr(passes, name, lambda *a, _f=original, _n=name, **k: calls.append(_n) or _f(*a, **k))
    settings = RunSettings(
        model=semeval_models["retrained"],
        artifacts=tmp_path / "artifacts",
        device="cpu",
        max_new_tokens=8,
        cache_dir=tmp_path / "cache",
    )
    cold = create_backend(resolve_suite("semeval"), settings)
    first = evaluate_all(cold)
    # forget and retain are separate entries: a run stopped between them keeps the first.
    assert sorted(calls) == ["document_nll", "generate_greedy", "generate_greedy", "mmlu_predict"]
    calls.clear()
    warm = create_backend(resolve_suite("semeval"), settings)
    assert evaluate_all(warm) == first
    assert calls == [] and warm.model_loads == 0 and warm.cache.hits == 4
    assert warm.aggregates() == cold.aggregates()
    # Another generation length is another key: generated again.
    other = create_backend(resolve_suite("semeval"), RunSettings(**{**settings.__dict__, "max_new_tokens": 4}))
    other.ensure(("text",))
    assert calls.count("generate_greedy") == 2


def test_genmu_rerun_loads_no_pipeline_and_no_judge(tmp_path, genmu_models):
    import torch

    from pytest_unlearn.evaluation import RunSettings, create_backend
    from pytest_unlearn.manifest import resolve_suite

    torch.set_num_threads(1)
    settings = RunSettings(
        model=genmu_models["erased"],
        original_model=genmu_models["original"],
        clip_model=str(genmu_models["clip"]),
        artifacts=tmp_path / "artifacts",
        device="cpu",
        batch_size=32,
        cache_dir=tmp_path / "cache",
    )
    cold = create_backend(resolve_suite("genmu-mini"), settings)
    first = evaluate_all(cold)
    assert cold.generated_images > 0 and cold.pipeline_loads == 2
    warm = create_backend(resolve_suite("genmu-mini"), settings)
    assert evaluate_all(warm) == first
    assert warm.generated_images == 0 and warm.pipeline_loads == 0
    assert cold._judge is not None and warm._judge is None  # the judge's verdicts are cached too
    assert json.dumps(warm.aggregates()) == json.dumps(cold.aggregates())


# -- a run killed during generation -----------------------------------------------------------------
def genmu_command(models: dict[str, Path], *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--suite=genmu-mini",
        f"--model={models['erased']}",
        f"--setting=clip_model={models['clip']}",
        "--batch-size=4",  # many small batches: the kill lands between two of them
        "--scorecard=card.json",
        *args,
    ]


def comparable(card: dict) -> dict:
    card = dict(card)
    card.pop("timings")
    card.pop("created")
    # Which cache entries were read or written, and the --cache-dir/--no-cache options behind them,
    # differ between a resumed run and a --no-cache one by design (issue 23's provenance); every
    # value, verdict and model fingerprint must not.
    card.pop("cache_reuse")
    provenance = dict(card.pop("provenance"))
    provenance.pop("options")
    checks = {k: [{f: v for f, v in e.items() if f != "cache"} for e in es] for k, es in provenance["checks"].items()}
    card["provenance"] = {**provenance, "checks": checks}
    return card


def test_a_run_killed_during_generation_resumes_from_the_finished_batches(tmp_path, genmu_models):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cache = tmp_path / "cache"
    images = cache / "genmu-images"
    killed = subprocess.Popen(
        genmu_command(genmu_models, f"--cache-dir={cache}"),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while len(list(images.rglob("*.npz"))) < 2:
        assert killed.poll() is None, "the run finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    finished = {p.name for p in images.rglob("*.npz")}
    # What a killed run leaves: the card its first check marked running, never a result.
    killed_card = json.loads((tmp_path / "card.json").read_text())
    assert killed_card["status"] == "running" and killed_card["passed"] is False and killed_card["checks"] == []

    resumed = subprocess.run(
        [*genmu_command(genmu_models, f"--cache-dir={cache}"), "-p", "tests.test_cache_probe"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode in (0, 1), resumed.stdout + resumed.stderr
    resumed_card = json.loads((tmp_path / "card.json").read_text())
    probe = json.loads((tmp_path / "probe.json").read_text())
    # The image batches and the judge's verdicts on all of them (one entry, made after the kill).
    total = len(list(images.rglob("*.npz"))) + len(list((cache / "genmu-judge").rglob("*.json")))
    assert len(list((cache / "genmu-judge").rglob("*.json"))) == 1
    # Every batch finished before the kill was read back, only the others were generated.
    assert probe["hits"] >= len(finished) and probe["misses"] == total - probe["hits"], (probe, len(finished))
    (tmp_path / "card.json").unlink()

    fresh = subprocess.run(
        genmu_command(genmu_models, "--no-cache"), cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert fresh.returncode in (0, 1), fresh.stdout + fresh.stderr
    assert comparable(json.loads((tmp_path / "card.json").read_text())) == comparable(resumed_card)
