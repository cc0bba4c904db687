"""Every option of the plugin, defined once: flag, ini twin, environment variable, default, parser.

``plugin.py`` turns this table into ``parser.addoption``/``parser.addini`` calls, the README's
option table is generated from it, and values resolve CLI > environment > ini > default, with
errors that name the source of a bad value (pytest-timeout's convention).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.workers import parse_devices

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:\d+|mps)$")
DTYPES = ("auto", "float32", "bfloat16", "float16")


def parse_positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError("must be a positive integer") from None
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def parse_device(text: str) -> str:
    if not DEVICE_PATTERN.match(text):
        raise ValueError("must be auto, cpu, cuda, cuda:N or mps")
    return text


def parse_dtype(text: str) -> str:
    if text not in DTYPES:
        raise ValueError(f"must be one of {', '.join(DTYPES)}")
    return text


def parse_threshold(text: str) -> tuple[str, float]:
    check_id, sep, raw = text.partition("=")
    if not sep or not check_id.strip():
        raise ValueError("must be CHECK=VALUE, e.g. task-aggregate=0.5")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("needs a number after '=' in CHECK=VALUE") from None
    if not math.isfinite(value):
        raise ValueError("needs a finite number after '=' in CHECK=VALUE")
    return check_id.strip(), value


def parse_setting(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE read as a TOML value (``steps=20``, ``scheduler=ddim``)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ValueError("must be KEY=VALUE, e.g. steps=20")
    from pytest_unlearn.manifest import tomllib  # tomli on Python 3.10

    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word: take it as a string
    return key.strip(), value


def parse_tolerance(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("must be a non-negative number") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError("must be a non-negative number")
    return value


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be true or false")


@dataclass(frozen=True)
class OptionSpec:
    """One option: how it is spelled on the command line, in ini files and the environment."""

    flags: tuple[str, ...]
    dest: str
    help: str
    default: Any = None
    parse: Callable[[str], Any] | None = None
    metavar: str | None = None
    multiple: bool = False  # repeatable flag; ini value is a list of lines
    flag_only: bool = False  # store_true flag
    env_split: bool = True  # a repeatable option's environment value holds several, space-separated

    @property
    def ini(self) -> str:
        return self.dest

    @property
    def env(self) -> str:
        return "PYTEST_" + self.dest.upper()

    @property
    def flag(self) -> str:
        return self.flags[0]


def builtin_suites() -> list[str]:
    """The bundled suites' names: the folders of ``pytest_unlearn.suites`` holding a manifest (read
    from the files, so the ``--suite`` help and the README table cannot go stale)."""
    import pytest_unlearn.suites as bundled

    return sorted(path.parent.name for path in Path(bundled.__file__).resolve().parent.glob("*/manifest.toml"))


OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(
        ("--model", "--unlearn-model"),
        "unlearn_model",
        "Path of the model to certify: a local model folder (from_pretrained) or checkpoint. "
        "genmu also takes one single-concept model per concept, CONCEPT=PATH, or a folder of "
        "sub-folders named after concepts; other suites take one.",
        metavar="PATH",
        multiple=True,
        env_split=False,
    ),
    OptionSpec(
        ("--suite",),
        "unlearn_suite",
        f"Suite to run: a built-in name ({', '.join(builtin_suites())}), a name a package registers, "
        "or the path of a suite manifest (.toml).",
        metavar="NAME|PATH",
    ),
    OptionSpec(
        ("--data",),
        "unlearn_data",
        "Folder with the suite's data files (default: the suite's bundled sample data).",
        metavar="DIR",
    ),
    OptionSpec(
        ("--scorecard",),
        "unlearn_scorecard",
        "Where to write the JSON scorecard.",
        default="unlearn-scorecard.json",
        metavar="PATH",
    ),
    OptionSpec(
        ("--artifacts",),
        "unlearn_artifacts",
        "Folder for generations, losses and predictions (default: <scorecard>-artifacts/).",
        metavar="DIR",
    ),
    OptionSpec(
        ("--device",),
        "unlearn_device",
        "Device to evaluate on: auto, cpu, cuda, cuda:N or mps.",
        default="auto",
        parse=parse_device,
    ),
    OptionSpec(
        ("--dtype",),
        "unlearn_dtype",
        "Weights dtype: auto (bfloat16 on CUDA as the official scorer, float32 on CPU), float32, bfloat16 or float16.",
        default="auto",
        parse=parse_dtype,
    ),
    OptionSpec(
        ("--batch-size",),
        "unlearn_batch_size",
        "Prompts per forward pass (generation, losses, MMLU).",
        default=16,
        parse=parse_positive_int,
        metavar="N",
    ),
    OptionSpec(
        ("--max-new-tokens",),
        "unlearn_max_new_tokens",
        "Greedy generation length (default: the suite's setting; the SemEval scorer uses 256).",
        parse=parse_positive_int,
        metavar="N",
    ),
    OptionSpec(
        ("--threshold",),
        "unlearn_threshold",
        "Override a check's threshold, CHECK=VALUE (repeatable).",
        parse=parse_threshold,
        metavar="CHECK=VALUE",
        multiple=True,
    ),
    OptionSpec(
        ("--predictions",),
        "unlearn_predictions",
        "Score generations produced elsewhere (jsonl/csv with id and output); the text metrics then need no model.",
        metavar="FILE",
    ),
    OptionSpec(
        ("--mmlu",),
        "unlearn_mmlu",
        "MMLU folder (dev/ and test/ CSVs, or parquet) for the MMLU gate.",
        metavar="DIR",
    ),
    OptionSpec(
        ("--mia-data",),
        "unlearn_mia_data",
        "Folder with member.jsonl and nonmember.jsonl for the membership-inference check.",
        metavar="DIR",
    ),
    OptionSpec(
        ("--original-model",),
        "unlearn_original_model",
        "The model before unlearning: weight-change ratio, CLIP-score drop, side-by-side report (diffusion "
        "suites); the MMLU-retained ratio (wmdp); the test-accuracy ratio (mufac, mucac: a model folder or its "
        "predictions.json).",
        metavar="PATH",
    ),
    OptionSpec(
        ("--reference",),
        "unlearn_reference",
        "The reference model trained without the forget set (TOFU's retain model): a model folder, "
        "its TOFU/open-unlearning evaluation logs, or a pytest-unlearn tofu scorecard.",
        metavar="PATH",
    ),
    OptionSpec(
        ("--model-config",),
        "unlearn_model_config",
        "Local diffusers folder describing the architecture of a single-file checkpoint.",
        metavar="DIR",
    ),
    OptionSpec(
        ("--clip-model",),
        "unlearn_clip_model",
        "CLIP for the concept judge and CLIP scores: a transformers CLIP folder, or open_clip:MODEL_NAME:WEIGHTS_FILE.",
        metavar="DIR|SPEC",
    ),
    OptionSpec(
        ("--judge",),
        "unlearn_judge",
        "Concept judge from the registry (default: the suite's, clip).",
        metavar="NAME",
    ),
    OptionSpec(
        ("--concept",),
        "unlearn_concept",
        "Target concept to test (repeatable; default: the suite's targets, else every concept).",
        metavar="NAME",
        multiple=True,
    ),
    OptionSpec(
        ("--images",),
        "unlearn_images",
        "Score images generated elsewhere: a folder with images.jsonl (file, prompt, seed).",
        metavar="DIR",
    ),
    OptionSpec(
        ("--setting",),
        "unlearn_setting",
        "Override a suite setting, KEY=VALUE (repeatable), e.g. steps=20 or images_per_prompt=4.",
        parse=parse_setting,
        metavar="KEY=VALUE",
        multiple=True,
    ),
    OptionSpec(
        ("--allow-pickle",),
        "unlearn_allow_pickle",
        "Allow pickle-based weight files (.bin/.pt/.ckpt); they are still loaded with "
        "weights_only=True. Without it only safetensors load.",
        default=False,
        parse=parse_bool,
        flag_only=True,
    ),
    OptionSpec(
        ("--devices",),
        "unlearn_devices",
        "GPUs to spread xdist workers over, e.g. 0,1,2,3: worker gwN sees only entry N (modulo the "
        "list) through CUDA_VISIBLE_DEVICES (default: the entries of CUDA_VISIBLE_DEVICES when set).",
        parse=parse_devices,
        metavar="N,N,...",
    ),
    OptionSpec(
        ("--cache-dir",),
        "unlearn_cache_dir",
        "Content-addressed cache of generations, losses, predictions and images, reused by later "
        "runs and shared by xdist workers (default: .unlearn-cache/ under the rootdir).",
        metavar="DIR",
    ),
    OptionSpec(
        ("--baseline",),
        "unlearn_baseline",
        "A previous scorecard of the same suite: every check also fails as a regression when it is "
        "worse than the baseline's value by more than --baseline-tolerance.",
        metavar="PATH",
    ),
    OptionSpec(
        ("--baseline-tolerance",),
        "unlearn_baseline_tolerance",
        "How much worse than the baseline a check may be (default: the baseline check's own 95% "
        "interval half-width, else 0).",
        parse=parse_tolerance,
        metavar="VALUE",
    ),
    OptionSpec(
        ("--unlearn-strict",),
        "unlearn_strict",
        "Turn every warning of the run (duplicate rows, stray prediction ids, unwritten "
        "artifacts, ...) into an error, for release pipelines that want no surprises (pytest's own "
        "--strict turns it on too).",
        default=False,
        parse=parse_bool,
        flag_only=True,
    ),
    OptionSpec(
        ("--no-cache",),
        "unlearn_no_cache",
        "Neither read nor write the artifact cache: compute everything in this run.",
        default=False,
        parse=parse_bool,
        flag_only=True,
    ),
)

OPTIONS_BY_DEST = {spec.dest: spec for spec in OPTIONS}


def resolve(
    spec: OptionSpec,
    cli_value: Any,
    environ: dict[str, str] | Any,
    ini_value: Any,
) -> tuple[Any, str]:
    """The value of one option and where it came from (CLI > environment > ini > default)."""
    if spec.multiple:
        if cli_value:
            return _parse_many(spec, cli_value, spec.flag), spec.flag
        env_raw = environ.get(spec.env)
        if env_raw:
            return _parse_many(spec, env_raw.split() if spec.env_split else [env_raw], spec.env), spec.env
        if ini_value:
            return _parse_many(spec, ini_value, f"ini option {spec.ini}"), f"ini option {spec.ini}"
        return [], "default"
    if spec.flag_only and cli_value:
        return True, spec.flag
    if cli_value not in (None, False):
        return _parse_one(spec, cli_value, spec.flag), spec.flag
    if spec.env in environ and environ[spec.env] != "":
        return _parse_one(spec, environ[spec.env], spec.env), spec.env
    if ini_value not in (None, "", []):
        return _parse_one(spec, ini_value, f"ini option {spec.ini}"), f"ini option {spec.ini}"
    return spec.default, "default"


def _parse_one(spec: OptionSpec, raw: Any, source: str) -> Any:
    if spec.parse is None or not isinstance(raw, str):
        return raw
    try:
        return spec.parse(raw)
    except ValueError as exc:
        where = "" if source == spec.flag else f" (from {source})"
        raise UnlearnError(f"{spec.flag} {exc}, got {raw!r}{where}") from None


def _parse_many(spec: OptionSpec, raws: list[str], source: str) -> list[Any]:
    return [_parse_one(spec, raw, source) for raw in raws]


def as_path(value: str | None) -> Path | None:
    return None if value in (None, "") else Path(value).expanduser()
