"""User @context documents the broker stores and serves (it never fetches one from the network)."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import select

from citybrain.apps.context.models import JsonLdContext
from citybrain.sdk import AppContext


def resolve(ctx: AppContext, url: str) -> dict[str, Any] | None:
    """The term definitions of a stored @context by its URL, or None when the broker does not hold it."""
    with ctx.read() as session:
        body = session.scalar(select(JsonLdContext.body).where(JsonLdContext.url == url))
    if body is None:
        return None
    document = orjson.loads(body)
    inner = document.get("@context", document) if isinstance(document, dict) else document
    return inner if isinstance(inner, dict) else {"@context": inner}
