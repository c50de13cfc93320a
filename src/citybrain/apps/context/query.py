"""The NGSI-LD query language ``q`` (ETSI GS CIM 009 clause 4.9): parser, reference evaluator, SQL compiler.

``parse_q`` turns the (already URL-decoded) text into a tree of ``Term``/``And``/``Or`` nodes whose
attribute names are expanded IRIs. ``matches`` evaluates that tree over the stored form of an entity
in plain Python; ``to_sql`` compiles the same semantics to a boolean SQL expression over the JSON
column holding the stored form, for SQLite (JSON1) and PostgreSQL (JSONB), all instances included.

Semantics shared by both (where the spec leaves room, the choice is stated):

* ``attr.sub`` targets the sub-attribute ``sub`` of ``attr``; ``attr.observedAt`` (likewise
  ``createdAt``, ``modifiedAt``, ``unitCode``, ``datasetId``) that member of the attribute instance;
  ``attr[a.b]`` the JSON members ``a`` then ``b`` of the target value (names used as written). A
  missing member means the target does not exist.
* The target value is the instance's value member chosen by its type (``value``, ``object``,
  ``objectList``, ``json``, ``valueList``, ``vocab``); for a LanguageProperty every string of its
  ``languageMap`` (``attr[zh]``: the strings of one language). An array matches when one of its
  items does; an attribute with several instances (datasetIds) when one instance does.
* Values compare only with values of the same type: numbers with numbers, quoted strings and URIs
  with strings (a VocabProperty's vocab with the string expanded as a term), ``true``/``false`` with
  booleans, a date-time with strings ``YYYY-MM-DDTHH:MM:SS[.f]Z``, a date with ``YYYY-MM-DD``, a time
  with ``HH:MM:SS[.f][Z]``, temporal values compared as UTC instants. Otherwise ``==``, ``>``... are
  false and ``!=`` is true (spec: "considered unequal"). Numbers compare exactly.
* On a Relationship or ListRelationship only ``==`` and ``!=`` with a value or a list can match.
* ``~=`` is an unanchored search (Python ``re`` with DOTALL, PostgreSQL ``~``); ``!~=`` needs a
  string target value that does not match. An unquoted pattern ends at the first ``;``, ``|`` or
  ``)`` outside its own parentheses; a quoted one is a JSON string.

SQL: ``to_sql`` selects exactly the rows ``matches`` accepts, every datasetId instance included, with
one exception: on PostgreSQL a regular expression that ``~`` would not read as Python's ``re`` does
(``is_portable_pattern``) only checks for a string value there, so the caller must post-filter with
``matches`` when ``needs_post_filter`` says so. SQLite needs ``register_sqlite_functions`` (REGEXP)
on every connection. Numbers compare exactly (PostgreSQL ``numeric``; the evaluator and SQLite agree
with it for integers below 2**53 and any double).

Prefilter: ``to_prefilter`` answers the terms on an attribute's own value (``==``, lists, ranges and
orderings of numbers, strings and temporal values) from the value index (``values.py``), as a necessary
condition to AND with ``to_sql``, which stays exact.
"""

from __future__ import annotations

import enum
import functools
import json
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal, TypeAlias

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause

from citybrain.apps.context.entities import VALUE_MEMBER

MAX_QUERY_LENGTH = 4096
MAX_DEPTH = 16
MAX_TERMS = 64
MAX_LIST_VALUES = 100
MAX_PATH_NAMES = 8
MAX_PATTERN_LENGTH = 256

META_MEMBERS = frozenset({"observedAt", "createdAt", "modifiedAt", "unitCode", "datasetId"})

# The member holding the target value, by attribute type, where it is not "value" (the stored form's table).
_VALUE_MEMBERS = tuple((kind, member) for kind, member in VALUE_MEMBER.items() if member != "value")
_RELATIONSHIPS = ("Relationship", "ListRelationship")

_NUMBER_RE = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_DATETIME_LITERAL_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T.+")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TIME_LITERAL_RE = re.compile(r"([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?Z?")
_URI_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s\"<>]+")

# Which stored strings count as date-times, dates and times. The same patterns run in SQL (PostgreSQL
# ``~``, SQLite ``REGEXP``), so they stick to syntax both engines read alike.
DATETIME_PATTERN = r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z\Z"
DATE_PATTERN = r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}\Z"
TIME_PATTERN = r"\A[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z?\Z"
_DATETIME_WIDTH = 26  # YYYY-MM-DDTHH:MM:SS.ffffff
_TIME_WIDTH = 15  # HH:MM:SS.ffffff

# Regular expressions that PostgreSQL's ``~`` accepts and reads as Python's ``re`` does.
_PORTABLE_PATTERN_RE = re.compile(r"(?:\\[!-/:-@\[-`{-~]|\{[0-9]{1,3}(?:,[0-9]{0,3})?\}|[^\\{}])*")
_NON_PORTABLE_PATTERN_RE = re.compile(r"\(\?|\[[:=]|\[\.(?!\])|\[\[|[*+?}]\+")
_BOUND_RE = re.compile(r"\{([0-9]+)(?:,([0-9]*))?\}")
_MAX_POSTGRESQL_BOUND = 255


class QueryError(ValueError):
    """A q expression that is malformed, unsupported or too complex."""


class Kind(enum.Enum):
    """The type of a literal value in a query."""

    NUMBER = "number"
    STRING = "string"
    BOOLEAN = "boolean"
    DATETIME = "date-time"
    DATE = "date"
    TIME = "time"
    URI = "URI"


class Op(enum.Enum):
    """A query term's operator; EXISTS and NOT_EXISTS are the bare ``attr`` and ``!attr``."""

    EXISTS = ""
    NOT_EXISTS = "!"
    EQ = "=="
    NE = "!="
    GT = ">"
    GE = ">="
    LT = "<"
    LE = "<="
    MATCH = "~="
    NOT_MATCH = "!~="


_ORDERING = frozenset({Op.GT, Op.GE, Op.LT, Op.LE})
_COMPARABLE = frozenset({Kind.NUMBER, Kind.STRING, Kind.DATETIME, Kind.DATE, Kind.TIME})
# Longest first, so that ">=" wins over ">".
_OPERATORS = (Op.NOT_MATCH, Op.EQ, Op.NE, Op.GE, Op.LE, Op.MATCH, Op.GT, Op.LT)


@dataclass(frozen=True, slots=True)
class Value:
    """A literal: ``value`` is its comparable form, ``vocab`` a string's expansion as a term."""

    kind: Kind
    value: Any
    text: str
    vocab: str | None = None


@dataclass(frozen=True, slots=True)
class Range:
    """An inclusive range ``low..high`` of two values of the same kind."""

    low: Value
    high: Value


@dataclass(frozen=True, slots=True)
class Pattern:
    """A regular expression operand of ``~=`` / ``!~=``."""

    regex: str


Operand: TypeAlias = Value | Range | tuple[Value, ...] | Pattern | None


@dataclass(frozen=True, slots=True)
class Term:
    """One query term: an attribute path (expanded IRIs), an operator and its operand."""

    path: tuple[str, ...]
    op: Op
    operand: Operand = None
    meta: str | None = None
    trailing: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class And:
    """All children match."""

    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """At least one child matches."""

    children: tuple[Node, ...]


Node: TypeAlias = And | Or | Term


# --------------------------------------------------------------------------------------------- parser


def parse_q(text: str, expand: Callable[[str], str]) -> Node:
    """Parse a URL-decoded q expression, expanding attribute names with ``expand``."""
    if not text:
        raise QueryError("empty query")
    if len(text) > MAX_QUERY_LENGTH:
        raise QueryError(f"query is too long: {len(text)} characters, at most {MAX_QUERY_LENGTH}")
    return _Parser(text, expand).parse()


def _normalise_temporal(text: str, width: int) -> str:
    """Pad or cut the fraction of a (Z-suffixed) date-time or time to microseconds, dropping the Z."""
    return (text.rstrip("Z") + ("" if "." in text else ".") + "000000")[:width]


def _ends_word(char: str) -> bool:
    """Whether the character ends an unquoted value."""
    return char in ';|),"' or char.isspace()


def _is_letter(char: str) -> bool:
    return unicodedata.category(char).startswith("L")


def _is_term_char(char: str) -> bool:
    return char == "_" or unicodedata.category(char)[0] in "LN"


class _Parser:
    """A recursive-descent parser over the q text; positions in messages count from 1."""

    def __init__(self, text: str, expand: Callable[[str], str]) -> None:
        self.text = text
        self.pos = 0
        self.expand = expand
        self.terms = 0

    def at(self, word: str) -> bool:
        return self.text.startswith(word, self.pos)

    def at_end_of_term(self) -> bool:
        return self.pos >= len(self.text) or self.text[self.pos] in ";|)"

    def error(self, expected: str) -> QueryError:
        if self.pos >= len(self.text):
            return QueryError(f"unexpected end of query: expected {expected}")
        return QueryError(
            f"unexpected {self.text[self.pos]!r} at position {self.pos + 1}: expected {expected}"
        )

    def parse(self) -> Node:
        node = self.disjunction(0)
        if self.pos < len(self.text):
            if self.at(")"):
                raise QueryError(f"unbalanced ')' at position {self.pos + 1}")
            raise self.error("';', '|' or the end of the query")
        return node

    def disjunction(self, depth: int) -> Node:
        children = [self.conjunction(depth)]
        while self.at("|"):
            self.pos += 1
            children.append(self.conjunction(depth))
        return children[0] if len(children) == 1 else Or(_flatten(children, Or))

    def conjunction(self, depth: int) -> Node:
        children = [self.primary(depth)]
        while self.at(";"):
            self.pos += 1
            children.append(self.primary(depth))
        return children[0] if len(children) == 1 else And(_flatten(children, And))

    def primary(self, depth: int) -> Node:
        if not self.at("("):
            return self.term()
        if depth >= MAX_DEPTH:
            raise QueryError(f"query is too complex: more than {MAX_DEPTH} nested parentheses")
        opened = self.pos
        self.pos += 1
        node = self.disjunction(depth + 1)
        if self.pos >= len(self.text):
            raise QueryError(f"unbalanced '(' at position {opened + 1}: missing ')'")
        if not self.at(")"):
            raise self.error("';', '|' or ')'")
        self.pos += 1
        return node

    def term(self) -> Term:
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise QueryError(f"query is too complex: more than {MAX_TERMS} query terms")
        negated = self.at("!") and not self.at("!=") and not self.at("!~=")
        if negated:
            self.pos += 1
        path, meta, trailing = self.attribute()
        if self.at_end_of_term():
            return Term(path, Op.NOT_EXISTS if negated else Op.EXISTS, None, meta, trailing)
        if negated:
            raise QueryError(
                f"'!' (non-existence) cannot be combined with an operator, at position {self.pos + 1}"
            )
        op = self.operator()
        operand: Operand = self.pattern() if op in (Op.MATCH, Op.NOT_MATCH) else self.operand(op)
        if not self.at_end_of_term():
            raise self.error("';', '|', ')' or the end of the query")
        return Term(path, op, operand, meta, trailing)

    def name(self) -> str:
        start = self.pos
        if self.pos < len(self.text) and _is_letter(self.text[self.pos]):
            self.pos += 1
            while self.pos < len(self.text) and _is_term_char(self.text[self.pos]):
                self.pos += 1
            return self.text[start : self.pos]
        raise self.error("an attribute name")

    def dotted(self) -> list[str]:
        names = [self.name()]
        while self.at(".") and not self.at(".."):
            self.pos += 1
            names.append(self.name())
        return names

    def attribute(self) -> tuple[tuple[str, ...], str | None, tuple[str, ...]]:
        start = self.pos
        names = self.dotted()
        trailing: list[str] = []
        if self.at("["):
            self.pos += 1
            trailing = self.dotted()
            if not self.at("]"):
                raise self.error("'.' or ']'")
            self.pos += 1
            if self.at("[") or self.at("."):
                raise QueryError(
                    f"a trailing path [...] must end the attribute path, at position {self.pos + 1}"
                )
        if self.at("{"):
            raise QueryError(
                f"linked-entity queries (attr{{...}}) are not supported, at position {self.pos + 1}"
            )
        if len(names) + len(trailing) > MAX_PATH_NAMES:
            raise QueryError(f"query is too complex: attribute path longer than {MAX_PATH_NAMES} names")
        meta = names.pop() if len(names) > 1 and names[-1] in META_MEMBERS else None
        misplaced = [name for name in names[1:] if name in META_MEMBERS]
        if misplaced:
            raise QueryError(
                f"{misplaced[0]!r} must be the last name of the attribute path at position {start + 1}"
            )
        if meta is not None and trailing:
            raise QueryError(f"{meta!r} cannot be followed by a trailing path, at position {start + 1}")
        return tuple(self.expanded(name, start) for name in names), meta, tuple(trailing)

    def expanded(self, name: str, start: int) -> str:
        iri = self.expand(name)
        if not iri or any(char in iri for char in '"\\') or not iri.isprintable():
            raise QueryError(f"attribute {name!r} at position {start + 1} expands to an unusable IRI {iri!r}")
        return iri

    def operator(self) -> Op:
        for op in _OPERATORS:
            if self.at(op.value):
                self.pos += len(op.value)
                return op
        raise self.error("an operator (==, !=, >, >=, <, <=, ~=, !~=), ';', '|' or ')'")

    def operand(self, op: Op) -> Value | Range | tuple[Value, ...]:
        start = self.pos
        first = self.scalar()
        if self.at(".."):
            self.pos += 2
            second = self.scalar()
            return self.range(op, first, second, start)
        if self.at(","):
            values = [first]
            while self.at(","):
                self.pos += 1
                values.append(self.scalar())
            if len(values) > MAX_LIST_VALUES:
                raise QueryError(f"query is too complex: more than {MAX_LIST_VALUES} values in a list")
            if op not in (Op.EQ, Op.NE):
                raise QueryError(f"a list of values needs == or !=, not {op.value}, at position {start + 1}")
            return tuple(values)
        if op in _ORDERING and first.kind not in _COMPARABLE:
            raise QueryError(
                f"operator {op.value} needs a number, quoted string, date-time, date or time, "
                f"not {first.text!r} at position {start + 1}"
            )
        return first

    def range(self, op: Op, low: Value, high: Value, start: int) -> Range:
        if op not in (Op.EQ, Op.NE):
            raise QueryError(f"a range needs == or !=, not {op.value}, at position {start + 1}")
        if low.kind not in _COMPARABLE or low.kind is not high.kind:
            raise QueryError(
                f"a range needs two numbers, quoted strings, date-times, dates or times of the same kind, "
                f"at position {start + 1}"
            )
        if low.value > high.value:
            raise QueryError(f"empty range {low.text}..{high.text} at position {start + 1}")
        return Range(low, high)

    def quoted(self) -> str:
        start = self.pos
        try:
            value, end = json.JSONDecoder().raw_decode(self.text, self.pos)
        except json.JSONDecodeError as exc:
            raise QueryError(f"invalid quoted string at position {start + 1}: {exc.msg}") from None
        self.pos = end
        assert isinstance(value, str)
        return value

    def scalar(self) -> Value:
        start = self.pos
        if self.at('"'):
            string = self.quoted()
            return Value(
                Kind.STRING, string, self.text[start : self.pos], self.expand(string) if string else None
            )
        while self.pos < len(self.text) and not self.at("..") and not _ends_word(self.text[self.pos]):
            self.pos += 1
        word = self.text[start : self.pos]
        if not word:
            raise self.error("a value")
        value = _literal(word, start)
        return Value(value.kind, value.value, word, self.expand(word)) if value.kind is Kind.URI else value

    def pattern(self) -> Pattern:
        start = self.pos
        if self.at('"'):
            regex = self.quoted()
        else:
            depth = 0
            while self.pos < len(self.text):
                char = self.text[self.pos]
                if char == "\\":
                    self.pos += 2
                elif char == "[":
                    self.pos = self.bracket_end(start)
                elif depth == 0 and char in ";|)":
                    break
                else:
                    depth += (char == "(") - (char == ")")
                    self.pos += 1
            self.pos = min(self.pos, len(self.text))
            regex = self.text[start : self.pos]
        if not regex:
            raise self.error("a regular expression")
        if len(regex) > MAX_PATTERN_LENGTH:
            raise QueryError(
                f"regular expression at position {start + 1} is longer than {MAX_PATTERN_LENGTH}"
            )
        try:
            re.compile(regex, re.DOTALL)
        except re.error as exc:
            raise QueryError(
                f"invalid regular expression {regex!r} at position {start + 1}: {exc.msg}"
            ) from None
        return Pattern(regex)

    def bracket_end(self, start: int) -> int:
        """The position after the bracket expression that opens at the current position."""
        end = self.pos + 1
        end += self.text.startswith("^", end)
        end += self.text.startswith("]", end)
        while end < len(self.text) and self.text[end] != "]":
            end += 2 if self.text[end] == "\\" else 1
        if end >= len(self.text):
            raise QueryError(f"unterminated '[' in the regular expression at position {start + 1}")
        return end + 1


def _flatten(children: list[Node], kind: type[And] | type[Or]) -> tuple[Node, ...]:
    """Merge nested nodes of the same kind: (a;b);c is a;b;c."""
    flat: list[Node] = []
    for child in children:
        flat.extend(child.children if isinstance(child, kind) else (child,))
    return tuple(flat)


def _literal(word: str, start: int) -> Value:
    """Classify an unquoted value: boolean, number, date-time, date, time or URI."""
    where = f"at position {start + 1}"
    if word in ("true", "false"):
        return Value(Kind.BOOLEAN, word == "true", word)
    if _NUMBER_RE.fullmatch(word):
        number: int | float = int(word) if word.lstrip("-").isdigit() else float(word)
        if isinstance(number, int) and abs(number) >= 2**63:
            number = float(number)
        if number in (float("inf"), float("-inf")):
            raise QueryError(f"number {word} {where} is out of range")
        return Value(Kind.NUMBER, number, word)
    if _DATETIME_LITERAL_RE.fullmatch(word):
        try:
            moment = datetime.fromisoformat(word)
        except ValueError:
            raise QueryError(f"invalid date-time {word!r} {where}") from None
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        return Value(Kind.DATETIME, moment.strftime("%Y-%m-%dT%H:%M:%S.%f"), word)
    if _DATE_RE.fullmatch(word):
        try:
            date.fromisoformat(word)
        except ValueError:
            raise QueryError(f"invalid date {word!r} {where}") from None
        return Value(Kind.DATE, word, word)
    clock = _TIME_LITERAL_RE.fullmatch(word)
    if clock:
        if int(clock[1]) > 23 or int(clock[2]) > 59 or int(clock[3]) > 59:
            raise QueryError(f"invalid time {word!r} {where}")
        return Value(Kind.TIME, _normalise_temporal(word, _TIME_WIDTH), word)
    if _URI_RE.fullmatch(word):
        return Value(Kind.URI, word, word)
    raise QueryError(f'invalid value {word!r} {where}: strings must be quoted, e.g. "{word}"')


# ------------------------------------------------------------------------------------------ evaluator

_MISSING: Any = object()


def matches(node: Node, stored: Mapping[str, Any]) -> bool:
    """Evaluate a parsed query over an entity in the stored form (the reference semantics)."""
    if isinstance(node, And):
        return all(matches(child, stored) for child in node.children)
    if isinstance(node, Or):
        return any(matches(child, stored) for child in node.children)
    instances = _instances(stored, node.path)
    if node.op is Op.EXISTS:
        return any(_target_exists(node, instance) for instance in instances)
    if node.op is Op.NOT_EXISTS:
        return not any(_target_exists(node, instance) for instance in instances)
    return any(_instance_matches(node, instance) for instance in instances)


def _as_instances(value: Any) -> list[dict[str, Any]]:
    items = value if isinstance(value, list) else [value]
    return [item for item in items if isinstance(item, dict)]


def _instances(stored: Mapping[str, Any], path: tuple[str, ...]) -> list[dict[str, Any]]:
    """The instances of the attribute (and sub-attributes) the path names; every datasetId counts."""
    attrs = stored.get("attrs")
    level = _as_instances(attrs.get(path[0])) if isinstance(attrs, dict) else []
    for name in path[1:]:
        level = [
            sub_instance
            for instance in level
            if isinstance(instance.get("sub"), dict)
            for sub_instance in _as_instances(instance["sub"].get(name))
        ]
    return level


def _attribute_type(instance: Mapping[str, Any]) -> str:
    kind = instance.get("type")
    return kind if isinstance(kind, str) else ""


def _base(term: Term, instance: Mapping[str, Any]) -> Any:
    """The JSON the term looks at in one instance, or _MISSING."""
    if term.meta is not None:
        return instance.get(term.meta, _MISSING)
    member = dict(_VALUE_MEMBERS).get(_attribute_type(instance), "value")
    base = instance.get(member, _MISSING)
    for key in term.trailing:
        base = base.get(key, _MISSING) if isinstance(base, dict) else _MISSING
    return base


def _target_exists(term: Term, instance: Mapping[str, Any]) -> bool:
    if term.meta is None and not term.trailing:
        return True
    return _base(term, instance) is not _MISSING


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def _candidates(term: Term, instance: Mapping[str, Any]) -> tuple[list[Any], bool]:
    """The values to compare (array items, or a languageMap's strings) and whether they are vocab IRIs."""
    if term.meta is None and not term.trailing:
        return value_candidates(instance)
    base = _base(term, instance)
    if base is _MISSING:
        return [], False
    return (base if isinstance(base, list) else [base]), False


def value_candidates(instance: Mapping[str, Any]) -> tuple[list[Any], bool]:
    """What a term on the attribute itself compares in one instance, and whether those are vocab IRIs."""
    kind = _attribute_type(instance)
    base = instance.get(VALUE_MEMBER.get(kind, "value"), _MISSING)
    if base is _MISSING:
        return [], False
    if kind == "LanguageProperty":
        return list(_leaves(base)), False
    return (base if isinstance(base, list) else [base]), kind == "VocabProperty"


def _comparable(candidate: Any, kind: Kind) -> Any:
    """The candidate in the comparable form of ``kind``, or None when the types differ."""
    if kind is Kind.NUMBER:
        number = isinstance(candidate, int | float) and not isinstance(candidate, bool)
        return candidate if number else None
    if kind is Kind.BOOLEAN:
        return candidate if isinstance(candidate, bool) else None
    if not isinstance(candidate, str):
        return None
    if kind is Kind.DATETIME:
        found = re.search(DATETIME_PATTERN, candidate)
        return _normalise_temporal(candidate, _DATETIME_WIDTH) if found else None
    if kind is Kind.DATE:
        return candidate if re.search(DATE_PATTERN, candidate) else None
    if kind is Kind.TIME:
        return _normalise_temporal(candidate, _TIME_WIDTH) if re.search(TIME_PATTERN, candidate) else None
    return candidate


def _compare(candidate: Any, op: Op, value: Value, vocab: bool) -> bool:
    key = _comparable(candidate, value.kind)
    if key is None:
        return False
    other = value.vocab if vocab and value.vocab is not None else value.value
    if op is Op.EQ:
        return bool(key == other)
    if op is Op.GT:
        return bool(key > other)
    if op is Op.GE:
        return bool(key >= other)
    if op is Op.LT:
        return bool(key < other)
    return bool(key <= other)


def _equal(candidate: Any, operand: Operand, vocab: bool) -> bool:
    if isinstance(operand, Range):
        return _compare(candidate, Op.GE, operand.low, vocab) and _compare(
            candidate, Op.LE, operand.high, vocab
        )
    values = operand if isinstance(operand, tuple) else (operand,)
    return any(isinstance(value, Value) and _compare(candidate, Op.EQ, value, vocab) for value in values)


def _instance_matches(term: Term, instance: Mapping[str, Any]) -> bool:
    if not _target_exists(term, instance):
        return False
    relationship = term.meta is None and _attribute_type(instance) in _RELATIONSHIPS
    if relationship and (term.op not in (Op.EQ, Op.NE) or isinstance(term.operand, Range)):
        return False
    candidates, vocab = _candidates(term, instance)
    if term.op is Op.EQ:
        return any(_equal(candidate, term.operand, vocab) for candidate in candidates)
    if term.op is Op.NE:
        return not any(_equal(candidate, term.operand, vocab) for candidate in candidates)
    if isinstance(term.operand, Pattern):
        strings = [candidate for candidate in candidates if isinstance(candidate, str)]
        found = any(re.search(term.operand.regex, string, re.DOTALL) for string in strings)
        return found if term.op is Op.MATCH else bool(strings) and not found
    assert isinstance(term.operand, Value)
    return any(_compare(candidate, term.op, term.operand, vocab) for candidate in candidates)


# ------------------------------------------------------------------------------------------------ SQL


def register_sqlite_functions(dbapi_connection: Any) -> None:
    """Register ``regexp(pattern, value)`` (Python ``re.search``, DOTALL) on a sqlite3 connection."""
    dbapi_connection.create_function("regexp", 2, _sqlite_regexp, deterministic=True)


def _sqlite_regexp(pattern: object, value: object) -> bool:
    if not isinstance(pattern, str) or not isinstance(value, str):
        return False
    return re.search(pattern, value, re.DOTALL) is not None


def is_portable_pattern(regex: str) -> bool:
    """Whether PostgreSQL's ``~`` accepts ``regex`` and reads it the way Python's ``re`` does."""
    if not _PORTABLE_PATTERN_RE.fullmatch(regex) or _NON_PORTABLE_PATTERN_RE.search(regex):
        return False
    bounds = (int(number) for pair in _BOUND_RE.findall(regex) for number in pair if number)
    return all(bound <= _MAX_POSTGRESQL_BOUND for bound in bounds)


def needs_post_filter(node: Node) -> bool:
    """Whether ``to_sql`` on PostgreSQL only narrows the rows down, so ``matches`` must filter them."""
    if isinstance(node, And | Or):
        return any(needs_post_filter(child) for child in node.children)
    return isinstance(node.operand, Pattern) and not is_portable_pattern(node.operand.regex)


def to_sql(
    node: Node, data_column: ColumnElement[Any], dialect_name: Literal["sqlite", "postgresql"]
) -> ColumnElement[bool]:
    """Compile a parsed query to a boolean SQL condition on the stored-form JSON column (see module doc)."""
    if dialect_name not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported dialect {dialect_name!r}")
    return _condition(node, data_column, dialect_name == "postgresql")


@functools.lru_cache(maxsize=256)
def _condition(node: Node, data_column: ColumnElement[Any], postgresql: bool) -> ColumnElement[bool]:
    """The condition of ``to_sql``, built once per query: building it takes longer than running it."""
    return _Compiler(postgresql).node(node, data_column)


@dataclass(frozen=True, slots=True)
class _Source:
    """JSON holding candidate values, for instances where ``when`` holds (always when None)."""

    when: ColumnElement[bool] | None
    doc: ColumnElement[Any]
    leaves: bool = False
    vocab: bool = False


@dataclass(frozen=True, slots=True)
class _Candidate:
    """One candidate value row: its JSON type name and its SQL value or text."""

    type_name: ColumnElement[Any]
    value: ColumnElement[Any]


class _Compiler:
    """Builds the SQL for one dialect: JSON1 on SQLite, JSONB on PostgreSQL."""

    def __init__(self, postgresql: bool) -> None:
        self.pg = postgresql

    # JSON access -----------------------------------------------------------------------------------

    def get(self, doc: ColumnElement[Any], keys: tuple[str, ...]) -> ColumnElement[Any]:
        """The JSON at ``keys`` under ``doc`` (JSON text on SQLite, jsonb on PostgreSQL), or NULL."""
        if self.pg:
            return sa.func.jsonb_extract_path(doc, *(sa.literal(key, sa.Text) for key in keys), type_=JSONB)
        return doc.op("->")(sa.literal(_sqlite_path(keys), sa.Text))

    def get_text(self, doc: ColumnElement[Any], key: str) -> ColumnElement[Any]:
        if self.pg:
            return doc.op("->>", return_type=sa.Text)(sa.literal(key, sa.Text))
        return doc.op("->>", return_type=sa.Text)(sa.literal(_sqlite_path((key,)), sa.Text))

    def rows(self, doc: ColumnElement[Any], *, leaves: bool = False, elements: bool = False) -> FromClause:
        """Rows (``value``; on SQLite also ``type``): array items, else the value itself, or all leaves."""
        if self.pg:
            jsonpath = "strict $.**" if leaves else "lax $[*]"
            function = sa.func.jsonb_path_query(doc, sa.literal_column(f"'{jsonpath}'"))
            return function.table_valued(sa.column("value", JSONB)).render_derived()
        if leaves:
            return sa.func.json_tree(doc).table_valued("value", "type")
        if elements:
            doc = sa.case((sa.func.json_type(doc) == "object", "[]"), else_=doc)
        return sa.func.json_each(doc).table_valued("value", "type")

    def candidate(self, row: FromClause) -> _Candidate:
        if self.pg:
            value = row.c.value
            return _Candidate(
                sa.func.jsonb_typeof(value), value.op("#>>", return_type=sa.Text)(sa.literal_column("'{}'"))
            )
        return _Candidate(row.c.type, row.c.value)

    def is_scalar(self, candidate: _Candidate) -> ColumnElement[bool]:
        return candidate.type_name.not_in(["object", "array"])

    def is_string(self, candidate: _Candidate) -> ColumnElement[bool]:
        return candidate.type_name == ("string" if self.pg else "text")

    def regex(self, text: ColumnElement[Any], regex: str) -> ColumnElement[bool]:
        return text.regexp_match(sa.literal(regex, sa.Text))

    def normalised(self, text: ColumnElement[Any], width: int) -> ColumnElement[Any]:
        position = sa.func.strpos(text, ".") if self.pg else sa.func.instr(text, ".")
        dot = sa.case((position == 0, "."), else_="")
        padded = sa.type_coerce(sa.func.rtrim(text, "Z"), sa.Text) + dot + "000000"
        return sa.func.substr(padded, 1, width)

    def comparable(self, candidate: _Candidate, kind: Kind) -> ColumnElement[Any]:
        """The candidate in the comparable form of ``kind``, NULL when the types differ."""
        kind_type = candidate.type_name
        if kind is Kind.NUMBER:
            if self.pg:
                return sa.cast(sa.case((kind_type == "number", candidate.value)), sa.Numeric)
            return sa.case((kind_type.in_(["integer", "real"]), candidate.value))
        if kind is Kind.BOOLEAN:
            if self.pg:
                return sa.case((kind_type == "boolean", candidate.value))
            return sa.case((kind_type.in_(["true", "false"]), kind_type))
        text = candidate.value
        is_string = self.is_string(candidate)
        if kind is Kind.DATETIME:
            key = sa.case(
                (
                    sa.and_(is_string, self.regex(text, DATETIME_PATTERN)),
                    self.normalised(text, _DATETIME_WIDTH),
                )
            )
        elif kind is Kind.DATE:
            key = sa.case((sa.and_(is_string, self.regex(text, DATE_PATTERN)), text))
        elif kind is Kind.TIME:
            key = sa.case(
                (sa.and_(is_string, self.regex(text, TIME_PATTERN)), self.normalised(text, _TIME_WIDTH))
            )
        else:
            key = sa.case((is_string, text))
        return sa.collate(key, "C") if self.pg else key

    def literal(self, value: Value, vocab: bool) -> ColumnElement[Any]:
        if vocab and value.vocab is not None:
            return sa.literal(value.vocab, sa.Text)
        if value.kind is Kind.BOOLEAN:
            return sa.literal("true" if value.value else "false", sa.Text)
        if value.kind is Kind.NUMBER:
            if self.pg:
                exact = Decimal(value.value) if isinstance(value.value, int) else Decimal(repr(value.value))
                return sa.literal(exact, sa.Numeric)
            return sa.literal(value.value)
        return sa.literal(value.value, sa.Text)

    # Query structure -------------------------------------------------------------------------------

    def node(self, node: Node, data: ColumnElement[Any]) -> ColumnElement[bool]:
        if isinstance(node, And):
            return sa.and_(*(self.node(child, data) for child in node.children))
        if isinstance(node, Or):
            return sa.or_(*(self.node(child, data) for child in node.children))
        return self.term(node, data)

    def term(self, term: Term, data: ColumnElement[Any]) -> ColumnElement[bool]:
        chain = [self.rows(self.get(data, ("attrs", term.path[0])))]
        for name in term.path[1:]:
            chain.append(self.rows(self.get(chain[-1].c.value, ("sub", name))))
        joined: FromClause = chain[0]
        for table in chain[1:]:
            joined = joined.join(table, sa.true())
        condition = self.instance(term, chain[-1].c.value)
        found = sa.exists(sa.select(sa.literal_column("1")).select_from(joined).where(condition))
        return sa.not_(found) if term.op is Op.NOT_EXISTS else found

    def instance(self, term: Term, instance: ColumnElement[Any]) -> ColumnElement[bool]:
        """Whether one attribute instance matches the term (existence for EXISTS and NOT_EXISTS)."""
        kind = sa.func.coalesce(self.get_text(instance, "type"), "")
        sources = self.sources(term, instance, kind)
        exists: ColumnElement[bool] = sources[0].doc.is_not(None) if sources[0].when is None else sa.true()

        def any_candidate(
            predicate: Callable[[_Candidate, bool], ColumnElement[bool]],
        ) -> ColumnElement[bool]:
            found = []
            for source in sources:
                rows = self.rows(source.doc, leaves=source.leaves, elements=not source.leaves)
                candidate = self.candidate(rows)
                where = [predicate(candidate, source.vocab)]
                if source.leaves:
                    where.append(self.is_scalar(candidate))
                subquery = sa.exists(sa.select(sa.literal_column("1")).select_from(rows).where(*where))
                found.append(subquery if source.when is None else sa.and_(source.when, subquery))
            return sa.or_(*found)

        op, operand = term.op, term.operand
        if op in (Op.EXISTS, Op.NOT_EXISTS):
            return exists
        conditions: list[ColumnElement[bool]] = []
        if term.meta is None and (op not in (Op.EQ, Op.NE) or isinstance(operand, Range)):
            conditions.append(kind.not_in(_RELATIONSHIPS))
        if op is Op.EQ:
            conditions.append(any_candidate(lambda candidate, vocab: self.equal(candidate, operand, vocab)))
        elif op is Op.NE:
            equal = any_candidate(lambda candidate, vocab: self.equal(candidate, operand, vocab))
            conditions += [exists, sa.not_(equal)]
        elif isinstance(operand, Pattern):
            regex = operand.regex
            conditions.append(any_candidate(lambda candidate, _: self.is_string(candidate)))
            if not self.pg or is_portable_pattern(regex):
                matching = any_candidate(
                    lambda candidate, _: sa.and_(
                        self.is_string(candidate), self.regex(candidate.value, regex)
                    )
                )
                conditions.append(matching if op is Op.MATCH else sa.not_(matching))
        else:
            assert isinstance(operand, Value)
            conditions.append(
                any_candidate(lambda candidate, vocab: self.compare(candidate, op, operand, vocab))
            )
        return sa.and_(*conditions)

    def sources(self, term: Term, instance: ColumnElement[Any], kind: ColumnElement[Any]) -> list[_Source]:
        """Where one instance's candidate values come from; the first is the target when it has no ``when``."""
        if term.meta is not None:
            return [_Source(None, self.get(instance, (term.meta,)))]
        if term.trailing:
            return [_Source(None, self.value_member(instance, kind, term.trailing, ()))]
        special = [_Source(kind == "LanguageProperty", self.get(instance, ("languageMap",)), leaves=True)]
        if _has_text(term.operand):
            special.append(_Source(kind == "VocabProperty", self.get(instance, ("vocab",)), vocab=True))
        split = ("LanguageProperty", "VocabProperty") if len(special) > 1 else ("LanguageProperty",)
        rest = _Source(kind.not_in(split), self.value_member(instance, kind, (), split))
        return [*special, rest]

    def value_member(
        self,
        instance: ColumnElement[Any],
        kind: ColumnElement[Any],
        trailing: tuple[str, ...],
        skip: tuple[str, ...],
    ) -> ColumnElement[Any]:
        """The JSON at ``trailing`` under the instance's value member (chosen by its type)."""
        branches = [
            (kind == name, self.get(instance, (member, *trailing)))
            for name, member in _VALUE_MEMBERS
            if name not in skip
        ]
        return sa.case(*branches, else_=self.get(instance, ("value", *trailing)))

    def compare(self, candidate: _Candidate, op: Op, value: Value, vocab: bool) -> ColumnElement[bool]:
        key, literal = self.comparable(candidate, value.kind), self.literal(value, vocab)
        if op is Op.EQ:
            return key == literal
        if op is Op.GT:
            return key > literal
        if op is Op.GE:
            return key >= literal
        if op is Op.LT:
            return key < literal
        return key <= literal

    def equal(self, candidate: _Candidate, operand: Operand, vocab: bool) -> ColumnElement[bool]:
        if isinstance(operand, Range):
            return sa.and_(
                self.compare(candidate, Op.GE, operand.low, vocab),
                self.compare(candidate, Op.LE, operand.high, vocab),
            )
        values = operand if isinstance(operand, tuple) else (operand,)
        return sa.or_(
            *(self.compare(candidate, Op.EQ, value, vocab) for value in values if isinstance(value, Value))
        )


def _has_text(operand: Operand) -> bool:
    """Whether the operand holds a string or URI (which a VocabProperty compares in expanded form)."""
    if isinstance(operand, Range):
        return _has_text(operand.low)
    values = operand if isinstance(operand, tuple) else (operand,)
    return any(isinstance(value, Value) and value.vocab is not None for value in values)


def _sqlite_path(keys: tuple[str, ...]) -> str:
    """A SQLite JSON path with every key quoted: $."attrs"."https://…"."""
    return "$" + "".join(f'."{key}"' for key in keys)


# ------------------------------------------------------------------------------- value index prefilter

# The attribute value index (``values.py``) keeps, per top-level attribute instance, each candidate
# ``value_candidates`` yields that is a number (as a double) or a string (its first INDEXED_TEXT_LENGTH
# characters, compared in code point order). ``to_prefilter`` turns the terms it can answer into a
# necessary condition on those rows; ``to_sql`` stays the exact condition, so results never change.
INDEXED_TEXT_LENGTH = 128
_EXACT_DOUBLE = 2**53
_DATETIME_PREFIX = 19  # YYYY-MM-DDTHH:MM:SS, shared by a stored date-time and its normalised form
_TIME_PREFIX = 8  # HH:MM:SS
_BOUNDS = (Op.GT, Op.GE, Op.LT, Op.LE)
# At most this many lookups of one conjunction join in one subquery; more make further subqueries.
MAX_JOINED_LOOKUPS = 4


def index_key(candidate: Any) -> tuple[float | None, str | None] | None:
    """The (number, text) row the value index keeps for a candidate value, None for other values."""
    if isinstance(candidate, str):
        return None, candidate[:INDEXED_TEXT_LENGTH]
    if isinstance(candidate, bool) or not isinstance(candidate, int | float):
        return None
    number = _as_double(candidate)
    return None if number != number else (number, None)  # NaN equals nothing


def _as_double(number: int | float) -> float:
    try:
        return float(number)
    except OverflowError:  # an integer beyond the doubles keeps its order as an infinity
        return float("inf") if number > 0 else float("-inf")


def to_prefilter(
    node: Node,
    entity_pk: ColumnElement[Any],
    values: FromClause,
    few: Callable[[sa.Select[Any]], bool] | None = None,
) -> ColumnElement[bool] | None:
    """A condition on ``entity_pk`` that every entity ``node`` matches meets, answered by the value index."""
    # None when the index cannot narrow the query down: terms on sub-attributes, metadata or trailing
    # paths, ``!=``, existence, patterns and booleans; an OR with such a branch. Each lookup becomes
    # ``entity_pk IN (lookup)``, or a correlated ``EXISTS`` where ``few`` says it selects too many rows
    # to drive the query (SQLite, whose planner cannot tell).
    return _Prefilter(entity_pk, values, few).node(node)


class _Prefilter:
    """Builds the lookups of one query: an entity needs, per lookup, one index row matching each group."""

    def __init__(
        self, entity_pk: ColumnElement[Any], values: FromClause, few: Callable[[sa.Select[Any]], bool] | None
    ) -> None:
        self.entity_pk = entity_pk
        self.values = values
        self.few = few

    def node(self, node: Node) -> ColumnElement[bool] | None:
        group = self.group(node)
        if group is not None:
            return self.lookup([group])
        if isinstance(node, Term):
            return None
        if isinstance(node, Or):
            branches = [self.node(child) for child in node.children]
            if any(branch is None for branch in branches):
                return None
            return sa.or_(*(branch for branch in branches if branch is not None))
        groups: list[tuple[Term, ...]] = []
        found: list[ColumnElement[bool]] = []
        for child in node.children:
            group = self.group(child)
            if group is not None:
                groups.append(group)
            elif isinstance(child, Or) and (condition := self.node(child)) is not None:
                found.append(condition)
        # The terms of a conjunction share lookups, so the database intersects them before any entity is read.
        lookups = [
            self.lookup(groups[start : start + MAX_JOINED_LOOKUPS])
            for start in range(0, len(groups), MAX_JOINED_LOOKUPS)
        ]
        return sa.and_(*lookups, *found) if lookups or found else None

    def group(self, node: Node) -> tuple[Term, ...] | None:
        """The terms one index row must match one of (a term, or an OR of terms); None if not indexed."""
        terms = node.children if isinstance(node, Or) else (node,)
        if all(isinstance(term, Term) and _row_condition(term, self.values) is not None for term in terms):
            return tuple(term for term in terms if isinstance(term, Term))
        return None

    def lookup(self, groups: list[tuple[Term, ...]]) -> ColumnElement[bool]:
        """Entities with, for each group, an index row matching one of its terms."""
        rows = [self.values.alias() for _ in groups]
        matching = [
            sa.or_(*(condition for term in group if (condition := _row_condition(term, row)) is not None))
            for group, row in zip(groups, rows, strict=True)
        ]
        same_entity = [row.c.entity_pk == rows[0].c.entity_pk for row in rows[1:]]
        lookup = sa.select(rows[0].c.entity_pk).where(*matching, *same_entity)
        if self.few is None or self.few(lookup):
            return self.entity_pk.in_(lookup)
        return sa.exists(lookup.where(rows[0].c.entity_pk == self.entity_pk))


def _row_condition(term: Term, values: FromClause) -> ColumnElement[bool] | None:
    """The index rows an instance matching the term must have, or None when the term is not indexed."""
    if len(term.path) != 1 or term.meta is not None or term.trailing:
        return None
    operand = term.operand
    condition: ColumnElement[bool] | None = None
    if term.op is Op.EQ and isinstance(operand, Range):
        low, high = _bound_rows(Op.GE, operand.low, values), _bound_rows(Op.LE, operand.high, values)
        condition = None if low is None or high is None else sa.and_(low, high)
    elif term.op is Op.EQ and isinstance(operand, tuple):
        alternatives = [_equal_rows(value, values) for value in operand]
        if all(alternative is not None for alternative in alternatives):
            condition = sa.or_(*(alternative for alternative in alternatives if alternative is not None))
    elif term.op is Op.EQ and isinstance(operand, Value):
        condition = _equal_rows(operand, values)
    elif term.op in _BOUNDS and isinstance(operand, Value):
        condition = _bound_rows(term.op, operand, values)
    return None if condition is None else sa.and_(values.c.attr == term.path[0], condition)


def _texts(value: Value) -> list[str]:
    """The strings a string or URI literal equals: as written, and expanded for a VocabProperty."""
    return [value.value] + ([value.vocab] if value.vocab is not None and value.vocab != value.value else [])


def _equal_rows(value: Value, values: FromClause) -> ColumnElement[bool] | None:
    number: ColumnElement[float] = values.c.number
    text: ColumnElement[str] = values.c.text
    if value.kind is Kind.NUMBER:
        return number == _as_double(value.value)
    if value.kind in (Kind.STRING, Kind.URI):
        return text.in_([string[:INDEXED_TEXT_LENGTH] for string in _texts(value)])
    if value.kind is Kind.DATE:
        return text == str(value.value)
    if value.kind in (Kind.DATETIME, Kind.TIME):
        low, high = _bound_rows(Op.GE, value, values), _bound_rows(Op.LE, value, values)
        assert low is not None and high is not None
        return sa.and_(low, high)
    return None


def _bound_rows(op: Op, value: Value, values: FromClause) -> ColumnElement[bool] | None:
    """The index rows of values ``op`` the literal (a range end: ``>=`` or ``<=``), or None for booleans."""
    number: ColumnElement[float] = values.c.number
    text: ColumnElement[str] = values.c.text
    lower = op in (Op.GT, Op.GE)
    strict = op in (Op.GT, Op.LT)
    if value.kind is Kind.NUMBER:
        # Doubles keep the order of the exact numbers, but integers beyond 2**53 may round onto the bound.
        return _compare_rows(
            number, lower, strict and abs(value.value) < _EXACT_DOUBLE, _as_double(value.value)
        )
    if value.kind in (Kind.DATETIME, Kind.TIME):
        # The normalised form starts with the stored string's first characters: bound those.
        prefix = str(value.value)[: _DATETIME_PREFIX if value.kind is Kind.DATETIME else _TIME_PREFIX]
        if lower:
            return text >= prefix
        return text < prefix[:-1] + chr(ord(prefix[-1]) + 1)
    if value.kind is Kind.DATE:
        return _compare_rows(text, lower, strict, str(value.value))
    if value.kind in (Kind.STRING, Kind.URI):
        # A VocabProperty compares the expanded form: bound by the looser of the two. A longer string is
        # cut as stored, where only the non-strict comparison still holds.
        bound = min(_texts(value)) if lower else max(_texts(value))
        return _compare_rows(
            text, lower, strict and len(bound) < INDEXED_TEXT_LENGTH, bound[:INDEXED_TEXT_LENGTH]
        )
    return None


def _compare_rows(
    column: ColumnElement[Any], lower: bool, strict: bool, bound: float | str
) -> ColumnElement[bool]:
    if lower:
        return column > bound if strict else column >= bound
    return column < bound if strict else column <= bound
