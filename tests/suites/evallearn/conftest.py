"""The evallearn colour world: fake detector, judge, extractor and loader over drawn colours."""

from __future__ import annotations

import pytest

from pytest_unlearn.registry import DETECTORS, EXTRACTORS, JUDGES, LOADERS
from tests.evallearn_helpers import write_world


@pytest.fixture
def world(pytester):
    JUDGES.register("evallearn-colour", "tests.evallearn_helpers:colour_judge", replace=True)
    DETECTORS.register("colour", "tests.evallearn_helpers:colour_detector", replace=True)
    EXTRACTORS.register("red-channel", "tests.evallearn_helpers:red_channel", replace=True)
    LOADERS.register("recording", "tests.evallearn_helpers:recording_loader", replace=True)
    return write_world(pytester.path)
