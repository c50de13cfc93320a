"""The demo seed lets every demo user read air quality, once."""

from __future__ import annotations

from sqlalchemy import func, select

from citybrain.apps.environment import demo
from citybrain.apps.identity import demo as identity_demo
from citybrain.apps.identity import services as identity
from citybrain.apps.identity.models import RoleAssignment, User
from citybrain.core.context import AppContext


def test_demo_users_may_read_air_quality(ctx: AppContext) -> None:
    identity_demo.seed(ctx)
    demo.seed(ctx)
    demo.seed(ctx)  # a second run adds nothing
    with ctx.read() as session:
        staff = session.scalar(select(User).where(User.username == "sthj_staff"))
        assert staff is not None
        actor = identity.actor_for(ctx, session, staff)
        users = session.scalar(select(func.count()).select_from(User))
        role_id = next(
            r.id for r in identity.list_roles(ctx, actor.__class__(kind="system")) if r.code == demo.ROLE[0]
        )
        grants = session.scalar(
            select(func.count()).select_from(RoleAssignment).where(RoleAssignment.role_id == role_id)
        )
    assert actor.can("environment.air.read")
    assert grants == users
