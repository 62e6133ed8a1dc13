"""Playwright's names for the browser tests; without the package, their modules skip with the
reason (and fail in CI, where the browser tests are mandatory)."""

import pytest

from tests.conftest import IN_CI

try:
    from playwright.async_api import APIResponse, Request, Route, expect
except ImportError:
    if IN_CI:
        raise
    pytest.skip(
        "the playwright package is not installed (pip install -e '.[test]')",
        allow_module_level=True,
    )

# Assertions wait for the page up to 15 s, not Playwright's 5: on a loaded 2-core CI machine,
# ReDoc laying out the whole API document has taken longer than 5 s. A bound, not a speed test.
expect.set_options(timeout=15_000)

__all__ = ["APIResponse", "Request", "Route", "expect"]
