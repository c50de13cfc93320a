"""Entities belong to their creator's department: staff change only the entities of their departments."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient
from sqlalchemy import select

from citybrain.apps.context import services
from citybrain.apps.context.models import Entity
from citybrain.apps.identity import schemas
from citybrain.apps.identity import services as identity
from citybrain.apps.identity.models import User
from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM, Actor
from tests.conftest import Seeded

BASE = "/ngsi-ld/v1"
JSON = {"Content-Type": "application/json"}
SCOPES = ["context.entity.read", "context.entity.write"]
ROLE = [*SCOPES, "identity.token.create"]


def _district_writer(ctx: AppContext, seeded: Seeded, username: str, department: int) -> Actor:
    """A user of a district holding read and write of entities in that district only."""
    role = identity.create_role(
        ctx, SYSTEM, schemas.RoleCreate(code=f"{username}_role", name_zh="实体维护", permissions=ROLE)
    )
    user = identity.create_user(
        ctx,
        SYSTEM,
        schemas.UserCreate(
            username=username, display_name=username, department_id=department, password="pass-word-123"
        ),
    )
    identity.assign_role(
        ctx, SYSTEM, user.id, schemas.AssignmentCreate(role_id=role.id, department_id=department)
    )
    with ctx.read() as session:
        return identity.actor_for(ctx, session, session.get_one(User, user.id))


def _client(client: TestClient, ctx: AppContext, actor: Actor) -> TestClient:
    token = identity.create_token(ctx, actor, schemas.TokenCreate(name="client", scopes=SCOPES)).token
    client.headers["Authorization"] = f"Bearer {token}"
    return client


def _lamp(n: int, value: int = 1) -> dict[str, object]:
    return {
        "id": f"urn:ngsi-ld:Streetlight:{n}",
        "type": "Streetlight",
        "powerState": {"type": "Property", "value": "on"},
        "illuminanceLevel": {"type": "Property", "value": value},
    }


def _owner(ctx: AppContext, n: int) -> int | None:
    with ctx.read() as session:
        owner: int | None = session.scalars(
            select(Entity.department_id).where(Entity.entity_id == f"urn:ngsi-ld:Streetlight:{n}")
        ).one()
        return owner


def _level(client: TestClient, n: int) -> object:
    response = client.get(f"{BASE}/entities/urn:ngsi-ld:Streetlight:{n}", params={"options": "keyValues"})
    assert response.status_code == 200
    return response.json()["illuminanceLevel"]


def test_staff_change_their_departments_entities_only(
    client: TestClient, ctx: AppContext, seeded: Seeded
) -> None:
    fucheng = _district_writer(ctx, seeded, "fucheng", seeded.district)
    youxian = _district_writer(ctx, seeded, "youxian", seeded.other_district)
    _create(ctx, fucheng, 1)
    assert _owner(ctx, 1) == seeded.district

    other = _client(client, ctx, youxian)
    patch = other.patch(
        f"{BASE}/entities/urn:ngsi-ld:Streetlight:1/attrs/illuminanceLevel", json={"value": 9}, headers=JSON
    )
    assert patch.status_code == 403
    assert patch.headers["content-type"].startswith("application/problem+json")
    assert other.delete(f"{BASE}/entities/urn:ngsi-ld:Streetlight:1").status_code == 403
    assert _level(other, 1) == 1  # reading stays open to every holder of context.entity.read

    own = _client(client, ctx, fucheng)
    patch = own.patch(
        f"{BASE}/entities/urn:ngsi-ld:Streetlight:1/attrs/illuminanceLevel", json={"value": 5}, headers=JSON
    )
    assert patch.status_code == 204
    assert _level(own, 1) == 5


def test_a_batch_refuses_only_the_foreign_entities(
    client: TestClient, ctx: AppContext, seeded: Seeded
) -> None:
    fucheng = _district_writer(ctx, seeded, "fucheng", seeded.district)
    youxian = _client(client, ctx, _district_writer(ctx, seeded, "youxian", seeded.other_district))
    _create(ctx, fucheng, 1)

    response = youxian.post(f"{BASE}/entityOperations/upsert", json=[_lamp(1, 7), _lamp(2, 7)], headers=JSON)
    assert response.status_code == 207
    body = response.json()
    assert body["success"] == ["urn:ngsi-ld:Streetlight:2"]
    assert [e["entityId"] for e in body["errors"]] == ["urn:ngsi-ld:Streetlight:1"]
    assert body["errors"][0]["error"]["status"] == 403
    assert _level(youxian, 1) == 1
    assert _owner(ctx, 2) == seeded.other_district


def test_platform_entities_need_a_city_wide_writer(
    client: TestClient, ctx: AppContext, seeded: Seeded
) -> None:
    services.upsert_entities(ctx, SYSTEM, "", [_lamp(3)])
    assert _owner(ctx, 3) is None
    staff = _client(client, ctx, _district_writer(ctx, seeded, "fucheng", seeded.district))
    path = f"{BASE}/entities/urn:ngsi-ld:Streetlight:3/attrs/illuminanceLevel"
    assert staff.patch(path, json={"value": 2}, headers=JSON).status_code == 403
    with ctx.read() as session:
        admin = identity.actor_for(ctx, session, session.get_one(User, seeded.admin_id))
    assert _client(client, ctx, admin).patch(path, json={"value": 2}, headers=JSON).status_code == 204


def test_ingest_skips_readings_of_foreign_entities(ctx: AppContext, seeded: Seeded) -> None:
    fucheng = _district_writer(ctx, seeded, "fucheng", seeded.district)
    youxian = _district_writer(ctx, seeded, "youxian", seeded.other_district)
    _create(ctx, fucheng, 1)
    _create(ctx, youxian, 2)
    moment = datetime(2026, 11, 25, 9, tzinfo=UTC)
    result = services.ingest(
        ctx,
        youxian,
        "",
        [
            services.Reading("urn:ngsi-ld:Streetlight:1", moment, {"illuminanceLevel": 4}),
            services.Reading("urn:ngsi-ld:Streetlight:2", moment, {"illuminanceLevel": 4}),
        ],
    )
    assert (result.stored, result.forbidden) == (1, [0])


def _create(ctx: AppContext, actor: Actor, n: int) -> None:
    assert not services.upsert_entities(ctx, actor, "", [_lamp(n)]).errors
