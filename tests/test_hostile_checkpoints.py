"""Checkpoints are someone else's files: loading one must never run its code.

Only safetensors load by default; pickle files (``.bin``, ``.pt``, ``.pth``, ``.ckpt``) need
``--allow-pickle`` and then load with ``weights_only=True``; ``trust_remote_code`` is never on.
The malicious checkpoints below would create a marker file when unpickled.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
from pathlib import Path

# The inner runs load models: their C extensions must be imported by this process first.
import diffusers  # noqa: F401
import pytest
import torch
import transformers.models.olmo.modeling_olmo  # noqa: F401

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.loading import PICKLE_SUFFIXES, inspect_model_folder
from tests.conftest import REPO
from tests.tiny_models import write_tiny_olmo, write_tiny_sd

torch.set_num_threads(1)


class OpensAFile:
    """Unpickling calls ``open(marker, "w")``: the file appearing proves code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


class RunsAShellCommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


PAYLOADS = {"open": OpensAFile, "os.system": RunsAShellCommand}


def malicious_state_dict(payload: type, marker: Path) -> dict:
    # A real-looking state dict with one poisoned entry.
    return {"model.embed_tokens.weight": torch.zeros(2, 2), "lm_head.weight": payload(marker)}


@pytest.fixture(scope="module")
def olmo_template(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("olmo") / "model"
    write_tiny_olmo(folder)
    return folder


def pickle_only_model(template: Path, dest: Path, state: dict, name: str = "pytorch_model.bin") -> Path:
    """The template's config and tokenizer with ``state`` pickled as its only weight file."""
    shutil.copytree(template, dest, ignore=shutil.ignore_patterns("*.safetensors"))
    torch.save(state, dest / name)
    return dest


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # These runs score one check of the suite (-k) on purpose: --unlearn-partial.
    return pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--suite", "semeval", "--unlearn-partial", *args, no_reraise_ctrlc=True
    )


@pytest.mark.parametrize("payload", PAYLOADS)
def test_malicious_pickle_is_refused_without_allow_pickle(pytester, olmo_template, tmp_path, payload):
    marker = tmp_path / "PWNED"
    model = pickle_only_model(olmo_template, tmp_path / "model", malicious_state_dict(PAYLOADS[payload], marker))
    result = run(pytester, f"--model={model}", "-k", "task1-knowledge-forget")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    result.stderr.fnmatch_lines(
        [
            f"ERROR: --model {model}: only pickle weights (pytorch_model.bin), which can run code when loaded; "
            "convert them to safetensors or pass --allow-pickle"
        ]
    )
    assert not marker.exists()


@pytest.mark.parametrize("payload", PAYLOADS)
def test_malicious_pickle_with_allow_pickle_is_refused_by_weights_only(pytester, olmo_template, tmp_path, payload):
    marker = tmp_path / "PWNED"
    model = pickle_only_model(olmo_template, tmp_path / "model", malicious_state_dict(PAYLOADS[payload], marker))
    result = run(pytester, f"--model={model}", "--allow-pickle", "-k", "task1-knowledge-forget or mia-score")
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED and "Traceback" not in output
    assert not marker.exists()
    card = json.loads((pytester.path / "unlearn-scorecard.json").read_text())
    errors = {c["id"]: c["error"] for c in card["checks"]}
    assert set(errors) == {"task1-knowledge-forget", "mia-score"}
    (error,) = set(errors.values())  # one load, one message, shared by every check
    reason = {  # torch's own words, first sentence
        "open": "Unsupported global: GLOBAL io.open was not an allowed global by default",
        "os.system": "Trying to load unsupported GLOBAL posix.system whose module posix is blocked",
    }[payload]
    assert error == (
        f"--model {model}: pytorch_model.bin holds more than tensors and torch.load(weights_only=True) refused it "
        f"({reason}); it may run code when loaded: do not load it, convert a trusted copy to safetensors"
    )
    assert "\n" not in error
    result.stdout.fnmatch_lines([f"task1-knowledge-forget: {error}"])


def test_plain_pickle_checkpoint_loads_with_allow_pickle(pytester, olmo_template, tmp_path):
    """weights_only=True still loads an honest pickle checkpoint: --allow-pickle is usable."""
    from safetensors.torch import load_file

    state = load_file(olmo_template / "model.safetensors")
    model = pickle_only_model(olmo_template, tmp_path / "model", state)
    result = run(pytester, f"--model={model}", "--allow-pickle", "--max-new-tokens=2", "-k", "task1-knowledge-forget")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()


def test_a_stray_pickle_beside_safetensors_is_never_opened(pytester, olmo_template, tmp_path):
    marker = tmp_path / "PWNED"
    model = tmp_path / "model"
    shutil.copytree(olmo_template, model)
    torch.save(malicious_state_dict(OpensAFile, marker), model / "pytorch_model.bin")
    for allow in ((), ("--allow-pickle",)):
        result = run(pytester, f"--model={model}", *allow, "--max-new-tokens=2", "-k", "task1-knowledge-forget")
        assert result.ret == pytest.ExitCode.OK, result.stdout.str()
        assert not marker.exists()


@pytest.mark.parametrize("suffix", PICKLE_SUFFIXES)
def test_every_pickle_suffix_needs_allow_pickle(tmp_path, suffix):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / f"weights{suffix}").write_bytes(b"\x80\x04N.")
    with pytest.raises(UnlearnError, match=f"only pickle weights \\(weights{suffix}\\).*pass --allow-pickle$"):
        inspect_model_folder(tmp_path, allow_pickle=False)
    inspect_model_folder(tmp_path, allow_pickle=True)


def test_malicious_single_file_diffusion_checkpoint(tmp_path):
    """genmu's single-file path: refused without --allow-pickle; with it, weights_only refuses."""
    from pytest_unlearn.engines.diffusion import load_pipeline

    marker = tmp_path / "PWNED"
    config = tmp_path / "sd"
    write_tiny_sd(config)
    checkpoint = tmp_path / "model.ckpt"
    torch.save({"state_dict": malicious_state_dict(OpensAFile, marker)}, checkpoint)
    with pytest.raises(UnlearnError, match="a pickle checkpoint, which can run code when loaded; .*--allow-pickle"):
        load_pipeline(checkpoint, device="cpu", dtype="auto", allow_pickle=False, model_config=config)
    with pytest.raises(UnlearnError) as refused:
        load_pipeline(checkpoint, device="cpu", dtype="auto", allow_pickle=True, model_config=config)
    assert not marker.exists()
    assert str(refused.value).startswith(f"--model {checkpoint}: the pickle checkpoint was refused by torch.load")
    assert "\n" not in str(refused.value)


# --- trust_remote_code ---------------------------------------------------------------------------


def test_no_source_line_enables_trust_remote_code():
    """Every ``trust_remote_code=`` keyword in the package is the literal False, and no dict or
    string smuggles a True in."""
    offenders = []
    for path in sorted((REPO / "pytest_unlearn").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "trust_remote_code":
                if not (isinstance(node.value, ast.Constant) and node.value.value is False):
                    offenders.append(f"{path}:{node.value.lineno}")
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values):
                    if isinstance(key, ast.Constant) and key.value == "trust_remote_code":
                        if not (isinstance(value, ast.Constant) and value.value is False):
                            offenders.append(f"{path}:{key.lineno}")
    assert offenders == []


class Recorded(Exception):
    pass


def test_the_causal_lm_loader_passes_safe_kwargs(monkeypatch, olmo_template):
    import transformers

    from pytest_unlearn.loading import load_causal_lm

    calls: dict[str, dict] = {}
    real_tokenizer = transformers.AutoTokenizer.from_pretrained

    def tokenizer(path, **kwargs):
        calls["tokenizer"] = kwargs
        return real_tokenizer(path, **kwargs)

    def model(path, **kwargs):
        calls["model"] = kwargs
        raise Recorded

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", tokenizer)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", model)
    with pytest.raises(UnlearnError, match="cannot load the weights \\(Recorded"):
        load_causal_lm(olmo_template, device="cpu", dtype="auto", allow_pickle=True)
    assert calls["tokenizer"]["trust_remote_code"] is False and calls["tokenizer"]["local_files_only"] is True
    assert calls["model"]["trust_remote_code"] is False and calls["model"]["local_files_only"] is True
    assert calls["model"]["weights_only"] is True and calls["model"]["use_safetensors"] is True


def test_the_diffusion_loader_never_trusts_remote_code(monkeypatch, tmp_path):
    from pytest_unlearn.engines.diffusion import load_pipeline

    calls: list[dict] = []

    def record(*args, **kwargs):
        calls.append(kwargs)
        raise Recorded

    monkeypatch.setattr(diffusers.StableDiffusionPipeline, "from_pretrained", record)
    monkeypatch.setattr(diffusers.StableDiffusionPipeline, "from_single_file", record)
    write_tiny_sd(tmp_path / "sd")
    (tmp_path / "model.safetensors").write_bytes(b"")
    for path in (tmp_path / "sd", tmp_path / "model.safetensors"):
        with pytest.raises(UnlearnError, match="Recorded"):
            load_pipeline(path, device="cpu", dtype="auto", allow_pickle=False, model_config=tmp_path / "sd")
    assert len(calls) == 2
    for kwargs in calls:
        # diffusers' default is False; a True would have to be passed, and never is.
        assert kwargs.get("trust_remote_code", False) is False and kwargs["local_files_only"] is True
