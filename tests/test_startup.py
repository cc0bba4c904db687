"""Start-up and noise (issue 26): a pytest run from the repo root does not pay for the
diffusion stack before a usage error, and third-party warnings that are not the user's concern
never reach a check's captured output."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_unlearn.noise import is_noise
from tests.conftest import REPO

HEAVY = ("torch", "diffusers", "transformers", "scipy", "sklearn", "hypothesis.core")


def _usage_error_seconds(cwd: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "--no-such-flag", "-p", "no:cacheprovider"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    assert completed.returncode == pytest.ExitCode.USAGE_ERROR, completed.stderr[-2000:]
    assert "unrecognized arguments: --no-such-flag" in completed.stderr
    return elapsed


def test_a_usage_error_from_the_repo_root_is_within_twice_the_time_outside(tmp_path):
    # The fastest of three of each: the machine is shared, the minimum is the honest cost.
    outside = min(_usage_error_seconds(tmp_path) for _ in range(3))
    inside = min(_usage_error_seconds(REPO) for _ in range(3))
    assert inside <= 2 * outside, f"repo root {inside:.2f} s, outside {outside:.2f} s"


def test_a_usage_error_from_the_repo_root_imports_nothing_heavy():
    """The same, without a clock: which modules the repo's conftest files pulled in."""
    script = (
        "import sys, pytest\n"
        "code = pytest.main(['--no-such-flag', '-p', 'no:cacheprovider'])\n"
        f"print('HEAVY', sorted(m for m in {HEAVY!r} if m in sys.modules), int(code))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert "HEAVY [] 4" in completed.stdout, completed.stdout[-2000:] + completed.stderr[-2000:]


def test_the_noise_filter_drops_only_the_named_messages():
    assert is_noise(
        "`CLIPImageProcessor` requires torchvision (not installed); falling back to `CLIPImageProcessorPil`"
    )
    assert is_noise("`SiglipImageProcessor` requires torchvision (not installed); falling back")
    assert is_noise("`torch_dtype` is deprecated! Use `dtype` instead!")
    assert not is_noise("Some weights of the model checkpoint were not used")
    assert not is_noise("torchvision is great")
    assert is_noise(
        "Cannot initialize model with low cpu memory usage because `accelerate` was not found in the environment."
    )


@pytest.mark.slow
def test_third_party_warnings_stay_out_of_a_checks_captured_output(pytester, genmu_models):
    """A fresh process (transformers says each of these once per process): the genmu world's
    original model fails its forget checks; their reports carry no third-party warnings."""
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--suite=genmu-mini", f"--setting=clip_model={genmu_models['clip']}",
        f"--model={genmu_models['original']}", "--no-cache", "-k", "golf-ball-forget-direct", "-rA",
        "--setting=images_per_prompt=1", "--setting=steps=2",  # the warnings, not the images
        timeout=600,
    )  # fmt: skip
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, output[-3000:]
    assert "golf-ball-forget-direct" in output
    assert "requires torchvision" not in output
    assert "torch_dtype" not in output
    assert "because `accelerate` was not found" not in output
