"""Fixtures of the context app's tests: a FIWARE-style client with a scoped API token."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from citybrain.apps.identity import schemas, services
from citybrain.apps.identity.models import User
from citybrain.core.context import AppContext
from tests.conftest import Seeded


def token_for(ctx: AppContext, seeded: Seeded, scopes: list[str]) -> str:
    """An API token of the platform admin limited to `scopes`."""
    with ctx.read() as session:
        admin = services.actor_for(ctx, session, session.get_one(User, seeded.admin_id))
    created = services.create_token(ctx, admin, schemas.TokenCreate(name="fiware client", scopes=scopes))
    return created.token


@pytest.fixture
def ngsi(client: TestClient, ctx: AppContext, seeded: Seeded) -> TestClient:
    """A client with a token that may read and write entities."""
    token = token_for(ctx, seeded, ["context.entity.read", "context.entity.write"])
    client.headers["Authorization"] = f"Bearer {token}"
    return client
