"""The open_clip judge, through the real plugin, on the genmu miniature world.

The world's transformers CLIP judge is exported weight for weight to an open_clip model config
and weights file (fixtures/open_clip_judge.py), then ``--suite genmu-mini`` runs once with each
judge on the same images. open_clip needs torchvision, which must not be installed next to our
CPU torch (fixtures/open_clip_env.py): the open_clip runs happen in a subprocess that puts
``.open-clip-env/`` on ``PYTHONPATH``. Locally the tests skip without that folder; in CI
(``CI`` set) they fail, since ``.ci/run`` creates it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures import open_clip_env
from tests.genmu_helpers import write_world

#: Metrics that count the judge's verdicts (the others are CLIP scores and the weight change).
VERDICT_METRICS = ("genmu.forget", "genmu.retain", "genmu.adjacent", "genmu.err")


@pytest.fixture(scope="session")
def env_with_open_clip() -> dict[str, str]:
    """The environment of a subprocess that sees ``.open-clip-env``; tests ask for it first, so
    that they skip before building the world."""
    if not open_clip_env.ready():
        message = f"no open_clip test environment {open_clip_env.ENV_DIR}: run python -m fixtures.open_clip_env"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI is set, and .ci/run creates it)")
        pytest.skip(message)
    return open_clip_env.subprocess_env(OMP_NUM_THREADS="1")


@pytest.fixture(scope="module")
def open_clip_spec(genmu_models: dict[str, Path]) -> str:
    from fixtures.open_clip_judge import build, spec

    return spec(build(genmu_models["clip"]))


def run_subprocess(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def first_error(card_path: Path) -> str:
    """The error of the first check, as the scorecard and the failure line give it."""
    check = json.loads(card_path.read_text())["checks"][0]
    assert check["passed"] is False
    return check["error"]


def index(card_path: Path, which: str) -> list[dict]:
    card = json.loads(card_path.read_text())
    return [json.loads(line) for line in (card_path.parent / card["artifacts"][f"images_{which}"]).open()]


@pytest.mark.slow
def test_open_clip_judge_reaches_the_transformers_judges_verdicts(
    env_with_open_clip, pytester, genmu_models, open_clip_spec
):
    """Same weights, two libraries: every image gets the same verdict, every check the same outcome.

    The two runs share an artifact cache: the second generates no image (they are keyed by the
    pipelines, not the judge) but runs its own judge (a judge's verdicts are keyed by its spec).
    """
    common = [
        "--suite=genmu-mini",
        f"--model={genmu_models['erased']}",
        f"--original-model={genmu_models['original']}",
        "--batch-size=32",
        "--setting=images_per_prompt=1",  # 30 images per model, the same pixels for both judges
        f"--cache-dir={pytester.path / 'cache'}",
    ]
    transformers_run = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", *common, f"--setting=clip_model={genmu_models['clip']}", "--scorecard=hf.json"
    )
    # The verdicts are compared below, whatever they are (OK, or checks failed).
    assert transformers_run.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), transformers_run.stdout.str()
    judged = list((pytester.path / "cache" / "genmu-judge").rglob("*.json"))

    run = run_subprocess(
        pytester.path, env_with_open_clip, *common, f"--setting=clip_model={open_clip_spec}", "--scorecard=oc.json"
    )
    assert run.returncode == transformers_run.ret, run.stdout + run.stderr
    assert len(list((pytester.path / "cache" / "genmu-judge").rglob("*.json"))) == 2 * len(judged)

    hf, oc = (json.loads((pytester.path / f"{name}.json").read_text()) for name in ("hf", "oc"))
    assert oc["settings"]["clip_model"] == open_clip_spec
    assert oc["environment"]["packages"]["open_clip_torch"] == "3.3.0"
    assert hf["environment"]["packages"].get("open_clip_torch") is None  # this process never sees the folder
    assert hf["timings"]["generate_unlearned"] > 0 and hf["timings"]["generate_original"] > 0
    assert oc["timings"]["generate_unlearned"] == oc["timings"]["generate_original"] == 0  # all from the cache
    hf_checks, oc_checks = ({c["id"]: c for c in card["checks"]} for card in (hf, oc))
    assert hf_checks.keys() == oc_checks.keys()
    for check, expected in hf_checks.items():
        assert oc_checks[check]["passed"] == expected["passed"], check
        if expected["metric"] in VERDICT_METRICS:  # counts of verdicts: equal, not close
            assert oc_checks[check]["value"] == expected["value"], check
        else:  # CLIP scores (100·cos), float32 sums in two libraries; the weight change
            assert oc_checks[check]["value"] == pytest.approx(expected["value"], rel=0, abs=1e-4), check

    for which in ("unlearned", "original"):
        hf_images, oc_images = index(pytester.path / "hf.json", which), index(pytester.path / "oc.json", which)
        assert [r["prompt"] for r in oc_images] == [r["prompt"] for r in hf_images] and len(hf_images) == 30
        assert [r["judge"]["predicted"] for r in oc_images] == [r["judge"]["predicted"] for r in hf_images]
        assert len({r["judge"]["predicted"] for r in hf_images}) >= 6  # not one answer for everything
        for a, b in zip(hf_images, oc_images):
            assert b["judge"]["clip_score"] == pytest.approx(a["judge"]["clip_score"], rel=0, abs=1e-4)


INNER_TEST = """
import json, pytest
from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.engines.judges import clip_judge

@pytest.mark.parametrize(("spec", "expected"), json.load(open("cases.json")))
def test_message(spec, expected):
    with pytest.raises(UnlearnError) as info:
        clip_judge(spec, "cpu")
    assert str(info.value).startswith(expected), str(info.value)

def test_a_random_clip_exports_weight_for_weight(tmp_path):
    # The world's judge has an identity text projection: a random one checks its transpose too.
    import open_clip, torch
    from transformers import CLIPTokenizer
    from fixtures import genmu_world, open_clip_judge as oj

    genmu_world.write_tokenizer(tmp_path)
    tokenizer = CLIPTokenizer.from_pretrained(tmp_path)
    torch.manual_seed(0)
    reference = genmu_world._new_clip(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id).eval()
    reference.save_pretrained(tmp_path)
    (tmp_path / "oc").mkdir()
    oj.export(tmp_path, tmp_path / "oc")
    open_clip.add_model_config(tmp_path / "oc" / oj.CONFIG_FILE)
    model = open_clip.create_model(oj.MODEL_NAME, pretrained=str(tmp_path / "oc" / oj.WEIGHTS_FILE)).eval()
    texts = genmu_world.prompts("Golf Ball") + genmu_world.prompts("Juggling") + ["x " * 100]
    hf = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    ids = open_clip.get_tokenizer(oj.MODEL_NAME)(texts)
    for row, mask, ours in zip(hf["input_ids"], hf["attention_mask"], ids):
        assert ours[: int(mask.sum())].tolist() == row[mask.bool()].tolist()
    pixels = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        images = reference.get_image_features(pixel_values=pixels)
        words = reference.get_text_features(**hf)
        torch.testing.assert_close(model.encode_image(pixels), getattr(images, "pooler_output", images))
        torch.testing.assert_close(model.encode_text(ids), getattr(words, "pooler_output", words))
        assert model.logit_scale.item() == reference.logit_scale.item()
"""


@pytest.mark.slow
def test_open_clip_errors_and_the_export_of_a_random_clip(env_with_open_clip, pytester, genmu_models, open_clip_spec):
    """With open_clip importable: a model name it does not know, weights that do not fit the config.

    One subprocess in the open_clip environment asserts both messages (the plugin's turning of
    such errors into failed checks is tested on the colour world) and the exporter's mapping on
    a CLIP whose every weight is random.
    """
    config = open_clip_spec.split(":")[1]
    wrong = genmu_models["clip"] / "model.safetensors"  # transformers' names, not open_clip's
    cases = [
        (
            f"open_clip:tiny-clip:{wrong}",
            f"--setting clip_model=open_clip:tiny-clip:{wrong}: open_clip knows no model 'tiny-clip'; pass a model config "
            "JSON as MODEL, or register it with open_clip.add_model_config in a conftest.py",
        ),
        (
            f"open_clip:{config}:{wrong}",
            f"--setting clip_model=open_clip:{config}:{wrong}: cannot load open_clip genmu-mini-clip from {wrong} "
            '(RuntimeError: Error(s) in loading state_dict for CLIP: Missing key(s) in state_dict: "positional_embedding"',
        ),
    ]
    (pytester.path / "cases.json").write_text(json.dumps(cases))
    pytester.makepyfile(test_messages=INNER_TEST)
    run = run_subprocess(pytester.path, env_with_open_clip, "-q", "test_messages.py")
    assert run.returncode == 0 and "3 passed" in run.stdout, run.stdout + run.stderr


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("open_clip:ViT-B-32", "--setting clip_model=open_clip:ViT-B-32: expected open_clip:MODEL:WEIGHTS_FILE"),
        (
            "open_clip:ViT-B-32:nowhere.pt",
            "--setting clip_model=open_clip:ViT-B-32:nowhere.pt: no weights file nowhere.pt",
        ),
        (
            "open_clip:tiny.json:weights.safetensors",
            "--setting clip_model=open_clip:tiny.json:weights.safetensors: no model config file tiny.json",
        ),
    ],
    ids=["form", "weights", "config"],
)
def test_open_clip_spec_errors_are_usage_errors(pytester, spec, message):
    """Checked before any image is made, without importing open_clip."""
    manifest, images = write_world(pytester.path)
    (pytester.path / "weights.safetensors").write_bytes(b"")
    result = pytester.runpytest_inprocess(
        "-p",
        "no:cacheprovider",
        f"--suite={manifest}",
        f"--images={images}",
        "--judge=clip",
        f"--setting=clip_model={spec}",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in result.stderr.lines if line.startswith("ERROR: ")] == [f"ERROR: {message}"]


@pytest.mark.skipif(importlib.util.find_spec("open_clip") is not None, reason="open_clip is installed here")
def test_open_clip_judge_without_open_clip_says_what_to_install(pytester):
    """The normal install has no open_clip (nor torchvision): the judge says so in one line."""
    manifest, images = write_world(pytester.path)
    (pytester.path / "w.safetensors").write_bytes(b"")
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", f"--suite={manifest}", f"--images={images}", "--judge=clip",
        "--setting=clip_model=open_clip:ViT-B-32:w.safetensors", "--scorecard=card.json",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert first_error(pytester.path / "card.json") == (
        "--setting clip_model=open_clip:ViT-B-32:w.safetensors: cannot import open_clip (ModuleNotFoundError: No module "
        "named 'open_clip'); pip install 'pytest-unlearn[open-clip]' with a torchvision built for your torch"
    )
