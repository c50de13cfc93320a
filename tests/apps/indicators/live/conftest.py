"""Fixtures of the live tests: the platform served by uvicorn, and Chromium (those of tests/browser)."""

from tests.browser.conftest import browser, ctx, live_server, page, pytest_runtest_makereport

__all__ = ["browser", "ctx", "live_server", "page", "pytest_runtest_makereport"]
