"""The NGSI-LD subscription API under /ngsi-ld/v1/subscriptions (GS CIM 009 v1.8 clauses 5.8, 6.10, 6.11)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from citybrain.apps.context import jsonld, subscriptions
from citybrain.apps.context.errors import BadRequestData
from citybrain.apps.context.ngsild import DEFAULT_LIMIT, MAX_LIMIT, _call, _int, _options, _resolver, _respond

router = APIRouter()
BASE = "/ngsi-ld/v1/subscriptions"


def _check_id(subscription_id: str) -> str:
    """A subscription id in a path must be a URI (BadRequestData otherwise, as for entities)."""
    if not jsonld.is_absolute_uri(subscription_id):
        raise BadRequestData(f"the subscription id must be an absolute URI, got {subscription_id!r}")
    return subscription_id


@router.post("/subscriptions", status_code=201)
async def create_subscription(request: Request) -> Response:
    """Create a subscription (201 with Location)."""
    call = await _call(request, allowed=set(), body=True)
    doc = await run_in_threadpool(
        subscriptions.parse_subscription, call.body, call.context, _resolver(call.ctx)
    )
    subscription_id = await run_in_threadpool(
        subscriptions.create_subscription, call.ctx, call.actor, call.tenant, doc
    )
    return Response(status_code=201, headers={"Location": f"{BASE}/{quote(subscription_id, safe=':')}"})


@router.get("/subscriptions")
async def query_subscriptions(request: Request) -> Response:
    """The tenant's subscriptions, one page at a time (limit, offset, count)."""
    call = await _call(request, allowed={"limit", "offset", "count", "options"})
    rows, total = await run_in_threadpool(
        lambda: subscriptions.list_subscriptions(
            call.ctx,
            call.actor,
            call.tenant,
            limit=_int(call, "limit", DEFAULT_LIMIT, MAX_LIMIT),
            offset=_int(call, "offset", 0),
            count=call.params.get("count") == "true",
        )
    )
    sys_attrs = "sysAttrs" in _options(call)
    body: list[dict[str, Any]] = [
        subscriptions.render_subscription(row, call.context, sys_attrs=sys_attrs) for row in rows
    ]
    headers = {"NGSILD-Results-Count": str(total)} if total is not None else {}
    return _respond(call, body, headers=headers)


@router.get("/subscriptions/{subscription_id:path}")
async def retrieve_subscription(subscription_id: str, request: Request) -> Response:
    """One subscription, with its status and notification counters."""
    call = await _call(request, allowed={"options"})
    row = await run_in_threadpool(
        subscriptions.get_subscription, call.ctx, call.actor, call.tenant, _check_id(subscription_id)
    )
    sys_attrs = "sysAttrs" in _options(call)
    return _respond(call, subscriptions.render_subscription(row, call.context, sys_attrs=sys_attrs))


@router.patch("/subscriptions/{subscription_id:path}", status_code=204)
async def update_subscription(subscription_id: str, request: Request) -> Response:
    """Update members of a subscription (204); a member set to null is removed."""
    call = await _call(request, allowed=set(), body=True)
    resolver = _resolver(call.ctx)
    own_context = call.context.as_json() != jsonld.CORE_CONTEXT_URL

    def apply(current: dict[str, Any]) -> dict[str, Any]:
        return subscriptions.merge_subscription(
            current, call.body, call.context, resolver, own_context=own_context
        )

    await run_in_threadpool(
        subscriptions.update_subscription,
        call.ctx,
        call.actor,
        call.tenant,
        _check_id(subscription_id),
        apply,
    )
    return Response(status_code=204)


@router.delete("/subscriptions/{subscription_id:path}", status_code=204)
async def delete_subscription(subscription_id: str, request: Request) -> Response:
    """Delete a subscription (and the notifications still queued for it)."""
    call = await _call(request, allowed=set())
    await run_in_threadpool(
        subscriptions.delete_subscription, call.ctx, call.actor, call.tenant, _check_id(subscription_id)
    )
    return Response(status_code=204)
