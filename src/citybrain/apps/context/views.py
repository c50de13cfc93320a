"""Context pages under /context: browse the city's NGSI-LD entities, their places and their history.

Views stay thin: parse the filters, call the services (which check `context.entity.read`; a page the
actor may not see raises there and the kernel answers with the error page or the sign-in redirect) and
shape the stored entities for the templates. Names are compacted with the core @context only, as an
NGSI-LD client without a @context of its own sees them. Maps and charts are drawn in the browser from
JSON embedded in the page (static/context/context.js); no tile server is needed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from citybrain.apps.context import entities as ent
from citybrain.apps.context import services
from citybrain.apps.context.errors import ResourceNotFound
from citybrain.apps.context.jsonld import Context
from citybrain.apps.context.query import QueryError, parse_q
from citybrain.sdk import Actor, AppContext, Ctx, CurrentActor, Locale, NotFound, render

router = APIRouter()
TENANT = ""  # the pages show the default tenant
PAGE_SIZE = 20
MAP_LIMIT = 500  # entities drawn on the list page's map
HISTORY_LIMIT = 500  # points per history chart
KEY_VALUES = 4  # attribute values shown per row of the list
SHORT_TEXT = 40
# Symbols of common UN/CEFACT unit codes (NGSI-LD unitCode), shown next to the code.
UNIT_SYMBOLS = {
    "GQ": "μg/m³",
    "GP": "mg/m³",
    "CEL": "°C",
    "FAH": "°F",
    "P1": "%",
    "59": "ppm",
    "61": "ppb",
    "KMH": "km/h",
    "MTS": "m/s",
    "MMT": "mm",
    "CMT": "cm",
    "MTR": "m",
    "KMT": "km",
    "A97": "hPa",
    "KPA": "kPa",
    "2N": "dB",
    "DD": "°",
    "LUX": "lx",
    "WTT": "W",
    "KWT": "kW",
    "KWH": "kWh",
    "VLT": "V",
    "AMP": "A",
    "LTR": "L",
    "MTQ": "m³",
    "MQH": "m³/h",
    "MQS": "m³/s",
    "KGM": "kg",
    "TNE": "t",
    "SEC": "s",
    "MIN": "min",
    "HUR": "h",
}
Text = Annotated[str, Query(max_length=512)]
QText = Annotated[str, Query(max_length=4096)]
PageNo = Annotated[int, Query(ge=1, le=1_000_000)]


@dataclass(frozen=True)
class KeyValue:
    """One attribute value as a list row shows it."""

    name: str
    text: str
    unit: str = ""


@dataclass(frozen=True)
class Row:
    """One entity of the list."""

    id: str
    href: str
    types: list[str]
    values: list[KeyValue]
    modified: str
    located: bool


@dataclass(frozen=True)
class AttrRow:
    """One attribute instance of the detail page."""

    name: str
    kind: str
    text: str = ""
    pretty: str = ""
    links: list[tuple[str, str]] = field(default_factory=list)
    unit: str = ""
    observed: str = ""
    dataset: str = ""
    sub: list[tuple[str, str]] = field(default_factory=list)
    chart: str = ""


@dataclass(frozen=True)
class NumericAttr:
    """A numeric attribute instance of the detail page, whose history is charted."""

    iri: str
    row: AttrRow
    unit: str


# --- helpers -----------------------------------------------------------------------------------


def entity_href(entity_id: str) -> str:
    """The detail page of an entity."""
    return "/context/entities/" + quote(entity_id, safe=":/")


def api_href(entity_id: str) -> str:
    """The entity in the NGSI-LD API (raw JSON)."""
    return "/ngsi-ld/v1/entities/" + quote(entity_id, safe=":")


def china_time(value: Any, zone: ZoneInfo) -> str:
    """An NGSI-LD timestamp (ISO text or datetime) in the platform's time zone, to the second."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if not isinstance(value, datetime):
        return ""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def unit_label(code: Any) -> str:
    """A unitCode with its symbol where the code is a common one: 'GQ (μg/m³)'."""
    if not isinstance(code, str) or not code:
        return ""
    symbol = UNIT_SYMBOLS.get(code)
    return f"{code} ({symbol})" if symbol else code


def unit_symbol(code: Any) -> str:
    """The symbol of a unitCode where the code is a common one, else the code itself."""
    return UNIT_SYMBOLS.get(code, code) if isinstance(code, str) else ""


def is_number(value: Any) -> bool:
    """Whether a value is a finite JSON number (booleans are not)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def format_number(value: float) -> str:
    """A number as people read it: no binary noise, no trailing '.0' (60.800000000000004 → '60.8')."""
    if isinstance(value, int):
        return str(value)
    return f"{value:.10g}" if math.isfinite(value) else json.dumps(value)


def _scalar(value: Any) -> str | None:
    """A scalar JSON value as text (strings without quotes); None for objects and arrays."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return format_number(value)
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    return None


def _shorten(text: str, size: int = SHORT_TEXT) -> str:
    """Text cut to `size` characters, with an ellipsis when it was longer."""
    return text if len(text) <= size else text[: size - 1] + "…"


def _pick_language(language_map: Mapping[str, Any], locale: str) -> Any:
    """The value of a LanguageProperty in the reader's language, else any."""
    wanted = ("zh-CN", "zh-Hans", "zh", "en") if locale == "zh_CN" else ("en", "zh-CN", "zh")
    for tag in (*wanted, "@none"):
        if tag in language_map:
            return language_map[tag]
    return next(iter(language_map.values()), "")


def contains_pattern(text: str) -> str:
    """A portable, case-insensitive regular expression matching ids that contain `text`."""
    parts = []
    for char in text:
        if char.isalpha() and char.lower() != char.upper():
            parts.append(f"[{char.lower()}{char.upper()}]")
        elif char.isalnum():
            parts.append(char)
        else:
            parts.append("\\" + char)
    return "".join(parts)


def key_values(stored: Mapping[str, Any], jctx: Context, locale: str) -> list[KeyValue]:
    """A few attribute values that tell entities apart: the name first, then numbers, then short texts."""
    ranked: list[tuple[int, KeyValue]] = []
    for iri, instances in stored.get("attrs", {}).items():
        instance = instances[0]
        kind = instance.get("type")
        name = jctx.compact(iri)
        if kind == "LanguageProperty":
            value = _pick_language(instance.get("languageMap") or {}, locale)
        elif kind in ("Property", "VocabProperty"):
            value = instance.get("value", instance.get("vocab"))
            if kind == "VocabProperty":
                value = jctx.compact(value) if isinstance(value, str) else None
        else:
            continue  # relationships and geometry have their own columns and map
        text = _scalar(value)
        if text is None or text == "":
            continue
        rank = 0 if name == "name" else 1 if is_number(value) else 2
        ranked.append((rank, KeyValue(name, _shorten(text), unit_symbol(instance.get("unitCode")))))
    ranked.sort(key=lambda item: item[0])
    return [kv for _, kv in ranked[:KEY_VALUES]]


def display_name(stored: Mapping[str, Any], jctx: Context, locale: str) -> str:
    """The entity's `name` (a text Property or LanguageProperty), or '' when it has none."""
    instance = ent.find_instance(stored, jctx.expand("name"))
    if instance is None:
        return ""
    if instance.get("type") == "LanguageProperty":
        value = _pick_language(instance.get("languageMap") or {}, locale)
    else:
        value = instance.get("value") if instance.get("type") == "Property" else None
    return value.strip() if isinstance(value, str) else ""


def _feature(stored: Mapping[str, Any], jctx: Context, locale: str) -> dict[str, Any] | None:
    """The list map's feature of an entity with a location."""
    geometry = ent.geometry_of(stored)
    if not isinstance(geometry, dict):
        return None
    types = [jctx.compact_type(t) for t in stored.get("type", [])]
    return {
        "id": stored["id"],
        "type": ", ".join(types),
        "label": _shorten(display_name(stored, jctx, locale), 24),
        "href": entity_href(stored["id"]),
        "geometry": geometry,
    }


def _display(instance: Mapping[str, Any], jctx: Context) -> dict[str, Any]:
    """How an attribute's value shows: text, pretty JSON, or links to related entities."""
    kind = instance.get("type", "Property")
    value = instance.get(ent.VALUE_MEMBER.get(kind, "value"))
    if kind == "Relationship" and isinstance(value, str):
        return {"links": [(value, entity_href(value))]}
    if kind == "ListRelationship" and isinstance(value, list):
        return {"links": [(v, entity_href(v)) for v in value if isinstance(v, str)]}
    if kind == "VocabProperty":
        names = jctx.compact(value) if isinstance(value, str) else [jctx.compact(v) for v in value or []]
        return {"text": names if isinstance(names, str) else ", ".join(names)}
    if kind == "GeoProperty" and isinstance(value, dict) and value.get("type") == "Point":
        coords = value.get("coordinates") or []
        return {"text": "Point " + ", ".join(_scalar(c) or "" for c in coords)}
    text = _scalar(value)
    if text is not None:
        return {"text": text}
    return {"pretty": json.dumps(value, ensure_ascii=False, indent=2)}


def _sub_attributes(instance: Mapping[str, Any], jctx: Context) -> list[tuple[str, str]]:
    """Sub-attributes (properties of an attribute) as name and short text."""
    out = []
    for iri, instances in instance.get("sub", {}).items():
        for sub in instances:
            shown = _display(sub, jctx)
            if shown.get("links"):
                text = ", ".join(target for target, _ in shown["links"])
            else:
                text = shown.get("text") or json.dumps(
                    sub.get(ent.VALUE_MEMBER.get(sub.get("type", ""), "value")), ensure_ascii=False
                )
            unit = unit_label(sub.get("unitCode"))
            out.append((jctx.compact(iri), _shorten(text, 80) + (f" {unit}" if unit else "")))
    return out


def chart_time(moment: datetime, zone: ZoneInfo) -> int:
    """Milliseconds of the wall-clock time in the zone, read as UTC (the charts draw in UTC mode)."""
    local = moment.astimezone(zone).replace(tzinfo=UTC)
    return int(local.timestamp() * 1000)


def _charts(
    ctx: AppContext, actor: Actor, entity_id: str, numeric: Sequence[NumericAttr], zone: ZoneInfo
) -> list[dict[str, Any]]:
    """The history series of the numeric attributes (one chart per attribute instance)."""
    charts = []
    for attr in numeric:
        points = services.attribute_history(
            ctx, actor, TENANT, entity_id, attr.iri, HISTORY_LIMIT, dataset_id=attr.row.dataset or None
        )
        charts.append(
            {
                "id": attr.row.chart,
                "name": attr.row.name,
                "dataset": attr.row.dataset,
                "unit": unit_symbol(attr.unit),
                "points": [[chart_time(when, zone), value] for when, value in points],
            }
        )
    return charts


def _ordered(stored: Mapping[str, Any], jctx: Context) -> list[tuple[str, str, Mapping[str, Any]]]:
    """Every attribute instance with its compacted name and IRI, by name (default instance first)."""
    named = sorted(((jctx.compact(iri), iri) for iri in stored.get("attrs", {})), key=lambda n: n[0].lower())
    return [(name, iri, instance) for name, iri in named for instance in stored["attrs"][iri]]


# --- pages -------------------------------------------------------------------------------------


@router.get("")
def context_home() -> Response:
    """The app's entry: the entity list."""
    return RedirectResponse("/context/entities", status_code=303)


@router.get("/entities")
def entity_list(
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
    locale: Locale,
    type_name: Annotated[str, Query(alias="type", max_length=512)] = "",
    q: QText = "",
    id_text: Annotated[str, Query(alias="id", max_length=256)] = "",
    page: PageNo = 1,
) -> Response:
    """Entities of the default tenant, filtered by type, q expression and id, 20 a page, with a map."""
    jctx = Context()
    type_name, q, id_text = type_name.strip(), q.strip(), id_text.strip()
    counts = services.entity_type_counts(ctx, actor, TENANT)
    types = sorted(((jctx.compact_type(iri), n) for iri, n in counts.items()), key=lambda t: t[0].lower())
    query = services.EntityQuery(limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE, count=True)
    if type_name:
        query.types = [jctx.expand_type(type_name)]
    if id_text:
        query.id_pattern = contains_pattern(id_text)
    error = None
    result = services.QueryResult([], 0)
    features: list[dict[str, Any]] = []
    try:
        query.q = parse_q(q, jctx.expand) if q else None
    except QueryError as exc:
        error = ctx.i18n.gettext(locale, "The q expression is not valid: {reason}", reason=str(exc))
    if error is None:
        result = services.query_entities(ctx, actor, TENANT, query)
        located = result.entities
        if (result.total or 0) > len(result.entities):  # the map shows every match, not one page
            wider = replace(query, limit=MAP_LIMIT, offset=0, count=False)
            located = services.query_entities(ctx, actor, TENANT, wider).entities
        features = [f for f in (_feature(s, jctx, locale) for s in located) if f is not None]
    zone = ZoneInfo(ctx.settings.timezone)
    rows = [
        Row(
            id=stored["id"],
            href=entity_href(stored["id"]),
            types=[jctx.compact_type(t) for t in stored.get("type", [])],
            values=key_values(stored, jctx, locale),
            modified=china_time(stored.get("modifiedAt"), zone),
            located=ent.geometry_of(stored) is not None,
        )
        for stored in result.entities
    ]
    total = result.total or 0
    pages = max(1, math.ceil(total / PAGE_SIZE))
    filters = {"type": type_name, "q": q, "id": id_text}

    def page_url(number: int) -> str:
        """The list URL of another page with the same filters."""
        params = [f"{k}={quote(v, safe='')}" for k, v in filters.items() if v]
        params.append(f"page={number}")
        return "/context/entities?" + "&".join(params)

    response = render(
        request,
        "context/entities.html",
        status_code=400 if error else 200,
        rows=rows,
        types=types,
        total=total,
        offset=query.offset,
        page_no=page,
        pages=pages,
        page_url=page_url,
        filters=filters,
        filtered=any(filters.values()),
        error=error,
        features=features,
        map_capped=len(features) >= MAP_LIMIT,
        map_limit=MAP_LIMIT,
        base_url=str(request.base_url).rstrip("/"),
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/entities/{entity_id:path}")
def entity_detail(
    entity_id: str, request: Request, ctx: Ctx, actor: CurrentActor, locale: Locale
) -> Response:
    """One entity: its attributes, relationships, place and the history of its numeric attributes."""
    try:
        stored = services.get_entity(ctx, actor, TENANT, entity_id)
    except ResourceNotFound:
        raise NotFound("No entity has the id {entity_id}.", entity_id=entity_id) from None
    jctx = Context()
    zone = ZoneInfo(ctx.settings.timezone)
    name = display_name(stored, jctx, locale)
    rows: list[AttrRow] = []
    numeric: list[NumericAttr] = []
    shapes: list[dict[str, Any]] = []
    for index, (attr_name, iri, instance) in enumerate(_ordered(stored, jctx)):
        kind = str(instance.get("type", "Property"))
        value = instance.get(ent.VALUE_MEMBER.get(kind, "value"))
        charted = kind == "Property" and is_number(value)
        dataset = str(instance.get("datasetId") or "")
        row = AttrRow(
            name=attr_name,
            kind=kind,
            unit=unit_label(instance.get("unitCode")),
            observed=china_time(instance.get("observedAt"), zone),
            dataset=dataset,
            sub=_sub_attributes(instance, jctx),
            chart=f"chart-{index}" if charted else "",
            **_display(instance, jctx),
        )
        rows.append(row)
        if charted:
            numeric.append(NumericAttr(iri, row, str(instance.get("unitCode") or "")))
        if kind == "GeoProperty" and isinstance(value, dict):
            where = attr_name + (f" ({dataset})" if dataset else "")
            label = _shorten(name, 24) if iri == ent.LOCATION and not dataset else ""
            shapes.append({"id": where, "type": "", "label": label, "geometry": value})
    charts = _charts(ctx, actor, stored["id"], numeric, zone)
    types = [jctx.compact_type(t) for t in stored.get("type", [])]
    scope = stored.get("scope") or []
    response = render(
        request,
        "context/entity.html",
        entity_id=stored["id"],
        name=name,
        types=types,
        scope=scope,
        created=china_time(stored.get("createdAt"), zone),
        modified=china_time(stored.get("modifiedAt"), zone),
        attrs=rows,
        relationships=[row for row in rows if row.links],
        shapes=shapes,
        charts=charts,
        history_limit=HISTORY_LIMIT,
        api_href=api_href(stored["id"]),
    )
    response.headers["Cache-Control"] = "no-store"
    return response
