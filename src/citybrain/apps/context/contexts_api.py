"""The NGSI-LD @context endpoints: store, list, serve and delete user @context documents."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from citybrain.apps.context import contexts
from citybrain.apps.context.errors import InvalidRequest, UnsupportedMediaType
from citybrain.apps.context.jsonld import media_type
from citybrain.sdk import current_actor, get_ctx

router = APIRouter()


@router.post("/jsonldContexts", status_code=201)
async def add_context(request: Request) -> Response:
    """Store a user @context; its URL (the Location) can then be used in Link headers and bodies."""
    if media_type(request.headers.get("content-type")) not in ("application/json", "application/ld+json"):
        raise UnsupportedMediaType("Content-Type must be application/json or application/ld+json")
    try:
        document = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the body is not valid JSON: {exc}") from None
    actor = await run_in_threadpool(current_actor, request)
    stored = await run_in_threadpool(
        contexts.add_context, get_ctx(request), actor, document, str(request.base_url)
    )
    return Response(status_code=201, headers={"Location": stored["url"]})


@router.get("/jsonldContexts")
async def list_contexts(request: Request) -> Response:
    """The stored @context documents."""
    actor = await run_in_threadpool(current_actor, request)
    found = await run_in_threadpool(contexts.list_contexts, get_ctx(request), actor)
    body = found if request.query_params.get("details") == "true" else [item["url"] for item in found]
    return Response(orjson.dumps(body), media_type="application/json")


@router.get("/jsonldContexts/{context_id}")
async def serve_context(context_id: str, request: Request) -> Response:
    """A stored @context document; public, so that any JSON-LD processor can dereference it."""
    document = await run_in_threadpool(contexts.get_document, get_ctx(request), context_id)
    return Response(orjson.dumps(document), media_type="application/ld+json")


@router.delete("/jsonldContexts/{context_id}", status_code=204)
async def delete_context(context_id: str, request: Request) -> Response:
    """Delete a stored @context."""
    actor = await run_in_threadpool(current_actor, request)
    await run_in_threadpool(contexts.delete_context, get_ctx(request), actor, context_id)
    return Response(status_code=204)
