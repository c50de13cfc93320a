"""Fixtures of the iot tests: an air-quality model, a registered device, users limited to a district."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from citybrain.apps.identity import schemas as identity_schemas
from citybrain.apps.identity import services as identity
from citybrain.apps.identity.models import User
from citybrain.apps.iot import schemas, services
from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM
from tests.conftest import Seeded

AQ = schemas.DeviceModelCreate(
    code="aq-station",
    name_zh="空气质量监测站",
    name_en="Air-quality station",
    entity_type="AirQualityObserved",
    offline_timeout_seconds=600,
    attributes=[
        schemas.AttributeSpec(name="pm25", kind="number", minimum=0, maximum=1000, unit_code="GQ"),
        schemas.AttributeSpec(name="no2", kind="number", minimum=0, maximum=2000, unit_code="GQ"),
        schemas.AttributeSpec(name="co", kind="number", minimum=0, maximum=150, unit_code="GP"),
        schemas.AttributeSpec(name="samples", kind="integer", minimum=0),
        schemas.AttributeSpec(name="quality", kind="string"),
        schemas.AttributeSpec(name="heated", kind="boolean"),
    ],
)
CITY_HALL = (104.741, 31.464)  # Mianyang municipal government, in 涪城区 (510703)
FULESHAN = (104.772, 31.482)  # Fule Mountain, in 游仙区 (510704)


@dataclass
class Provisioned:
    """A registered device and its key."""

    pk: int
    device_id: str
    entity_id: str
    key: str


@pytest.fixture
def aq_model(ctx: AppContext, seeded: Seeded) -> schemas.DeviceModelCreate:
    """The air-quality station model."""
    services.ensure_model(ctx, SYSTEM, AQ)
    return AQ


def provision(
    ctx: AppContext,
    device_id: str,
    *,
    department: str = "510703",
    where: tuple[float, float] = CITY_HALL,
    tenant: str = "",
    model: str = "aq-station",
) -> Provisioned:
    """Register an air-quality device as the system."""
    created = services.provision(
        ctx,
        SYSTEM,
        tenant,
        schemas.DeviceCreate(
            device_id=device_id,
            name=f"监测站 {device_id}",
            model_code=model,
            lon=where[0],
            lat=where[1],
            department_code=department,
        ),
    )
    return Provisioned(created.id, created.device_id, created.entity_id, created.key)


@pytest.fixture
def device(ctx: AppContext, aq_model: schemas.DeviceModelCreate) -> Provisioned:
    """An air-quality station at the city hall, owned by 涪城区."""
    return provision(ctx, "aq-fucheng-001")


def user_token(
    ctx: AppContext, seeded: Seeded, username: str, permissions: list[str], department_id: int | None
) -> str:
    """An API token of a new user holding a role with `permissions` in a department (None: city-wide)."""
    role = identity.create_role(
        ctx,
        SYSTEM,
        identity_schemas.RoleCreate(
            code=f"role_{username}", name_zh=username, permissions=[*permissions, "identity.token.create"]
        ),
    )
    user = identity.create_user(
        ctx,
        SYSTEM,
        identity_schemas.UserCreate(
            username=username,
            display_name=username,
            department_id=department_id or seeded.city_dept,
            password="a-long-password-123",
        ),
    )
    identity.assign_role(
        ctx, SYSTEM, user.id, identity_schemas.AssignmentCreate(role_id=role.id, department_id=department_id)
    )
    with ctx.read() as session:
        actor = identity.actor_for(ctx, session, session.get_one(User, user.id))
    token = identity.create_token(ctx, actor, identity_schemas.TokenCreate(name="test", scopes=permissions))
    return token.token


IOT_ALL = [
    "iot.model.read",
    "iot.device.read",
    "iot.device.create",
    "iot.device.update",
    "iot.device.delete",
    "iot.device.credentials",
    "iot.ingest.read",
]


@pytest.fixture
def fucheng(ctx: AppContext, seeded: Seeded) -> dict[str, str]:
    """Headers of a 涪城区 (510703) device administrator, limited to that district."""
    token = user_token(ctx, seeded, "fucheng_iot", IOT_ALL, seeded.district)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def reader(ctx: AppContext, seeded: Seeded) -> dict[str, str]:
    """Headers of a city-wide user who may only read devices."""
    token = user_token(ctx, seeded, "iot_reader", ["iot.device.read", "iot.model.read"], None)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def api(admin_client: TestClient) -> TestClient:
    """The platform admin's client."""
    return admin_client
