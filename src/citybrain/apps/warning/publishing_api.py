"""The publishing REST API under /api/warning: subscriptions, their deliveries, and in-app notifications."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from citybrain.apps.warning import publishing as pub
from citybrain.apps.warning.schemas import Page
from citybrain.sdk import Ctx, CurrentActor, Locale

router = APIRouter()
Id = Annotated[int, Path(ge=1, le=pub.MAX_INT)]
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=pub.MAX_INT)]


# --- subscriptions --------------------------------------------------------------------------------


@router.get("/subscriptions", response_model=Page[pub.SubscriptionRead])
def subscriptions(
    ctx: Ctx, actor: CurrentActor, limit: Limit = 50, offset: Offset = 0
) -> Page[pub.SubscriptionRead]:
    """Your subscriptions (every one with the read permission); phones masked except to their creator."""
    return pub.list_subscriptions(ctx, actor, limit=limit, offset=offset)


@router.post("/subscriptions", response_model=pub.SubscriptionCreated, status_code=status.HTTP_201_CREATED)
def create_subscription(
    data: pub.SubscriptionCreate, ctx: Ctx, actor: CurrentActor
) -> pub.SubscriptionCreated:
    """Subscribe: in-app for yourself, or (with the write permission) a webhook or a phone number."""
    return pub.create_subscription(ctx, actor, data)


@router.get("/subscriptions/{subscription_id}", response_model=pub.SubscriptionRead)
def subscription(subscription_id: Id, ctx: Ctx, actor: CurrentActor) -> pub.SubscriptionRead:
    """One subscription."""
    return pub.get_subscription(ctx, actor, subscription_id)


@router.patch("/subscriptions/{subscription_id}", response_model=pub.SubscriptionRead)
def update_subscription(
    subscription_id: Id, data: pub.SubscriptionUpdate, ctx: Ctx, actor: CurrentActor
) -> pub.SubscriptionRead:
    """Change a subscription's target, filters or whether it is enabled."""
    return pub.update_subscription(ctx, actor, subscription_id, data)


@router.post("/subscriptions/{subscription_id}/rotate-secret", response_model=pub.SubscriptionCreated)
def rotate_secret(subscription_id: Id, ctx: Ctx, actor: CurrentActor) -> pub.SubscriptionCreated:
    """Issue a webhook a new signing secret, shown in this answer only; the old one signs too for a grace period."""
    return pub.rotate_secret(ctx, actor, subscription_id)


@router.delete("/subscriptions/{subscription_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_subscription(subscription_id: Id, ctx: Ctx, actor: CurrentActor) -> Response:
    """Delete a subscription with its deliveries."""
    pub.delete_subscription(ctx, actor, subscription_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/subscriptions/{subscription_id}/deliveries", response_model=Page[pub.DeliveryRead])
def deliveries(
    subscription_id: Id, ctx: Ctx, actor: CurrentActor, limit: Limit = 50, offset: Offset = 0
) -> Page[pub.DeliveryRead]:
    """A subscription's deliveries, newest first: attempts, last error, when delivered."""
    return pub.list_deliveries(ctx, actor, subscription_id, limit=limit, offset=offset)


# --- in-app notifications -------------------------------------------------------------------------


@router.get("/notifications", response_model=Page[pub.NotificationRead])
def notifications(
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    unread: Annotated[bool, Query()] = False,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[pub.NotificationRead]:
    """Your in-app notifications, newest first (only the unread ones with unread=true)."""
    return pub.list_notifications(ctx, actor, locale, unread=unread, limit=limit, offset=offset)


@router.get("/notifications/unread-count", response_model=pub.UnreadCount)
def unread_count(ctx: Ctx, actor: CurrentActor) -> pub.UnreadCount:
    """How many of your notifications are unread (for the shell's badge)."""
    return pub.UnreadCount(unread=pub.unread_count(ctx, actor))


@router.post("/notifications/read-all", response_model=pub.UnreadCount)
def read_all(ctx: Ctx, actor: CurrentActor) -> pub.UnreadCount:
    """Mark all your notifications read."""
    pub.mark_all_read(ctx, actor)
    return pub.UnreadCount(unread=pub.unread_count(ctx, actor))


@router.post("/notifications/{notification_id}/read", response_model=pub.NotificationRead)
def read(notification_id: Id, ctx: Ctx, actor: CurrentActor, locale: Locale) -> pub.NotificationRead:
    """Mark one of your notifications read."""
    return pub.mark_read(ctx, actor, locale, notification_id)
