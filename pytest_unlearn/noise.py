"""Third-party warnings that are not the user's concern, silenced by name.

transformers says ``CLIPImageProcessor requires torchvision`` (it falls back to the PIL
processor, which is what we want), diffusers ``torch_dtype is deprecated`` (a FutureWarning) and
that it loads without ``accelerate``: printed on stderr, they landed in the first failing check's
captured output. Only these messages are dropped; every other warning of
those libraries still shows. Importing this module imports nothing heavy (loggers are named,
not imported).
"""

from __future__ import annotations

import logging
import re
import warnings

#: What is dropped: a pattern of the message, for a log record or a warning.
NOISE = (
    re.compile(r"`?\w*ImageProcessor`? requires torchvision"),
    re.compile(r"`?torch_dtype`? is deprecated"),
    # diffusers, loading a pipeline without the optional accelerate: it loads all the same.
    re.compile(r"Cannot initialize model with low cpu memory usage because `accelerate` was not found"),
)
#: Where transformers and diffusers log them from (a filter applies to its logger's own records).
LOGGERS = (
    "transformers.utils.import_utils",
    "transformers.configuration_utils",
    "transformers.modeling_utils",
    "transformers.pipelines",
    "diffusers.pipelines.pipeline_utils",
    "diffusers.models.modeling_utils",
    "diffusers.configuration_utils",
)


def is_noise(message: str) -> bool:
    return any(pattern.search(message) for pattern in NOISE)


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not is_noise(record.getMessage())


_FILTER = _DropNoise("pytest-unlearn: third-party noise")


def silence_third_party_noise() -> None:
    """Install the filters (idempotent)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    for pattern in NOISE:
        warnings.filterwarnings("ignore", message=f".*{pattern.pattern}", category=FutureWarning)
        warnings.filterwarnings("ignore", message=f".*{pattern.pattern}", category=UserWarning)


def import_quietly(module: str) -> None:
    """Import ``module`` now, if installed, with its import-time noise dropped.

    diffusers imports bitsandbytes on every pipeline load once it is installed (the ``stress``
    extra): bitsandbytes logs that the optional ``kernels`` package is missing and imports torch
    modules that warn ``torch.jit.script_method is deprecated`` 14 times, inside whichever check
    loads the first pipeline. Imported here first, under these filters, it is not imported again.
    """
    import importlib
    import importlib.util
    import sys

    if module in sys.modules or importlib.util.find_spec(module) is None:
        return
    logger = logging.getLogger(module)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.script_method", category=DeprecationWarning)
            importlib.import_module(module)
    except Exception:  # noqa: BLE001  (a broken optional install: the loader that needs it says so)
        pass
    finally:
        logger.setLevel(level)
