"""The attribute value index: its rows follow every write, and q queries through it return what they should."""

from __future__ import annotations

import importlib.util
import math
import uuid
from pathlib import Path
from typing import Any

import pytest
from alembic.migration import MigrationContext
from alembic.operations import Operations
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, inspect, select, text

from citybrain.apps.context import services
from citybrain.apps.context.models import AttributeValue, Entity
from citybrain.apps.context.query import INDEXED_TEXT_LENGTH, matches, parse_q
from citybrain.apps.context.values import value_rows
from citybrain.core.context import AppContext
from citybrain.core.permissions import SYSTEM
from tests.apps.context.test_query import entity_lists, indexed_queries

BASE = "/ngsi-ld/v1"
DEFAULT = "https://uri.etsi.org/ngsi-ld/default-context/"
MIGRATION = (
    Path(services.__file__).parent / "migrations" / "5b7e2c1d9a40_attribute_value_index.py"
)  # the revision that adds the index
SENSOR = "urn:ngsi-ld:Sensor:{}"


def expand(term: str) -> str:
    return term if ":" in term else DEFAULT + term


def sensor(number: int, **attrs: Any) -> dict[str, Any]:
    """A sensor entity: a temperature, a name and a relationship, plus any given attributes."""
    return {
        "id": SENSOR.format(number),
        "type": "Sensor",
        "temperature": {"type": "Property", "value": number},
        "name": {"type": "Property", "value": f"sensor {number}"},
        "refRoad": {"type": "Relationship", "object": f"urn:ngsi-ld:Road:{number % 3}"},
        **attrs,
    }


def rows(ctx: AppContext, entity_id: str) -> set[tuple[str, str, float | None, str | None]]:
    """The index rows of an entity: (attribute term, datasetId, number, text)."""
    stmt = (
        select(AttributeValue.attr, AttributeValue.dataset_id, AttributeValue.number, AttributeValue.text)
        .join(Entity, Entity.pk == AttributeValue.entity_pk)
        .where(Entity.entity_id == entity_id)
    )
    with ctx.read() as session:
        return {
            (attr.removeprefix(DEFAULT), ds, number, txt) for attr, ds, number, txt in session.execute(stmt)
        }


def all_rows(ctx: AppContext) -> list[tuple[Any, ...]]:
    with ctx.read() as session:
        return sorted(
            session.execute(
                select(
                    AttributeValue.entity_pk,
                    AttributeValue.attr,
                    AttributeValue.dataset_id,
                    AttributeValue.number,
                    AttributeValue.text,
                )
            ).all(),
            key=repr,
        )


def found(ngsi: TestClient, q: str, **params: str) -> list[str]:
    response = ngsi.get(f"{BASE}/entities", params={"type": "Sensor", "q": q, "limit": "100", **params})
    assert response.status_code == 200, response.text
    return [entity["id"] for entity in response.json()]


# ----------------------------------------------------------------------------------------- row builder


def test_rows_hold_each_number_and_string_a_term_compares() -> None:
    stored = {
        "attrs": {
            DEFAULT + "n": [
                {"type": "Property", "value": 3},
                {"type": "Property", "value": [1.5, "x", 1.5, True, None, {"a": 1}], "datasetId": "urn:d:1"},
            ],
            DEFAULT + "label": [
                {"type": "LanguageProperty", "languageMap": {"en": "road", "zh": ["路", "道"]}}
            ],
            DEFAULT + "ref": [{"type": "Relationship", "object": "urn:ngsi-ld:Road:1"}],
            DEFAULT + "refs": [{"type": "ListRelationship", "objectList": ["urn:a", "urn:b"]}],
            DEFAULT + "kind": [{"type": "VocabProperty", "vocab": DEFAULT + "Male"}],
            DEFAULT + "doc": [{"type": "JsonProperty", "json": {"n": 5}}],
            DEFAULT + "flag": [{"type": "Property", "value": False, "observedAt": "2026-01-01T00:00:00Z"}],
            DEFAULT + "where": [{"type": "GeoProperty", "value": {"type": "Point", "coordinates": [1, 2]}}],
        }
    }
    built = value_rows(7, stored)
    assert {row["entity_pk"] for row in built} == {7}
    assert sorted(row["ordinal"] for row in built) == list(range(len(built)))
    assert {
        (row["attr"].removeprefix(DEFAULT), row["dataset_id"], row["number"], row["text"]) for row in built
    } == {
        ("n", "", 3.0, None),
        ("n", "urn:d:1", 1.5, None),
        ("n", "urn:d:1", None, "x"),
        ("label", "", None, "road"),
        ("label", "", None, "路"),
        ("label", "", None, "道"),
        ("ref", "", None, "urn:ngsi-ld:Road:1"),
        ("refs", "", None, "urn:a"),
        ("refs", "", None, "urn:b"),
        ("kind", "", None, DEFAULT + "Male"),
    }
    assert len(built) == 10  # the repeated 1.5 is kept once


def test_long_strings_are_cut_and_numbers_beyond_doubles_keep_their_order() -> None:
    long = "绵" * (INDEXED_TEXT_LENGTH + 5)
    stored = {
        "attrs": {
            DEFAULT + "s": [{"type": "Property", "value": long}],
            DEFAULT + "big": [{"type": "Property", "value": [10**400, -(10**400), 2**53 + 1]}],
            DEFAULT + "nan": [{"type": "Property", "value": math.nan}],
        }
    }
    built = {(row["attr"].removeprefix(DEFAULT), row["number"], row["text"]) for row in value_rows(1, stored)}
    assert built == {
        ("s", None, long[:INDEXED_TEXT_LENGTH]),
        ("big", math.inf, None),
        ("big", -math.inf, None),
        ("big", float(2**53), None),
    }
    assert value_rows(1, {"id": "urn:x"}) == []


# -------------------------------------------------------------------------------- rows follow the writes


def test_rows_follow_creates_updates_attribute_deletes_and_entity_deletes(
    ngsi: TestClient, ctx: AppContext
) -> None:
    assert ngsi.post(f"{BASE}/entities", json=sensor(1)).status_code == 201
    assert rows(ctx, SENSOR.format(1)) == {
        ("temperature", "", 1.0, None),
        ("name", "", None, "sensor 1"),
        ("refRoad", "", None, "urn:ngsi-ld:Road:1"),
    }
    patched = ngsi.patch(f"{BASE}/entities/{SENSOR.format(1)}/attrs/temperature", json={"value": 21.5})
    assert patched.status_code == 204, patched.text
    appended = ngsi.post(
        f"{BASE}/entities/{SENSOR.format(1)}/attrs",
        json={
            "tags": {"type": "Property", "value": ["a", 2]},
            "temperature": {"type": "Property", "value": 9, "datasetId": "urn:d:2"},
        },
    )
    assert appended.status_code == 204, appended.text
    assert rows(ctx, SENSOR.format(1)) == {
        ("temperature", "", 21.5, None),
        ("temperature", "urn:d:2", 9.0, None),
        ("name", "", None, "sensor 1"),
        ("refRoad", "", None, "urn:ngsi-ld:Road:1"),
        ("tags", "", None, "a"),
        ("tags", "", 2.0, None),
    }
    removed = ngsi.delete(f"{BASE}/entities/{SENSOR.format(1)}/attrs/name")
    assert removed.status_code == 204, removed.text
    assert ("name", "", None, "sensor 1") not in rows(ctx, SENSOR.format(1))
    assert ngsi.post(f"{BASE}/entities", json=sensor(2)).status_code == 201
    assert ngsi.delete(f"{BASE}/entities/{SENSOR.format(1)}").status_code == 204
    assert rows(ctx, SENSOR.format(1)) == set()
    assert {pk for pk, *_ in all_rows(ctx)} == {_pk(ctx, SENSOR.format(2))}


def _pk(ctx: AppContext, entity_id: str) -> int:
    with ctx.read() as session:
        pk = session.scalar(select(Entity.pk).where(Entity.entity_id == entity_id))
    assert pk is not None
    return pk


def test_rows_follow_batch_upserts_updates_and_deletes(ngsi: TestClient, ctx: AppContext) -> None:
    created = ngsi.post(f"{BASE}/entityOperations/create", json=[sensor(1), sensor(2)])
    assert created.status_code == 201, created.text
    replaced = ngsi.post(
        f"{BASE}/entityOperations/upsert",
        json=[
            {"id": SENSOR.format(1), "type": "Sensor", "temperature": {"type": "Property", "value": 40}},
            sensor(3),
        ],
    )
    assert replaced.status_code in (201, 204), replaced.text
    assert rows(ctx, SENSOR.format(1)) == {("temperature", "", 40.0, None)}
    assert ("temperature", "", 3.0, None) in rows(ctx, SENSOR.format(3))
    updated = ngsi.post(
        f"{BASE}/entityOperations/upsert",
        params={"options": "update"},
        json=[{"id": SENSOR.format(2), "type": "Sensor", "temperature": {"type": "Property", "value": -4}}],
    )
    assert updated.status_code == 204, updated.text
    assert rows(ctx, SENSOR.format(2)) == {
        ("temperature", "", -4.0, None),
        ("name", "", None, "sensor 2"),
        ("refRoad", "", None, "urn:ngsi-ld:Road:2"),
    }
    deleted = ngsi.post(f"{BASE}/entityOperations/delete", json=[SENSOR.format(1), SENSOR.format(3)])
    assert deleted.status_code == 204, deleted.text
    assert {pk for pk, *_ in all_rows(ctx)} == {_pk(ctx, SENSOR.format(2))}


def test_a_rejected_write_leaves_the_rows_alone(ngsi: TestClient, ctx: AppContext) -> None:
    assert ngsi.post(f"{BASE}/entities", json=sensor(1)).status_code == 201
    before = all_rows(ctx)
    bad = ngsi.patch(
        f"{BASE}/entities/{SENSOR.format(1)}/attrs/temperature", json={"value": None, "type": "Nope"}
    )
    assert bad.status_code == 400, bad.text
    again = ngsi.post(f"{BASE}/entities", json=sensor(1, temperature={"type": "Property", "value": 99}))
    assert again.status_code == 409, again.text
    assert all_rows(ctx) == before


# ------------------------------------------------------------------------------------------- queries


def test_queries_read_the_index(ngsi: TestClient, ctx: AppContext) -> None:
    made = ngsi.post(f"{BASE}/entityOperations/create", json=[sensor(n) for n in range(1, 7)])
    assert made.status_code == 201, made.text
    assert found(ngsi, "temperature>4") == [SENSOR.format(5), SENSOR.format(6)]
    assert found(ngsi, "temperature==2..3;refRoad==urn:ngsi-ld:Road:0") == [SENSOR.format(3)]
    assert found(ngsi, 'name=="sensor 1","sensor 6"') == [SENSOR.format(1), SENSOR.format(6)]
    assert found(ngsi, 'temperature<2|name>"sensor 5"') == [SENSOR.format(n) for n in (1, 6)]
    counted = ngsi.get(f"{BASE}/entities", params={"type": "Sensor", "q": "temperature>=3", "count": "true"})
    assert counted.headers["NGSILD-Results-Count"] == "4"
    # Without its index rows an entity no longer passes the prefilter, though its document matches.
    with ctx.db.write_engine.begin() as conn:
        conn.execute(delete(AttributeValue).where(AttributeValue.entity_pk == _pk(ctx, SENSOR.format(6))))
    assert found(ngsi, "temperature>4") == [SENSOR.format(5)]
    assert found(ngsi, "temperature!=1") == [SENSOR.format(n) for n in range(2, 7)]  # != is not prefiltered


@pytest.mark.parametrize("driving_rows", [1000, 0])
def test_lookups_drive_or_probe_with_the_same_results(
    ngsi: TestClient, monkeypatch: pytest.MonkeyPatch, driving_rows: int
) -> None:
    monkeypatch.setattr(services, "DRIVING_LOOKUP_ROWS", driving_rows)
    made = ngsi.post(f"{BASE}/entityOperations/create", json=[sensor(n) for n in range(1, 9)])
    assert made.status_code == 201, made.text
    assert found(ngsi, "temperature>2;temperature<6;refRoad==urn:ngsi-ld:Road:1") == [SENSOR.format(4)]
    assert found(ngsi, '(temperature>6|name=="sensor 1");refRoad==urn:ngsi-ld:Road:1') == [
        SENSOR.format(1),
        SENSOR.format(7),
    ]
    assert found(ngsi, "temperature>0", limit="3") == [SENSOR.format(n) for n in (1, 2, 3)]


@given(entities=entity_lists(), text=indexed_queries, probing=st.booleans())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_queries_through_the_store_select_exactly_what_matches_accepts(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch, entities: list[dict[str, Any]], text: str, probing: bool
) -> None:
    monkeypatch.setattr(services, "DRIVING_LOOKUP_ROWS", 0 if probing else 1000)
    tenant = uuid.uuid4().hex  # each example writes to a tenant of its own
    stamp = "2026-01-01T00:00:00Z"
    stored = [{**entity, "createdAt": stamp, "modifiedAt": stamp} for entity in entities]
    outcome = services.batch(ctx, SYSTEM, tenant, "create", stored)
    assert not outcome.errors, outcome.errors
    node = parse_q(text, expand)
    query = services.EntityQuery(q=node, limit=100, count=True)
    result = services.query_entities(ctx, SYSTEM, tenant, query)
    expected = sorted(entity["id"] for entity in entities if matches(node, entity))
    assert [entity["id"] for entity in result.entities] == expected, text
    assert result.total == len(expected)


# ----------------------------------------------------------------------------------------- migration


def test_the_migration_indexes_stored_entities_and_reverts(ngsi: TestClient, ctx: AppContext) -> None:
    made = ngsi.post(
        f"{BASE}/entityOperations/create",
        json=[sensor(n, tags={"type": "Property", "value": ["x", n]}) for n in range(1, 6)],
    )
    assert made.status_code == 201, made.text
    written = all_rows(ctx)
    assert len(written) == 25
    spec = importlib.util.spec_from_file_location("attribute_value_index", MIGRATION)
    assert spec is not None and spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    with (
        ctx.db.write_engine.connect() as conn,
        conn.begin() as transaction,
        Operations.context(MigrationContext.configure(conn)),
    ):
        migration.downgrade()
        assert "context_value" not in inspect(conn).get_table_names()
        migration.PAGE = 2  # several pages
        migration.upgrade()
        indexes = {index["name"] for index in inspect(conn).get_indexes("context_value")}
        assert {"ix_context_value_number", "ix_context_value_text"} <= indexes
        backfilled = conn.execute(
            text("SELECT entity_pk, attr, dataset_id, number, text FROM context_value")
        ).all()
        transaction.rollback()
    assert sorted(backfilled, key=repr) == written
