"""Demo seed: every demo user may read the city's air quality (a role granting `environment.air.read`).

The built-in roles keep their permissions, so the grant is a role of this app's own, held city-wide.
Running the seed again adds nothing.
"""

from __future__ import annotations

from citybrain.apps.identity import schemas, services
from citybrain.sdk import SYSTEM, AppContext

ROLE = ("air_quality_reader", "空气质量查看", "Air quality reader", ("environment.air.read",))
PAGE = 200


def seed(ctx: AppContext) -> list[str]:
    """Create the air-quality reader role if missing and grant it city-wide to every user lacking it."""
    code, name_zh, name_en, permissions = ROLE
    role = next((r for r in services.list_roles(ctx, SYSTEM) if r.code == code), None)
    if role is None:
        role = services.create_role(
            ctx,
            SYSTEM,
            schemas.RoleCreate(code=code, name_zh=name_zh, name_en=name_en, permissions=list(permissions)),
        )
    offset = 0
    while True:
        page = services.list_users(ctx, SYSTEM, limit=PAGE, offset=offset)
        for user in page.items:
            held = services.list_assignments(ctx, SYSTEM, user.id)
            if not any(a.role_id == role.id and a.department_id is None for a in held):
                services.assign_role(ctx, SYSTEM, user.id, schemas.AssignmentCreate(role_id=role.id))
        offset += PAGE
        if offset >= page.total:
            break
    return []
