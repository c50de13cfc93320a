"""Device payloads: the three JSON forms, timestamps, and values checked against the device's model.

A payload is a JSON object in one of three forms (an optional top-level "k" carries the device key):

1. one reading:       {"ts": <ts>, "values": {"pm25": 35.2, "no2": 41}}
2. several readings:  {"readings": [{"ts": <ts>, "values": {...}}, ...]}
3. a compact batch:   {"columns": ["ts", "pm25", "no2"], "rows": [[<ts>, 35.2, 41], [<ts>, 36.0, null]]}

<ts> is ISO 8601 with a UTC offset or epoch milliseconds; without one a reading takes the time it was
received. null means "not measured". Everything here is pure (no I/O) and is the hot path of ingest.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from citybrain.apps.iot.schemas import Reason, Rejection

MAX_TEXT = 1000
NUMBER, INTEGER, STRING, BOOLEAN = "number", "integer", "string", "boolean"
# name -> (kind, minimum, maximum)
Specs = Mapping[str, tuple[str, float | None, float | None]]


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "mark only"
    """Mark a message for the catalogue without translating it here (the pages translate it)."""
    return message


class Problem(Exception):
    """Something in a payload that cannot be read: an English catalogue message and its parameters."""

    def __init__(self, template: str, **params: Any) -> None:
        """Keep the message and its parameters apart (for translation)."""
        super().__init__(template.format(**params) if params else template)
        self.template = template
        self.params = params


class PayloadError(Problem):
    """The message as a whole cannot be read."""


@dataclass(frozen=True, slots=True)
class RawReading:
    """A reading as sent: its position in the message, its timestamp (raw) and its values (raw)."""

    index: int
    ts: Any
    values: Any


@dataclass(frozen=True, slots=True)
class Decoded:
    """A message's key (if it carries one) and its readings, not yet checked."""

    key: str | None
    readings: list[RawReading]


def decode(payload: bytes) -> Decoded:
    """Read a payload's JSON and find its form; raise PayloadError when neither is possible."""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(N_("not JSON: {error}"), error=str(exc)) from None
    if not isinstance(data, dict):
        raise PayloadError(N_("the payload must be a JSON object"))
    key = data.get("k")
    if key is not None and not isinstance(key, str):
        raise PayloadError(N_('"k" must be a string'))
    forms = [name for name in ("values", "readings", "columns") if name in data]
    if len(forms) != 1:
        raise PayloadError(
            N_('give exactly one of "values", "readings" or "columns" with "rows"')
            if forms
            else N_('no "values", "readings" or "columns" member')
        )
    form = forms[0]
    if form == "values":
        return Decoded(key, [RawReading(0, data.get("ts"), data["values"])])
    if form == "readings":
        items = data["readings"]
        if not isinstance(items, list):
            raise PayloadError(N_('"readings" must be a list'))
        return Decoded(key, [_reading_item(i, item) for i, item in enumerate(items)])
    return Decoded(key, _compact(data))


def _reading_item(index: int, item: Any) -> RawReading:
    """One element of "readings" ({"ts", "values"}); a malformed element is kept to be rejected alone."""
    if not isinstance(item, dict):
        return RawReading(index, None, _Malformed(N_("a reading must be an object")))
    if "values" not in item:
        return RawReading(index, None, _Malformed(N_('a reading needs "values"')))
    return RawReading(index, item.get("ts"), item["values"])


@dataclass(frozen=True, slots=True)
class _Malformed:
    """Stands for the values of a reading that could not be read (the reason travels with it)."""

    template: str
    params: dict[str, Any] | None = None


def _compact(data: Mapping[str, Any]) -> list[RawReading]:
    """The readings of the compact form: one per row, "ts" from its column when there is one."""
    columns, rows = data["columns"], data.get("rows")
    if not isinstance(columns, list) or not columns or not all(isinstance(c, str) and c for c in columns):
        raise PayloadError(N_('"columns" must be a non-empty list of names'))
    if len(set(columns)) != len(columns):
        raise PayloadError(N_('"columns" names a column twice'))
    if not isinstance(rows, list):
        raise PayloadError(N_('the compact form needs "rows", a list of lists'))
    ts_at = columns.index("ts") if "ts" in columns else -1
    names = [(i, c) for i, c in enumerate(columns) if i != ts_at]
    width = len(columns)
    readings = []
    for index, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            readings.append(
                RawReading(
                    index, None, _Malformed(N_("a row must be a list of {count} values"), {"count": width})
                )
            )
            continue
        values = {name: row[i] for i, name in names}
        readings.append(RawReading(index, row[ts_at] if ts_at >= 0 else None, values))
    return readings


def parse_ts(raw: Any, received_at: datetime) -> datetime:
    """A reading's instant (UTC): ISO 8601 with an offset, epoch milliseconds, or the arrival time."""
    if raw is None:
        return received_at
    if isinstance(raw, str):
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            raise Problem(N_("timestamp {ts} is not ISO 8601"), ts=raw[:40]) from None
        if moment.tzinfo is None:
            raise Problem(N_("timestamp {ts} has no UTC offset"), ts=raw[:40])
        return moment.astimezone(UTC)
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        if not math.isfinite(raw):
            raise Problem(N_("timestamp is not a finite number"))
        try:
            return datetime.fromtimestamp(raw / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            raise Problem(N_("timestamp {ts} (epoch milliseconds) is out of range"), ts=raw) from None
    raise Problem(N_("timestamp must be ISO 8601 text or epoch milliseconds"))


@dataclass(frozen=True, slots=True)
class Limits:
    """How far ahead of its arrival, and how far back, a reading may be stamped."""

    future: timedelta
    age: timedelta | None


def check_reading(
    raw: RawReading, specs: Specs, received_at: datetime, limits: Limits, rejections: list[Rejection]
) -> tuple[datetime, dict[str, Any]] | None:
    """The reading's instant and its good values (appending a rejection for each bad one); None if none."""
    values = raw.values
    if isinstance(values, _Malformed):
        rejections.append(Rejection("malformed", values.template, raw.index, None, values.params or {}))
        return None
    if not isinstance(values, dict):
        rejections.append(Rejection("malformed", N_('"values" must be an object'), raw.index))
        return None
    try:
        observed = parse_ts(raw.ts, received_at)
    except Problem as exc:
        rejections.append(Rejection("malformed", exc.template, raw.index, None, exc.params))
        return None
    if observed - received_at > limits.future:
        rejections.append(
            Rejection(
                "future_timestamp",
                N_("timestamp {ts} is in the future"),
                raw.index,
                None,
                {"ts": observed.isoformat()},
            )
        )
        return None
    if limits.age is not None and received_at - observed > limits.age:
        rejections.append(
            Rejection(
                "stale_timestamp",
                N_("timestamp {ts} is too old"),
                raw.index,
                None,
                {"ts": observed.isoformat()},
            )
        )
        return None
    good: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue  # not measured
        spec = specs.get(name)
        if spec is None:
            rejections.append(
                Rejection("unknown_attribute", N_("the device model has no such attribute"), raw.index, name)
            )
            continue
        problem = _check_value(spec, value)
        if problem is None:
            good[name] = value
        elif isinstance(problem, _Fixed):
            good[name] = problem.value
        else:
            rejections.append(Rejection(problem[0], problem[1], raw.index, name, problem[2]))
    return (observed, good) if good else None


@dataclass(frozen=True, slots=True)
class _Fixed:
    """A valid value in its canonical form (3.0 for an integer attribute becomes 3)."""

    value: Any


def _check_value(
    spec: tuple[str, float | None, float | None], value: Any
) -> tuple[Reason, str, dict[str, Any]] | _Fixed | None:
    """None for a good value, a canonical form of it, or (reason, message, its parameters)."""
    kind, low, high = spec
    if kind in (NUMBER, INTEGER):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "wrong_type", N_("expected a {kind}, got {got}"), {"kind": kind, "got": _type_name(value)}
        fixed: _Fixed | None = None
        if kind == INTEGER and not isinstance(value, int):
            if not value.is_integer():
                return "wrong_type", N_("expected an integer, got {value}"), {"value": value}
            value = int(value)
            fixed = _Fixed(value)
        if (low is not None and value < low) or (high is not None and value > high):
            params = {"value": value, "low": _bound(low), "high": _bound(high)}
            return "out_of_range", N_("{value} is outside [{low}, {high}]"), params
        return fixed
    if kind == STRING:
        if not isinstance(value, str):
            return "wrong_type", N_("expected text, got {got}"), {"got": _type_name(value)}
        if len(value) > MAX_TEXT:
            return "out_of_range", N_("text longer than {count} characters"), {"count": MAX_TEXT}
        return None
    if not isinstance(value, bool):
        return "wrong_type", N_("expected true or false, got {got}"), {"got": _type_name(value)}
    return None


def _bound(value: float | None) -> str:
    """A range bound as people read it (∞ for none, no trailing .0)."""
    if value is None:
        return "∞"
    return f"{value:g}"


def _type_name(value: Any) -> str:
    """The JSON type of a value, for messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "null"


def specs_of(attributes: Sequence[Mapping[str, Any]]) -> dict[str, tuple[str, float | None, float | None]]:
    """A model's attribute specs as the checks use them."""
    return {a["name"]: (a.get("kind", NUMBER), a.get("minimum"), a.get("maximum")) for a in attributes}
