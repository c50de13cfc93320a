"""Demo seed: the platform administrator hears of every warning in the app, the ecology bureau's duty phone by SMS,
and the operations centre's role that sees every department's warnings (预警值班员) exists.

The demo's SMS gateway is the logging sender, so the messages appear in the server's log. Running the
seed again adds nothing.
"""

from __future__ import annotations

from sqlalchemy import select

from citybrain.apps.identity import schemas as identity_schemas
from citybrain.apps.identity import services as identity
from citybrain.apps.identity.models import User
from citybrain.apps.warning import publishing
from citybrain.apps.warning.permissions import DUTY_ROLE
from citybrain.sdk import SYSTEM, AppContext

ADMIN = "admin"
DUTY_PHONE = ("市生态环境局值班电话", "13800000000")


def ensure_duty_role(ctx: AppContext) -> int:
    """Create the warning duty officer's role if missing; its id."""
    code, name_zh, name_en, permissions = DUTY_ROLE
    found = next((r for r in identity.list_roles(ctx, SYSTEM) if r.code == code), None)
    if found is None:
        found = identity.create_role(
            ctx,
            SYSTEM,
            identity_schemas.RoleCreate(
                code=code, name_zh=name_zh, name_en=name_en, permissions=list(permissions)
            ),
        )
    return found.id


def seed(ctx: AppContext) -> list[str]:
    """Subscribe the admin in the app (every level) and the duty phone by SMS (yellow and above)."""
    ensure_duty_role(ctx)
    existing = publishing.list_subscriptions(ctx, SYSTEM, limit=500).items
    if not any(s.channel == "inapp" for s in existing):
        with ctx.read() as session:
            user = session.scalar(select(User).where(User.username == ADMIN))
            admin = identity.actor_for(ctx, session, user) if user is not None else None
        if admin is not None:
            publishing.create_subscription(
                ctx, admin, publishing.SubscriptionCreate(channel="inapp", name="预警中心")
            )
    name, phone = DUTY_PHONE
    if not any(s.channel == "sms" and s.name == name for s in existing):
        publishing.create_subscription(
            ctx,
            SYSTEM,
            publishing.SubscriptionCreate(channel="sms", name=name, phone=phone, min_level="yellow"),
        )
    return []
