"""The evallearn suite: eval-learn's (PyPI ``eval-learn`` 0.1.6) metrics for concept-erased
text-to-image models, on the diffusion engine (``pytest_unlearn.engines``).

Importing this package is cheap: the backend (``evaluation``) and the metrics import numpy,
and torch only when images are made or scored. Its manifest is ``suites/evallearn/``.
"""
