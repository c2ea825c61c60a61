"""Suite-wide settings. Fixtures live with the tests that use them."""

from __future__ import annotations

import logging
import os
from typing import Iterator

import pytest
from hypothesis import HealthCheck, settings

# CI machines are small and shared: no per-example deadline, fixed seeds so a failure
# reproduces, and enough examples to mean something.
settings.register_profile(
    "ci",
    deadline=None,
    derandomize=True,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=100)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(autouse=True)
def _restore_library_logger() -> Iterator[None]:
    # main() called in-process with -v puts a handler on pytest's captured stderr; once that
    # stream is closed, every later test that logs would print "--- Logging error ---".
    library_logger = logging.getLogger("asana_webhooks")
    handlers, level = list(library_logger.handlers), library_logger.level
    yield
    library_logger.handlers[:] = handlers
    library_logger.setLevel(level)
