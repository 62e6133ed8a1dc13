"""Playwright's names for the browser tests; without the package, their modules skip with the
reason (and fail in CI, where the browser tests are mandatory)."""

import pytest

from tests.conftest import IN_CI

try:
    from playwright.async_api import Request, Route, expect
except ImportError:
    if IN_CI:
        raise
    pytest.skip(
        "the playwright package is not installed (pip install -e '.[test]')",
        allow_module_level=True,
    )

__all__ = ["Request", "Route", "expect"]
