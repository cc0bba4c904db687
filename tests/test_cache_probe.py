"""A plugin for subprocess runs of tests/test_cache.py (``-p tests.test_cache_probe``): writes the
artifact cache's hit and miss counts of the run to probe.json. It holds no tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    from pytest_unlearn.plugin import STATE_KEY

    state = session.config.stash.get(STATE_KEY, None)
    if state is not None:
        cache = state.backend.cache
        Path("probe.json").write_text(json.dumps({"hits": cache.hits, "misses": cache.misses}))
