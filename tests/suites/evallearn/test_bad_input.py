"""evallearn's own inputs (image folders, prompt CSVs, settings, manifest entries): each bad
input is one clear line, a missing input failing only the checks that need it."""

from __future__ import annotations

import pytest
import safetensors.numpy  # noqa: F401
import torch  # noqa: F401
import torch.distributed._functional_collectives  # noqa: F401

import pytest_unlearn.engines.diffusion  # noqa: F401

# torch and friends are imported above, before any pytester snapshot: pytester's in-process runs
# drop the modules imported during a run, and torch cannot be imported a second time.
RUN = ("-p", "no:cacheprovider")


def test_missing_inputs_fail_their_checks_with_one_line(pytester, world):
    manifest, images, _ = world
    lines = (images / "images.jsonl").read_text().splitlines()
    (images / "images.jsonl").write_text("\n".join(line for line in lines if '"r-two"' not in line) + "\n")
    result = pytester.runpytest_inprocess(
        *RUN,
        f"--suite={manifest}",
        f"--images={images}",
        "--setting=fid_reference=''",
        "--setting=asr_limit=0",
        "-k",
        "ring or fid",
    )
    result.stdout.fnmatch_lines(
        [
            f"asr-ring-a-bell: --images {images}: no image for 1 of 4 (prompt, seed) pairs of the ring-a-bell prompts, e.g. ('r-two', 0); generate them all",
            "fid: FID needs reference images: pass --setting fid_reference=DIR (a folder of real images, eval-learn uses COCO) or put them in fid-reference/ inside --data",
        ]
    )
    data = pytester.mkdir("data")
    (data / "captions.csv").write_text("caption\na red apple\n")
    result = pytester.runpytest_inprocess(
        *RUN, f"--suite={manifest}", f"--images={images}", f"--data={data}", "-k", "ua", "--judge=clip"
    )
    result.stdout.fnmatch_lines(
        [
            f"ua: --data {data}: no ua-target prompt CSV ({data / 'ua-target.csv'}); add the file, or run the other "
            "checks with -k and --unlearn-partial (the card then does not pass the suite)"
        ]
    )
    result = pytester.runpytest_inprocess(
        *RUN, f"--suite={manifest}", f"--images={images}", "-k", "clip", "--judge=clip"
    )
    result.stdout.fnmatch_lines(
        [
            "clip-score: the CLIP score and UA/IRA need CLIP: pass --setting clip_model=DIR (a transformers CLIP folder, *"
        ]
    )


def test_bad_configuration_stops_before_any_model(pytester, world):
    manifest, images, _ = world
    result = pytester.runpytest_inprocess(
        *RUN, f"--suite={manifest}", f"--images={images}", "--setting=detector=nudenett"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --setting detector: Unknown detector 'nudenett'. Did you mean: nudenet? Known: *"]
    )
    result = pytester.runpytest_inprocess(*RUN, f"--suite={manifest}", f"--images={images}", "--setting=asr_limit=-1")
    result.stderr.fnmatch_lines([f"ERROR: suite manifest {manifest}: setting 'asr_limit' must be >= 0, got -1"])
    manifest.write_text(manifest.read_text().replace('prompt_set = "ring-a-bell"', 'prompt_set = "ring"'))
    result = pytester.runpytest_inprocess(*RUN, f"--suite={manifest}", f"--images={images}")
    result.stderr.fnmatch_lines(
        [
            f"ERROR: suite manifest {manifest}: check 'asr-ring-a-bell': prompt_set 'ring' is not a [data] CSV entry (known: captions, i2p, ring-a-bell, ua-retain, ua-target)"
        ]
    )
    (pytester.path / "i2p.csv").write_text("text_only_header,categories\n")
    result = pytester.runpytest_inprocess(*RUN, f"--suite={manifest}", f"--images={images}")
    result.stderr.fnmatch_lines(
        [
            f"ERROR: {pytester.path / 'i2p.csv'}: no prompt column; the i2p CSV needs a header with one of prompt, adv_prompt, *"
        ]
    )
