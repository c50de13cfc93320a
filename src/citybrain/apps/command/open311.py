"""Open311 GeoReport v2 under /open311/v2: services, service definitions, requests (list, read, submit).

Every route answers JSON or XML by its suffix (`.json`, `.xml`) and reports errors in the spec's format
— `[{"code": 400, "description": "..."}]` or `<errors><error><code>…` — with the matching HTTP status
(400 bad input, 403 a missing or invalid api_key, 404 an unknown service, request or jurisdiction).
Parameters are parsed here (not by FastAPI) so that no error escapes in another format. A client
authenticates by the api_key it sends, never by a browser session, so these routes need no CSRF token.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from xml.etree import ElementTree as ET

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from citybrain.apps.command import georeport
from citybrain.sdk import BadRequest, Ctx, Locale, ProblemError

router = APIRouter()
KEY_AUTHENTICATED = True
JSON_TYPE = "application/json; charset=utf-8"
XML_TYPE = "text/xml; charset=utf-8"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# Open311 knows 400, 403 and 404; a failed validation is its 400.
STATUS = {401: 403, 422: 400}


def _xml_value(parent: ET.Element, name: str, value: Any) -> None:
    child = ET.SubElement(parent, name)
    if isinstance(value, bool):
        child.text = "true" if value else "false"
    elif isinstance(value, list):
        item_name = "value" if name == "values" else name.rstrip("s")
        for item in value:
            _xml_element(child, item_name, item)
    elif isinstance(value, dict):
        for key, inner in value.items():
            _xml_value(child, key, inner)
    elif value is not None:
        child.text = str(value)


def _xml_element(parent: ET.Element, name: str, item: Mapping[str, Any]) -> None:
    element = ET.SubElement(parent, name)
    for key, value in item.items():
        _xml_value(element, key, value)


def _xml(root: str, item: str, body: Any) -> bytes:
    """A GeoReport XML document: a list of `item` elements under `root`, or one object."""
    top = ET.Element(root)
    if isinstance(body, list):
        for entry in body:
            _xml_element(top, item, entry)
    else:
        for key, value in body.items():
            _xml_value(top, key, value)
    return b'<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(top, encoding="unicode").encode("utf-8")


def _render(fmt: str, body: Any, root: str, item: str, status_code: int = 200) -> Response:
    if fmt == "xml":
        return Response(_xml(root, item, body), status_code=status_code, media_type=XML_TYPE)
    return Response(orjson.dumps(body), status_code=status_code, media_type=JSON_TYPE)


def _error(ctx: Ctx, locale: str, fmt: str, exc: ProblemError) -> Response:
    status_code = STATUS.get(exc.status, exc.status)
    text = ctx.i18n.gettext(locale, exc.detail, **exc.params)
    return _render(fmt, [{"code": status_code, "description": text}], "errors", "error", status_code)


def _answer(
    ctx: Ctx, locale: str, fmt: str, root: str, item: str, work: Callable[[], Any], status_code: int = 200
) -> Response:
    """Run the service call and render its answer, or its error, in the requested format."""
    if fmt not in ("json", "xml"):
        return _render(
            "json",
            [{"code": 404, "description": "Unknown format: use .json or .xml."}],
            "errors",
            "error",
            404,
        )
    try:
        return _render(fmt, work(), root, item, status_code)
    except ProblemError as exc:
        return _error(ctx, locale, fmt, exc)


def _query(request: Request) -> dict[str, str]:
    return {k: v for k, v in request.query_params.items()}


@router.get("/services.{fmt}", include_in_schema=True)
def service_list(fmt: str, request: Request, ctx: Ctx, locale: Locale) -> Response:
    """GeoReport v2 service list."""
    query = _query(request)

    def work() -> list[dict[str, Any]]:
        georeport.check_jurisdiction(ctx, query.get("jurisdiction_id"))
        return [
            {
                "service_code": s.code,
                "service_name": s.name,
                "description": s.description,
                "metadata": True,
                "type": "realtime",
                "keywords": s.keywords,
                "group": s.group,
            }
            for s in georeport.list_services(ctx, locale)
        ]

    return _answer(ctx, locale, fmt, "services", "service", work)


@router.get("/services/{service_code}.{fmt}")
def service_definition(service_code: str, fmt: str, request: Request, ctx: Ctx, locale: Locale) -> Response:
    """GeoReport v2 service definition: the attributes of a service."""
    query = _query(request)

    def work() -> dict[str, Any]:
        georeport.check_jurisdiction(ctx, query.get("jurisdiction_id"))
        return georeport.service_definition(ctx, locale, service_code)

    return _answer(ctx, locale, fmt, "service_definition", "attribute", work)


@router.get("/requests.{fmt}")
def request_list(fmt: str, request: Request, ctx: Ctx, locale: Locale) -> Response:
    """GeoReport v2 service requests (filters: service_request_id, service_code, start_date, end_date, status)."""
    query = _query(request)

    def work() -> list[dict[str, Any]]:
        georeport.check_jurisdiction(ctx, query.get("jurisdiction_id"))
        return georeport.list_requests(ctx, locale, query)

    return _answer(ctx, locale, fmt, "service_requests", "request", work)


@router.post("/requests.{fmt}")
async def request_create(fmt: str, request: Request, ctx: Ctx, locale: Locale) -> Response:
    """GeoReport v2 POST service request (form-encoded, api_key required)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    received = None
    if kind in FORM_TYPES:
        try:
            received = await request.form()
        except Exception:  # a malformed form: answered as the spec's 400
            received = None
    form = {} if received is None else {k: v for k, v in received.items() if not isinstance(v, UploadFile)}
    form = {**_query(request), **form}  # jurisdiction_id and api_key may come in the query string

    def work() -> list[dict[str, Any]]:
        if received is None:
            raise BadRequest("The body must be form-encoded.")
        return [georeport.submit(ctx, form)]

    return await run_in_threadpool(_answer, ctx, locale, fmt, "service_requests", "request", work, 201)


@router.get("/requests/{request_id}.{fmt}")
def request_detail(request_id: str, fmt: str, request: Request, ctx: Ctx, locale: Locale) -> Response:
    """GeoReport v2 one service request."""
    query = _query(request)

    def work() -> list[dict[str, Any]]:
        georeport.check_jurisdiction(ctx, query.get("jurisdiction_id"))
        return [georeport.get_request(ctx, locale, request_id)]

    return _answer(ctx, locale, fmt, "service_requests", "request", work)
