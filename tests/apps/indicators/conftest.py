"""Fixtures of the indicators tests: a small platform (kernel apps, indicators and a declaring test app).

The `app` fixture is overridden here, so `client`, `ctx`, `seeded` and `admin_client` all use it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from fastapi import FastAPI

from citybrain.core.apps import AppSpec, discover
from citybrain.core.asgi import create_app
from citybrain.core.settings import Settings
from tests.apps.indicators import declaring
from tests.apps.indicators.declaring import indicators as declared

BASE_APPS = ("identity", "context", "geo", "indicators")


def specs(*extra: tuple[str, AppSpec]) -> list[AppSpec]:
    """The kernel apps, indicators and the given test apps (package name, AppSpec)."""
    found = [s for s in discover() if s.label in BASE_APPS]
    return found + [replace(spec, package=package) for package, spec in extra]


@pytest.fixture
def app(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[FastAPI]:
    """The small platform, its scheduler off (tests run the rounds)."""
    monkeypatch.setenv("CITYBRAIN_INDICATORS_COMPUTE_SECONDS", "0")
    declared.VALUES.clear()
    yield create_app(settings, specs(("tests.apps.indicators.declaring", declaring.APP)))
    declared.VALUES.clear()
