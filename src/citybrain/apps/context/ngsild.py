"""The ETSI NGSI-LD API under /ngsi-ld/v1 (GS CIM 009 v1.8): entities, batch operations, discovery."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from citybrain.apps.context import entities as ent
from citybrain.apps.context import jsonld, services, temporal
from citybrain.apps.context.errors import (
    BadRequestData,
    InvalidRequest,
    NgsiError,
    NotAcceptable,
    ResourceNotFound,
    UnsupportedMediaType,
)
from citybrain.apps.context.geo import GeoQueryError, parse_geoquery
from citybrain.apps.context.query import QueryError, parse_q
from citybrain.sdk import Actor, AppContext, current_actor, get_ctx, recalled_actor, utcnow

router = APIRouter()
JSON, JSONLD, GEOJSON = "application/json", "application/ld+json", "application/geo+json"
MERGE_PATCH = "application/merge-patch+json"
DEFAULT_LIMIT, MAX_LIMIT = 20, 1000
QUERY_PARAMS = {
    "type",
    "id",
    "idPattern",
    "attrs",
    "pick",
    "omit",
    "q",
    "georel",
    "geometry",
    "coordinates",
    "geoproperty",
    "limit",
    "offset",
    "count",
    "options",
    "format",
    "lang",
    "csf",
    "scopeQ",
    "datasetId",
    "local",
    "join",
    "joinLevel",
    "containedBy",
    "entityMap",
    "collect",
    "expandValues",
}


@dataclass
class Call:
    """What every NGSI-LD request carries: who, which tenant, which @context, what the client accepts."""

    ctx: AppContext
    actor: Actor
    tenant: str
    context: jsonld.Context
    accept: str
    params: Mapping[str, str]
    body: Any = None


def _accept(request: Request, geo_ok: bool) -> str:
    """Negotiate the response type: JSON, JSON-LD or (for entities) GeoJSON; 406 otherwise."""
    header = request.headers.get("accept", "*/*").lower()
    offered = [part.split(";")[0].strip() for part in header.split(",") if part.strip()]
    for media in offered or ["*/*"]:
        if media in (JSON, JSONLD) or (media == GEOJSON and geo_ok):
            return media
        if media in ("*/*", "application/*"):
            return JSON
    raise NotAcceptable(f"none of the media types in Accept ({header}) can be produced")


def _resolver(ctx: AppContext) -> jsonld.Resolver:
    """User @context documents stored by the broker; nothing is ever fetched from the network."""
    from citybrain.apps.context.contexts import resolve

    return lambda url: resolve(ctx, url)


async def _call(request: Request, *, allowed: set[str], body: bool = False, geo_ok: bool = False) -> Call:
    """Parse and check the common parts of a request (raises the spec's errors)."""
    ctx = get_ctx(request)
    actor = recalled_actor(request)
    if actor is None:  # finding the actor may need the database: in a worker thread
        actor = await run_in_threadpool(current_actor, request)
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise InvalidRequest(f"unknown or unsupported query parameter(s): {', '.join(unknown)}")
    accept = _accept(request, geo_ok)
    tenant = services.check_tenant(request.headers.get("ngsild-tenant"))
    content_type = request.headers.get("content-type")
    payload: Any = None
    body_context: Any = None
    if body:
        media = jsonld.media_type(content_type)
        if media not in (JSON, JSONLD, MERGE_PATCH):
            raise UnsupportedMediaType(
                f"Content-Type must be {JSON} or {JSONLD}, not {content_type or 'missing'}"
            )
        raw = await request.body()
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(f"the body is not valid JSON: {exc}") from None
        if isinstance(payload, dict):
            body_context = payload.pop("@context", None)
        if media == MERGE_PATCH:
            content_type = JSON
    link = request.headers.get("link")
    if link is None and body_context is None:  # the core @context alone: no stored document to read
        context = jsonld.context_from_request(content_type if body else JSON, None, None, None)
    else:
        context = await run_in_threadpool(
            jsonld.context_from_request, content_type if body else JSON, link, body_context, _resolver(ctx)
        )
    return Call(ctx, actor, tenant, context, accept, request.query_params, payload)


def _respond(call: Call, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Serialise a body the NGSI-LD way: @context inline for JSON-LD, a Link header for JSON."""
    headers = dict(headers or {})
    media = call.accept
    context_ref: Any = list(call.context.urls) or [jsonld.CORE_CONTEXT_URL]
    if media == JSONLD:
        ref = context_ref[0] if len(context_ref) == 1 else context_ref
        if isinstance(body, list):
            body = [{**item, "@context": ref} for item in body]
        elif isinstance(body, dict):
            body = {**body, "@context": ref}
    elif media == JSON:
        headers["Link"] = (
            f'<{context_ref[0]}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
        )
    return Response(orjson.dumps(body), status_code=status, media_type=media, headers=headers)


def _options(call: Call) -> set[str]:
    return {o.strip() for o in call.params.get("options", "").split(",") if o.strip()}


def _form(call: Call) -> ent.Form:
    options = _options(call) | {call.params.get("format", "")}
    if "keyValues" in options or "simplified" in options:
        return "keyValues"
    if "concise" in options:
        return "concise"
    return "normalized"


def _names(call: Call, key: str) -> set[str] | None:
    raw = call.params.get(key)
    if raw is None:
        return None
    names = [n.strip() for n in raw.split(",") if n.strip()]
    if not names:
        raise BadRequestData(f"{key} is empty")
    return {call.context.expand(n) for n in names}


def _render(call: Call, stored: Mapping[str, Any]) -> dict[str, Any]:
    attrs = _names(call, "pick") or _names(call, "attrs")
    common: dict[str, Any] = {
        "form": _form(call),
        "sys_attrs": "sysAttrs" in _options(call),
        "attrs": attrs,
        "omit": _names(call, "omit"),
        "lang": call.params.get("lang"),
    }
    if call.accept == GEOJSON:
        geoproperty = call.context.expand(call.params.get("geoproperty", "location"))
        return ent.render_geojson(stored, call.context, geoproperty, **common)
    return ent.render_entity(stored, call.context, **common)


def _int(call: Call, key: str, default: int, maximum: int | None = None) -> int:
    raw = call.params.get(key)
    if raw is None:
        return default
    if not raw.isdigit():
        raise BadRequestData(f"{key} must be a non-negative integer, not {raw!r}")
    value = int(raw)
    if maximum is not None and value > maximum:
        from citybrain.apps.context.errors import TooManyResults

        raise TooManyResults(f"{key} may be at most {maximum}")
    return value


def _entity_query(call: Call, params: Mapping[str, Any]) -> services.EntityQuery:
    """Turn query parameters (or an entityOperations/query body) into an EntityQuery."""
    expand = call.context.expand
    types = (
        [call.context.expand_type(t.strip()) for t in str(params["type"]).split(",")]
        if params.get("type")
        else None
    )
    ids = (
        [ent.validate_entity_id(i.strip()) for i in str(params["id"]).split(",")]
        if params.get("id")
        else None
    )
    q = None
    if params.get("q"):
        try:
            q = parse_q(str(params["q"]), expand)
        except QueryError as exc:
            raise BadRequestData(f"invalid q: {exc}") from None
    geo = None
    if params.get("georel") or params.get("geometry") or params.get("coordinates"):
        missing = [k for k in ("georel", "geometry", "coordinates") if not params.get(k)]
        if missing:
            raise BadRequestData(f"a geo-query needs {', '.join(missing)} too")
        try:
            geo = parse_geoquery(
                str(params["georel"]),
                str(params["geometry"]),
                params["coordinates"],
                expand(str(params.get("geoproperty") or "location")),
            )
        except GeoQueryError as exc:
            raise BadRequestData(f"invalid geo-query: {exc}") from None
    attrs = _names(call, "attrs") if "attrs" in call.params else None
    if (
        types is None
        and ids is None
        and not params.get("idPattern")
        and q is None
        and geo is None
        and not attrs
    ):
        raise BadRequestData("a query needs at least one of type, id, idPattern, q, georel or attrs")
    return services.EntityQuery(
        types=types,
        ids=ids,
        id_pattern=params.get("idPattern"),
        q=q,
        geo=geo,
        attrs=attrs,
        limit=_int(call, "limit", DEFAULT_LIMIT, MAX_LIMIT),
        offset=_int(call, "offset", 0),
        count=call.params.get("count") == "true",
    )


def _parse_entity(call: Call, payload: Any, *, nulls: ent.NullMode = "none") -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise BadRequestData("the body must be a JSON object (an entity)")
    if "keyValues" in _options(call):
        return ent.parse_key_values(payload, call.context, utcnow())
    return ent.parse_entity(payload, call.context, utcnow(), nulls=nulls)


def _multi_status(result: ent.UpdateResult, call: Call) -> Response:
    """204 when every attribute was handled, 207 naming the ones that were not."""
    if not result.not_updated:
        return Response(status_code=204)
    body = {
        "updated": sorted({call.context.compact(c.name) for c in result.changes}),
        "notUpdated": [
            {"attributeName": call.context.compact(n.name), "reason": n.reason} for n in result.not_updated
        ],
    }
    return Response(orjson.dumps(body), status_code=207, media_type=JSON)


# --- entities ----------------------------------------------------------------------------------


@router.post("/entities", status_code=201)
async def create_entity(request: Request) -> Response:
    """Create an entity (201 with Location)."""
    call = await _call(request, allowed={"options"}, body=True)
    stored = _parse_entity(call, call.body)
    await services.write_one(call.ctx, services.create_job(call.actor, call.tenant, stored))
    return Response(
        status_code=201, headers={"Location": f"/ngsi-ld/v1/entities/{quote(stored['id'], safe=':')}"}
    )


@router.get("/entities")
async def query_entities(request: Request) -> Response:
    """Query entities by type, id, idPattern, q, geo-query and attributes, one page at a time."""
    call = await _call(request, allowed=QUERY_PARAMS, geo_ok=True)
    result = await run_in_threadpool(
        services.query_entities, call.ctx, call.actor, call.tenant, _entity_query(call, call.params)
    )
    headers = {"NGSILD-Results-Count": str(result.total)} if result.total is not None else {}
    items = [_render(call, stored) for stored in result.entities]
    if call.accept == GEOJSON:
        return _respond(call, {"type": "FeatureCollection", "features": items}, headers=headers)
    return _respond(call, items, headers=headers)


@router.get("/entities/{entity_id:path}/attrs/{attr}")
async def _no_attr_get(entity_id: str, attr: str, request: Request) -> Response:
    raise InvalidRequest("retrieving a single attribute is not an NGSI-LD operation; use attrs=")


@router.get("/entities/{entity_id:path}")
async def retrieve_entity(entity_id: str, request: Request) -> Response:
    """Retrieve one entity."""
    call = await _call(
        request, allowed=QUERY_PARAMS - {"id", "type", "idPattern", "q", "georel"}, geo_ok=True
    )
    ent.validate_entity_id(entity_id)
    stored = await run_in_threadpool(services.get_entity, call.ctx, call.actor, call.tenant, entity_id)
    return _respond(call, _render(call, stored))


@router.delete("/entities/{entity_id:path}/attrs/{attr}", status_code=204)
async def delete_attribute(entity_id: str, attr: str, request: Request) -> Response:
    """Delete an attribute (its default instance, one datasetId, or all instances)."""
    call = await _call(request, allowed={"datasetId", "deleteAll"})
    ent.validate_entity_id(entity_id)
    iri = call.context.expand(ent.validate_attr_name(attr))
    dataset_id = call.params.get("datasetId")
    delete_all = call.params.get("deleteAll") == "true"

    def apply(stored: dict[str, Any], now: Any) -> ent.UpdateResult:
        return ent.delete_attr(stored, iri, now, dataset_id=dataset_id, delete_all=delete_all)

    result = await _update(call, entity_id, apply)
    if result.not_updated:
        raise ResourceNotFound(f"attribute {attr} of {entity_id} does not exist")
    return Response(status_code=204)


@router.delete("/entities/{entity_id:path}", status_code=204)
async def delete_entity(entity_id: str, request: Request) -> Response:
    """Delete an entity."""
    call = await _call(request, allowed=set())
    ent.validate_entity_id(entity_id)
    await services.write_one(call.ctx, services.delete_job(call.actor, call.tenant, entity_id))
    return Response(status_code=204)


@router.post("/entities/{entity_id:path}/attrs")
async def append_attributes(entity_id: str, request: Request) -> Response:
    """Append attributes (options=noOverwrite keeps existing ones): 204, or 207 naming those not written."""
    call = await _call(request, allowed={"options"}, body=True)
    ent.validate_entity_id(entity_id)
    attrs = ent.parse_attributes(call.body, call.context, utcnow())
    no_overwrite = "noOverwrite" in _options(call)
    return _multi_status(
        await _update(
            call,
            entity_id,
            lambda stored, now: ent.append_attrs(stored, attrs, now, no_overwrite=no_overwrite),
        ),
        call,
    )


@router.patch("/entities/{entity_id:path}/attrs/{attr}", status_code=204)
async def partial_attribute_update(entity_id: str, attr: str, request: Request) -> Response:
    """Update some members of one attribute instance."""
    call = await _call(request, allowed=set(), body=True)
    ent.validate_entity_id(entity_id)
    iri = call.context.expand(ent.validate_attr_name(attr))
    fragment = ent.parse_attr_fragment(call.body, call.context, attr)
    dataset_id = fragment.get("datasetId") if isinstance(fragment, dict) else None
    result = await _update(
        call, entity_id, lambda stored, now: ent.partial_attr_update(stored, iri, fragment, now, dataset_id)
    )
    if result.not_updated:
        raise ResourceNotFound(f"attribute {attr} of {entity_id} does not exist")
    return Response(status_code=204)


@router.put("/entities/{entity_id:path}/attrs/{attr}", status_code=204)
async def replace_attribute(entity_id: str, attr: str, request: Request) -> Response:
    """Replace Attribute: the named attribute (the instance of the body's datasetId) is replaced whole."""
    call = await _call(request, allowed=set(), body=True)
    ent.validate_entity_id(entity_id)
    name = ent.validate_attr_name(attr)
    if not isinstance(call.body, dict):
        raise BadRequestData("the body must be one attribute (a JSON object)")
    attrs = ent.parse_attributes({name: call.body}, call.context, utcnow())
    if not attrs:
        raise BadRequestData(f"{attr} is not an attribute that can be replaced")
    result = await _update(call, entity_id, lambda stored, now: ent.update_attrs(stored, attrs, now))
    if result.not_updated:
        raise ResourceNotFound(f"attribute {attr} of {entity_id} does not exist")
    return Response(status_code=204)


@router.patch("/entities/{entity_id:path}/attrs")
async def update_attributes(entity_id: str, request: Request) -> Response:
    """Update existing attributes: 204, or 207 naming those that do not exist."""
    call = await _call(request, allowed=set(), body=True)
    ent.validate_entity_id(entity_id)
    attrs = ent.parse_attributes(call.body, call.context, utcnow(), nulls="attribute")
    return _multi_status(
        await _update(call, entity_id, lambda stored, now: ent.update_attrs(stored, attrs, now)), call
    )


@router.put("/entities/{entity_id:path}", status_code=204)
async def replace_entity(entity_id: str, request: Request) -> Response:
    """Replace an entity's attributes (and types) entirely."""
    call = await _call(request, allowed=set(), body=True)
    ent.validate_entity_id(entity_id)
    payload = call.body if isinstance(call.body, dict) else {}
    payload = {**payload, "id": payload.get("id", entity_id)}
    if payload["id"] != entity_id:
        raise BadRequestData("the id in the body differs from the id in the URL")
    new = _parse_entity(call, payload)
    await _update(call, entity_id, lambda stored, now: ent.replace_entity(stored, new, now))
    return Response(status_code=204)


@router.patch("/entities/{entity_id:path}", status_code=204)
async def merge_entity(entity_id: str, request: Request) -> Response:
    """Merge a fragment into an entity (urn:ngsi-ld:null removes what it names)."""
    call = await _call(request, allowed={"options"}, body=True)
    ent.validate_entity_id(entity_id)
    fragment = ent.parse_fragment(call.body, call.context, utcnow(), nulls="nested")
    types = fragment.get("type", ())
    attrs = fragment.get("attrs", {})
    await _update(call, entity_id, lambda stored, now: ent.merge_entity(stored, attrs, now, types=types))
    return Response(status_code=204)


async def _update(
    call: Call, entity_id: str, apply: Callable[[dict[str, Any], Any], ent.UpdateResult]
) -> ent.UpdateResult:
    job = services.update_job(call.actor, call.tenant, entity_id, "context.entity.update", apply)
    result = await services.write_one(call.ctx, job)
    assert result is not None
    return result


# --- batch operations --------------------------------------------------------------------------


@router.post("/entityOperations/{operation}")
async def entity_operation(operation: str, request: Request) -> Response:
    """Batch create, upsert, update, delete, merge (207 naming each failure), and query."""
    if operation == "query":
        return await _batch_query(request)
    if operation not in ("create", "upsert", "update", "delete", "merge"):
        raise ResourceNotFound(f"no entity operation {operation!r}")
    call = await _call(request, allowed={"options"}, body=True)
    if not isinstance(call.body, list) or not call.body:
        raise BadRequestData("the body must be a non-empty JSON array")
    items: list[dict[str, Any] | Exception] = []
    for raw in call.body:
        try:
            if operation == "delete":
                items.append({"id": ent.validate_entity_id(raw)})
            else:
                if isinstance(raw, dict):
                    raw.pop("@context", None)
                items.append(
                    _parse_entity(call, raw, nulls="nested" if operation == "merge" else "none")
                    if operation != "update" and operation != "merge"
                    else _parse_partial(call, raw, operation)
                )
        except NgsiError as exc:
            exc.entity_id = raw.get("id", "") if isinstance(raw, dict) else str(raw)  # type: ignore[attr-defined]
            items.append(exc)
    options = _options(call)
    jobs = services.batch_jobs(
        call.actor,
        call.tenant,
        operation,
        items,
        upsert_mode="update" if "update" in options else "replace",
        no_overwrite="noOverwrite" in options,
    )
    result = services.batch_result(items, await services.write(call.ctx, jobs) if jobs else [])
    if not result.errors:
        if operation == "create":
            return Response(orjson.dumps(result.success), status_code=201, media_type=JSON)
        return Response(status_code=204)
    return Response(
        orjson.dumps({"success": result.success, "errors": result.errors}), status_code=207, media_type=JSON
    )


def _parse_partial(call: Call, raw: Any, operation: str) -> dict[str, Any]:
    """An entity fragment for batch update/merge: an id, optional types and attributes."""
    if not isinstance(raw, dict):
        raise BadRequestData("each item must be a JSON object")
    entity_id = ent.validate_entity_id(raw.get("id"))
    fragment = ent.parse_fragment(
        raw, call.context, utcnow(), nulls="nested" if operation == "merge" else "attribute"
    )
    return {**fragment, "id": entity_id}


async def _batch_query(request: Request) -> Response:
    call = await _call(request, allowed={"limit", "offset", "count", "options", "format", "lang"}, body=True)
    body = call.body
    if not isinstance(body, dict) or body.get("type") != "Query":
        raise BadRequestData('the body must be a Query object ({"type": "Query", ...})')
    params: dict[str, Any] = {}
    entities = body.get("entities") or []
    if entities:
        first = entities[0]
        params["type"] = first.get("type")
        params["id"] = first.get("id")
        params["idPattern"] = first.get("idPattern")
    if body.get("attrs"):
        call.params = {**call.params, "attrs": ",".join(body["attrs"])}
    params["q"] = body.get("q")
    geo = body.get("geoQ") or {}
    if geo:
        params.update(
            georel=geo.get("georel"),
            geometry=geo.get("geometry"),
            coordinates=geo.get("coordinates"),
            geoproperty=geo.get("geoproperty"),
        )
    result = await run_in_threadpool(
        services.query_entities, call.ctx, call.actor, call.tenant, _entity_query(call, params)
    )
    headers = {"NGSILD-Results-Count": str(result.total)} if result.total is not None else {}
    return _respond(call, [_render(call, s) for s in result.entities], headers=headers)


# --- discovery ---------------------------------------------------------------------------------


@router.get("/types")
async def list_types(request: Request) -> Response:
    """The entity types present (details=true for attribute names and counts)."""
    call = await _call(request, allowed={"details"})
    found = await run_in_threadpool(services.entity_types, call.ctx, call.actor, call.tenant)
    compact = call.context.compact_type
    if call.params.get("details") == "true":
        body: Any = [_type_info(call, iri, info, detailed=False) for iri, info in sorted(found.items())]
    else:
        body = {
            "id": _list_id("EntityTypeList", found),
            "type": "EntityTypeList",
            "typeList": sorted(compact(iri) for iri in found),
        }
    return _respond(call, body)


def _list_id(kind: str, names: Mapping[str, Any]) -> str:
    """A stable synthetic id for a discovery list (the same names give the same id)."""
    digest = hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()[:16]
    return f"urn:ngsi-ld:{kind}:{digest}"


def _type_info(call: Call, iri: str, info: dict[str, Any], *, detailed: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"id": iri, "type": "EntityType", "typeName": call.context.compact_type(iri)}
    if detailed:
        body["entityCount"] = info["count"]
        body["attributeDetails"] = [
            {
                "id": name,
                "type": "Attribute",
                "attributeName": call.context.compact(name),
                "attributeTypes": sorted(kinds),
            }
            for name, kinds in sorted(info["attrs"].items())
        ]
    else:
        body["attributeNames"] = sorted(call.context.compact(n) for n in info["attrs"])
    return body


@router.get("/types/{type_name:path}")
async def get_type(type_name: str, request: Request) -> Response:
    """Details of one entity type: entity count and its attributes."""
    call = await _call(request, allowed=set())
    iri = call.context.expand_type(type_name)
    found = await run_in_threadpool(services.entity_types, call.ctx, call.actor, call.tenant)
    if iri not in found:
        raise ResourceNotFound(f"no entity of type {type_name}")
    return _respond(call, _type_info(call, iri, found[iri], detailed=True))


@router.get("/attributes")
async def list_attributes(request: Request) -> Response:
    """The attribute names present (details=true for counts and types)."""
    call = await _call(request, allowed={"details"})
    found = await run_in_threadpool(services.attribute_names, call.ctx, call.actor, call.tenant)
    if call.params.get("details") == "true":
        body: Any = [_attr_info(call, iri, info) for iri, info in sorted(found.items())]
    else:
        body = {
            "id": _list_id("AttributeList", found),
            "type": "AttributeList",
            "attributeList": sorted(call.context.compact(iri) for iri in found),
        }
    return _respond(call, body)


def _attr_info(call: Call, iri: str, info: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": iri,
        "type": "Attribute",
        "attributeName": call.context.compact(iri),
        "attributeCount": info["count"],
        "attributeTypes": sorted(info["attributeTypes"]),
        "typeNames": sorted(call.context.compact_type(t) for t in info["types"]),
    }


@router.get("/attributes/{attr:path}")
async def get_attribute(attr: str, request: Request) -> Response:
    """Details of one attribute name."""
    call = await _call(request, allowed=set())
    iri = call.context.expand(attr)
    found = await run_in_threadpool(services.attribute_names, call.ctx, call.actor, call.tenant)
    if iri not in found:
        raise ResourceNotFound(f"no attribute {attr}")
    return _respond(call, _attr_info(call, iri, found[iri]))


# --- temporal API ------------------------------------------------------------------------------

TEMPORAL_PARAMS = QUERY_PARAMS | {
    "timerel",
    "timeAt",
    "endTimeAt",
    "timeproperty",
    "lastN",
    "aggrMethods",
    "aggrPeriodDuration",
}


def _temporal_query(call: Call, params: Mapping[str, Any], single: str | None) -> temporal.TemporalQuery:
    """Parse the temporal parameters (and the entity selection when not a single entity)."""
    if single is not None:
        selection = services.EntityQuery(ids=[single], limit=1)
    else:
        selection = _entity_query(call, params)
    aggregated = "aggregatedValues" in _options(call) or call.params.get("format") == "aggregatedValues"
    return temporal.parse_query(params, selection, _names(call, "attrs"), aggregated=aggregated)


def _render_temporal(call: Call, item: dict[str, Any], query: temporal.TemporalQuery) -> dict[str, Any]:
    """A temporal entity in the requested form: instances, temporalValues or aggregatedValues."""
    types = [call.context.compact_type(t) for t in item["type"]]
    body: dict[str, Any] = {"id": item["id"], "type": types[0] if len(types) == 1 else types}
    if query.aggr_methods:
        for iri, series in item.get("aggregates", {}).items():
            body[call.context.compact(iri)] = {"type": "Property", **series}
        return body
    values_form = "temporalValues" in _options(call) or call.params.get("format") == "temporalValues"
    for iri, instances in item["attrs"].items():
        name = call.context.compact(iri)
        if values_form:
            kind = instances[0].get("type", "Property") if instances else "Property"
            member = {"Relationship": "objects", "LanguageProperty": "languageMaps"}.get(kind, "values")
            source = {"Relationship": "object", "LanguageProperty": "languageMap"}.get(kind, "value")
            body[name] = {
                "type": kind,
                member: [[i.get(source), i.get(query.timeproperty)] for i in instances],
            }
            continue
        rendered = []
        for instance in instances:
            instance_id = instance.pop("instanceId")
            one = ent.render_entity(
                {"id": item["id"], "type": item["type"], "attrs": {iri: [instance]}},
                call.context,
                sys_attrs="sysAttrs" in _options(call),
            )
            rendered.append({**one[name], "instanceId": instance_id})
        body[name] = rendered
    return body


@router.get("/temporal/entities/{entity_id:path}")
async def temporal_entity(entity_id: str, request: Request) -> Response:
    """The history of one entity's attributes (206 with Content-Range when it continues on a further page)."""
    call = await _call(request, allowed=TEMPORAL_PARAMS - {"id", "type", "idPattern", "q", "georel"})
    ent.validate_entity_id(entity_id)
    query = _temporal_query(call, call.params, entity_id)
    found = await run_in_threadpool(temporal.temporal_entities, call.ctx, call.actor, call.tenant, query)
    if not found.entities:
        raise ResourceNotFound(f"entity {entity_id} does not exist")
    return _respond(call, _render_temporal(call, found.entities[0], query), found.status, found.headers())


@router.get("/temporal/entities")
async def temporal_query(request: Request) -> Response:
    """The history of the attributes of every entity a query selects, one page of entities at a time."""
    call = await _call(request, allowed=TEMPORAL_PARAMS)
    query = _temporal_query(call, call.params, None)
    found = await run_in_threadpool(temporal.temporal_entities, call.ctx, call.actor, call.tenant, query)
    body = [_render_temporal(call, item, query) for item in found.entities]
    return _respond(call, body, found.status, found.headers())


@router.post("/temporal/entityOperations/query")
async def temporal_batch_query(request: Request) -> Response:
    """A temporal query given as a Query object in the body (temporalQ holds the temporal parameters)."""
    call = await _call(request, allowed={"limit", "offset", "count", "options", "format", "lastN"}, body=True)
    body = call.body
    if not isinstance(body, dict) or body.get("type") != "Query":
        raise BadRequestData('the body must be a Query object ({"type": "Query", ...})')
    temporal_q = body.get("temporalQ") or {}
    attrs = body.get("attrs")
    if not isinstance(temporal_q, dict):
        raise BadRequestData("temporalQ must be a JSON object")
    if attrs is not None and not (isinstance(attrs, list) and all(isinstance(a, str) for a in attrs)):
        raise BadRequestData("attrs must be an array of attribute names")
    params: dict[str, Any] = {**call.params, "q": body.get("q")}
    entities = body.get("entities") or []
    if entities:
        params.update(
            type=entities[0].get("type"), id=entities[0].get("id"), idPattern=entities[0].get("idPattern")
        )
    geo = body.get("geoQ") or {}
    if geo:
        params.update({key: geo.get(key) for key in ("georel", "geometry", "coordinates", "geoproperty")})
    params.update({k: body[k] for k in ("aggrMethods", "aggrPeriodDuration") if body.get(k) is not None})
    params.update(temporal_q)
    if attrs:
        call.params = {**call.params, "attrs": ",".join(attrs)}
    query = _temporal_query(call, params, None)
    found = await run_in_threadpool(temporal.temporal_entities, call.ctx, call.actor, call.tenant, query)
    items = [_render_temporal(call, item, query) for item in found.entities]
    return _respond(call, items, found.status, found.headers())
