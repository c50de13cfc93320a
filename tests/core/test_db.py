"""JSON record-set parameters: rows as PostgreSQL's jsonb_to_recordset reads them."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import orjson

from citybrain.core.db import json_rows


def test_rows_with_exactly_the_named_members_go_as_they_are() -> None:
    rows = [{"a": 1, "b": "x"}, {"a": 2, "b": None}]
    assert orjson.loads(json_rows(rows, ("b", "a"))) == rows


def test_other_members_are_left_out() -> None:
    rows = [{"a": 1, "b": 2, "c": 3}]
    assert orjson.loads(json_rows(rows, ("a", "c"))) == [{"a": 1, "c": 3}]


def test_non_finite_numbers_become_the_strings_postgresql_reads_and_the_rows_are_not_changed() -> None:
    rows = [{"n": math.nan, "m": math.inf}, {"n": -math.inf, "m": 1.5}]
    assert orjson.loads(json_rows(rows, ("n", "m"))) == [
        {"n": "NaN", "m": "Infinity"},
        {"n": "-Infinity", "m": 1.5},
    ]
    assert math.isnan(rows[0]["n"]) and rows[1]["n"] == -math.inf


def test_datetimes_documents_and_huge_integers() -> None:
    moment = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    rows = [{"t": moment, "doc": {"k": [1, 2]}, "big": 2**70}]
    assert orjson.loads(json_rows(rows, ("t", "doc", "big"))) == [
        {"t": "2026-11-25T08:00:00+00:00", "doc": {"k": [1, 2]}, "big": 2**70}
    ]
