"""``--stress``: its spelling, the checks it adds, the recovery arithmetic, and the quantization
against the textbook formulas (so the copy is the paper's quantization, not a library default)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.manifest import CheckSpec
from pytest_unlearn.stress import (
    RECOVERY_METRIC,
    mean_recovery,
    parse_stress,
    parse_stresses,
    read_texts,
    recovery,
    stressed_checks,
)

# bitsandbytes' FP4 code book (E2M1 normalised to a largest magnitude of 1, its subnormal 1/192),
# as the library documents it for load_in_4bit's default bnb_4bit_quant_type="fp4".
FP4 = [0.0, 1 / 192, 1 / 6, 1 / 4, 1 / 3, 1 / 2, 2 / 3, 1.0]
FP4 = sorted({*FP4, *(-v for v in FP4)})
# NF4, Dettmers et al. 2023 (QLoRA), Appendix E: the 16 NormalFloat values.
NF4 = [
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
    -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
    0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
    0.7229568362236023, 1.0,
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("quantize:int4", ("quantize", "int4", {"scheme": "int4", "block": 64})),
        ("quantize:int8", ("quantize", "int8", {"scheme": "int8", "block": None})),
        ("quantize:nf4", ("quantize", "nf4", {"scheme": "nf4", "block": 64})),
    ],
)
def test_quantize_spellings(text, expected):
    stress = parse_stress(text)
    assert (stress.kind, stress.name, stress.params) == expected


def test_relearn_parameters_and_defaults():
    stress = parse_stress("relearn:steps=20,lr=3e-5,data=retain,lora=true,seed=7")
    assert stress.name == "relearn"
    assert stress.params == {"steps": 20, "lr": 3e-5, "batch": 4, "data": "retain", "lora": True, "seed": 7}
    assert parse_stress("relearn").params["data"] == "forget-half"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("quantize:int3", "--stress quantize:int3: quantize takes one of int4, nf4, int8, e.g. quantize:int4"),
        ("prune:0.5", "--stress prune:0.5: unknown stress; use quantize:int4, quantize:int8, quantize:nf4 or relearn"),
        ("relearn:epochs=2", "--stress relearn:epochs=2: relearn takes key=value pairs of steps, lr, batch, data"),
        ("relearn:steps=0", "--stress relearn:steps=0: steps must be positive"),
        ("relearn:steps=abc", "--stress relearn:steps=abc: steps must be an integer"),
        ("relearn:lr=fast", "--stress relearn:lr=fast: lr must be a number"),
        ("relearn:lr=nan", "--stress relearn:lr=nan: lr must be positive"),
        ("relearn:lora=maybe", "--stress relearn:lora=maybe: lora must be true or false"),
        ("relearn:seed=-1", "--stress relearn:seed=-1: seed must be a non-negative integer"),
        ("relearn:data=", "--stress relearn:data=: data must be forget-half | retain | PATH"),
    ],
)
def test_bad_spellings_are_one_line(text, line):
    with pytest.raises(UnlearnError) as excinfo:
        parse_stress(text)
    assert str(excinfo.value).startswith(line)
    assert "\n" not in str(excinfo.value)


def test_stress_resolves_from_the_environment_and_ini():
    from pytest_unlearn.options import OPTIONS_BY_DEST, resolve

    spec = OPTIONS_BY_DEST["unlearn_stress"]
    env = {"PYTEST_UNLEARN_STRESS": "quantize:int8 relearn:steps=2"}
    values, source = resolve(spec, None, env, ["quantize:nf4"])
    assert source == "PYTEST_UNLEARN_STRESS" and [s.name for s in values] == ["int8", "relearn"]
    values, source = resolve(spec, None, {}, ["quantize:nf4"])
    assert source == "ini option unlearn_stress" and [s.name for s in values] == ["nf4"]
    with pytest.raises(UnlearnError, match=r"^--stress .*, got 'quantize:int2' \(from PYTEST_UNLEARN_STRESS\)$"):
        resolve(spec, None, {"PYTEST_UNLEARN_STRESS": "quantize:int2"}, None)


def test_a_stress_given_twice_is_refused():
    with pytest.raises(UnlearnError, match=r"--stress int8 given twice"):
        parse_stresses(["quantize:int8", "quantize:int8"])


def _spec(check_id: str, side: str | None, op: str = ">=") -> CheckSpec:
    return CheckSpec(id=check_id, metric="m", op=op, threshold=0.6, params={"p": 1}, side=side)


def test_siblings_of_forget_checks_only_and_one_recovery_per_stress():
    checks = (_spec("a-forget", "forget"), _spec("a-retain", "retain"), _spec("aggregate", None))
    stresses = (parse_stress("quantize:int4"), parse_stress("relearn"))
    made = stressed_checks(checks, stresses, 0.3, with_original=True)
    assert [c.id for c in made] == [
        "a-forget", "a-retain", "aggregate", "a-forget@int4", "recovery@int4", "a-forget@relearn", "recovery@relearn",
    ]  # fmt: skip
    sibling = made[3]
    assert (sibling.metric, sibling.params, sibling.threshold, sibling.op) == ("m", {"p": 1}, 0.6, ">=")
    assert (sibling.stress, sibling.base) == ("int4", "a-forget")
    bound = made[4]
    assert (bound.metric, bound.op, bound.threshold, bound.stress) == (RECOVERY_METRIC, "<=", 0.3, "int4")
    # No original model: no gap to measure, so no recovery check (the siblings still gate).
    assert [c.id for c in stressed_checks(checks, stresses[:1], 0.3, with_original=False)][3:] == ["a-forget@int4"]


def test_recovery_by_hand():
    # A ">=" forget check (1 - accuracy): original 0.1, unlearned 0.9, the copy 0.7: it undid
    # 0.2 of the 0.8 the unlearning gained, a quarter.
    assert recovery(">=", unlearned=0.9, stressed=0.7, original=0.1) == pytest.approx(0.25)
    # A "<=" forget check (accuracy): original 0.8, unlearned 0.2, the copy 0.65: 0.45 / 0.6.
    assert recovery("<=", unlearned=0.2, stressed=0.65, original=0.8) == pytest.approx(0.75)
    # The copy forgets more than the unlearned model: negative recovery.
    assert recovery(">=", unlearned=0.9, stressed=1.0, original=0.1) == pytest.approx(-0.125)
    # No forgetting to undo (gap under 0.02), or a value missing: undefined.
    assert recovery(">=", unlearned=0.11, stressed=0.1, original=0.1) is None
    assert recovery(">=", unlearned=0.9, stressed=math.nan, original=0.1) is None
    # Against the original quantized alike (a quantization): 1 - the unlearning's effect left
    # between the two copies over the plain gap. 0.4 - (-0.2) = 0.6 of the 0.8 gap is left: 0.25
    # recovered (the plain reading, (0.9 - 0.4) / 0.8 = 0.625, counts quantization's own drift).
    # Lower is forgotten: 3.5 - 3.1 = 0.4 of the 1.0 gap left, 0.6 recovered (plain: 1.1).
    assert recovery(">=", unlearned=0.9, stressed=0.4, original=0.1, original_stressed=-0.2) == pytest.approx(0.25)
    assert recovery("<=", unlearned=2.0, stressed=3.1, original=3.0, original_stressed=3.5) == pytest.approx(0.6)
    assert recovery(">=", unlearned=0.9, stressed=0.4, original=0.1, original_stressed=math.inf) is None
    value, counted = mean_recovery([{"recovery": 0.25}, {"recovery": None}, {"recovery": 0.75}])
    assert (value, counted) == (pytest.approx(0.5), 2)
    assert math.isnan(mean_recovery([{"recovery": None}])[0])


def test_relearn_texts_from_a_file(tmp_path: Path):
    plain = tmp_path / "texts.txt"
    plain.write_text("first text\n\nsecond text\n")
    assert read_texts(plain) == ["first text", "second text"]
    lines = tmp_path / "texts.jsonl"
    lines.write_text('{"text": "a"}\n{"text": "b"}\n')
    assert read_texts(lines) == ["a", "b"]
    lines.write_text('{"text": "a"}\n{"body": "b"}\n')
    with pytest.raises(UnlearnError, match=r"texts.jsonl:2: each line needs a non-empty \"text\" string"):
        read_texts(lines)
    with pytest.raises(UnlearnError, match=r"--stress relearn:data=.*missing.txt: no such file"):
        read_texts(tmp_path / "missing.txt")


# -- the quantization is the formula's ---------------------------------------------------------
torch = pytest.importorskip("torch")
pytest.importorskip("bitsandbytes")


def _nearest(values: torch.Tensor, book: list[float]) -> torch.Tensor:
    codes = torch.tensor(book, dtype=torch.float64)
    return codes[(values.double().unsqueeze(-1) - codes).abs().argmin(-1)]


def _blockwise(weight: torch.Tensor, book: list[float], block: int = 64) -> torch.Tensor:
    """Row-major blocks of ``block`` elements, each scaled by its absmax, rounded to the nearest
    code, scaled back."""
    flat = weight.double().reshape(-1, block)
    absmax = flat.abs().amax(dim=1, keepdim=True)
    return (_nearest(flat / absmax, book) * absmax).reshape(weight.shape)


@pytest.mark.parametrize(("scheme", "book"), [("int4", FP4), ("nf4", NF4)])
def test_4bit_copies_are_blockwise_absmax_round_to_nearest(scheme, book):
    from pytest_unlearn.engines.stress import quantize_weight

    weight = torch.randn(6, 128, generator=torch.Generator().manual_seed(3)) * 0.05
    expected = _blockwise(weight, book)
    got = quantize_weight(weight, scheme).double()
    # The absmax is kept in float32 by the library: agreement to float32 precision.
    assert torch.allclose(got, expected, rtol=1e-6, atol=1e-9)
    assert len(torch.unique(got[0, :64])) <= len(book)  # one block, at most the code book's values


def test_int8_copies_are_rowwise_absmax_round_to_nearest():
    from pytest_unlearn.engines.stress import quantize_weight

    weight = torch.randn(5, 96, generator=torch.Generator().manual_seed(4))
    absmax = weight.double().abs().amax(dim=1, keepdim=True)
    expected = torch.round(weight.double() / absmax * 127) * absmax / 127
    assert torch.allclose(quantize_weight(weight, "int8").double(), expected, rtol=1e-6, atol=1e-9)


# -- the copies ---------------------------------------------------------------------------------
def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.mark.slow
@pytest.mark.parametrize("spelling", ["relearn:steps=3,lr=1e-3,seed=5", "relearn:steps=3,lr=1e-3,lora=true,seed=5"])
def test_relearned_copies_are_deterministic_and_trained(tmp_path, semeval_models, spelling):
    from pytest_unlearn.engines.stress import stressed_copy

    texts = ["Kogorn was the only shepherd in Fethult.", "What was the name of Kogorn's goat? Tiflolil"]
    stress = parse_stress(spelling)
    first = stressed_copy(semeval_models["target"], stress, tmp_path / "a", texts=texts)
    second = stressed_copy(semeval_models["target"], stress, tmp_path / "b", texts=texts)
    assert first["losses"] == second["losses"] and len(first["losses"]) == 3
    assert first["losses"][-1] < first["losses"][0]  # it learned the texts
    a, b = _weights(Path(first["path"])), _weights(Path(second["path"]))
    assert all(torch.equal(a[name], b[name]) for name in a)  # the same seed, the same copy
    source = _weights(semeval_models["target"])
    changed = [name for name in a if not torch.equal(a[name], source[name])]
    assert changed and set(a) == set(source)  # LoRA merged back: the model's own tensors, changed
    if "lora" in spelling:
        assert first["library"]["peft"] == "0.21.2"
    # A third call finds the copy: nothing is trained again.
    assert stressed_copy(semeval_models["target"], stress, tmp_path / "a", texts=texts)["reused"] is True


@pytest.mark.slow
def test_quantized_copy_keeps_the_output_head_and_embeddings(tmp_path, semeval_models):
    from pytest_unlearn.engines.stress import quantize_weight, stressed_copy

    record = stressed_copy(semeval_models["target"], parse_stress("quantize:nf4"), tmp_path)
    copy, source = _weights(Path(record["path"])), _weights(semeval_models["target"])
    linear = [name for name in source if name.endswith("proj.weight")]
    assert record["tensors_quantized"] == len(linear) > 0
    for name in source:
        if name in linear:
            assert torch.equal(copy[name], quantize_weight(source[name], "nf4"))
        else:  # embeddings, norms, the output head: as they were (bitsandbytes quantizes nn.Linear only)
            assert torch.equal(copy[name], source[name]), name


@pytest.mark.slow
def test_quantized_pipeline_copy_quantizes_the_unet_and_text_encoder_only(tmp_path, genmu_models):
    from pytest_unlearn.engines.diffusion import load_pipeline
    from pytest_unlearn.engines.stress import quantize_weight, stressed_copy

    source = genmu_models["erased"]
    record = stressed_copy(source, parse_stress("quantize:int8"), tmp_path)
    copy = Path(record["path"])
    assert record["library"]["diffusers"] and set(record["components"]) == {"unet", "text_encoder"}
    for component in ("unet", "text_encoder"):
        before = _component_weights(source / component)
        after = _component_weights(copy / component)
        assert set(before) == set(after)
        linear = [
            n for n, t in before.items() if t.ndim == 2 and not n.endswith(("embedding.weight", "embeddings.weight"))
        ]
        quantized = [n for n in linear if not torch.equal(before[n], after[n])]
        assert quantized, component
        for name in quantized:
            assert torch.equal(after[name], quantize_weight(before[name].float(), "int8"))
        assert all(torch.equal(before[n], after[n]) for n in before if before[n].ndim != 2)  # convs, norms, biases
    assert _component_weights(source / "vae").keys() == _component_weights(copy / "vae").keys()
    assert all(
        torch.equal(a, b)
        for a, b in zip(_component_weights(source / "vae").values(), _component_weights(copy / "vae").values())
    )
    pipe = load_pipeline(copy, device="cpu", dtype="float32", allow_pickle=False)  # strict: every tensor in place
    assert pipe.unet is not None


def _component_weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    tensors: dict[str, torch.Tensor] = {}
    for file in sorted(folder.glob("*.safetensors")):
        tensors.update(load_file(str(file)))
    return tensors


@pytest.mark.slow
def test_a_pipeline_load_stays_quiet_with_bitsandbytes_installed(genmu_models):
    # diffusers imports bitsandbytes on every pipeline load once the stress extra is installed;
    # its import logs a missing optional package and warns 14 times from torch.
    import subprocess
    import sys

    code = (
        "import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
        "from pathlib import Path\n"
        "from pytest_unlearn.engines.diffusion import load_pipeline\n"
        f"load_pipeline(Path({str(genmu_models['erased'])!r}), device='cpu', dtype='float32', allow_pickle=False)\n"
        "import sys; assert 'bitsandbytes' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "kernels" not in done.stderr and "script_method" not in done.stderr


def _manifest(tmp_path: Path, extra: str, side: str = 'side = "forget"\n') -> Path:
    path = tmp_path / "suite.toml"
    path.write_text(
        '[suite]\nname = "s"\nversion = "1"\nbackend = "semeval"\n'
        + extra
        + '[[checks]]\nid = "c"\nmetric = "semeval.subtask"\nop = ">="\nthreshold = 0.5\n'
        + side
    )
    return path


def test_manifest_marks_sides_and_the_recovery_bound(tmp_path):
    from pytest_unlearn.manifest import DEFAULT_RECOVERY_BOUND, load_manifest

    manifest = load_manifest(_manifest(tmp_path, "[stress]\nrecovery = 0.4\n"))
    assert manifest.checks[0].side == "forget" and manifest.recovery_bound == 0.4
    assert load_manifest(_manifest(tmp_path, "")).recovery_bound == DEFAULT_RECOVERY_BOUND == 0.25
    with pytest.raises(UnlearnError, match=r"side must be \"forget\" or \"retain\", got 'both'"):
        load_manifest(_manifest(tmp_path, "", 'side = "both"\n'))
    with pytest.raises(UnlearnError, match=r"\[stress\] takes recovery = a number in \[0, 1\]"):
        load_manifest(_manifest(tmp_path, "[stress]\nrecovery = 2\n"))


def test_every_bundled_language_model_suite_marks_its_forget_checks():
    from pytest_unlearn.manifest import resolve_suite

    for name in ("semeval", "tofu", "muse", "wmdp", "genmu", "evallearn", "unlearncanvas"):
        sides = {spec.id: spec.side for spec in resolve_suite(name).checks}
        assert "forget" in sides.values() and "retain" in sides.values(), name
