"""The domain of every number and text a suite reads, declared once (pydantic v2).

Each record type a loader reads (predictions, logs, per-image files, data rows) is a pydantic
model built from the constrained types below; a value outside its domain is one line naming
the file, the line or record, the field, the value and the allowed range::

    --predictions preds.jsonl line 7: field "loglikelihoods.A" = inf is outside its domain (finite, <= 0); fix or
    regenerate the file

:func:`require_finite` is the run-time twin: what a model produced (log-likelihoods, losses,
probabilities) is checked where a suite receives it, and a non-finite value fails the checks
that use it, with one line, instead of being scored (an argmax over NaN picks the first choice).

pydantic is imported here only: loaders import this module inside their functions, so loading
the plugin stays light (tests/test_attack_domains.py checks it in a subprocess).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import cache
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, TypeAdapter, ValidationError, WrapValidator
from pydantic_core import PydanticCustomError

from pytest_unlearn.errors import UnlearnError

#: What a bad value's line tells the user to do, unless the loader says otherwise.
FIX = "fix or regenerate the file"


def _domain(text: str) -> WrapValidator:
    """Any failure of the type and constraints before it is reported as "outside its domain (text)":
    one wording for nan, inf, a string or a boolean where a number belongs."""

    def check(value: Any, handler: Callable[[Any], Any]) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise PydanticCustomError("domain", "outside its domain ({domain})", {"domain": text}) from None

    return WrapValidator(check)


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("blank")
    return value


# Strict: True is not 1 and "0.5" is not a number here (lax pydantic would take both). A float
# field still takes an int, as JSON writes -1 for -1.0.
LogLikelihood = Annotated[float, Strict(), Field(allow_inf_nan=False, le=0), _domain("finite, <= 0")]
Probability = Annotated[float, Strict(), Field(allow_inf_nan=False, ge=0, le=1), _domain("a probability in [0, 1]")]
Rouge = Annotated[float, Strict(), Field(allow_inf_nan=False, ge=0, le=1), _domain("a ROUGE score in [0, 1]")]
# open-unlearning's exact memorization and extraction strength: shares of an answer's tokens.
Share = Annotated[float, Strict(), Field(allow_inf_nan=False, ge=0, le=1), _domain("a share in [0, 1]")]
Loss = Annotated[float, Strict(), Field(allow_inf_nan=False, ge=0), _domain("finite, >= 0")]
Logit = Annotated[float, Strict(), Field(allow_inf_nan=False), _domain("finite")]
Guidance = Annotated[float, Strict(), Field(allow_inf_nan=False, ge=0), _domain("finite, >= 0")]
Count = Annotated[int, Strict(), Field(ge=0), _domain("an integer >= 0")]
Seed = Annotated[int, Strict(), Field(ge=0), _domain("an integer >= 0")]
Pixels = Annotated[int, Strict(), Field(ge=1), _domain("an integer >= 1")]
Text = Annotated[str, Strict(), _domain("text")]
NonEmptyText = Annotated[str, Strict(), AfterValidator(_not_blank), _domain("non-empty text")]


class Record(BaseModel):
    """A row as a file holds it: fields the suite does not read are ignored, never refused."""

    model_config = ConfigDict(extra="ignore", frozen=True)


# -- the record types, one per kind of row each suite reads ------------------------------------------
class ScoredChoices(Record):
    """wmdp/mcq ``--predictions``: a question's position in its subset (or MMLU subject) and its
    log-likelihood per choice label."""

    index: Count
    loglikelihoods: dict[str, LogLikelihood]


class TofuSample(Record):
    """One sample of a TOFU / open-unlearning evaluation log (mean NLLs per answer token, ROUGE-L recall)."""

    avg_gt_loss: Loss
    avg_paraphrased_loss: Loss
    average_perturb_loss: list[Loss]
    rougeL_recall: Rouge


class TofuQuestion(Record):
    """A TOFU data row: the question, the answer and the base answer of the truth ratio, the perturbed answers."""

    question: NonEmptyText
    answer: NonEmptyText
    base_answer: NonEmptyText
    perturbed_answer: list[NonEmptyText]


class QAPair(Record):
    """A MUSE KnowMem row (or a TOFU holdout row): a question and its answer."""

    question: NonEmptyText
    answer: NonEmptyText


class Passage(Record):
    """A MUSE VerbMem row: the prompt and its true continuation."""

    prompt: NonEmptyText
    gt: NonEmptyText


class PromptRow(Record):
    """A SemEval forget/retain row: the prompt and the reference output."""

    input: NonEmptyText
    output: NonEmptyText


class Document(Record):
    """A membership-inference document (SemEval's member.jsonl / nonmember.jsonl)."""

    document: NonEmptyText


class ImagePrediction(Record):
    """One image of a face suite's per-image file: its logits and its loss."""

    logits: list[Logit]
    loss: Loss


class ImageIndexRow(Record):
    """One line of an ``--images`` folder's ``images.jsonl``."""

    file: NonEmptyText
    prompt: Text
    seed: Seed


class BaselineCheck(Record):
    """One check of a ``--baseline`` scorecard: a NaN value or an infinite interval would make
    every later value "no regression"."""

    id: NonEmptyText
    value: Logit | None = None
    ci95: tuple[Logit, Logit] | None = None


#: The generation settings a prompt-CSV row may ask for (evallearn's I2P columns), by setting.
GENERATION = {"seed": Seed, "guidance": Guidance, "width": Pixels, "height": Pixels}


# -- reporting -----------------------------------------------------------------------------------------
def show(value: Any, limit: int = 60) -> str:
    """A value as the error line shows it: ``inf``, ``nan``, ``-1``, ``''``, ``True``; long ones cut."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(error: ValidationError, where: str, fix: str = FIX) -> str:
    """The first error of ``error`` as one line: where, the field, the value and its domain."""
    first = error.errors(include_url=False)[0]
    field = ".".join(str(part) for part in first["loc"]) or "value"
    if first["type"] == "missing":
        return f'{where}: field "{field}" is missing; {fix}'
    domain = (first.get("ctx") or {}).get("domain")
    if domain is None:  # a container of the wrong shape (a number where a list belongs, ...)
        return f'{where}: field "{field}" = {show(first["input"])} has the wrong type ({first["msg"]}); {fix}'
    return f'{where}: field "{field}" = {show(first["input"])} is outside its domain ({domain}); {fix}'


M = TypeVar("M", bound=BaseModel)


def validate(model: type[M], record: Any, where: str, fix: str = FIX) -> M:
    """``record`` as ``model``, or an UnlearnError of one line naming ``where`` (file and line)."""
    try:
        return model.model_validate(record)
    except ValidationError as exc:
        raise UnlearnError(describe(exc, where, fix)) from None


@cache
def _adapter(kind: Any) -> TypeAdapter[Any]:
    return TypeAdapter(kind)


def check(kind: Any, value: Any, where: str, field: str, fix: str = FIX) -> Any:
    """One value of a constrained type (``Loss``, ``Rouge``...), named ``field`` in the error line."""
    try:
        return _adapter(kind).validate_python(value)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        inner = ".".join(str(part) for part in first["loc"])
        name = f"{field}.{inner}" if inner else field
        domain = (first.get("ctx") or {}).get("domain", "of another type")
        raise UnlearnError(
            f'{where}: field "{name}" = {show(first["input"])} is outside its domain ({domain}); {fix}'
        ) from None


# -- run time --------------------------------------------------------------------------------------------
def _finite(row: Any) -> bool:
    if isinstance(row, (list, tuple)):
        return all(_finite(v) for v in row)
    try:
        return math.isfinite(float(row))
    except (TypeError, ValueError):
        return False


def require_finite(rows: Sequence[Any], names: Sequence[str], *, what: str, unit: str, source: str) -> None:
    """Refuse to score what a model produced when any of it is NaN or infinite.

    ``rows[i]`` (a number or a list of them) belongs to ``names[i]``; the error counts the bad
    items and names the first. Called where a suite receives the backend's arrays, so every check
    that uses them fails with this line and the checks that do not are kept.
    """
    bad = [name for name, row in zip(names, rows) if not _finite(row)]
    if bad:
        raise UnlearnError(
            f"{source}: the model produced non-finite {what} for {len(bad)} of {len(rows)} {unit} "
            f"(first: {bad[0]}); the check cannot be scored (check the weights, the dtype or --setting device)"
        )
