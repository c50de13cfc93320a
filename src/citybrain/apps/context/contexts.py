"""User @context documents the broker stores and serves (it never fetches one from the network)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import select

from citybrain.apps.context import jsonld
from citybrain.apps.context.errors import BadRequestData, ResourceNotFound
from citybrain.apps.context.models import JsonLdContext
from citybrain.sdk import Actor, AppContext, utcnow

PATH = "/ngsi-ld/v1/jsonldContexts/"
WRITE, READ = "context.jsonld.write", "context.entity.read"


def _stored_id(url: str) -> str | None:
    """The id of a context this broker hosts, whatever host name the client used to reach it."""
    if PATH not in url:
        return None
    return url.rsplit("/", 1)[-1] or None


def resolve(ctx: AppContext, url: str) -> dict[str, Any] | None:
    """The term definitions of a stored @context by its URL, or None when the broker does not hold it."""
    context_id = _stored_id(url)
    with ctx.read() as session:
        stmt = select(JsonLdContext.body)
        stmt = (
            stmt.where(JsonLdContext.id == context_id) if context_id else stmt.where(JsonLdContext.url == url)
        )
        body = session.scalar(stmt)
    if body is None:
        return None
    document = orjson.loads(body)
    inner = document.get("@context", document) if isinstance(document, dict) else document
    return inner if isinstance(inner, dict) else {"@context": inner}


def add_context(ctx: AppContext, actor: Actor, document: Any, base_url: str) -> dict[str, Any]:
    """Store a user @context (validated by building it) and return its id and URL."""
    actor.require(WRITE)
    if not isinstance(document, dict) or "@context" not in document:
        raise BadRequestData('the body must be a JSON object with an "@context" member')
    inner = document["@context"]
    if not isinstance(inner, dict | list | str):
        raise BadRequestData("@context must be an object, a URL or a list of them")
    try:
        jsonld.Context(inner, lambda url: resolve(ctx, url))
    except (ValueError, TypeError) as exc:
        raise BadRequestData(f"invalid @context: {exc}") from None
    context_id = uuid.uuid4().hex
    url = f"{base_url.rstrip('/')}{PATH}{context_id}"
    with ctx.uow(actor, "context.jsonld.create") as uow:
        uow.session.add(
            JsonLdContext(
                id=context_id,
                url=url,
                kind="hosted",
                body=orjson.dumps(document).decode(),
                created_at=utcnow(),
            )
        )
        uow.record("create", f"context_jsonld:{context_id}", None, {"url": url})
    return {"id": context_id, "url": url}


def get_document(ctx: AppContext, context_id: str) -> dict[str, Any]:
    """The stored document, for any JSON-LD processor that dereferences its URL."""
    with ctx.read() as session:
        row = session.get(JsonLdContext, context_id)
        if row is None:
            raise ResourceNotFound(f"no @context {context_id}")
        document: dict[str, Any] = orjson.loads(row.body)
        return document


def list_contexts(ctx: AppContext, actor: Actor) -> list[dict[str, Any]]:
    """Every stored @context with its id, URL, kind and creation time."""
    actor.require(READ)
    with ctx.read() as session:
        rows = session.scalars(select(JsonLdContext).order_by(JsonLdContext.created_at))
        return [{"id": r.id, "url": r.url, "kind": r.kind, "createdAt": _stamp(r.created_at)} for r in rows]


def delete_context(ctx: AppContext, actor: Actor, context_id: str) -> None:
    """Delete a stored @context (entities keep their expanded names; compaction falls back to full IRIs)."""
    actor.require(WRITE)
    with ctx.uow(actor, "context.jsonld.delete") as uow:
        row = uow.session.get(JsonLdContext, context_id)
        if row is None:
            raise ResourceNotFound(f"no @context {context_id}")
        uow.session.delete(row)
        uow.record("delete", f"context_jsonld:{context_id}", {"url": row.url}, None)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
