"""The evallearn suite: eval-learn's (PyPI ``eval-learn`` 0.1.6) metrics for concept-erased
text-to-image models, on the genmu suite's diffusion machinery.

Importing this package is cheap: ``MANIFEST`` is the path of the bundled manifest; the backend
(``evaluation``) and the metrics import numpy, and torch only when images are made or scored.
"""

from __future__ import annotations

from pathlib import Path

import pytest_unlearn.suites as _suites

MANIFEST: Path = Path(_suites.__file__).resolve().parent / "evallearn" / "manifest.toml"
