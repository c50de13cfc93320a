"""The attribute value index: the numbers and strings of each entity's attributes, rows that q prefilters read.

Every top-level attribute instance contributes one ``context_value`` row per distinct number or string
among the values a q term compares (``query.value_candidates``: the value, array items, a languageMap's
strings, a Relationship's object...), keyed as ``query.index_key`` says. Writers call ``refresh_values``
with the stored forms they wrote; deleting an entity drops its rows by the foreign key's cascade.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from citybrain.apps.context.models import AttributeValue
from citybrain.apps.context.query import index_key, value_candidates
from citybrain.sdk import bulk_insert


def value_rows(pk: int, stored: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The index rows of one stored entity."""
    rows: list[dict[str, Any]] = []
    attrs = stored.get("attrs")
    if not isinstance(attrs, Mapping):
        return rows
    for attr, instances in attrs.items():
        for instance in instances if isinstance(instances, list) else [instances]:
            if not isinstance(instance, Mapping):
                continue
            dataset_id = instance.get("datasetId")
            keys = dict.fromkeys(index_key(candidate) for candidate in value_candidates(instance)[0])
            for key in keys:
                if key is None:
                    continue
                rows.append(
                    {
                        "entity_pk": pk,
                        "ordinal": len(rows),
                        "attr": attr,
                        "dataset_id": dataset_id if isinstance(dataset_id, str) else "",
                        "number": key[0],
                        "text": key[1],
                    }
                )
    return rows


def refresh_values(
    session: Session, items: Sequence[tuple[int, Mapping[str, Any]]], *, fresh: bool = False
) -> None:
    """Replace the index rows of entities (pk, stored form): one DELETE (none when ``fresh``), one bulk insert."""
    if not items:
        return
    if not fresh:
        stale = delete(AttributeValue).where(AttributeValue.entity_pk.in_([pk for pk, _ in items]))
        session.execute(stale, execution_options={"synchronize_session": False})
    bulk_insert(
        session.connection(), AttributeValue, [row for pk, stored in items for row in value_rows(pk, stored)]
    )


def history_number(value: Any) -> float | None:
    """The number a history row keeps for aggregation: None for non-numbers and integers beyond a double."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None
