"""NGSI-LD entities: validation, the broker's stored form, pure update operations and rendering.

Stored form (plain JSON, expanded IRIs as keys, ready for a JSON/JSONB column)::

    {"id": "urn:ngsi-ld:AirQualityObserved:fc-01",
     "type": ["<expanded type IRI>", ...],            # sorted, at least one
     "scope": ["/Madrid/Gardens", ...],               # optional
     "createdAt": "2026-11-24T10:00:00.000000Z", "modifiedAt": "...",
     "attrs": {"<expanded attribute IRI>": [<instance>, ...]}}

An instance is ``{"type": <attribute type>, <value member>: ..., "observedAt"?, "unitCode"?, "datasetId"?,
"objectType"?, "createdAt"?, "modifiedAt"?, "sub"?: {"<expanded sub-attribute IRI>": [<instance>, ...]}}``
where the value member is the one named in ``VALUE_MEMBER``. Instances of one attribute have distinct
datasetIds; the default instance (no datasetId) comes first, the others follow sorted by datasetId.
Relationship objects, ListRelationship objects and VocabProperty vocabs are stored as expanded IRIs/URIs;
only top-level instances carry createdAt/modifiedAt.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from citybrain.apps.context.errors import BadRequestData, ResourceNotFound
from citybrain.apps.context.jsonld import NGSI_LD, Context, is_absolute_uri

JsonDict = dict[str, Any]
NullMode = Literal["none", "attribute", "nested"]
Form = Literal["normalized", "concise", "keyValues"]

NGSI_LD_NULL = "urn:ngsi-ld:null"
LOCATION = NGSI_LD + "location"
OBSERVATION_SPACE = NGSI_LD + "observationSpace"
OPERATION_SPACE = NGSI_LD + "operationSpace"
GEO_ATTRIBUTES = frozenset({LOCATION, OBSERVATION_SPACE, OPERATION_SPACE})

VALUE_MEMBER: Mapping[str, str] = {
    "Property": "value",
    "GeoProperty": "value",
    "Relationship": "object",
    "LanguageProperty": "languageMap",
    "JsonProperty": "json",
    "ListProperty": "valueList",
    "ListRelationship": "objectList",
    "VocabProperty": "vocab",
}
_INFERRED_TYPE: Mapping[str, str] = {
    "value": "Property",
    "object": "Relationship",
    "languageMap": "LanguageProperty",
    "json": "JsonProperty",
    "valueList": "ListProperty",
    "objectList": "ListRelationship",
    "vocab": "VocabProperty",
}
_RELATIONSHIPS = frozenset({"Relationship", "ListRelationship"})
_UNITLESS = frozenset({"Relationship", "ListRelationship", "VocabProperty", "LanguageProperty"})
_SYSTEM_MEMBERS = frozenset({"createdAt", "modifiedAt", "deletedAt", "instanceId"})
_OUTPUT_ONLY = frozenset(
    {
        "lang",
        "entity",
        "entityList",
        "previousValue",
        "previousObject",
        "previousLanguageMap",
        "previousJson",
        "previousValueList",
        "previousObjectList",
        "previousVocab",
    }
)
_ENTITY_MEMBERS = frozenset({"id", "type", "scope", "@context"})
# Names that are members of an entity or an attribute, never attribute names themselves.
RESERVED_NAMES = frozenset(
    {*VALUE_MEMBER.values(), "observedAt", "unitCode", "datasetId", "objectType"}
    | _SYSTEM_MEMBERS
    | _OUTPUT_ONLY
    | _ENTITY_MEMBERS
)
_RESERVED_IRIS = frozenset(Context().expand(name) for name in RESERVED_NAMES)
GEOMETRY_TYPES = frozenset(
    {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"}
)

_FORBIDDEN_NAME_CHARS = re.compile(r"[\s<>\"'=;()\\{}|^`\x00-\x1f\x7f]")
_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$")
_SCOPE = re.compile(r"^/[^/\s#]+(/[^/\s#]+)*$")
_LANG_RANGE = re.compile(r"^(\*|[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*)(;\s*q=(0(\.\d{0,3})?|1(\.0{0,3})?))?$")


@dataclass(frozen=True, slots=True)
class AttrChange:
    """One attribute instance created, replaced or removed by an operation (old/new None when absent)."""

    name: str
    dataset_id: str | None
    old: JsonDict | None
    new: JsonDict | None


@dataclass(frozen=True, slots=True)
class NotUpdated:
    """An attribute instance an operation left alone, with the reason (for 207 Multi-Status bodies)."""

    name: str
    dataset_id: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class UpdateResult:
    """The new stored entity, the attribute changes (for history and events) and what was not updated."""

    entity: JsonDict
    changes: list[AttrChange]
    not_updated: list[NotUpdated]


# --------------------------------------------------------------------------------------------------
# Scalars

# Entity ids are stored in a column of this width.
MAX_ID_LENGTH = 512


def format_datetime(moment: datetime) -> str:
    """A UTC timestamp as stored: ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_datetime(value: Any, field: str) -> str:
    """Validate an ISO 8601 date-time and normalise it to the stored UTC form."""
    if not isinstance(value, str) or "T" not in value:
        raise BadRequestData(f"{field} must be an ISO 8601 date-time, got {value!r}")
    try:
        return format_datetime(datetime.fromisoformat(value))
    except (ValueError, OverflowError):
        raise BadRequestData(f"{field} must be an ISO 8601 date-time, got {value!r}") from None


def validate_entity_id(value: Any) -> str:
    """An entity id must be an absolute URI (RFC 3986 ``scheme:rest``)."""
    if not is_absolute_uri(value):
        raise BadRequestData(f"The entity id must be an absolute URI, got {value!r}")
    if len(value) > MAX_ID_LENGTH:
        raise BadRequestData(f"The entity id is longer than {MAX_ID_LENGTH} characters")
    result: str = value
    return result


def _uri(value: Any, what: str) -> str:
    if not is_absolute_uri(value):
        raise BadRequestData(f"{what} must be an absolute URI, got {value!r}")
    result: str = value
    return result


def validate_attr_name(name: Any) -> str:
    """An attribute (or type) name: a non-empty term, compact IRI or IRI without forbidden characters."""
    if not isinstance(name, str) or not name or name.startswith("@") or _FORBIDDEN_NAME_CHARS.search(name):
        raise BadRequestData(f"Invalid attribute name {name!r}")
    return name


def _is_null(value: Any) -> bool:
    return isinstance(value, str) and value == NGSI_LD_NULL


def is_null_instance(instance: Mapping[str, Any]) -> bool:
    """Whether a parsed instance is an NGSI-LD Null, i.e. a deletion request in update and merge."""
    member = VALUE_MEMBER.get(instance.get("type", ""), "value")
    value = instance.get(member)
    if member == "languageMap" and isinstance(value, Mapping):
        return list(value.items()) == [("@none", NGSI_LD_NULL)]
    if member in ("valueList", "objectList") and isinstance(value, list):
        return value == [NGSI_LD_NULL]
    return _is_null(value)


def _contains_null(value: Any) -> bool:
    if isinstance(value, Mapping):
        return any(_is_null(v) or _contains_null(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_null(v) for v in value)
    return False


# --------------------------------------------------------------------------------------------------
# GeoJSON


def _position(value: Any) -> bool:
    if not isinstance(value, list) or len(value) not in (2, 3):
        return False
    if not all(isinstance(c, int | float) and not isinstance(c, bool) and math.isfinite(c) for c in value):
        return False
    return bool(-180 <= value[0] <= 180 and -90 <= value[1] <= 90)


def _positions(value: Any, minimum: int) -> bool:
    return isinstance(value, list) and len(value) >= minimum and all(_position(p) for p in value)


def _ring(value: Any) -> bool:
    return _positions(value, 4) and value[0][:2] == value[-1][:2]


def _polygon(value: Any) -> bool:
    return isinstance(value, list) and len(value) >= 1 and all(_ring(r) for r in value)


def _many(value: Any, check: Any) -> bool:
    return isinstance(value, list) and len(value) >= 1 and all(check(item) for item in value)


_GEOMETRY_CHECKS: Mapping[str, Any] = {
    "Point": _position,
    "MultiPoint": lambda c: _positions(c, 1),
    "LineString": lambda c: _positions(c, 2),
    "MultiLineString": lambda c: _many(c, lambda line: _positions(line, 2)),
    "Polygon": _polygon,
    "MultiPolygon": lambda c: _many(c, _polygon),
}


def _looks_like_geometry(value: Any) -> bool:
    if not isinstance(value, Mapping) or "coordinates" not in value:
        return False
    kind = value.get("type")
    return isinstance(kind, str) and kind in GEOMETRY_TYPES


def validate_geometry(value: Any, name: str) -> JsonDict:
    """A GeoJSON geometry (Point … MultiPolygon) with longitudes in -180..180, latitudes in -90..90."""
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise BadRequestData(f"The value of GeoProperty '{name}' must be a GeoJSON geometry object")
    kind = value["type"]
    check = _GEOMETRY_CHECKS.get(kind)
    if check is None:
        raise BadRequestData(f"GeoProperty '{name}' has an unsupported geometry type {kind!r}")
    if not check(value.get("coordinates")):
        raise BadRequestData(
            f"GeoProperty '{name}' has invalid {kind} coordinates (longitude -180..180, latitude -90..90, "
            "polygon rings closed with at least 4 positions)"
        )
    return value


# --------------------------------------------------------------------------------------------------
# Parsing


@dataclass(frozen=True, slots=True)
class _Parser:
    """The settings one parse runs under."""

    ctx: Context
    stamp: str
    nulls: NullMode
    partial: bool = False

    def attribute_iri(self, name: Any) -> str:
        """The expanded IRI of an attribute name, rejecting reserved names."""
        validate_attr_name(name)
        iri = self.ctx.expand(name)
        if name in RESERVED_NAMES or iri in _RESERVED_IRIS or iri.startswith("@"):
            raise BadRequestData(
                f"'{name}' is a reserved NGSI-LD name and cannot be used as an attribute name"
            )
        return iri

    def attributes(self, payload: Mapping[str, Any], skip: Iterable[str]) -> dict[str, list[JsonDict]]:
        """Parse every member of payload except the skipped ones as an attribute."""
        skipped = frozenset(skip)
        attrs: dict[str, list[JsonDict]] = {}
        for name, raw in payload.items():
            if name in skipped:
                continue
            iri = self.attribute_iri(name)
            instances = self.attribute(iri, name, raw, top=True)
            attrs[iri] = _merge_lists(attrs.get(iri, []), instances, name)
        return attrs

    def attribute(self, iri: str, name: str, raw: Any, *, top: bool) -> list[JsonDict]:
        """Parse one attribute (one instance or a list of instances)."""
        items = raw if _is_instance_list(raw) else [raw]
        return _merge_lists([], [self.instance(iri, name, item, top=top) for item in items], name)

    def instance(self, iri: str, name: str, raw: Any, *, top: bool) -> JsonDict:
        """Parse one attribute instance to its stored form."""
        node = self.normalize(name, raw)
        kind = node.get("type")
        out: JsonDict = {}
        if kind is not None:
            out["type"] = kind
        member = VALUE_MEMBER.get(kind or "", "")
        sub: dict[str, list[JsonDict]] = {}
        for key, value in node.items():
            if key == "type":
                continue
            if key in _INFERRED_TYPE:
                if kind is not None and key != member:
                    raise BadRequestData(f"Attribute '{name}': '{key}' is not allowed in a {kind}")
                out[key] = self.value(kind or _INFERRED_TYPE[key], name, value)
            elif key == "observedAt":
                out[key] = (
                    value
                    if self._null_member(value, name, key)
                    else parse_datetime(value, f"{name}.observedAt")
                )
            elif key == "unitCode":
                if kind in _UNITLESS:
                    raise BadRequestData(f"Attribute '{name}': a {kind} has no unitCode")
                if not isinstance(value, str) or not value:
                    raise BadRequestData(f"Attribute '{name}': unitCode must be a non-empty string")
                self._null_member(value, name, key)
                out[key] = value
            elif key == "datasetId":
                out[key] = _uri(value, f"Attribute '{name}': datasetId")
                if _is_null(value):
                    raise BadRequestData(
                        f"Attribute '{name}': a datasetId cannot be deleted with NGSI-LD Null"
                    )
            elif key == "objectType":
                if kind not in _RELATIONSHIPS:
                    raise BadRequestData(f"Attribute '{name}': objectType is only allowed in relationships")
                out[key] = _expand_names(self.ctx, value, f"Attribute '{name}': objectType")
            elif key in _SYSTEM_MEMBERS:
                continue
            elif key in _OUTPUT_ONLY or key == "@context":
                raise BadRequestData(f"Attribute '{name}': '{key}' is not allowed in a request")
            else:
                sub_iri = self.attribute_iri(key)
                sub[sub_iri] = _merge_lists(
                    sub.get(sub_iri, []), self.attribute(sub_iri, key, value, top=False), key
                )
        if kind is not None and member not in out and not self.partial:
            raise BadRequestData(f"Attribute '{name}' ({kind}) has no '{member}'")
        geo_attr = top and kind is not None and iri in GEO_ATTRIBUTES
        if geo_attr and kind != "GeoProperty" and not is_null_instance(out):
            raise BadRequestData(f"'{name}' must be a GeoProperty holding a GeoJSON geometry")
        if top and not self.partial:
            out["createdAt"] = self.stamp
            out["modifiedAt"] = self.stamp
        if sub:
            out["sub"] = sub
        return out

    def normalize(self, name: str, raw: Any) -> Mapping[str, Any]:
        """Turn a normalized or concise attribute into normalized shape (type may stay absent if partial)."""
        if raw is None:
            raise BadRequestData(f"Attribute '{name}' must not be null")
        if not isinstance(raw, dict):
            return {"type": "Property", "value": raw}
        if "type" in raw:
            kind = raw["type"]
            if _looks_like_geometry(raw):
                return {"type": "GeoProperty", "value": raw}
            if not isinstance(kind, str) or kind not in VALUE_MEMBER:
                raise BadRequestData(f"Attribute '{name}' has an invalid type {kind!r}")
            return raw
        present = [key for key in _INFERRED_TYPE if key in raw]
        if len(present) > 1:
            raise BadRequestData(f"Attribute '{name}' is ambiguous: it has {' and '.join(present)}")
        if present:
            kind = _INFERRED_TYPE[present[0]]
            if kind == "Property" and _looks_like_geometry(raw["value"]):
                kind = "GeoProperty"
            return {"type": kind, **raw}
        if self.partial:
            return raw
        return {"type": "Property", "value": raw}

    def value(self, kind: str, name: str, value: Any) -> Any:
        """Validate the value member of an instance of the given type."""
        if value is None:
            raise BadRequestData(f"Attribute '{name}': the {VALUE_MEMBER[kind]} must not be null")
        if is_null_instance({"type": kind, VALUE_MEMBER[kind]: value}):
            if self.nulls == "none":
                raise BadRequestData(
                    f"Attribute '{name}': NGSI-LD Null is only allowed in update and merge operations"
                )
            return value
        if kind == "Property":
            if self.nulls != "nested" and _contains_null(value):
                raise BadRequestData(
                    f"Attribute '{name}': NGSI-LD Null inside a value is only allowed in merge"
                )
            return value
        if kind == "GeoProperty":
            return validate_geometry(value, name)
        if kind == "Relationship":
            if isinstance(value, list):
                if not value:
                    raise BadRequestData(f"Relationship '{name}' has an empty object list")
                return [_uri(v, f"Relationship '{name}': object") for v in value]
            return _uri(value, f"Relationship '{name}': object")
        if kind == "ListRelationship":
            return self.object_list(name, value)
        if kind == "LanguageProperty":
            return self.language_map(name, value)
        if kind == "ListProperty":
            if not isinstance(value, list):
                raise BadRequestData(f"ListProperty '{name}': valueList must be an array")
            return value
        if kind == "VocabProperty":
            return _expand_names(self.ctx, value, f"VocabProperty '{name}': vocab")
        return value

    def object_list(self, name: str, value: Any) -> list[str]:
        """The URIs of a ListRelationship objectList (items are URIs or {"object": URI})."""
        if not isinstance(value, list):
            raise BadRequestData(f"ListRelationship '{name}': objectList must be an array")
        objects = [
            item.get("object") if isinstance(item, dict) and len(item) == 1 else item for item in value
        ]
        return [_uri(v, f"ListRelationship '{name}': object") for v in objects]

    def language_map(self, name: str, value: Any) -> JsonDict:
        """Validate a languageMap: language tags (or @none) to strings."""
        if not isinstance(value, dict) or not value:
            raise BadRequestData(f"LanguageProperty '{name}': languageMap must be a non-empty object")
        for tag, text in value.items():
            if tag != "@none" and not _LANGUAGE_TAG.match(tag):
                raise BadRequestData(f"LanguageProperty '{name}': invalid language tag {tag!r}")
            if _is_null(text) and self.nulls == "nested":
                continue
            strings = text if isinstance(text, list) else [text]
            if not strings or not all(isinstance(s, str) and not _is_null(s) for s in strings):
                raise BadRequestData(f"LanguageProperty '{name}': the text for {tag!r} must be a string")
        return value

    def _null_member(self, value: Any, name: str, key: str) -> bool:
        if not _is_null(value):
            return False
        if self.nulls == "none":
            raise BadRequestData(
                f"Attribute '{name}': NGSI-LD Null for {key} is only allowed in update and merge"
            )
        return True


def _is_attribute_type(value: Any) -> bool:
    return isinstance(value, str) and value in VALUE_MEMBER


def _is_instance_list(raw: Any) -> bool:
    """Whether a list holds attribute instances (multi-attribute) rather than being a Property value."""
    return (
        isinstance(raw, list)
        and bool(raw)
        and all(
            isinstance(item, dict)
            and (_is_attribute_type(item.get("type")) or any(key in item for key in _INFERRED_TYPE))
            for item in raw
        )
    )


def _merge_lists(current: list[JsonDict], new: list[JsonDict], name: str) -> list[JsonDict]:
    seen = {inst.get("datasetId") for inst in current}
    for inst in new:
        dataset_id = inst.get("datasetId")
        if dataset_id in seen:
            which = f"datasetId {dataset_id}" if dataset_id else "no datasetId (the default instance)"
            raise BadRequestData(f"Attribute '{name}' has more than one instance with {which}")
        seen.add(dataset_id)
    return _ordered([*current, *new])


def _ordered(instances: Iterable[JsonDict]) -> list[JsonDict]:
    return sorted(
        instances, key=lambda inst: (inst.get("datasetId") is not None, inst.get("datasetId") or "")
    )


def _expand_names(ctx: Context, value: Any, what: str) -> str | list[str]:
    if isinstance(value, str):
        return ctx.expand(validate_attr_name(value))
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return [ctx.expand(validate_attr_name(v)) for v in value]
    raise BadRequestData(f"{what} must be a name or a non-empty array of names")


def _parse_types(value: Any, ctx: Context) -> list[str]:
    names = value if isinstance(value, list) else [value]
    if not names or not all(isinstance(n, str) for n in names):
        raise BadRequestData(f"The entity type must be a name or a non-empty array of names, got {value!r}")
    for name in names:
        validate_attr_name(name)
    return sorted({ctx.expand_type(n) for n in names})


def _parse_scope(value: Any, nulls: NullMode) -> list[str] | str:
    if _is_null(value) and nulls != "none":
        return NGSI_LD_NULL
    scopes = value if isinstance(value, list) else [value]
    if not scopes or not all(isinstance(s, str) and _SCOPE.match(s) for s in scopes):
        raise BadRequestData(
            f"scope must be a scope path like '/Madrid/Gardens' or an array of them, got {value!r}"
        )
    return list(dict.fromkeys(scopes))


def _parser(ctx: Context, now: datetime, nulls: NullMode, partial: bool = False) -> _Parser:
    return _Parser(ctx, format_datetime(now), nulls, partial)


def _entity_header(payload: Any, ctx: Context, stamp: str, require_type: bool) -> JsonDict:
    if not isinstance(payload, dict):
        raise BadRequestData("An entity must be a JSON object")
    if "id" not in payload:
        raise BadRequestData("The entity id is missing")
    entity: JsonDict = {"id": validate_entity_id(payload["id"])}
    if "type" in payload:
        entity["type"] = _parse_types(payload["type"], ctx)
    elif require_type:
        raise BadRequestData("The entity type is missing")
    if "scope" in payload:
        entity["scope"] = _parse_scope(payload["scope"], "none")
    entity["createdAt"] = stamp
    entity["modifiedAt"] = stamp
    return entity


_ENTITY_SKIP = (*_ENTITY_MEMBERS, "createdAt", "modifiedAt", "deletedAt")


def parse_entity(
    payload: Any, ctx: Context, now: datetime, *, require_type: bool = True, nulls: NullMode = "none"
) -> JsonDict:
    """Validate a normalized or concise entity and return its stored form."""
    parser = _parser(ctx, now, nulls)
    entity = _entity_header(payload, ctx, parser.stamp, require_type)
    entity["attrs"] = parser.attributes(payload, _ENTITY_SKIP)
    return entity


def parse_key_values(payload: Any, ctx: Context, now: datetime, *, require_type: bool = True) -> JsonDict:
    """Validate a keyValues entity: Properties unless geometry, languageMap, json, vocab or dataset map."""
    parser = _parser(ctx, now, "none")
    entity = _entity_header(payload, ctx, parser.stamp, require_type)
    attrs: dict[str, list[JsonDict]] = {}
    for name, raw in payload.items():
        if name in _ENTITY_SKIP:
            continue
        iri = parser.attribute_iri(name)
        if isinstance(raw, dict) and list(raw) == ["dataset"] and isinstance(raw["dataset"], dict):
            instances = []
            for dataset_id, simple in raw["dataset"].items():
                node = _simplified_node(simple)
                if dataset_id != "@none":
                    node["datasetId"] = dataset_id
                instances.append(parser.instance(iri, name, node, top=True))
            attrs[iri] = _merge_lists([], instances, name)
        else:
            attrs[iri] = [parser.instance(iri, name, _simplified_node(raw), top=True)]
    entity["attrs"] = attrs
    return entity


def _simplified_node(raw: Any) -> JsonDict:
    if _looks_like_geometry(raw):
        return {"type": "GeoProperty", "value": raw}
    if isinstance(raw, dict) and len(raw) == 1:
        key = next(iter(raw))
        if key in ("languageMap", "json", "vocab"):
            return {"type": _INFERRED_TYPE[key], key: raw[key]}
    return {"type": "Property", "value": raw}


def parse_fragment(payload: Any, ctx: Context, now: datetime, *, nulls: NullMode = "attribute") -> JsonDict:
    """Parse an Entity Fragment (append/update/merge body) to ``{"attrs", "id"?, "type"?, "scope"?}``."""
    # id is returned when present (callers compare it with the target); NGSI-LD Null in scope (merge)
    # is kept as the string urn:ngsi-ld:null.
    if not isinstance(payload, dict):
        raise BadRequestData("An entity fragment must be a JSON object")
    parser = _parser(ctx, now, nulls)
    fragment: JsonDict = {"attrs": parser.attributes(payload, _ENTITY_SKIP)}
    if "id" in payload:
        fragment["id"] = validate_entity_id(payload["id"])
    if "type" in payload:
        fragment["type"] = _parse_types(payload["type"], ctx)
    if "scope" in payload:
        fragment["scope"] = _parse_scope(payload["scope"], nulls)
    return fragment


def parse_attributes(
    payload: Any, ctx: Context, now: datetime, *, nulls: NullMode = "none"
) -> dict[str, list[JsonDict]]:
    """The attributes of an append/update/merge body as {IRI: [instances]} (entity members are skipped)."""
    fragment: dict[str, list[JsonDict]] = parse_fragment(payload, ctx, now, nulls=nulls)["attrs"]
    return fragment


def parse_attr_fragment(payload: Any, ctx: Context, name: str) -> JsonDict:
    """The body of a partial attribute update: a partial instance, NGSI-LD Null allowed."""
    if not isinstance(payload, dict):
        raise BadRequestData(f"The fragment for attribute '{name}' must be a JSON object")
    parser = _Parser(ctx, "", "attribute", partial=True)
    return parser.instance(parser.attribute_iri(name), name, payload, top=True)


# --------------------------------------------------------------------------------------------------
# Operations on stored forms


def find_instance(stored: Mapping[str, Any], attr_iri: str, dataset_id: str | None = None) -> JsonDict | None:
    """The instance of an attribute with that datasetId (None: the default instance), if present."""
    for instance in stored["attrs"].get(attr_iri, ()):
        if instance.get("datasetId") == dataset_id:
            found: JsonDict = instance
            return found
    return None


def geometry_of(
    stored: Mapping[str, Any], geoproperty_iri: str = LOCATION, dataset_id: str | None = None
) -> Any:
    """The GeoJSON geometry of a GeoProperty instance, or None when absent or not a GeoProperty."""
    instance = find_instance(stored, geoproperty_iri, dataset_id)
    if instance is None or instance.get("type") != "GeoProperty":
        return None
    return instance.get("value")


def _by_dataset(instances: Iterable[JsonDict]) -> dict[str | None, JsonDict]:
    return {inst.get("datasetId"): inst for inst in instances}


def _apply_metadata(instance: JsonDict, patch: Mapping[str, Any]) -> None:
    """Set (or, for NGSI-LD Null, remove) the observedAt, unitCode and objectType members a patch names."""
    for key in ("observedAt", "unitCode", "objectType"):
        if key in patch:
            if _is_null(patch[key]):
                instance.pop(key, None)
            else:
                instance[key] = patch[key]


def _stamped(instance: Mapping[str, Any], created: str, modified: str) -> JsonDict:
    out = {k: v for k, v in instance.items() if k not in ("createdAt", "modifiedAt", "sub")}
    out["createdAt"] = created
    out["modifiedAt"] = modified
    if "sub" in instance:
        out["sub"] = instance["sub"]
    return out


def _set_attr(entity: JsonDict, iri: str, by_dataset: Mapping[str | None, JsonDict]) -> None:
    if by_dataset:
        entity["attrs"][iri] = _ordered(by_dataset.values())
    else:
        entity["attrs"].pop(iri, None)


def _copy(stored: Mapping[str, Any]) -> JsonDict:
    entity = dict(stored)
    entity["attrs"] = dict(stored["attrs"])
    return entity


def _add_types(entity: JsonDict, types: Sequence[str]) -> bool:
    merged = sorted(set(entity.get("type", [])) | set(types))
    changed = bool(merged != entity.get("type", []))
    entity["type"] = merged
    return changed


def _finish(entity: JsonDict, changed: bool, stamp: str) -> None:
    if changed:
        entity["modifiedAt"] = stamp


def append_attrs(
    stored: Mapping[str, Any],
    attrs: Mapping[str, list[JsonDict]],
    now: datetime,
    *,
    no_overwrite: bool = False,
    types: Sequence[str] = (),
    scope: Sequence[str] | None = None,
) -> UpdateResult:
    """Append Attributes (clause 5.6.3): add instances, replacing same-datasetId ones unless no_overwrite."""
    stamp = format_datetime(now)
    entity = _copy(stored)
    changes: list[AttrChange] = []
    skipped: list[NotUpdated] = []
    for iri, instances in attrs.items():
        current = _by_dataset(entity["attrs"].get(iri, ()))
        for instance in instances:
            if is_null_instance(instance):
                raise BadRequestData(f"Attribute {iri}: NGSI-LD Null is not allowed when appending")
            dataset_id = instance.get("datasetId")
            old = current.get(dataset_id)
            if old is not None and no_overwrite:
                skipped.append(
                    NotUpdated(iri, dataset_id, "the attribute exists and noOverwrite was requested")
                )
                continue
            new = _stamped(instance, old["createdAt"] if old else stamp, stamp)
            current[dataset_id] = new
            changes.append(AttrChange(iri, dataset_id, old, new))
        _set_attr(entity, iri, current)
    changed = _add_types(entity, types) or bool(changes)
    if scope is not None:
        new_scope = list(dict.fromkeys([*entity.get("scope", []), *scope])) if no_overwrite else list(scope)
        changed = changed or new_scope != entity.get("scope")
        entity["scope"] = new_scope
    _finish(entity, changed, stamp)
    return UpdateResult(entity, changes, skipped)


def update_attrs(
    stored: Mapping[str, Any], attrs: Mapping[str, list[JsonDict]], now: datetime
) -> UpdateResult:
    """Update Attributes (clause 5.6.2): replace existing instances only; NGSI-LD Null deletes an instance."""
    stamp = format_datetime(now)
    entity = _copy(stored)
    changes: list[AttrChange] = []
    skipped: list[NotUpdated] = []
    for iri, instances in attrs.items():
        if iri not in entity["attrs"]:
            skipped.extend(
                NotUpdated(iri, i.get("datasetId"), "the attribute does not exist") for i in instances
            )
            continue
        current = _by_dataset(entity["attrs"][iri])
        for instance in instances:
            dataset_id = instance.get("datasetId")
            old = current.get(dataset_id)
            if old is None:
                reason = f"no instance with datasetId {dataset_id}" if dataset_id else "no default instance"
                skipped.append(NotUpdated(iri, dataset_id, reason))
            elif is_null_instance(instance):
                del current[dataset_id]
                changes.append(AttrChange(iri, dataset_id, old, None))
            else:
                new = _stamped(_without_nulls(instance), old["createdAt"], stamp)
                current[dataset_id] = new
                changes.append(AttrChange(iri, dataset_id, old, new))
        _set_attr(entity, iri, current)
    _finish(entity, bool(changes), stamp)
    return UpdateResult(entity, changes, skipped)


def merge_entity(
    stored: Mapping[str, Any],
    attrs: Mapping[str, list[JsonDict]],
    now: datetime,
    *,
    types: Sequence[str] = (),
    scope: Sequence[str] | str | None = None,
) -> UpdateResult:
    """Merge Entity (clauses 5.6.17, 5.5.12): deep-merge instances; NGSI-LD Null removes what it names."""
    stamp = format_datetime(now)
    entity = _copy(stored)
    changes: list[AttrChange] = []
    for iri, instances in attrs.items():
        current = _by_dataset(entity["attrs"].get(iri, ()))
        for instance in instances:
            dataset_id = instance.get("datasetId")
            old = current.get(dataset_id)
            if is_null_instance(instance):
                if old is not None:
                    del current[dataset_id]
                    changes.append(AttrChange(iri, dataset_id, old, None))
                continue
            merged = (
                _without_nulls(instance, deep=True) if old is None else _merge_instance(old, instance, iri)
            )
            if merged["type"] == "LanguageProperty" and not merged.get("languageMap"):
                if old is not None:
                    del current[dataset_id]
                    changes.append(AttrChange(iri, dataset_id, old, None))
                continue
            new = _stamped(merged, old["createdAt"] if old else stamp, stamp)
            current[dataset_id] = new
            changes.append(AttrChange(iri, dataset_id, old, new))
        _set_attr(entity, iri, current)
    changed = _add_types(entity, types) or bool(changes)
    if _is_null(scope):
        changed = changed or "scope" in entity
        entity.pop("scope", None)
    elif scope is not None:
        changed = changed or list(scope) != entity.get("scope")
        entity["scope"] = list(scope)
    _finish(entity, changed, stamp)
    return UpdateResult(entity, changes, [])


def _merge_json(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON Merge Patch where NGSI-LD Null (or JSON null) removes a member."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None or _is_null(value):
            result.pop(key, None)
        else:
            result[key] = _merge_json(result.get(key), value)
    return result


def _without_nulls(instance: Mapping[str, Any], *, deep: bool = False) -> JsonDict:
    """An instance without NGSI-LD Null members and sub-attributes (deep: nor null members inside values)."""
    out: JsonDict = {}
    for key, value in instance.items():
        if key == "sub":
            sub = {
                iri: [_without_nulls(i, deep=deep) for i in insts if not is_null_instance(i)]
                for iri, insts in value.items()
            }
            sub = {iri: insts for iri, insts in sub.items() if insts}
            if sub:
                out["sub"] = sub
        elif _is_null(value):
            continue
        elif deep and key in ("value", "languageMap") and instance.get("type") != "GeoProperty":
            out[key] = _merge_json({}, value)
        else:
            out[key] = value
    return out


def _merge_instance(old: Mapping[str, Any], patch: Mapping[str, Any], name: str) -> JsonDict:
    kind = old["type"]
    new_kind = patch.get("type", kind)
    if new_kind != kind:
        if VALUE_MEMBER[new_kind] not in patch:
            raise BadRequestData(
                f"Attribute {name}: changing its type from {kind} to {new_kind} needs a value"
            )
        return _without_nulls(patch, deep=True)
    result = dict(old)
    member = VALUE_MEMBER[kind]
    if member in patch:
        mergeable = kind in ("Property", "LanguageProperty")
        result[member] = _merge_json(old.get(member), patch[member]) if mergeable else patch[member]
    _apply_metadata(result, patch)
    if "sub" in patch:
        sub = dict(old.get("sub", {}))
        for sub_iri, instances in patch["sub"].items():
            current = _by_dataset(sub.get(sub_iri, ()))
            for instance in instances:
                dataset_id = instance.get("datasetId")
                if is_null_instance(instance):
                    current.pop(dataset_id, None)
                elif dataset_id in current:
                    current[dataset_id] = _merge_instance(current[dataset_id], instance, sub_iri)
                else:
                    current[dataset_id] = _without_nulls(instance, deep=True)
            if current:
                sub[sub_iri] = _ordered(current.values())
            else:
                sub.pop(sub_iri, None)
        if sub:
            result["sub"] = sub
        else:
            result.pop("sub", None)
    return result


def replace_entity(stored: Mapping[str, Any], new: Mapping[str, Any], now: datetime) -> UpdateResult:
    """Replace Entity (clause 5.6.18): keep id and createdAt, take everything else from the new entity."""
    stamp = format_datetime(now)
    entity: JsonDict = {"id": stored["id"], "type": list(new.get("type") or stored["type"])}
    if "scope" in new:
        entity["scope"] = list(new["scope"])
    entity["createdAt"] = stored["createdAt"]
    entity["modifiedAt"] = stamp
    entity["attrs"] = {}
    changes: list[AttrChange] = []
    for iri, instances in stored["attrs"].items():
        kept = {i.get("datasetId") for i in new["attrs"].get(iri, ())}
        changes.extend(
            AttrChange(iri, i.get("datasetId"), i, None) for i in instances if i.get("datasetId") not in kept
        )
    for iri, instances in new["attrs"].items():
        current = _by_dataset(stored["attrs"].get(iri, ()))
        replaced: dict[str | None, JsonDict] = {}
        for instance in instances:
            dataset_id = instance.get("datasetId")
            old = current.get(dataset_id)
            replaced[dataset_id] = _stamped(instance, old["createdAt"] if old else stamp, stamp)
            changes.append(AttrChange(iri, dataset_id, old, replaced[dataset_id]))
        _set_attr(entity, iri, replaced)
    return UpdateResult(entity, changes, [])


def partial_attr_update(
    stored: Mapping[str, Any],
    attr_iri: str,
    fragment: Mapping[str, Any],
    now: datetime,
    dataset_id: str | None = None,
) -> UpdateResult:
    """Partial Attribute update (clauses 5.6.4, 5.5.8): overwrite the given members of one instance."""
    # The target is the instance with dataset_id (else the fragment's datasetId, else the default
    # instance). Sub-attributes given replace the old ones; NGSI-LD Null removes a member or sub-attribute.
    stamp = format_datetime(now)
    dataset_id = dataset_id if dataset_id is not None else fragment.get("datasetId")
    if attr_iri not in stored["attrs"]:
        raise ResourceNotFound(f"The entity {stored['id']} has no attribute {attr_iri}")
    old = find_instance(stored, attr_iri, dataset_id)
    if old is None:
        which = f"datasetId {dataset_id}" if dataset_id else "a default instance"
        raise ResourceNotFound(f"The attribute {attr_iri} of {stored['id']} has no {which}")
    kind = old["type"]
    if fragment.get("type", kind) != kind:
        raise BadRequestData(
            f"The type of attribute {attr_iri} cannot change from {kind} to {fragment['type']}"
        )
    member = VALUE_MEMBER[kind]
    new = dict(old)
    if member in fragment:
        if is_null_instance({"type": kind, member: fragment[member]}):
            raise BadRequestData(f"A partial update cannot delete attribute {attr_iri}; delete it instead")
        new[member] = fragment[member]
    _apply_metadata(new, fragment)
    if "sub" in fragment:
        sub = dict(old.get("sub", {}))
        for sub_iri, instances in fragment["sub"].items():
            kept = [_without_nulls(i) for i in instances if not is_null_instance(i)]
            if kept:
                sub[sub_iri] = kept
            else:
                sub.pop(sub_iri, None)
        new.pop("sub", None)
        if sub:
            new["sub"] = sub
    new["modifiedAt"] = stamp
    entity = _copy(stored)
    current = _by_dataset(entity["attrs"][attr_iri])
    current[dataset_id] = new
    _set_attr(entity, attr_iri, current)
    entity["modifiedAt"] = stamp
    return UpdateResult(entity, [AttrChange(attr_iri, dataset_id, old, new)], [])


def delete_attr(
    stored: Mapping[str, Any],
    attr_iri: str,
    now: datetime,
    *,
    dataset_id: str | None = None,
    delete_all: bool = False,
) -> UpdateResult:
    """Delete Attribute (clause 5.6.5): the default instance, the one with dataset_id, or all instances."""
    instances = stored["attrs"].get(attr_iri)
    if not instances:
        raise ResourceNotFound(f"The entity {stored['id']} has no attribute {attr_iri}")
    if delete_all:
        removed = list(instances)
    else:
        found = find_instance(stored, attr_iri, dataset_id)
        if found is None:
            which = f"datasetId {dataset_id}" if dataset_id else "a default instance"
            raise ResourceNotFound(f"The attribute {attr_iri} of {stored['id']} has no {which}")
        removed = [found]
    entity = _copy(stored)
    remaining = _by_dataset(i for i in instances if all(i is not r for r in removed))
    _set_attr(entity, attr_iri, remaining)
    entity["modifiedAt"] = format_datetime(now)
    return UpdateResult(entity, [AttrChange(attr_iri, r.get("datasetId"), r, None) for r in removed], [])


# --------------------------------------------------------------------------------------------------
# Rendering


def parse_lang(value: str) -> list[str]:
    """The language ranges of a ``lang`` filter (clause 4.15), most preferred first."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(p.strip() for p in value.split(",")):
        if not _LANG_RANGE.match(part):
            raise BadRequestData(f"Invalid lang filter {value!r}")
        tag, _, quality = part.partition(";")
        weight = float(quality.split("=", 1)[1]) if quality else 1.0
        if weight > 0:
            ranked.append((-weight, index, tag.strip().lower()))
    return [tag for _, _, tag in sorted(ranked)]


def select_language(language_map: Mapping[str, Any], ranges: Sequence[str]) -> tuple[str, Any]:
    """(tag, text) of the best language for the ranges (RFC 4647 lookup); falls back to any language."""
    if not language_map:
        return "@none", None
    lowered = {tag.lower(): tag for tag in language_map}
    for wanted in ranges:
        if wanted == "*":
            break
        candidate = wanted
        while candidate:
            if candidate in lowered:
                tag = lowered[candidate]
                return tag, language_map[tag]
            candidate = candidate.rpartition("-")[0]
    tag = "@none" if "@none" in language_map else next(iter(language_map))
    return tag, language_map[tag]


@dataclass(frozen=True, slots=True)
class _Renderer:
    ctx: Context
    form: Form
    sys_attrs: bool
    lang: list[str] | None

    def attribute(self, instances: Sequence[Mapping[str, Any]]) -> Any:
        """Render the instances of one attribute."""
        if self.form == "keyValues":
            if len(instances) == 1:
                return self.simplified(instances[0])
            return {"dataset": {i.get("datasetId") or "@none": self.simplified(i) for i in instances}}
        rendered = [self.instance(i, as_object=len(instances) > 1) for i in instances]
        return rendered[0] if len(rendered) == 1 else rendered

    def simplified(self, instance: Mapping[str, Any]) -> Any:
        """The keyValues form of one instance."""
        kind = instance["type"]
        value = instance[VALUE_MEMBER[kind]]
        if kind == "LanguageProperty":
            return select_language(value, self.lang)[1] if self.lang is not None else {"languageMap": value}
        if kind == "JsonProperty":
            return {"json": value}
        if kind == "VocabProperty":
            return {"vocab": self.names(value)}
        return value

    def names(self, value: str | list[str]) -> str | list[str]:
        """Compact one IRI or a list of IRIs."""
        return self.ctx.compact(value) if isinstance(value, str) else [self.ctx.compact(v) for v in value]

    def instance(self, instance: Mapping[str, Any], *, as_object: bool) -> Any:
        """The normalized or concise form of one instance."""
        kind = instance["type"]
        member = VALUE_MEMBER[kind]
        value = instance[member]
        out: JsonDict = {"type": kind}
        if kind == "LanguageProperty" and self.lang is not None:
            tag, text = select_language(value, self.lang)
            kind = out["type"] = "Property"
            out["value"] = text
            out["lang"] = tag
        elif kind == "ListRelationship" and self.form == "normalized":
            out[member] = [{"object": uri} for uri in value]
        elif kind == "VocabProperty":
            out[member] = self.names(value)
        else:
            out[member] = value
        for key in ("observedAt", "unitCode", "datasetId"):
            if key in instance:
                out[key] = instance[key]
        if "objectType" in instance:
            out["objectType"] = self.names(instance["objectType"])
        if self.sys_attrs:
            for key in ("createdAt", "modifiedAt"):
                if key in instance:
                    out[key] = instance[key]
        for sub_iri, sub_instances in instance.get("sub", {}).items():
            out[self.ctx.compact(sub_iri)] = self.attribute(sub_instances)
        if self.form == "concise":
            return self.concise(out, kind, as_object)
        return out

    def concise(self, out: JsonDict, kind: str, as_object: bool) -> Any:
        """Drop what concise representation implies, keeping it lossless (clauses 4.5.2.3, 4.5.3.3)."""
        if kind == "Property" and _looks_like_geometry(out["value"]):
            return out
        del out["type"]
        if len(out) == 1 and not as_object:
            value = out.get("value")
            if kind == "GeoProperty" or (kind == "Property" and "lang" not in out and not _ambiguous(value)):
                return value
        return out


def _ambiguous(value: Any) -> bool:
    """Whether a bare concise value would be read back as something else than a Property value."""
    if isinstance(value, dict):
        return "type" in value or any(key in value for key in _INFERRED_TYPE)
    return _is_instance_list(value) or _is_null(value)


def render_entity(
    stored: Mapping[str, Any],
    ctx: Context,
    *,
    form: Form = "normalized",
    sys_attrs: bool = False,
    attrs: set[str] | None = None,
    omit: set[str] | None = None,
    lang: str | None = None,
) -> JsonDict:
    """The compacted representation of a stored entity; attrs/omit hold IRIs, lang is a clause 4.15 filter."""
    renderer = _Renderer(ctx, form, sys_attrs, parse_lang(lang) if lang is not None else None)
    types = [ctx.compact_type(t) for t in stored.get("type", [])]
    out: JsonDict = {"id": stored["id"], "type": types[0] if len(types) == 1 else types}
    if "scope" in stored:
        scope = stored["scope"]
        out["scope"] = scope[0] if len(scope) == 1 else list(scope)
    if sys_attrs:
        out["createdAt"] = stored["createdAt"]
        out["modifiedAt"] = stored["modifiedAt"]
    for iri, instances in stored["attrs"].items():
        if (attrs is not None and iri not in attrs) or (omit is not None and iri in omit):
            continue
        out[ctx.compact(iri)] = renderer.attribute(instances)
    return out


def render_geojson(
    stored: Mapping[str, Any],
    ctx: Context,
    geoproperty_iri: str = LOCATION,
    *,
    form: Form = "normalized",
    sys_attrs: bool = False,
    attrs: set[str] | None = None,
    omit: set[str] | None = None,
    lang: str | None = None,
    dataset_id: str | None = None,
) -> JsonDict:
    """A GeoJSON Feature (clauses 4.5.16, 4.5.17): geometry from the selected GeoProperty, else null."""
    body = render_entity(stored, ctx, form=form, sys_attrs=sys_attrs, attrs=attrs, omit=omit, lang=lang)
    del body["id"]
    return {
        "id": stored["id"],
        "type": "Feature",
        "geometry": geometry_of(stored, geoproperty_iri, dataset_id),
        "properties": body,
    }
