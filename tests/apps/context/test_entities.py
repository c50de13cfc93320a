"""Entities: parsing and validation, the stored form, update operations and the three representations."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from citybrain.apps.context.entities import (
    LOCATION,
    NGSI_LD_NULL,
    OBSERVATION_SPACE,
    RESERVED_NAMES,
    AttrChange,
    append_attrs,
    delete_attr,
    find_instance,
    format_datetime,
    geometry_of,
    merge_entity,
    parse_attr_fragment,
    parse_attributes,
    parse_entity,
    parse_fragment,
    parse_key_values,
    partial_attr_update,
    render_entity,
    render_geojson,
    replace_entity,
    select_language,
    update_attrs,
    validate_attr_name,
    validate_entity_id,
)
from citybrain.apps.context.errors import BadRequestData, ResourceNotFound
from citybrain.apps.context.jsonld import CORE_TERMS, DEFAULT_VOCAB, Context

SDM = "https://smartdatamodels.org/"
CTX = Context(
    [{"sdm": SDM, "AirQualityObserved": "sdm:dataModel.Environment/AirQualityObserved", "pm25": "sdm:pm25"}]
)
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
T0 = "2026-11-24T10:00:00.000000Z"
T1 = "2026-11-24T11:00:00.000000Z"
ID = "urn:ngsi-ld:AirQualityObserved:fc-01"
AQO = SDM + "dataModel.Environment/AirQualityObserved"
PM25 = SDM + "pm25"
D = DEFAULT_VOCAB
POINT = {"type": "Point", "coordinates": [104.74, 31.46]}

NORMALIZED = {
    "id": ID,
    "type": "AirQualityObserved",
    "pm25": {
        "type": "Property",
        "value": 35,
        "unitCode": "GQ",
        "observedAt": "2026-11-24T18:00:00+08:00",
        "accuracy": {"type": "Property", "value": 0.5},
    },
    "location": {"type": "GeoProperty", "value": POINT},
    "refDevice": {"type": "Relationship", "object": "urn:ngsi-ld:Device:sensor-7"},
    "name": {"type": "LanguageProperty", "languageMap": {"en": "Fucheng station", "zh-CN": "涪城站"}},
    "raw": {"type": "JsonProperty", "json": {"id": "x", "value": 1}},
    "readings": {"type": "ListProperty", "valueList": [1, 2, 3]},
    "route": {
        "type": "ListRelationship",
        "objectList": [{"object": "urn:ngsi-ld:Stop:1"}, {"object": "urn:ngsi-ld:Stop:2"}],
    },
    "category": {"type": "VocabProperty", "vocab": "urban"},
    "address": {"type": "Property", "value": {"type": "PostalAddress", "streetAddress": "Linyuan Road"}},
}
CONCISE = {
    "id": ID,
    "type": ["AirQualityObserved"],
    "pm25": {"value": 35, "unitCode": "GQ", "observedAt": "2026-11-24T10:00:00Z", "accuracy": 0.5},
    "location": POINT,
    "refDevice": {"object": "urn:ngsi-ld:Device:sensor-7"},
    "name": {"languageMap": {"en": "Fucheng station", "zh-CN": "涪城站"}},
    "raw": {"json": {"id": "x", "value": 1}},
    "readings": {"valueList": [1, 2, 3]},
    "route": {"objectList": ["urn:ngsi-ld:Stop:1", "urn:ngsi-ld:Stop:2"]},
    "category": {"vocab": "urban"},
    "address": {"value": {"type": "PostalAddress", "streetAddress": "Linyuan Road"}},
}


def stored_entity() -> dict[str, Any]:
    """The reference entity in stored form, created at NOW."""
    return parse_entity(NORMALIZED, CTX, NOW)


def temperature_entity() -> dict[str, Any]:
    """An entity with a multi-instance temperature (default + a datasetId) and a plain humidity."""
    return parse_entity(
        {
            "id": "urn:ngsi-ld:Room:1",
            "type": "Room",
            "temperature": [
                {
                    "type": "Property",
                    "value": 25,
                    "unitCode": "CEL",
                    "observedAt": "2022-03-14T01:59:26.535Z",
                },
                {"type": "Property", "value": 77, "unitCode": "FAH", "datasetId": "urn:ngsi-ld:Dataset:f"},
            ],
            "humidity": {"type": "Property", "value": 40},
        },
        CTX,
        NOW,
    )


# --------------------------------------------------------------------------------------------------
# Parsing and the stored form


def test_stored_form_of_a_normalized_entity() -> None:
    stored = stored_entity()
    assert stored["id"] == ID
    assert stored["type"] == [AQO]
    assert stored["createdAt"] == stored["modifiedAt"] == T0
    assert stored["attrs"][PM25] == [
        {
            "type": "Property",
            "value": 35,
            "unitCode": "GQ",
            "observedAt": T0,
            "createdAt": T0,
            "modifiedAt": T0,
            "sub": {D + "accuracy": [{"type": "Property", "value": 0.5}]},
        }
    ]
    assert stored["attrs"][LOCATION][0]["type"] == "GeoProperty"
    assert stored["attrs"][D + "refDevice"][0]["object"] == "urn:ngsi-ld:Device:sensor-7"
    assert stored["attrs"][D + "route"][0]["objectList"] == ["urn:ngsi-ld:Stop:1", "urn:ngsi-ld:Stop:2"]
    assert stored["attrs"][D + "category"][0]["vocab"] == D + "urban"
    assert set(stored) == {"id", "type", "createdAt", "modifiedAt", "attrs"}


def test_normalized_and_concise_give_the_same_stored_form() -> None:
    assert parse_entity(CONCISE, CTX, NOW) == stored_entity()


def test_concise_inference_rules() -> None:
    stored = parse_entity(
        {
            "id": ID,
            "type": "T",
            "bare": "text",
            "list": [1, 2],
            "dict": {"a": 1},
            "geoValue": {"value": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}},
            "explicitGeo": {"type": "Point", "coordinates": [1, 2]},
        },
        CTX,
        NOW,
    )
    kinds = {iri.removeprefix(D): inst[0]["type"] for iri, inst in stored["attrs"].items()}
    assert kinds == {
        "bare": "Property",
        "list": "Property",
        "dict": "Property",
        "geoValue": "GeoProperty",
        "explicitGeo": "GeoProperty",
    }
    assert stored["attrs"][D + "dict"][0]["value"] == {"a": 1}


def test_multiple_types_are_expanded_and_sorted() -> None:
    stored = parse_entity({"id": ID, "type": ["Zeta", "AirQualityObserved", "Zeta"]}, CTX, NOW)
    assert stored["type"] == sorted([AQO, D + "Zeta"])
    assert stored["attrs"] == {}


def test_multi_instance_attribute_orders_default_first() -> None:
    stored = parse_entity(
        {
            "id": ID,
            "type": "T",
            "speed": [
                {"type": "Property", "value": 2, "datasetId": "urn:ds:b"},
                {"type": "Property", "value": 1},
                {"value": 3, "datasetId": "urn:ds:a"},
            ],
        },
        CTX,
        NOW,
    )
    assert [i.get("datasetId") for i in stored["attrs"][D + "speed"]] == [None, "urn:ds:a", "urn:ds:b"]


def test_system_members_and_scope() -> None:
    stored = parse_entity(
        {
            "id": ID,
            "type": "T",
            "createdAt": "1999-01-01T00:00:00Z",
            "scope": ["/Mianyang/Fucheng", "/Mianyang/Fucheng"],
            "speed": {
                "type": "Property",
                "value": 1,
                "createdAt": "1999-01-01T00:00:00Z",
                "instanceId": "urn:x",
            },
        },
        CTX,
        NOW,
    )
    assert stored["createdAt"] == T0
    assert stored["scope"] == ["/Mianyang/Fucheng"]
    assert stored["attrs"][D + "speed"][0]["createdAt"] == T0
    assert "instanceId" not in stored["attrs"][D + "speed"][0]


def test_require_type_can_be_relaxed() -> None:
    assert "type" not in parse_entity({"id": ID, "speed": 1}, CTX, NOW, require_type=False)


def test_validate_helpers() -> None:
    assert validate_entity_id("urn:ngsi-ld:Vehicle:A4567") == "urn:ngsi-ld:Vehicle:A4567"
    assert validate_entity_id("https://example.org/things/1") == "https://example.org/things/1"
    assert validate_attr_name("sdm:pm25") == "sdm:pm25"
    assert validate_attr_name("温度") == "温度"
    for bad in ("", "has space", "a<b", "@id", 7):
        with pytest.raises(BadRequestData):
            validate_attr_name(bad)


def _invalid(**attrs: Any) -> dict[str, Any]:
    return {"id": ID, "type": "T", **attrs}


@pytest.mark.parametrize(
    ("payload", "names"),
    [
        ([], "entity"),
        ({"type": "T"}, "id"),
        ({"id": "not a uri", "type": "T"}, "id"),
        ({"id": "fc-01", "type": "T"}, "id"),
        ({"id": 42, "type": "T"}, "id"),
        ({"id": ID}, "type"),
        ({"id": ID, "type": []}, "type"),
        ({"id": ID, "type": 3}, "type"),
        ({"id": ID, "type": "bad type"}, "bad type"),
        (_invalid(**{"bad name": 1}), "bad name"),
        (_invalid(value=1), "value"),
        (_invalid(observedAt="2026-11-24T10:00:00Z"), "observedAt"),
        (_invalid(unitCode="CEL"), "unitCode"),
        (_invalid(**{"ngsi-ld:hasValue": 1}), "ngsi-ld:hasValue"),
        (_invalid(speed={"type": "Property", "value": 1, "observedAt": "yesterday"}), "speed.observedAt"),
        (_invalid(speed={"type": "Property", "value": 1, "observedAt": "2026-11-24"}), "speed.observedAt"),
        (_invalid(speed={"type": "Property", "value": 1, "datasetId": "set 1"}), "datasetId"),
        (_invalid(speed=[{"value": 1}, {"value": 2}]), "speed"),
        (
            _invalid(speed=[{"value": 1, "datasetId": "urn:d:1"}, {"value": 2, "datasetId": "urn:d:1"}]),
            "urn:d:1",
        ),
        (_invalid(owner={"type": "Relationship", "object": "Bob"}), "owner"),
        (_invalid(owner={"type": "Relationship", "object": ["urn:a:1", "b"]}), "owner"),
        (_invalid(owner={"type": "Relationship", "object": []}), "owner"),
        (_invalid(owner={"type": "Relationship"}), "owner"),
        (_invalid(owner={"type": "Relationship", "object": "urn:a:1", "unitCode": "CEL"}), "unitCode"),
        (_invalid(speed={"type": "Property", "value": None}), "speed"),
        (_invalid(speed=None), "speed"),
        (_invalid(speed=NGSI_LD_NULL), "speed"),
        (_invalid(speed={"type": "Property", "value": NGSI_LD_NULL}), "speed"),
        (_invalid(owner={"object": NGSI_LD_NULL}), "owner"),
        (_invalid(address={"value": {"street": NGSI_LD_NULL}}), "address"),
        (_invalid(speed={"type": "Speed", "value": 1}), "speed"),
        (_invalid(speed={"value": 1, "object": "urn:a:1"}), "speed"),
        (_invalid(speed={"type": "Property", "value": 1, "object": "urn:a:1"}), "object"),
        (_invalid(speed={"type": "Property", "value": 1, "@context": {}}), "@context"),
        (_invalid(speed={"type": "Property", "value": 1, "previousValue": 0}), "previousValue"),
        (_invalid(speed={"type": "Property", "value": 1, "scope": "/a"}), "scope"),
        (_invalid(speed={"type": "Property", "value": 1, "unitCode": 5}), "unitCode"),
        (_invalid(location={"type": "Property", "value": 5}), "location"),
        (_invalid(location=5), "location"),
        (_invalid(observationSpace={"type": "Relationship", "object": "urn:a:1"}), "observationSpace"),
        (_invalid(location={"type": "Point", "coordinates": [200, 10]}), "location"),
        (_invalid(location={"type": "Point", "coordinates": [10, -95]}), "location"),
        (_invalid(location={"type": "Point", "coordinates": [10]}), "location"),
        (_invalid(location={"type": "Point", "coordinates": [True, 1]}), "location"),
        (_invalid(location={"type": "LineString", "coordinates": [[0, 0]]}), "location"),
        (
            _invalid(location={"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}),
            "location",
        ),
        (_invalid(location={"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]}), "location"),
        (_invalid(location={"type": "MultiPolygon", "coordinates": []}), "location"),
        (_invalid(location={"type": "GeometryCollection", "coordinates": []}), "location"),
        (_invalid(location={"type": "GeoProperty", "value": {"type": "Circle"}}), "location"),
        (_invalid(area={"type": "GeoProperty", "value": "POINT(1 2)"}), "area"),
        (_invalid(name={"type": "LanguageProperty", "languageMap": {"english!": "x"}}), "name"),
        (_invalid(name={"languageMap": {"en": 5}}), "name"),
        (_invalid(name={"languageMap": {}}), "name"),
        (_invalid(items={"type": "ListProperty", "valueList": 5}), "items"),
        (_invalid(route={"objectList": ["urn:a:1", "nope"]}), "route"),
        (_invalid(category={"vocab": 5}), "category"),
        (
            _invalid(
                speed={
                    "type": "Property",
                    "value": 1,
                    "accuracy": {"type": "Property", "value": 1, "observedAt": "x"},
                }
            ),
            "accuracy",
        ),
        ({"id": ID, "type": "T", "scope": "Mianyang"}, "scope"),
    ],
)
def test_invalid_entities_are_bad_request_data(payload: Any, names: str) -> None:
    with pytest.raises(BadRequestData) as error:
        parse_entity(payload, CTX, NOW)
    assert names in error.value.detail


def test_valid_geometries() -> None:
    geometries = [
        {"type": "Point", "coordinates": [-180, 90, 12.5]},
        {"type": "MultiPoint", "coordinates": [[0, 0], [1, 1]]},
        {"type": "LineString", "coordinates": [[0, 0], [1, 1]]},
        {"type": "MultiLineString", "coordinates": [[[0, 0], [1, 1]], [[2, 2], [3, 3]]]},
        {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]},
        {"type": "MultiPolygon", "coordinates": [[[[0, 0], [1, 0], [1, 1], [0, 0]]]]},
    ]
    for geometry in geometries:
        stored = parse_entity(_invalid(location=geometry), CTX, NOW)
        assert geometry_of(stored) == geometry


def test_parse_attributes_and_fragments() -> None:
    attrs = parse_attributes({"id": ID, "type": "X", "pm25": 12, "@context": "ignored"}, CTX, NOW)
    assert list(attrs) == [PM25]
    fragment = parse_fragment({"type": "Extra", "scope": "/a/b", "pm25": NGSI_LD_NULL}, CTX, NOW)
    assert fragment["type"] == [D + "Extra"]
    assert fragment["scope"] == ["/a/b"]
    assert fragment["attrs"][PM25][0]["value"] == NGSI_LD_NULL
    with pytest.raises(BadRequestData):
        parse_attributes({"pm25": NGSI_LD_NULL}, CTX, NOW)
    with pytest.raises(BadRequestData):
        parse_attributes("pm25", CTX, NOW)


def test_attr_fragment_keeps_only_what_was_given() -> None:
    fragment = parse_attr_fragment(
        {"observedAt": "2026-11-24T12:00:00+01:00", "unitCode": NGSI_LD_NULL}, CTX, "pm25"
    )
    assert fragment == {"observedAt": "2026-11-24T11:00:00.000000Z", "unitCode": NGSI_LD_NULL}
    assert parse_attr_fragment({"value": 3}, CTX, "pm25") == {"type": "Property", "value": 3}
    with pytest.raises(BadRequestData):
        parse_attr_fragment([1], CTX, "pm25")


# --------------------------------------------------------------------------------------------------
# Operations


def test_append_overwrites_and_adds() -> None:
    stored = temperature_entity()
    before = copy.deepcopy(stored)
    attrs = parse_attributes({"humidity": 55, "pressure": {"value": 1013, "unitCode": "A97"}}, CTX, LATER)
    result = append_attrs(stored, attrs, LATER)
    assert stored == before, "the input must not be mutated"
    humidity = result.entity["attrs"][D + "humidity"][0]
    assert humidity["value"] == 55
    assert (humidity["createdAt"], humidity["modifiedAt"]) == (T0, T1)
    assert result.entity["attrs"][D + "pressure"][0]["createdAt"] == T1
    assert result.entity["modifiedAt"] == T1
    assert [(c.name, c.dataset_id, c.old is None) for c in result.changes] == [
        (D + "humidity", None, False),
        (D + "pressure", None, True),
    ]
    assert result.changes[0].old == stored["attrs"][D + "humidity"][0]
    assert result.not_updated == []


def test_append_with_no_overwrite_keeps_existing() -> None:
    stored = temperature_entity()
    attrs = parse_attributes(
        {"humidity": 55, "temperature": {"value": 80, "datasetId": "urn:ngsi-ld:Dataset:g"}}, CTX, LATER
    )
    result = append_attrs(stored, attrs, LATER, no_overwrite=True, types=[D + "Office"], scope=["/b"])
    assert result.entity["attrs"][D + "humidity"] == stored["attrs"][D + "humidity"]
    assert [n.name for n in result.not_updated] == [D + "humidity"]
    temperature = result.entity["attrs"][D + "temperature"]
    assert [i.get("datasetId") for i in temperature] == [
        None,
        "urn:ngsi-ld:Dataset:f",
        "urn:ngsi-ld:Dataset:g",
    ]
    assert result.changes == [AttrChange(D + "temperature", "urn:ngsi-ld:Dataset:g", None, temperature[2])]
    assert result.entity["type"] == [D + "Office", D + "Room"]
    assert result.entity["scope"] == ["/b"]


def test_update_only_touches_existing_attributes() -> None:
    stored = temperature_entity()
    attrs = parse_attributes(
        {
            "humidity": 60,
            "pressure": 1000,
            "temperature": [{"value": 26}, {"value": 1, "datasetId": "urn:ngsi-ld:Dataset:none"}],
        },
        CTX,
        LATER,
        nulls="attribute",
    )
    result = update_attrs(stored, attrs, LATER)
    assert result.entity["attrs"][D + "humidity"][0]["value"] == 60
    assert result.entity["attrs"][D + "humidity"][0]["createdAt"] == T0
    default_temperature = result.entity["attrs"][D + "temperature"][0]
    assert default_temperature["value"] == 26
    assert "unitCode" not in default_temperature, "update replaces the whole attribute (5.5.8 example 2)"
    assert D + "pressure" not in result.entity["attrs"]
    assert sorted((n.name, n.dataset_id) for n in result.not_updated) == [
        (D + "pressure", None),
        (D + "temperature", "urn:ngsi-ld:Dataset:none"),
    ]
    assert {(c.name, c.dataset_id) for c in result.changes} == {
        (D + "humidity", None),
        (D + "temperature", None),
    }


def test_update_with_null_deletes_the_attribute() -> None:
    stored = temperature_entity()
    attrs = parse_attributes(
        {"humidity": {"type": "Property", "value": NGSI_LD_NULL}}, CTX, LATER, nulls="attribute"
    )
    result = update_attrs(stored, attrs, LATER)
    assert D + "humidity" not in result.entity["attrs"]
    assert result.changes == [AttrChange(D + "humidity", None, stored["attrs"][D + "humidity"][0], None)]


def test_merge_entity_patch_semantics() -> None:
    stored = parse_entity(
        {
            "id": ID,
            "type": "T",
            "temperature": {
                "type": "Property",
                "value": 25,
                "unitCode": "CEL",
                "observedAt": "2022-03-14T01:59:26.535Z",
                "accuracy": 0.5,
                "sensor": {"object": "urn:ngsi-ld:Sensor:1"},
            },
            "address": {"value": {"street": "Straße des 17. Juni", "city": "Berlin", "country": "Germany"}},
            "speed": 80,
            "label": {"languageMap": {"en": "Hello", "fr": "Bonjour"}},
            "untouched": "same",
        },
        CTX,
        NOW,
    )
    fragment = parse_fragment(
        {
            "type": "U",
            "temperature": {
                "type": "Property",
                "value": 100,
                "observedAt": "2022-03-14T13:00:00.000Z",
                "accuracy": NGSI_LD_NULL,
                "calibrated": True,
            },
            "address": {"type": "Property", "value": {"street": "Pariser Platz", "country": NGSI_LD_NULL}},
            "speed": NGSI_LD_NULL,
            "label": {"languageMap": {"fr": NGSI_LD_NULL, "de": "Hallo"}},
            "brandNew": {"value": {"a": 1, "b": NGSI_LD_NULL}},
        },
        CTX,
        LATER,
        nulls="nested",
    )
    result = merge_entity(stored, fragment["attrs"], LATER, types=fragment["type"])
    attrs = result.entity["attrs"]
    temperature = attrs[D + "temperature"][0]
    assert temperature["value"] == 100
    assert temperature["unitCode"] == "CEL"
    assert temperature["observedAt"] == "2022-03-14T13:00:00.000000Z"
    assert set(temperature["sub"]) == {D + "sensor", D + "calibrated"}
    assert (temperature["createdAt"], temperature["modifiedAt"]) == (T0, T1)
    assert attrs[D + "address"][0]["value"] == {"street": "Pariser Platz", "city": "Berlin"}
    assert D + "speed" not in attrs
    assert attrs[D + "label"][0]["languageMap"] == {"en": "Hello", "de": "Hallo"}
    assert attrs[D + "brandNew"][0]["value"] == {"a": 1}
    assert attrs[D + "untouched"] == stored["attrs"][D + "untouched"]
    assert result.entity["type"] == [D + "T", D + "U"]
    removed = [c for c in result.changes if c.new is None]
    assert [(c.name, c.old["value"]) for c in removed if c.old] == [(D + "speed", 80)]
    assert len(result.changes) == 5


def test_merge_changing_the_type_replaces_the_instance() -> None:
    stored = temperature_entity()
    attrs = parse_attributes({"humidity": {"object": "urn:ngsi-ld:Sensor:9"}}, CTX, LATER, nulls="nested")
    humidity = merge_entity(stored, attrs, LATER).entity["attrs"][D + "humidity"][0]
    assert humidity["type"] == "Relationship"
    assert "value" not in humidity


def test_merge_scope_null_removes_scope() -> None:
    stored = parse_entity({"id": ID, "type": "T", "scope": "/a"}, CTX, NOW)
    assert "scope" not in merge_entity(stored, {}, LATER, scope=NGSI_LD_NULL).entity
    assert merge_entity(stored, {}, LATER, scope=["/b"]).entity["scope"] == ["/b"]


def test_replace_entity() -> None:
    stored = temperature_entity()
    new = parse_entity({"id": stored["id"], "type": "Office", "humidity": 50, "co2": 400}, CTX, LATER)
    result = replace_entity(stored, new, LATER)
    assert result.entity["createdAt"] == T0
    assert result.entity["modifiedAt"] == T1
    assert result.entity["type"] == [D + "Office"]
    assert set(result.entity["attrs"]) == {D + "humidity", D + "co2"}
    assert result.entity["attrs"][D + "humidity"][0]["createdAt"] == T0
    assert result.entity["attrs"][D + "co2"][0]["createdAt"] == T1
    summary = sorted(
        (c.name, c.dataset_id or "", c.old is not None, c.new is not None) for c in result.changes
    )
    assert summary == [
        (D + "co2", "", False, True),
        (D + "humidity", "", True, True),
        (D + "temperature", "", True, False),
        (D + "temperature", "urn:ngsi-ld:Dataset:f", True, False),
    ]


def test_partial_attribute_update_spec_example() -> None:
    stored = temperature_entity()
    fragment = parse_attr_fragment(
        {"type": "Property", "value": 100, "observedAt": "2022-03-14T13:00:00.000Z"}, CTX, "temperature"
    )
    result = partial_attr_update(stored, D + "temperature", fragment, LATER)
    temperature = result.entity["attrs"][D + "temperature"][0]
    assert temperature["value"] == 100
    assert temperature["unitCode"] == "CEL"
    assert temperature["observedAt"] == "2022-03-14T13:00:00.000000Z"
    assert (temperature["createdAt"], temperature["modifiedAt"]) == (T0, T1)
    assert result.entity["attrs"][D + "temperature"][1] == stored["attrs"][D + "temperature"][1]
    assert result.changes == [
        AttrChange(D + "temperature", None, stored["attrs"][D + "temperature"][0], temperature)
    ]


def test_partial_attribute_update_by_dataset_and_sub_attributes() -> None:
    stored = parse_entity(
        {
            "id": ID,
            "type": "T",
            "speed": {"value": 1, "accuracy": 0.1, "source": "gps", "datasetId": "urn:ds:1"},
        },
        CTX,
        NOW,
    )
    fragment = parse_attr_fragment(
        {"accuracy": NGSI_LD_NULL, "source": "radar", "datasetId": "urn:ds:1"}, CTX, "speed"
    )
    speed = partial_attr_update(stored, D + "speed", fragment, LATER).entity["attrs"][D + "speed"][0]
    assert speed["value"] == 1
    assert speed["sub"] == {D + "source": [{"type": "Property", "value": "radar"}]}


@pytest.mark.parametrize(
    ("fragment", "dataset_id", "error", "text"),
    [
        ({"object": "urn:ngsi-ld:X:1"}, None, BadRequestData, "type"),
        ({"type": "Property", "value": NGSI_LD_NULL}, None, BadRequestData, "delete"),
        ({"value": 1}, "urn:ngsi-ld:Dataset:missing", ResourceNotFound, "urn:ngsi-ld:Dataset:missing"),
    ],
)
def test_partial_attribute_update_errors(
    fragment: dict[str, Any], dataset_id: str | None, error: type[Exception], text: str
) -> None:
    parsed = parse_attr_fragment(fragment, CTX, "temperature")
    with pytest.raises(error) as raised:
        partial_attr_update(temperature_entity(), D + "temperature", parsed, LATER, dataset_id)
    assert text in str(raised.value)


def test_partial_update_of_a_missing_attribute() -> None:
    with pytest.raises(ResourceNotFound) as error:
        partial_attr_update(temperature_entity(), D + "pressure", {"value": 1}, LATER)
    assert D + "pressure" in error.value.detail


def test_delete_default_instance_dataset_and_all() -> None:
    stored = temperature_entity()
    result = delete_attr(stored, D + "temperature", LATER)
    assert [i.get("datasetId") for i in result.entity["attrs"][D + "temperature"]] == [
        "urn:ngsi-ld:Dataset:f"
    ]
    assert result.changes == [
        AttrChange(D + "temperature", None, stored["attrs"][D + "temperature"][0], None)
    ]
    assert result.entity["modifiedAt"] == T1
    result = delete_attr(stored, D + "temperature", LATER, dataset_id="urn:ngsi-ld:Dataset:f")
    assert [i.get("datasetId") for i in result.entity["attrs"][D + "temperature"]] == [None]
    result = delete_attr(stored, D + "temperature", LATER, delete_all=True)
    assert D + "temperature" not in result.entity["attrs"]
    assert len(result.changes) == 2
    assert find_instance(stored, D + "temperature", "urn:ngsi-ld:Dataset:f") is not None


def test_delete_missing_attribute_or_dataset() -> None:
    stored = temperature_entity()
    with pytest.raises(ResourceNotFound):
        delete_attr(stored, D + "pressure", LATER)
    with pytest.raises(ResourceNotFound) as error:
        delete_attr(stored, D + "temperature", LATER, dataset_id="urn:ngsi-ld:Dataset:zzz")
    assert "urn:ngsi-ld:Dataset:zzz" in error.value.detail
    only_dataset = delete_attr(stored, D + "temperature", LATER).entity
    with pytest.raises(ResourceNotFound):
        delete_attr(only_dataset, D + "temperature", LATER)


# --------------------------------------------------------------------------------------------------
# Rendering


def test_render_normalized() -> None:
    out = render_entity(stored_entity(), CTX)
    assert out["type"] == "AirQualityObserved"
    assert out["pm25"] == {
        "type": "Property",
        "value": 35,
        "unitCode": "GQ",
        "observedAt": T0,
        "accuracy": {"type": "Property", "value": 0.5},
    }
    assert out["route"]["objectList"] == [{"object": "urn:ngsi-ld:Stop:1"}, {"object": "urn:ngsi-ld:Stop:2"}]
    assert out["category"] == {"type": "VocabProperty", "vocab": "urban"}
    assert "createdAt" not in out and "createdAt" not in out["pm25"]


def test_render_with_sys_attrs() -> None:
    out = render_entity(stored_entity(), CTX, sys_attrs=True)
    assert out["createdAt"] == out["modifiedAt"] == T0
    assert out["pm25"]["createdAt"] == T0
    assert "createdAt" not in out["pm25"]["accuracy"]


def test_render_concise() -> None:
    out = render_entity(stored_entity(), CTX, form="concise")
    assert out["pm25"] == {"value": 35, "unitCode": "GQ", "observedAt": T0, "accuracy": 0.5}
    assert out["location"] == POINT
    assert out["refDevice"] == {"object": "urn:ngsi-ld:Device:sensor-7"}
    assert out["name"] == {"languageMap": {"en": "Fucheng station", "zh-CN": "涪城站"}}
    assert out["raw"] == {"json": {"id": "x", "value": 1}}
    assert out["route"] == {"objectList": ["urn:ngsi-ld:Stop:1", "urn:ngsi-ld:Stop:2"]}
    assert out["address"] == {"value": {"type": "PostalAddress", "streetAddress": "Linyuan Road"}}
    assert out["readings"] == {"valueList": [1, 2, 3]}


def test_render_concise_keeps_property_type_for_geometry_values() -> None:
    stored = parse_entity(_invalid(shape={"type": "Property", "value": POINT}, speed=3), CTX, NOW)
    out = render_entity(stored, CTX, form="concise")
    assert out["shape"] == {"type": "Property", "value": POINT}
    assert out["speed"] == 3
    assert parse_entity(out, CTX, NOW) == stored


def test_render_concise_wraps_values_that_would_read_back_differently() -> None:
    values = {
        "records": [{"value": 1}, {"type": "Property"}],
        "typed": {"type": "Reading", "v": 1},
        "wrapped": {"object": "urn:x:1"},
        "plain": [{"a": 1}],
    }
    stored = parse_entity(
        _invalid(**{k: {"type": "Property", "value": v} for k, v in values.items()}), CTX, NOW
    )
    out = render_entity(stored, CTX, form="concise")
    assert out["records"] == {"value": values["records"]}
    assert out["typed"] == {"value": values["typed"]}
    assert out["wrapped"] == {"value": values["wrapped"]}
    assert out["plain"] == values["plain"]
    assert parse_entity(out, CTX, NOW) == stored


def test_render_key_values() -> None:
    out = render_entity(stored_entity(), CTX, form="keyValues")
    assert out == {
        "id": ID,
        "type": "AirQualityObserved",
        "pm25": 35,
        "location": POINT,
        "refDevice": "urn:ngsi-ld:Device:sensor-7",
        "name": {"languageMap": {"en": "Fucheng station", "zh-CN": "涪城站"}},
        "raw": {"json": {"id": "x", "value": 1}},
        "readings": [1, 2, 3],
        "route": ["urn:ngsi-ld:Stop:1", "urn:ngsi-ld:Stop:2"],
        "category": {"vocab": "urban"},
        "address": {"type": "PostalAddress", "streetAddress": "Linyuan Road"},
    }


def test_render_key_values_multi_instance_uses_dataset_map() -> None:
    out = render_entity(temperature_entity(), CTX, form="keyValues")
    assert out["temperature"] == {"dataset": {"@none": 25, "urn:ngsi-ld:Dataset:f": 77}}
    normalized = render_entity(temperature_entity(), CTX)
    assert [i.get("datasetId") for i in normalized["temperature"]] == [None, "urn:ngsi-ld:Dataset:f"]
    concise = render_entity(temperature_entity(), CTX, form="concise")
    assert concise["temperature"][0] == {
        "value": 25,
        "unitCode": "CEL",
        "observedAt": "2022-03-14T01:59:26.535000Z",
    }


def test_render_attrs_pick_and_omit() -> None:
    stored = stored_entity()
    picked = render_entity(stored, CTX, attrs={PM25, LOCATION})
    assert set(picked) == {"id", "type", "pm25", "location"}
    omitted = render_entity(stored, CTX, form="keyValues", omit={PM25, LOCATION})
    assert "pm25" not in omitted and "location" not in omitted and "name" in omitted
    assert set(render_entity(stored, CTX, attrs={PM25}, omit={PM25})) == {"id", "type"}


def test_render_with_other_context_uses_its_terms() -> None:
    out = render_entity(stored_entity(), Context())
    assert out["type"] == AQO
    assert out[PM25]["value"] == 35
    assert out["refDevice"]["object"] == "urn:ngsi-ld:Device:sensor-7"


def test_render_multiple_types_and_scope() -> None:
    stored = parse_entity(
        {"id": ID, "type": ["AirQualityObserved", "Sensor"], "scope": ["/a", "/b"]}, CTX, NOW
    )
    out = render_entity(stored, CTX)
    assert out["type"] == ["AirQualityObserved", "Sensor"]
    assert out["scope"] == ["/a", "/b"]


@pytest.mark.parametrize(
    ("lang", "tag", "text"),
    [
        ("zh-CN", "zh-CN", "涪城站"),
        ("zh", "en", "Fucheng station"),
        ("zh-CN-x-mianyang", "zh-CN", "涪城站"),
        ("de,zh-cn;q=0.5", "zh-CN", "涪城站"),
        ("fr;q=0.9,en;q=0.8", "en", "Fucheng station"),
        ("*", "en", "Fucheng station"),
    ],
)
def test_render_lang_filter(lang: str, tag: str, text: str) -> None:
    stored = stored_entity()
    assert render_entity(stored, CTX, lang=lang)["name"] == {"type": "Property", "value": text, "lang": tag}
    assert render_entity(stored, CTX, form="concise", lang=lang)["name"] == {"value": text, "lang": tag}
    assert render_entity(stored, CTX, form="keyValues", lang=lang)["name"] == text


def test_select_language_prefers_none_as_fallback() -> None:
    assert select_language({"en": "yes", "@none": "ja"}, ["fr"]) == ("@none", "ja")
    with pytest.raises(BadRequestData):
        render_entity(stored_entity(), CTX, lang="en;q=2")


def test_render_geojson() -> None:
    stored = parse_entity(
        _invalid(
            location=POINT,
            observationSpace={"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]},
            pm25={"value": 35, "unitCode": "GQ"},
        ),
        CTX,
        NOW,
    )
    feature = render_geojson(stored, CTX)
    assert feature["type"] == "Feature"
    assert feature["id"] == ID
    assert feature["geometry"] == POINT
    assert feature["properties"]["type"] == "T"
    assert feature["properties"]["pm25"] == {"type": "Property", "value": 35, "unitCode": "GQ"}
    assert feature["properties"]["location"] == {"type": "GeoProperty", "value": POINT}
    other = render_geojson(stored, CTX, OBSERVATION_SPACE, form="keyValues")
    assert other["geometry"]["type"] == "Polygon"
    assert other["properties"]["pm25"] == 35
    assert render_geojson(stored, CTX, D + "missing")["geometry"] is None
    assert render_geojson(stored, CTX, PM25)["geometry"] is None


def test_parse_key_values() -> None:
    stored = parse_key_values(
        {
            "id": ID,
            "type": "AirQualityObserved",
            "pm25": 35,
            "location": POINT,
            "address": {"type": "PostalAddress", "value": "x"},
            "name": {"languageMap": {"en": "Station"}},
            "raw": {"json": [1, 2]},
            "temperature": {"dataset": {"@none": 25, "urn:ngsi-ld:Dataset:f": 77}},
        },
        CTX,
        NOW,
    )
    kinds = {CTX.compact(iri): [i["type"] for i in inst] for iri, inst in stored["attrs"].items()}
    assert kinds == {
        "pm25": ["Property"],
        "location": ["GeoProperty"],
        "address": ["Property"],
        "name": ["LanguageProperty"],
        "raw": ["JsonProperty"],
        "temperature": ["Property", "Property"],
    }
    assert stored["attrs"][D + "address"][0]["value"] == {"type": "PostalAddress", "value": "x"}
    assert render_entity(stored, CTX, form="keyValues")["temperature"] == {
        "dataset": {"@none": 25, "urn:ngsi-ld:Dataset:f": 77}
    }
    with pytest.raises(BadRequestData):
        parse_key_values({"id": ID, "type": "T", "location": 5}, CTX, NOW)


def test_key_values_round_trip_for_simple_entities() -> None:
    stored = parse_key_values({"id": ID, "type": "T", "a": 1, "b": "two", "location": POINT}, CTX, NOW)
    assert parse_key_values(render_entity(stored, CTX, form="keyValues"), CTX, NOW) == stored


def test_format_datetime() -> None:
    assert format_datetime(NOW) == T0
    assert format_datetime(datetime(2026, 11, 24, 18)) == "2026-11-24T18:00:00.000000Z"


# --------------------------------------------------------------------------------------------------
# Property tests: parse -> render -> parse is the identity on stored forms


_names = st.from_regex(r"[a-z][A-Za-z0-9]{0,8}", fullmatch=True).filter(
    lambda n: n not in RESERVED_NAMES and n not in CORE_TERMS
)
_uris = st.from_regex(r"urn:ngsi-ld:[A-Za-z]{1,6}:[a-z0-9]{1,6}", fullmatch=True)
_tricky_keys = st.sampled_from(["type", "value", "object", "json", "languageMap", "a", "b", "coordinates"])
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_tricky_keys, inner, max_size=3),
    max_leaves=8,
)
_values = _json.filter(lambda v: v is not None)
_points = st.builds(
    lambda lon, lat: {"type": "Point", "coordinates": [lon, lat]},
    st.floats(-180, 180, allow_nan=False),
    st.floats(-90, 90, allow_nan=False),
)
_times = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


def _instance_bodies() -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.builds(lambda v: {"type": "Property", "value": v}, _values),
        st.builds(lambda v: {"type": "Property", "value": v}, _points),
        st.builds(lambda v: {"type": "GeoProperty", "value": v}, _points),
        st.builds(
            lambda v: {"type": "Relationship", "object": v}, _uris | st.lists(_uris, min_size=1, max_size=3)
        ),
        st.builds(
            lambda v: {"type": "LanguageProperty", "languageMap": v},
            st.dictionaries(st.sampled_from(["en", "fr", "zh-CN", "@none"]), st.text(max_size=5), min_size=1),
        ),
        st.builds(lambda v: {"type": "JsonProperty", "json": v}, _values),
        st.builds(lambda v: {"type": "ListProperty", "valueList": v}, st.lists(_values, max_size=3)),
        st.builds(
            lambda v: {"type": "ListRelationship", "objectList": v}, st.lists(_uris, min_size=1, max_size=3)
        ),
        st.builds(lambda v: {"type": "VocabProperty", "vocab": v}, _names),
    )


@st.composite
def _instances(draw: st.DrawFn, dataset_id: str | None, depth: int) -> dict[str, Any]:
    body = draw(_instance_bodies())
    if draw(st.booleans()):
        body["observedAt"] = draw(_times).isoformat()
    if body["type"] in ("Property", "GeoProperty", "JsonProperty", "ListProperty") and draw(st.booleans()):
        body["unitCode"] = draw(st.sampled_from(["CEL", "GQ", "KMH"]))
    if dataset_id is not None:
        body["datasetId"] = dataset_id
    if depth > 0:
        for name in draw(st.lists(_names, max_size=2, unique=True)):
            body[name] = draw(_instances(None, depth - 1))
    return body


@st.composite
def _entities(draw: st.DrawFn) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "id": draw(_uris),
        "type": draw(st.lists(_names, min_size=1, max_size=2, unique=True)),
    }
    if draw(st.booleans()):
        entity["location"] = {"type": "GeoProperty", "value": draw(_points)}
    for name in draw(st.lists(_names, max_size=4, unique=True)):
        datasets = draw(st.lists(st.none() | _uris, min_size=1, max_size=3, unique=True))
        instances = [draw(_instances(ds, 1)) for ds in datasets]
        entity[name] = instances[0] if len(instances) == 1 else instances
    return entity


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_entities(), st.sampled_from(["normalized", "concise"]))
def test_parse_render_parse_is_identity(payload: dict[str, Any], form: str) -> None:
    stored = parse_entity(payload, CTX, NOW)
    rendered = render_entity(stored, CTX, form=form)  # type: ignore[arg-type]
    assert parse_entity(rendered, CTX, LATER) == _restamp(stored, T1)


@settings(max_examples=40, deadline=None)
@given(_entities())
def test_sys_attrs_render_parses_back(payload: dict[str, Any]) -> None:
    stored = parse_entity(payload, CTX, NOW)
    rendered = render_entity(stored, CTX, form="concise", sys_attrs=True)
    assert parse_entity(rendered, CTX, NOW) == stored


def _restamp(stored: dict[str, Any], stamp: str) -> dict[str, Any]:
    out = copy.deepcopy(stored)
    out["createdAt"] = out["modifiedAt"] = stamp
    for instances in out["attrs"].values():
        for instance in instances:
            instance["createdAt"] = instance["modifiedAt"] = stamp
    return out
