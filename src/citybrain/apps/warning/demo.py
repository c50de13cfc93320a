"""Demo seed: the platform administrator hears of every warning in the app, the ecology bureau's duty phone by SMS.

The demo's SMS gateway is the logging sender, so the messages appear in the server's log. Running the
seed again adds nothing.
"""

from __future__ import annotations

from sqlalchemy import select

from citybrain.apps.identity import services as identity
from citybrain.apps.identity.models import User
from citybrain.apps.warning import publishing
from citybrain.sdk import SYSTEM, AppContext

ADMIN = "admin"
DUTY_PHONE = ("市生态环境局值班电话", "13800000000")


def seed(ctx: AppContext) -> list[str]:
    """Subscribe the admin in the app (every level) and the duty phone by SMS (yellow and above)."""
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
