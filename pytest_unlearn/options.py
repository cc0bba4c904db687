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


DATA_ENTRY = re.compile(r"^([A-Za-z_][A-Za-z0-9_-]*)=(.+)$")


def parse_data(text: str) -> tuple[str, str]:
    """``DIR`` (the suite's data folder) or ``NAME=PATH`` (one named data entry: ``mmlu=DIR``)."""
    if not text.strip():
        raise ValueError("must be a folder, or NAME=PATH for one data entry")
    match = DATA_ENTRY.match(text)
    return (match.group(1), match.group(2)) if match else ("", text)


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
    # A suite's input that became a setting ("setting", NAME) or a data entry ("data", NAME): the
    # flag still works for one release, and says its new spelling.
    becomes: tuple[str, str] | None = None
    # Such a flag that was a run-level field: a suite that never read it still ignores it (as
    # before) instead of refusing it as an unknown setting.
    ignored_if_unknown: bool = False

    @property
    def new_spelling(self) -> str:
        kind, name = self.becomes or ("", "")
        value = self.metavar or "VALUE"
        return f"--setting {name}={value}" if kind == "setting" else f"--data {name}={value}"

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
    from pytest_unlearn.builtins import suite_folders

    return sorted(suite_folders())


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
        "Folder with the suite's data files (default: the suite's bundled sample data), or NAME=PATH for one "
        "named data entry kept elsewhere, e.g. mmlu=DIR or mia=DIR (repeatable).",
        metavar="DIR|NAME=PATH",
        parse=parse_data,
        multiple=True,
        env_split=False,
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
        "Deprecated, goes in the next release: use --setting max_new_tokens=N.",
        parse=parse_positive_int,
        metavar="N",
        becomes=("setting", "max_new_tokens"),
        ignored_if_unknown=True,
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
        "Deprecated, goes in the next release: use --data mmlu=DIR.",
        metavar="DIR",
        becomes=("data", "mmlu"),
    ),
    OptionSpec(
        ("--mia-data",),
        "unlearn_mia_data",
        "Deprecated, goes in the next release: use --data mia=DIR.",
        metavar="DIR",
        becomes=("data", "mia"),
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
        "Deprecated, goes in the next release: use --setting model_config=DIR.",
        metavar="DIR",
        becomes=("setting", "model_config"),
        ignored_if_unknown=True,
    ),
    OptionSpec(
        ("--clip-model",),
        "unlearn_clip_model",
        "Deprecated, goes in the next release: use --setting clip_model=DIR|SPEC.",
        metavar="DIR|SPEC",
        becomes=("setting", "clip_model"),
        ignored_if_unknown=True,
    ),
    OptionSpec(
        ("--judge",),
        "unlearn_judge",
        "Deprecated, goes in the next release: use --setting judge=NAME.",
        metavar="NAME",
        becomes=("setting", "judge"),
    ),
    OptionSpec(
        ("--concept",),
        "unlearn_concept",
        "Deprecated, goes in the next release: use --setting concepts=NAME (or a list).",
        metavar="NAME",
        multiple=True,
        becomes=("setting", "concepts"),
        ignored_if_unknown=True,
    ),
    OptionSpec(
        ("--images",),
        "unlearn_images",
        "Deprecated, goes in the next release: use --setting images=DIR.",
        metavar="DIR",
        becomes=("setting", "images"),
        ignored_if_unknown=True,
    ),
    OptionSpec(
        ("--setting",),
        "unlearn_setting",
        "Set one of the suite's settings, KEY=VALUE (repeatable), e.g. steps=20 or images_per_prompt=4; "
        "python -m pytest_unlearn settings SUITE (or --help with --suite) lists them with types and defaults.",
        parse=parse_setting,
        metavar="KEY=VALUE",
        multiple=True,
    ),
    OptionSpec(
        ("--stress",),
        "unlearn_stress",
        "Re-run every forget check on a transformed copy of --model, as CHECK@STRESS (repeatable): "
        "quantize:int4, quantize:int8, quantize:nf4 (bitsandbytes), or relearn[:steps=N,lr=X,batch=N,"
        "data=forget-half|retain|PATH,lora=true|false,seed=N]; with --original-model, recovery@STRESS bounds the "
        "share of the unlearning it undoes (docs/stress.md).",
        parse=lambda text: parse_stress_option(text),
        metavar="STRESS",
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
        ("--unlearn-partial",),
        "unlearn_partial",
        "Accept running a subset of the suite's checks on purpose (-k, -m, --deselect, --lf): the exit "
        'status follows the checks that ran, the scorecard says "status": "partial" and never '
        '"passed": true. Without it a check that produced no value fails the gate.',
        default=False,
        parse=parse_bool,
        flag_only=True,
    ),
    OptionSpec(
        ("--unlearn-max-input-mib",),
        "unlearn_max_input_mib",
        "Largest input file (predictions, logs, data, baseline) read, in MiB; a larger one is refused "
        "before it is loaded.",
        default=1024,
        parse=parse_positive_int,
        metavar="N",
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


def parse_stress_option(text: str) -> Any:
    from pytest_unlearn.stress import parse_stress

    try:
        return parse_stress(text)
    except UnlearnError as exc:
        raise ValueError(str(exc).split(": ", 1)[-1]) from None


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


@dataclass(frozen=True)
class SuiteInputs:
    """What a run gives the suite besides the run-level options: its data folder and named data
    entries, its setting overrides with where each came from, and one notice per deprecated flag."""

    data: Path | None
    data_paths: dict[str, Path]
    overrides: dict[str, Any]
    sources: dict[str, str]
    notices: list[str]
    ignorable: frozenset[str] = frozenset()


def suite_inputs(resolved: dict[str, tuple[Any, str]]) -> SuiteInputs:
    """``--data``, ``--setting`` (CLI > environment > ini) and the deprecated flags that became
    settings or data entries; the new spelling wins over a deprecated flag naming the same thing."""
    folder: Path | None = None
    data_paths: dict[str, Path] = {}
    entries, data_source = resolved["unlearn_data"]
    for name, path in entries:
        if name:
            data_paths[name] = Path(path).expanduser()
        else:
            folder = Path(path).expanduser()
    settings, setting_source = resolved["unlearn_setting"]
    overrides = dict(settings)
    sources = dict.fromkeys(overrides, setting_source)
    notices = []
    ignorable: set[str] = set()
    for spec in OPTIONS:
        value, source = resolved[spec.dest]
        if spec.becomes is None or source == "default":
            continue
        kind, name = spec.becomes
        if isinstance(value, list):  # --concept, repeatable: one name, or a TOML list of them
            shown = str(value[0]) if len(value) == 1 else "[" + ", ".join(f'"{v}"' for v in value) + "]"
        else:
            shown = str(value)
        notices.append(
            f"{source} is deprecated and goes in the next release: use {spec.new_spelling.split('=')[0]}={shown}"
        )
        if kind == "data":
            data_paths.setdefault(name, Path(str(value)).expanduser())
        elif name not in overrides:
            overrides[name] = value
            sources[name] = source
            if spec.ignored_if_unknown:
                ignorable.add(name)
    return SuiteInputs(folder, data_paths, overrides, sources, notices, frozenset(ignorable))
