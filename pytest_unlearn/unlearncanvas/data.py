"""UnlearnCanvas' data: its style and object lists, prompt template, seeds and answer-set layout.

As the benchmark's ``machine_unlearning/evaluation`` (OPTML-Group/UnlearnCanvas): the style and
object names are ``constants/const.py``'s ``theme_available`` and ``class_available``, one name a
line in ``styles.txt`` / ``objects.txt``, in that order (the classifiers' heads are indexed by
it); every model draws ``A {object} image in {style} style.`` (the style's ``_`` read as spaces)
for every style × object and seed; an answer set is a folder of ``{style}_{object}_seed{seed}.jpg``.
"""

from __future__ import annotations

import re
from pathlib import Path

from pytest_unlearn.errors import UnlearnError

#: The sampling scripts' prompt (``sampling_unlearned_models/*.py``).
TEMPLATE = "A {object} image in {style} style."
#: accuracy.py's default ``--seed``: five images per prompt.
SEEDS = "188 288 588 688 888"


def read_names(path: Path, flag: str) -> tuple[str, ...]:
    """One name a line (blank lines skipped), each once; ``flag`` names the input in errors."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UnlearnError(
            f"{flag} {path}: no such file; it lists one name a line, in the classifier's order"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UnlearnError(f"{flag} {path}: cannot read it ({exc})") from None
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not names:
        raise UnlearnError(f"{flag} {path}: no names; it lists one name a line, in the classifier's order")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise UnlearnError(f"{flag} {path}: {name!r} is listed twice; each name once, in the classifier's order")
        seen.add(name)
    return names


def name_key(name: str) -> str:
    """A name as folders may spell it: ``Van_Gogh``, ``van-gogh`` and ``Van Gogh`` are one."""
    return re.sub(r"[\s_\-]+", "", name).casefold()


def prompt(template: str, style: str, obj: str) -> str:
    """The prompt of one (style, object) pair, as the sampling scripts write it."""
    return template.format(object=obj, style=style.replace("_", " "))


def image_name(style: str, obj: str, seed: int) -> str:
    """The file of one image in an answer set (accuracy.py's ``img_path``)."""
    return f"{style}_{obj}_seed{seed}.jpg"


def parse_seeds(value: object) -> tuple[int, ...]:
    """``"188 288 588"`` (spaces or commas), ``[188, 288]`` or ``188`` as seeds; ValueError
    naming what is wrong."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    elif isinstance(value, list):
        value = " ".join(str(v) for v in value)
    text = value if isinstance(value, str) else repr(value)
    parts = [p for p in re.split(r"[\s,]+", text.strip()) if p]
    if not parts or not all(p.isdigit() for p in parts):
        raise ValueError(f"seeds must be non-negative integers separated by spaces, got {text!r}")
    seeds = tuple(int(p) for p in parts)
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds lists a seed twice: {text!r}")
    return seeds
