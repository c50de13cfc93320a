"""The demo's subscriptions: the admin in the app, the ecology bureau's duty phone by SMS; seeding twice adds nothing."""

from __future__ import annotations

from citybrain.apps.warning import demo, publishing
from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM
from tests.conftest import Seeded


def test_seed_subscribes_the_admin_and_the_duty_phone(ctx: AppContext, seeded: Seeded) -> None:
    demo.seed(ctx)
    demo.seed(ctx)
    subscriptions = publishing.list_subscriptions(ctx, SYSTEM).items
    assert sorted((s.channel, s.min_level) for s in subscriptions) == [("inapp", "blue"), ("sms", "yellow")]
    (sms,) = [s for s in subscriptions if s.channel == "sms"]
    assert (sms.name, sms.phone) == demo.DUTY_PHONE
