"""``--stress relearn`` of a diffusion pipeline: the UNet fine-tuned on images with the denoising
loss (Suriyakumar et al. 2024), checked against a hand-written loss on the Genμ world, its data
options and their one-line refusals, and one run through the plugin."""

from __future__ import annotations

import fnmatch
import json
import math
import random
from pathlib import Path

import pytest

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.stress import parse_stress, read_imagefolder

FORGET = [f"golf-ball-forget-{kind}" for kind in ("direct", "indirect", "adversarial")]


def _examples() -> list[tuple[str, str, object]]:
    """Three renders of Golf Ball's adjacent concepts with their direct prompts (32 px, the world's size)."""
    from fixtures.genmu_world import prompts, render

    return [
        (f"{concept}/{seed}", prompts(concept, "direct")[0], render(concept, seed))
        for concept, seed in (("Tennis Ball", 0), ("Juggling", 0), ("Tennis Ball", 1))
    ]


def _files(folder: Path) -> dict[str, bytes]:
    return {file.name: file.read_bytes() for file in sorted(folder.iterdir()) if file.is_file()}


def _hand_loss(source: Path, examples: list, seed: int, batch: int) -> float:
    """The first step's loss written out: the batch relearn_unet draws first (a seeded shuffle),
    pixels in [-1, 1], latents z = VAE sample × scaling factor, then one seeded generator's noise ε
    and timesteps t; x_t = √ᾱ_t·z + √(1−ᾱ_t)·ε, target v = √ᾱ_t·ε − √(1−ᾱ_t)·z (the world's UNet
    predicts v), loss = mean((UNet(x_t, t, text states) − v)²)."""
    import numpy as np
    import torch
    from diffusers import DDPMScheduler

    from pytest_unlearn.engines.diffusion import load_pipeline

    pipe = load_pipeline(source, device="cpu", dtype="float32", allow_pickle=False)
    assert pipe.scheduler.config.prediction_type == "v_prediction"
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    picked = [examples[i] for i in order[:batch]]
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        pixels = torch.stack(
            [torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1) for *_, image in picked]
        )
        z = pipe.vae.encode(pixels).latent_dist.sample(generator=generator) * pipe.vae.config.scaling_factor
        ids = pipe.tokenizer(
            [caption for _, caption, _ in picked],
            padding="max_length",
            max_length=pipe.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids
        states = pipe.text_encoder(ids)[0]
        noise = torch.randn(z.shape, generator=generator)
        t = torch.randint(0, 1000, (len(picked),), generator=generator)
        # The schedule's table only; the noising, the target and the loss are written here.
        alpha_bar = DDPMScheduler.from_config(pipe.scheduler.config).alphas_cumprod[t].view(-1, 1, 1, 1)
        x_t = alpha_bar.sqrt() * z + (1 - alpha_bar).sqrt() * noise
        v = alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * z
        return float(((pipe.unet(x_t, t, states).sample - v) ** 2).mean())


@pytest.mark.slow
def test_relearned_pipeline_is_the_denoising_loss_seeded_and_unet_only(tmp_path, genmu_models):
    from pytest_unlearn.engines.stress import stressed_copy

    source, examples = genmu_models["erased"], _examples()
    stress = parse_stress("relearn:steps=2,batch=2,lr=1e-3,data=retain,seed=3")
    first = stressed_copy(source, stress, tmp_path / "a", images=examples)
    second = stressed_copy(source, stress, tmp_path / "b", images=examples)
    a, b = Path(first["path"]), Path(second["path"])
    # The same seed, the same bytes.
    assert first["losses"] == second["losses"] and len(first["losses"]) == 2
    assert all(math.isfinite(v) for v in first["losses"])
    assert _files(a / "unet") == _files(b / "unet")
    # Only the UNet trains: the text encoder and the VAE are the source's files byte for byte.
    for component in ("text_encoder", "vae", "tokenizer", "scheduler"):
        assert _files(a / component) == _files(source / component), component
    assert _files(a / "unet") != _files(source / "unet")
    assert sorted(p.name for p in a.iterdir()) == sorted(
        p.name for p in source.iterdir() if p.name != "BUILD_INFO.json"
    )
    # The first recorded loss is the hand-written denoising loss of the first batch.
    assert abs(first["losses"][0] - _hand_loss(source, examples, seed=3, batch=2)) < 1e-6
    # The images the two steps of two reached, in first-use order (the seeded shuffle: all three).
    order = list(range(len(examples)))
    random.Random(3).shuffle(order)
    assert first["images"] == [{"id": examples[i][0], "text": examples[i][1]} for i in order]
    assert first["images_offered"] == 3
    assert first["components"] == {"unet": "fine-tuned"} and first["library"]["diffusers"]
    assert first["seconds"] > 0 and first["peak_rss_mib"] > 0
    # Another seed (with LoRA, merged back): another UNet with the same tensor names.
    from pytest_unlearn.engines.diffusion import load_pipeline
    from tests.test_stress import _component_weights

    other = stressed_copy(
        source,
        parse_stress("relearn:steps=2,batch=2,lr=1e-3,data=retain,seed=4,lora=true"),
        tmp_path / "a",
        images=examples,
    )
    mine, theirs = _component_weights(a / "unet"), _component_weights(Path(other["path"]) / "unet")
    assert mine.keys() == theirs.keys() == _component_weights(source / "unet").keys()
    assert any(not (mine[name] == theirs[name]).all() for name in mine)
    assert other["library"]["peft"]
    load_pipeline(Path(other["path"]), device="cpu", dtype="float32", allow_pickle=False)  # strict: loads whole
    # A rerun finds the copy: nothing is trained again.
    assert stressed_copy(source, stress, tmp_path / "a", images=examples)["reused"] is True


def _folder(tmp_path: Path, lines: list[str], images: dict[str, bytes] | None = None) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    for name, data in (images or {}).items():
        (folder / name).write_bytes(data)
    return folder


def _png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_an_imagefolder_is_read_in_order(tmp_path):
    folder = _folder(
        tmp_path,
        ['{"file_name": "b.png", "text": "a red square"}', "", '{"file_name": "a.png", "text": "red"}'],
        {"a.png": _png(), "b.png": _png()},
    )
    examples = read_imagefolder(folder)
    assert [(i, text) for i, text, _ in examples] == [("b.png", "a red square"), ("a.png", "red")]
    assert examples[0][2].size == (8, 8) and examples[0][2].mode == "RGB"


@pytest.mark.parametrize(
    ("lines", "images", "line"),
    [
        (None, None, "--stress relearn:data=*images: no such folder; a diffusion pipeline relearns on an imagefolder*"),
        ([], None, "--stress relearn:data=*images: *metadata.jsonl lists no images"),
        (["{oops"], None, "--stress relearn:data=*metadata.jsonl:1: not JSON*"),
        (['{"file_name": "a.png"}'], None, '*metadata.jsonl:1: each line needs non-empty "file_name" and "text" strings'),
        (['{"file_name": "../x.png", "text": "t"}'], None, "*metadata.jsonl:1: no image '../x.png' in *"),
        (['{"file_name": "a.png", "text": "t"}'], {"a.png": b"not a png"}, "*metadata.jsonl:1: cannot read the image *a.png*"),
    ],
)  # fmt: skip
def test_a_bad_imagefolder_is_one_line_naming_the_file(tmp_path, lines, images, line):
    folder = tmp_path / "images" if lines is None else _folder(tmp_path, lines, images)
    with pytest.raises(UnlearnError) as caught:
        read_imagefolder(folder)
    assert fnmatch.fnmatch(str(caught.value), line) and "\n" not in str(caught.value), str(caught.value)


def test_an_imagefolder_needs_its_metadata(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(UnlearnError, match=r"no metadata.jsonl in the folder; write one line per image"):
        read_imagefolder(tmp_path / "images")


# -- through the plugin ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def genmu_stress_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("genmu-stress-cache")


def _run(pytester: pytest.Pytester, genmu_models: dict[str, Path], *args: str) -> tuple[pytest.RunResult, dict]:
    from fixtures.figures import GENMU_ARGS

    result = pytester.runpytest_inprocess(
        "-p",
        "no:cacheprovider",
        *GENMU_ARGS,
        f"--setting=clip_model={genmu_models['clip']}",
        f"--model={genmu_models['erased']}",
        "--scorecard=card.json",
        *args,
    )
    card = pytester.path / "card.json"
    return result, json.loads(card.read_text()) if card.exists() else {}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "line"),
    [
        (("--stress=relearn",), "--stress relearn:data=forget-half (relearn's default): --model * is a diffusion pipeline and the diffusion suites have no forget image set to train on; pass relearn:data=retain *"),
        (("--stress=relearn:data=retain",), "--stress relearn:data=retain fine-tunes a diffusion pipeline on --original-model's images of the suite's retain prompts: pass --original-model PATH*"),
        (("--stress=relearn:data=nowhere",), "--stress relearn:data=nowhere: no such folder; a diffusion pipeline relearns on an imagefolder*"),
    ],
)  # fmt: skip
def test_pipeline_relearn_misuse_is_one_line(pytester, genmu_models, args, line):
    result, _ = _run(pytester, genmu_models, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    output = result.stdout.lines + result.stderr.lines
    assert len([text for text in output if fnmatch.fnmatch(text, f"*{line}")]) == 1, output
    assert "Traceback" not in "\n".join(output)


@pytest.mark.slow
def test_erased_model_comes_back_when_relearned_on_retain_images(pytester, genmu_models, genmu_stress_cache):
    """Concept resurgence (Suriyakumar et al. 2024) on the Genμ world: the world's ESD-x model
    passes every plain check, and 100 steps on the original's images of the *other* concepts
    bring golf balls back while the copy still draws the other concepts (docs/stress.md, "Genμ")."""
    from fixtures.figures import GENMU_STRESS, readme_block, stress_table

    result, card = _run(
        pytester, genmu_models, f"--original-model={genmu_models['original']}", GENMU_STRESS,
        f"--cache-dir={genmu_stress_cache}",
    )  # fmt: skip
    checks = {c["id"]: c for c in card["checks"]}
    assert all(c["passed"] for i, c in checks.items() if "@" not in i), {i: c["value"] for i, c in checks.items()}
    # Every forget check has its @relearn sibling with the same threshold; retain checks have none.
    for base in FORGET:
        sibling = checks[f"{base}@relearn"]
        assert sibling["threshold"] == checks[base]["threshold"] and not sibling["passed"], sibling
        assert sibling["value"] < checks[base]["value"]
    assert not any(c.endswith("-retain@relearn") for c in checks)
    recovery = checks["recovery@relearn"]
    assert recovery["value"] > 0.4 and not recovery["passed"]
    # Not a broken copy drawing golf balls everywhere: the other concepts are still recognised and
    # the captions still match (their bounds 0.7 and 60); adjacent concepts suffer (docs).
    retained = {row["check"]: row["stressed"] for row in recovery["details"]["retain"]}
    assert retained["golf-ball-retain"] >= 0.7 and retained["clip-score-retain"] >= 60, retained
    section = card["stress"]["relearn"]
    assert section["transform"]["data"] == "retain" and section["transform"]["steps"] == 100
    copy = section["copy"]
    assert len(copy["losses"]) == 100 and all(math.isfinite(v) for v in copy["losses"])
    assert copy["components"] == {"unet": "fine-tuned"} and copy["library"]["diffusers"]
    trained = {image["text"] for image in copy["images"]}
    assert trained and not any("golf" in text.lower() for text in trained)  # the retain side only
    assert Path(copy["path"], "model_index.json").is_file() and set(section["checks"]) == set(FORGET)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert stress_table({"erased": card}) == readme_block("stress-genmu"), (
        "docs/stress.md's figures drifted: python -m fixtures.figures --write stress-genmu"
    )


# -- evallearn: the same relearn through another diffusion suite --------------------------------------
#: evallearn-mini on the Genμ world, shrunk to a few images per set: the wiring is under test, not the
#: figures (tests/suites/evallearn/test_mini_world.py scores the whole world).
EVALLEARN_ARGS = (
    "--suite=evallearn-mini",
    "--batch-size=32",
    "--setting=images_per_prompt=1",
    "--setting=ua_limit=3",
    "--setting=caption_limit=3",
)


def _evallearn_run(
    pytester: pytest.Pytester, genmu_models: dict[str, Path], cache: Path, *args: str
) -> tuple[pytest.RunResult, dict]:
    result = pytester.runpytest_inprocess(
        "-p",
        "no:cacheprovider",
        *EVALLEARN_ARGS,
        f"--setting=clip_model={genmu_models['clip']}",
        f"--model={genmu_models['erased']}",
        f"--cache-dir={cache}",
        "--scorecard=card.json",
        *args,
    )
    card = pytester.path / "card.json"
    assert card.is_file(), result.stdout.str() + result.stderr.str()
    return result, json.loads(card.read_text())


def _relearned(card: dict, result: pytest.RunResult) -> dict:
    """The run's relearn record, after checking the siblings and the exit code every run shares:
    ua (evallearn-mini's one forget check) has its @relearn sibling at the same threshold, the
    retain-side checks have none, and the run fails exactly when a check does."""
    checks = {c["id"]: c for c in card["checks"]}
    sibling = checks["ua@relearn"]
    assert sibling["threshold"] == checks["ua"]["threshold"] and sibling["value"] is not None, sibling
    assert not any(c.endswith("@relearn") for c in checks if c.split("@")[0] in ("clip-score", "fid", "ira"))
    assert result.ret == (0 if all(c["passed"] for c in card["checks"]) else pytest.ExitCode.TESTS_FAILED)
    section = card["stress"]["relearn"]
    assert set(section["checks"]) == {"ua"}
    copy = section["copy"]
    assert len(copy["losses"]) == 2 and all(math.isfinite(v) for v in copy["losses"])
    assert copy["components"] == {"unet": "fine-tuned"} and Path(copy["path"], "model_index.json").is_file()
    return section


@pytest.mark.slow
def test_evallearn_relearn_on_retain_without_the_original_is_one_line(pytester, genmu_models):
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", *EVALLEARN_ARGS, f"--model={genmu_models['erased']}", "--stress=relearn:data=retain"
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    line = "--stress relearn:data=retain fine-tunes a diffusion pipeline on --original-model's images of the suite's "
    output = result.stdout.lines + result.stderr.lines
    assert len([text for text in output if line in text]) == 1 and "Traceback" not in "\n".join(output), output
    assert not (pytester.path / "unlearn-scorecard.json").exists()  # refused before any check ran


@pytest.mark.slow
def test_evallearn_relearned_on_an_imagefolder_through_the_plugin(pytester, genmu_models, genmu_stress_cache):
    from fixtures.genmu_world import prompts, render

    # Four renders of Golf Ball's neighbour with their captions: the paper's adjacent-concept photos.
    folder = pytester.path / "photos"
    folder.mkdir()
    lines = []
    for seed in range(4):
        name = f"tennis-ball-{seed}.png"
        render("Tennis Ball", seed).save(folder / name)
        lines.append(json.dumps({"file_name": name, "text": prompts("Tennis Ball", "direct")[0]}))
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    result, card = _evallearn_run(
        pytester, genmu_models, genmu_stress_cache, f"--stress=relearn:steps=2,batch=2,lr=1e-4,data={folder}"
    )
    section = _relearned(card, result)
    assert section["transform"]["data"] == str(folder)
    # The folder's four files are what the UNet was trained on (two steps of two reach all four).
    assert sorted(image["id"] for image in section["copy"]["images"]) == [f"tennis-ball-{n}.png" for n in range(4)]
    assert section["copy"]["images_offered"] == 4
    assert "recovery@relearn" not in {c["id"] for c in card["checks"]}  # no --original-model: no gap to measure


@pytest.mark.slow
def test_evallearn_relearned_on_retain_images_through_the_plugin(pytester, genmu_models, genmu_stress_cache):
    import csv

    from fixtures.evallearn_world import DATA_DIR

    result, card = _evallearn_run(
        pytester,
        genmu_models,
        genmu_stress_cache,
        f"--original-model={genmu_models['original']}",
        "--stress=relearn:steps=2,batch=4,lr=1e-4,data=retain",
    )
    section = _relearned(card, result)
    assert section["transform"]["data"] == "retain" and "recovery@relearn" in {c["id"] for c in card["checks"]}

    def first(name: str, limit: int) -> list[str]:
        with (DATA_DIR / f"{name}.csv").open(newline="") as handle:
            return [row[0] for row in list(csv.reader(handle))[1:]][:limit]

    # The retain side as the checks draw it (caption_limit=3, ua_limit=3, one image per prompt at
    # the suite's seed 0), and none of the target concept's prompts.
    trained = section["copy"]["images"]
    assert section["copy"]["images_offered"] == 6  # two steps of four reach all six
    assert sorted(image["text"] for image in trained) == sorted(first("captions", 3) + first("ua-retain", 3))
    assert all(image["id"] == f"{image['text']} (seed 0)" for image in trained)
    assert not set(first("ua-target", 0)) & {image["text"] for image in trained}
    assert card["model"]["original"]["path"] == str(genmu_models["original"])
