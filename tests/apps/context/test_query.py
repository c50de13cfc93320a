"""Tests of the q query language: parser, reference evaluator, and SQL that agrees with it on both databases."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects.postgresql import JSONB

from citybrain.apps.context.query import (
    MAX_DEPTH,
    MAX_QUERY_LENGTH,
    MAX_TERMS,
    And,
    Kind,
    Node,
    Op,
    Or,
    Pattern,
    QueryError,
    Range,
    Term,
    Value,
    is_portable_pattern,
    matches,
    needs_post_filter,
    parse_q,
    register_sqlite_functions,
    to_prefilter,
    to_sql,
)
from citybrain.apps.context.values import value_rows

PG_URL = os.environ.get("CITYBRAIN_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
BACKEND = os.environ.get("CITYBRAIN_TEST_DATABASE", "sqlite")
REQUIRE_SERVICES = os.environ.get("CITYBRAIN_REQUIRE_SERVICES") == "1"
DEFAULT = "https://uri.etsi.org/ngsi-ld/default-context/"


def expand(term: str) -> str:
    """A stand-in for Context.expand: terms go to the default context, IRIs stay."""
    return term if ":" in term else DEFAULT + term


def q(text: str) -> Node:
    return parse_q(text, expand)


def iri(name: str) -> str:
    return DEFAULT + name


def term(text: str) -> Term:
    node = q(text)
    assert isinstance(node, Term)
    return node


# ------------------------------------------------------------------------------------------- parser


def test_existence_and_non_existence() -> None:
    assert q("temperature") == Term((iri("temperature"),), Op.EXISTS)
    assert q("!temperature") == Term((iri("temperature"),), Op.NOT_EXISTS)
    assert q("!温度") == Term((iri("温度"),), Op.NOT_EXISTS)


@pytest.mark.parametrize(
    ("text", "op"),
    [
        ("a==1", Op.EQ),
        ("a!=1", Op.NE),
        ("a>1", Op.GT),
        ("a>=1", Op.GE),
        ("a<1", Op.LT),
        ("a<=1", Op.LE),
        ("a~=x", Op.MATCH),
        ("a!~=x", Op.NOT_MATCH),
    ],
)
def test_operators(text: str, op: Op) -> None:
    assert term(text).op is op


@pytest.mark.parametrize(
    ("literal", "kind", "value"),
    [
        ("20", Kind.NUMBER, 20),
        ("-1.5", Kind.NUMBER, -1.5),
        ("1e3", Kind.NUMBER, 1000.0),
        ("0", Kind.NUMBER, 0),
        ('"Mercedes"', Kind.STRING, "Mercedes"),
        ('"a;b|c)"', Kind.STRING, "a;b|c)"),
        ('"say \\"hi\\" \\u7ef5"', Kind.STRING, 'say "hi" 绵'),
        ('"绵阳"', Kind.STRING, "绵阳"),
        ("true", Kind.BOOLEAN, True),
        ("false", Kind.BOOLEAN, False),
        ("2017-12-24T12:00:00Z", Kind.DATETIME, "2017-12-24T12:00:00.000000"),
        ("2017-12-24T12:00:00.5Z", Kind.DATETIME, "2017-12-24T12:00:00.500000"),
        ("2017-12-24T20:00:00+08:00", Kind.DATETIME, "2017-12-24T12:00:00.000000"),
        ("2017-12-24T12:00:00", Kind.DATETIME, "2017-12-24T12:00:00.000000"),
        ("2017-12-24", Kind.DATE, "2017-12-24"),
        ("12:30:00Z", Kind.TIME, "12:30:00.000000"),
        ("12:30:00.25", Kind.TIME, "12:30:00.250000"),
        ("urn:ngsi-ld:OffStreetParking:Downtown1", Kind.URI, "urn:ngsi-ld:OffStreetParking:Downtown1"),
        ("https://example.org/a?b=c", Kind.URI, "https://example.org/a?b=c"),
    ],
)
def test_values(literal: str, kind: Kind, value: Any) -> None:
    operand = term(f"a=={literal}").operand
    assert isinstance(operand, Value)
    assert (operand.kind, operand.value) == (kind, value)
    assert type(operand.value) is type(value)


def test_strings_and_uris_carry_their_expanded_form_for_vocab_properties() -> None:
    assert term('gender=="Male"').operand == Value(Kind.STRING, "Male", '"Male"', iri("Male"))
    assert term("gender==urn:x:1").operand == Value(Kind.URI, "urn:x:1", "urn:x:1", "urn:x:1")


def test_ranges_and_lists() -> None:
    assert term("a==10..20").operand == Range(Value(Kind.NUMBER, 10, "10"), Value(Kind.NUMBER, 20, "20"))
    assert isinstance(term("a!=2026-01-01T00:00:00Z..2026-02-01T00:00:00Z").operand, Range)
    assert isinstance(term('a=="a".."b"').operand, Range)
    listed = term('color=="black","red",1,true').operand
    assert isinstance(listed, tuple)
    assert [value.value for value in listed] == ["black", "red", 1, True]
    assert isinstance(term("a!=1,2").operand, tuple)


def test_attribute_paths() -> None:
    assert term("temperature.accuracy>1").path == (iri("temperature"), iri("accuracy"))
    observed = term("temperature.observedAt>=2017-12-24T12:00:00Z")
    assert (observed.path, observed.meta) == ((iri("temperature"),), "observedAt")
    nested = term("sensor.rawdata[airquality.particulate]==40")
    assert (nested.path, nested.trailing) == ((iri("sensor"), iri("rawdata")), ("airquality", "particulate"))
    assert term("address[city]").trailing == ("city",)
    assert term('a.b.unitCode=="CEL"').meta == "unitCode"
    for meta in ("observedAt", "createdAt", "modifiedAt", "unitCode", "datasetId"):
        assert term(f"a.{meta}").meta == meta
    # A name on its own is an attribute, even one spelt like a member.
    assert term("observedAt").path == (iri("observedAt"),)


def test_and_binds_tighter_than_or() -> None:
    a, b, c = (Term((iri(name),), Op.EXISTS) for name in "abc")
    assert q("a;b|c") == Or((And((a, b)), c))
    assert q("a|b;c") == Or((a, And((b, c))))
    assert q("(a|b);c") == And((Or((a, b)), c))
    assert q("a;(b;c)") == And((a, b, c))
    assert q("((a))") == a


def test_spec_examples_parse() -> None:
    examples = [
        "temperature",
        "temperature==20",
        'brandName!="Mercedes"',
        'isParked=="urn:ngsi-ld:OffStreetParking:Downtown1"',
        'speed>50;brandName!="Mercedes"',
        "isMonitoredBy",
        '((speed>50|rpm>3000);brandName=="Mercedes")',
        "(temperature>=20;temperature<=25)|capacity<=10",
        "temperature.observedAt>=2017-12-24T12:00:00Z",
        'address[city]=="Berlin"',
        "sensor.rawdata[airquality.particulate]==40",
        'color=="black","red"',
        "temperature==10..20",
        "temperature!=10..20",
    ]
    for example in examples:
        q(example)


def test_patterns() -> None:
    assert term("name~=^Mian").operand == Pattern("^Mian")
    node = q("name~=(绵|江)油;a")
    assert isinstance(node, And)
    assert node.children[0] == Term((iri("name"),), Op.MATCH, Pattern("(绵|江)油"))
    assert term("name~=[;|)]x").operand == Pattern("[;|)]x")
    assert term("name~=a\\)b").operand == Pattern("a\\)b")
    assert term('name~="a|b;c"').operand == Pattern("a|b;c")
    assert q("(name~=x)") == Term((iri("name"),), Op.MATCH, Pattern("x"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty query"),
        ("(", "unexpected end of query"),
        ("(a", "unbalanced '(' at position 1"),
        ("a)", "unbalanced ')' at position 2"),
        ("(a;b))", "unbalanced ')' at position 6"),
        ("a=1", "unexpected '=' at position 2"),
        ("a=>1", "unexpected '=' at position 2"),
        ("a<>1", "invalid value '>1' at position 3"),
        ("a==", "unexpected end of query: expected a value"),
        ("a==abc", "invalid value 'abc' at position 4"),
        ("a==1;", "unexpected end of query: expected an attribute name"),
        (";a", "unexpected ';' at position 1"),
        ("a||b", "unexpected '|' at position 3"),
        ("a==1 ", "unexpected ' ' at position 5"),
        ("a ==1", "unexpected ' ' at position 2"),
        ("1a", "unexpected '1' at position 1"),
        ("_a", "unexpected '_' at position 1"),
        ("a>true", "operator > needs a number"),
        ("a>urn:x:1", "operator > needs a number"),
        ("a>1,2", "a list of values needs == or !="),
        ("a<1..2", "a range needs == or !="),
        ("a==2..1", "empty range"),
        ('a==1.."x"', "same kind"),
        ("a==true..false", "same kind"),
        ("!a==1", "'!' (non-existence) cannot be combined with an operator"),
        ("a[b][c]", "a trailing path [...] must end the attribute path"),
        ("a[b].c", "a trailing path [...] must end the attribute path"),
        ("a[b", "expected '.' or ']'"),
        ("a[]", "expected an attribute name"),
        ("a.observedAt.b", "'observedAt' must be the last name"),
        ("a.observedAt[x]", "cannot be followed by a trailing path"),
        ("a{b}==1", "linked-entity queries"),
        ('a=="unterminated', "invalid quoted string at position 4"),
        ('a=="bad \\q escape"', "invalid quoted string"),
        ('a=="x"y', "unexpected 'y' at position 7"),
        ("a~=", "expected a regular expression"),
        ("a~=(", "invalid regular expression '('"),
        ("a~=[abc", "unterminated '['"),
        ("a==2026-13-01", "invalid date '2026-13-01'"),
        ("a==2026-01-01T25:00:00Z", "invalid date-time"),
        ("a==25:00:00", "invalid time"),
        ("a==1e999", "out of range"),
        ("a..b", "unexpected '.' at position 2"),
        ("a~=" + "x" * 300, "longer than"),
        ("a" * (MAX_QUERY_LENGTH + 1), "query is too long"),
        ("(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1), "too complex"),
        (";".join(["a"] * (MAX_TERMS + 1)), "too complex"),
        ("a==" + ",".join(["1"] * 101), "too complex"),
        (".".join(["a"] * 9), "too complex"),
    ],
)
def test_errors(text: str, message: str) -> None:
    with pytest.raises(QueryError) as caught:
        q(text)
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_nesting_up_to_the_limit_is_fine() -> None:
    q("(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH)
    q(";".join(["a"] * MAX_TERMS))


def test_unusable_expansion_is_rejected() -> None:
    with pytest.raises(QueryError, match="unusable IRI"):
        parse_q("a", lambda name: 'https://x/"' + name)


# ---------------------------------------------------------------------------------------- evaluator


def instance(kind: str = "Property", **members: Any) -> dict[str, Any]:
    member = {"Relationship": "object", "LanguageProperty": "languageMap", "JsonProperty": "json"}
    out: dict[str, Any] = {"type": kind}
    if "value" in members:
        out[member.get(kind, "value")] = members.pop("value")
    if "sub" in members:
        out["sub"] = {iri(name): subs for name, subs in members.pop("sub").items()}
    out.update(members)
    return out


def entity(entity_id: str, **attrs: Any) -> dict[str, Any]:
    def as_list(value: Any) -> list[dict[str, Any]]:
        return value if isinstance(value, list) else [value]

    return {
        "id": entity_id,
        "type": [iri("Thing")],
        "createdAt": "2026-01-01T00:00:00.000000Z",
        "modifiedAt": "2026-01-01T00:00:00.000000Z",
        "attrs": {iri(name): as_list(value) for name, value in attrs.items()},
    }


ENTITIES = [
    entity(
        "urn:e:1",
        temperature=instance(
            value=21.5,
            observedAt="2026-03-01T08:00:00.000000Z",
            unitCode="CEL",
            sub={"accuracy": [instance(value=0.5)]},
        ),
        name=instance("LanguageProperty", value={"en": "Mianyang", "zh": ["绵阳", "绵州"]}),
        address=instance(value={"city": "Mianyang", "district": {"name": "Fucheng", "code": 510703}}),
        isParked=instance("Relationship", value="urn:ngsi-ld:OffStreetParking:Downtown1"),
        tags=instance(value=["red", "blue", 3]),
        open=instance(value=True),
        since=instance(value="2026-01-15T10:00:00Z"),
        day=instance(value="2026-01-15"),
        opens=instance(value="08:30:00Z"),
        raw=instance("JsonProperty", value={"value": "Overstay 60 minutes", "n": 2}),
        gender=instance("VocabProperty", vocab=iri("Male")),
    ),
    entity(
        "urn:e:2",
        temperature=[
            instance(value=18, observedAt="2026-02-01T08:00:00.000000Z"),
            instance(value=30, datasetId="urn:ngsi-ld:Dataset:sensor2"),
        ],
        name=instance("LanguageProperty", value={"en": "Jiangyou", "zh": "江油"}),
        address=instance(value={"city": "Jiangyou"}),
        isParked=instance(
            "Relationship", value=["urn:ngsi-ld:OffStreetParking:A", "urn:ngsi-ld:OffStreetParking:B"]
        ),
        tags=instance(value="red"),
        open=instance(value="true"),
        since=instance(value="2026-01-15T10:00:00.000001Z"),
        opens=instance(value="09:00:00"),
        gender=instance("VocabProperty", vocab=iri("Female")),
    ),
    entity(
        "urn:e:3",
        temperature=instance(value="21.5"),
        status=instance(
            value="broken", sub={"providedBy": [instance("Relationship", value="urn:ngsi-ld:Person:Li")]}
        ),
        since=instance(value="2026-01-15T18:00:00+08:00"),
        readings=instance("ListProperty", valueList=[1, 2.5, "x"]),
        members=instance("ListRelationship", objectList=["urn:ngsi-ld:Person:Li", "urn:ngsi-ld:Person:Wang"]),
    ),
    entity("urn:e:4"),
]

CASES = [
    # existence and non-existence
    ("temperature", {1, 2, 3}),
    ("!temperature", {4}),
    ("temperature.accuracy", {1}),
    ("!temperature.accuracy", {2, 3, 4}),
    ("temperature.observedAt", {1, 2}),
    ("temperature.datasetId", {2}),
    ("address[district.code]", {1}),
    ("!address[district]", {2, 3, 4}),
    ("status.providedBy", {3}),
    # numbers, any instance matches, types must agree
    ("temperature==21.5", {1}),
    ("temperature==18", {2}),
    ("temperature==30", {2}),
    ("temperature>20", {1, 2}),
    ("temperature>=21.5", {1, 2}),
    ("temperature<20", {2}),
    ("temperature<=18", {2}),
    ('temperature=="21.5"', {3}),
    ("temperature!=21.5", {2, 3}),
    ("temperature==10..20", {2}),
    ("temperature!=10..20", {1, 2, 3}),
    ("temperature==18,21.5", {1, 2}),
    ("temperature!=18,21.5", {2, 3}),
    ("temperature.accuracy<1", {1}),
    ("temperature>1e3", set()),
    # metadata
    ("temperature.observedAt>=2026-02-15T00:00:00Z", {1}),
    ("temperature.observedAt<2026-03-01T16:00:00+08:00", {2}),
    ("temperature.observedAt==2026-03-01T08:00:00Z", {1}),
    ('temperature.unitCode=="CEL"', {1}),
    ("temperature.datasetId==urn:ngsi-ld:Dataset:sensor2", {2}),
    ('temperature.datasetId!="x"', {2}),
    # strings, arrays, languages, booleans
    ('tags=="red"', {1, 2}),
    ('tags!="red"', set()),
    ('tags!="blue"', {2}),
    ("tags==3", {1}),
    ('tags=="green","blue"', {1}),
    ('name=="绵阳"', {1}),
    ('name=="Jiangyou"', {2}),
    ('name[zh]=="江油"', {2}),
    ('name[en]=="江油"', set()),
    ("name[fr]", set()),
    ("name[zh]", {1, 2}),
    ('name!="Mianyang"', {2}),
    ("name~=^绵", {1}),
    ("name~=(绵|江)油", {2}),
    ("name!~=yang", {2}),
    ('name<"K"', {2}),
    ("open==true", {1}),
    ("open==false", set()),
    ('open=="true"', {2}),
    ("open!=true", {2}),
    ('address[city]=="Mianyang"', {1}),
    ('address[district.name]=="Fucheng"', {1}),
    ("address[district.code]>510000", {1}),
    ('address=="Mianyang"', set()),
    ('address!="Mianyang"', {1, 2}),
    ('raw[value]=="Overstay 60 minutes"', {1}),
    ("raw[n]==2", {1}),
    ('status=="a".."c"', {3}),
    # relationships: only == and != match
    ('isParked=="urn:ngsi-ld:OffStreetParking:Downtown1"', {1}),
    ("isParked==urn:ngsi-ld:OffStreetParking:B", {2}),
    ("isParked!=urn:ngsi-ld:OffStreetParking:B", {1}),
    ("isParked==urn:ngsi-ld:OffStreetParking:A,urn:ngsi-ld:OffStreetParking:Downtown1", {1, 2}),
    ('isParked>"urn"', set()),
    ("isParked~=Downtown", set()),
    ("isParked!~=Downtown", set()),
    ('isParked=="a".."z"', set()),
    ("isParked==1", set()),
    ("isParked!=1", {1, 2}),
    ("status.providedBy==urn:ngsi-ld:Person:Li", {3}),
    ("status.providedBy.observedAt", set()),
    # lists
    ("readings==2.5", {3}),
    ("readings>2", {3}),
    ("readings~=^x$", {3}),
    ("members==urn:ngsi-ld:Person:Wang", {3}),
    ("members!=urn:ngsi-ld:Person:Wang", set()),
    ('members>"urn"', set()),
    # VocabProperty values hold expanded IRIs
    ('gender=="Male"', {1}),
    ('gender!="Male"', {2}),
    ('gender=="Female","Other"', {2}),
    # time: only Z date-times are date-times; dates and times have their own kinds
    ("since==2026-01-15T10:00:00Z", {1}),
    ("since>2026-01-15T10:00:00Z", {2}),
    ("since==2026-01-15T10:00:00.000001Z..2026-01-16T00:00:00Z", {2}),
    ('since=="2026-01-15T18:00:00+08:00"', {3}),
    ("since!=2026-01-15T10:00:00Z", {2, 3}),
    ("day==2026-01-15", {1}),
    ("day==2026-01-15T00:00:00Z", set()),
    ("opens<09:00:00Z", {1}),
    ("opens==09:00:00.000", {2}),
    ("opens==08:00:00..08:59:59.999999", {1}),
    # combinations
    ("temperature>20;name", {1, 2}),
    ("temperature>20;!name", set()),
    ("temperature==21.5|status", {1, 3}),
    ('(temperature==18|temperature=="21.5");name', {2}),
    ("temperature==18|temperature==21.5;name", {1, 2}),
    ("!temperature|status;since", {3, 4}),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_evaluator(text: str, expected: set[int]) -> None:
    node = q(text)
    found = {int(stored["id"].rsplit(":", 1)[1]) for stored in ENTITIES if matches(node, stored)}
    assert found == expected


def test_post_filter_flag() -> None:
    assert not needs_post_filter(q("name~=^M(ian|ei)yang$;a"))
    assert needs_post_filter(q("a|name~=(?i)mianyang"))
    assert needs_post_filter(q("name~=\\d+"))
    assert is_portable_pattern("[0-9]{2,3}\\.x")
    assert is_portable_pattern("[.]")
    for pattern in ("(?i)a", "\\d", "\\bword", "a{300}", "a++", "[[:alpha:]]", "x{", "(?P<n>a)"):
        assert not is_portable_pattern(pattern), pattern


def test_sqlite_regexp_function() -> None:
    import sqlite3

    connection = sqlite3.connect(":memory:")
    register_sqlite_functions(connection)
    rows = connection.execute(
        "SELECT 'a\nb' REGEXP 'a.b', 'abc' REGEXP '^b', NULL REGEXP 'a', 1 REGEXP '1'"
    ).fetchone()
    assert rows == (1, 0, 0, 0)
    connection.close()


# ------------------------------------------------------------------------------------------------ SQL


@dataclass
class Database:
    """A connection with tables of stored entities and of their value index rows, and the dialect."""

    connection: sa.Connection
    table: sa.Table
    dialect: Any
    values: sa.Table

    def select(
        self,
        entities: list[dict[str, Any]],
        node: Node,
        *,
        prefilter: Literal["drive", "probe"] | None = None,
        exact: bool = True,
    ) -> set[str]:
        """Ids ``to_sql`` (when ``exact``) and the prefilter select, in a transaction then rolled back."""
        transaction = self.connection.begin()
        try:
            if entities:
                loaded = [{"pk": pk, "id": e["id"], "data": e} for pk, e in enumerate(entities)]
                self.connection.execute(self.table.insert(), loaded)
                rows = [row for pk, e in enumerate(entities) for row in value_rows(pk, e)]
                if rows:
                    self.connection.execute(self.values.insert(), rows)
            query = sa.select(self.table.c.id)
            if exact:
                query = query.where(to_sql(node, self.table.c.data, self.dialect))
            if prefilter is not None:
                condition = to_prefilter(node, self.table.c.pk, self.values, lambda _: prefilter == "drive")
                if condition is not None:
                    query = query.where(condition)
            return set(self.connection.execute(query).scalars())
        finally:
            transaction.rollback()


def _table() -> sa.Table:
    return sa.Table(
        "context_entity_q_test",
        sa.MetaData(),
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("pk", sa.Integer),
        sa.Column("data", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        prefixes=["TEMPORARY"],
    )


def _values_table() -> sa.Table:
    """The value index as the migration makes it, without the foreign key."""
    return sa.Table(
        "context_value_q_test",
        sa.MetaData(),
        sa.Column("entity_pk", sa.Integer, primary_key=True),
        sa.Column("ordinal", sa.Integer, primary_key=True),
        sa.Column("attr", sa.String(512), nullable=False),
        sa.Column("dataset_id", sa.String(512), nullable=False),
        sa.Column("number", sa.Float),
        sa.Column("text", sa.Text().with_variant(sa.Text(collation="C"), "postgresql")),
        sa.Index("ix_context_value_q_test_number", "attr", "number", "entity_pk"),
        sa.Index("ix_context_value_q_test_text", "attr", "text", "entity_pk"),
        prefixes=["TEMPORARY"],
    )


# Each pass of the suite (SQLite, then PostgreSQL) checks its own database.
@pytest.fixture(scope="module", params=[BACKEND])
def database(request: pytest.FixtureRequest) -> Iterator[Database]:
    """An in-memory SQLite database, or a temporary table on the test PostgreSQL server."""
    if request.param == "sqlite":
        engine = sa.create_engine("sqlite://")
        sa.event.listen(engine, "connect", lambda connection, _: register_sqlite_functions(connection))
    else:
        engine = sa.create_engine(PG_URL)
    try:
        connection = engine.connect()
    except sa.exc.OperationalError as exc:
        engine.dispose()
        message = f"PostgreSQL is not reachable: {exc}"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    table, values = _table(), _values_table()
    table.create(connection)
    values.create(connection)
    connection.commit()
    yield Database(connection, table, request.param, values)
    connection.close()
    engine.dispose()


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_sql_agrees_on_the_examples(database: Database, text: str, expected: set[int]) -> None:
    found = database.select(ENTITIES, q(text))
    assert found == {f"urn:e:{number}" for number in expected}


def test_sql_post_filter_narrows_on_postgresql(database: Database) -> None:
    node = q("name~=(?i)MIAN")
    selected = database.select(ENTITIES, node)
    expected = {e["id"] for e in ENTITIES if matches(node, e)}
    assert expected == {"urn:e:1"}
    if database.dialect == "sqlite":
        assert selected == expected
    else:
        assert selected == {"urn:e:1", "urn:e:2"}
        assert {e["id"] for e in ENTITIES if e["id"] in selected and matches(node, e)} == expected


def test_sql_is_correlated_and_works_inside_larger_statements(database: Database) -> None:
    node = q("temperature>20")
    query = (
        sa.select(sa.func.count())
        .select_from(database.table)
        .where(to_sql(node, database.table.c.data, database.dialect), database.table.c.id != "urn:e:1")
    )
    transaction = database.connection.begin()
    try:
        database.connection.execute(database.table.insert(), [{"id": e["id"], "data": e} for e in ENTITIES])
        assert database.connection.execute(query).scalar_one() == 1
    finally:
        transaction.rollback()


def test_unknown_dialect() -> None:
    with pytest.raises(ValueError, match="unsupported dialect"):
        to_sql(q("a"), sa.column("data"), "mysql")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- property tests

ATTRIBUTES = ["temperature", "name", "status", "ref"]
SUBS = ["accuracy", "providedBy"]
NUMBERS: list[Any] = [-2, -1, 0, 1, 2, 3, 0.5, 2.25, -1.5, 1000, 1e3]
STRINGS = [
    "",
    "a",
    "b",
    "ab",
    "Mianyang",
    "绵阳",
    "Jiangyou 江油",
    "2026-01-01T00:00:00Z",
    "2026-01-01T00:00:00.000000Z",
    "2026-03-15T08:30:00.5Z",
    "2026-01-01T08:00:00+08:00",
    "2026-01-01",
    "2026-02-01",
    "12:00:00Z",
    "08:30:00",
    "urn:ngsi-ld:Sensor:1",
    "urn:ngsi-ld:Sensor:2",
    DEFAULT + "Male",
    "Male",
]
URIS = ["urn:ngsi-ld:Sensor:1", "urn:ngsi-ld:Sensor:2", "urn:ngsi-ld:Person:Li"]
TIMESTAMPS = ["2026-01-01T00:00:00.000000Z", "2026-02-01T12:00:00.000000Z", "2026-03-15T08:30:00.500000Z"]

scalars = st.one_of(st.sampled_from(NUMBERS), st.sampled_from(STRINGS), st.booleans(), st.none())
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(
        st.sampled_from(["city", "n"]), st.one_of(scalars, st.lists(scalars, max_size=2)), max_size=2
    ),
)


@st.composite
def instances(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    """One attribute instance of a random type, with random metadata and sub-attributes."""
    kind = draw(
        st.sampled_from(
            [
                "Property",
                "Property",
                "Relationship",
                "LanguageProperty",
                "JsonProperty",
                "VocabProperty",
                "ListProperty",
                "ListRelationship",
            ]
        )
    )
    out: dict[str, Any] = {"type": kind}
    if kind == "Property":
        out["value"] = draw(values)
    elif kind == "Relationship":
        out["object"] = draw(
            st.one_of(st.sampled_from(URIS), st.lists(st.sampled_from(URIS), min_size=1, max_size=2))
        )
    elif kind == "LanguageProperty":
        texts = st.one_of(
            st.sampled_from(STRINGS), st.lists(st.sampled_from(STRINGS), min_size=1, max_size=2)
        )
        out["languageMap"] = draw(st.dictionaries(st.sampled_from(["en", "zh"]), texts, min_size=1))
    elif kind == "JsonProperty":
        out["json"] = draw(values)
    elif kind == "ListProperty":
        out["valueList"] = draw(st.lists(scalars, max_size=3))
    elif kind == "ListRelationship":
        out["objectList"] = draw(st.lists(st.sampled_from(URIS), max_size=3))
    else:
        out["vocab"] = draw(st.sampled_from([DEFAULT + "Male", DEFAULT + "Female", "urn:ngsi-ld:Sensor:1"]))
    for member, pool in (("observedAt", TIMESTAMPS), ("unitCode", ["CEL", "KMH"]), ("createdAt", TIMESTAMPS)):
        if draw(st.booleans()):
            out[member] = draw(st.sampled_from(pool))
    if depth == 0 and draw(st.booleans()):
        names = st.sampled_from([iri(name) for name in SUBS])
        out["sub"] = draw(st.dictionaries(names, st.lists(instances(1), min_size=1, max_size=2), max_size=2))
    return out


@st.composite
def attribute_instances(draw: st.DrawFn) -> list[dict[str, Any]]:
    """One to three instances: the default one, then datasetIds."""
    found = draw(st.lists(instances(), min_size=1, max_size=3))
    for number, item in enumerate(found[1:], start=1):
        item["datasetId"] = f"urn:ngsi-ld:Dataset:{number}"
    return found


@st.composite
def entity_lists(draw: st.DrawFn) -> list[dict[str, Any]]:
    attrs = st.dictionaries(
        st.sampled_from([iri(name) for name in ATTRIBUTES]), attribute_instances(), max_size=4
    )
    return [
        {"id": f"urn:ngsi-ld:Thing:{number}", "type": [iri("Thing")], "attrs": draw(attrs)}
        for number in range(draw(st.integers(min_value=1, max_value=6)))
    ]


NUMBER_LITERALS = ["-2", "-1", "0", "1", "2", "3", "0.5", "2.25", "-1.5", "1e3", "1000.0"]
STRING_LITERALS = [
    '""',
    '"a"',
    '"b"',
    '"Mianyang"',
    '"绵阳"',
    '"2026-01-01"',
    '"urn:ngsi-ld:Sensor:1"',
    '"Male"',
]
DATETIME_LITERALS = [
    "2026-01-01T00:00:00Z",
    "2026-01-01T08:00:00+08:00",
    "2026-03-15T08:30:00.5Z",
    "2026-02-01T00:00:00Z",
]
TEMPORAL_LITERALS = [*DATETIME_LITERALS, "2026-01-01", "2026-02-01", "12:00:00Z", "08:30:00"]
COMPARABLE_LITERALS = [*NUMBER_LITERALS, *STRING_LITERALS, *TEMPORAL_LITERALS]
EQUALITY_LITERALS = [*COMPARABLE_LITERALS, "true", "false", *URIS, "urn:ngsi-ld:Dataset:1"]
RANGES = [
    "0..2",
    "-1.5..0.5",
    '"a".."b"',
    "2026-01-01T00:00:00Z..2026-02-01T00:00:00Z",
    "2026-01-01..2026-02-01",
    "08:00:00..12:00:00Z",
]
PATTERNS = ["^a", "b$", "绵", "[0-9]", "(a|M)", "^$", ".", "yang", "\\.", "Sensor:[12]", "(?i)MIAN", "\\d"]

literals_for_equality = st.one_of(
    st.sampled_from(EQUALITY_LITERALS),
    st.lists(st.sampled_from(EQUALITY_LITERALS), min_size=2, max_size=3).map(",".join),
    st.sampled_from(RANGES),
)


@st.composite
def query_terms(draw: st.DrawFn) -> str:
    """The text of one random query term."""
    path = draw(st.sampled_from(ATTRIBUTES))
    tail = draw(
        st.sampled_from(
            ["", "", ".accuracy", ".providedBy", ".observedAt", ".unitCode", ".datasetId", ".createdAt"]
        )
    )
    path += tail
    if not tail.startswith((".observedAt", ".unitCode", ".datasetId", ".createdAt")) and draw(st.booleans()):
        path += draw(st.sampled_from(["[city]", "[n]", "[en]", "[zh]", "[city.n]"]))
    op = draw(st.sampled_from(["", "!", "==", "!=", ">", ">=", "<", "<=", "~=", "!~="]))
    if op == "":
        return path
    if op == "!":
        return "!" + path
    if op in ("==", "!="):
        return path + op + draw(literals_for_equality)
    if op in ("~=", "!~="):
        return path + op + draw(st.sampled_from(PATTERNS))
    return path + op + draw(st.sampled_from(COMPARABLE_LITERALS))


queries = st.recursive(
    query_terms(),
    lambda children: st.one_of(
        st.lists(children, min_size=2, max_size=3).map(";".join),
        st.lists(children, min_size=2, max_size=3).map("|".join),
        children.map(lambda child: f"({child})"),
    ),
    max_leaves=5,
)


def test_query_generator_makes_valid_queries() -> None:
    @given(queries)
    @settings(max_examples=200, deadline=None)
    def check(text: str) -> None:
        q(text)

    check()


@given(entities=entity_lists(), text=queries)
@settings(max_examples=300, deadline=None)
def test_sql_selects_exactly_what_matches_accepts(
    database: Database, entities: list[dict[str, Any]], text: str
) -> None:
    node = q(text)
    expected = {stored["id"] for stored in entities if matches(node, stored)}
    selected = database.select(entities, node)
    if database.dialect == "postgresql" and needs_post_filter(node):
        assert expected <= selected
        selected = {stored["id"] for stored in entities if stored["id"] in selected and matches(node, stored)}
    assert selected == expected, text


# ------------------------------------------------------------------------------ value index prefilter


@st.composite
def indexed_terms(draw: st.DrawFn) -> str:
    """A term the value index answers: the attribute itself with ==, a list, a range or an ordering."""
    path = draw(st.sampled_from(ATTRIBUTES))
    op = draw(st.sampled_from(["==", ">", ">=", "<", "<="]))
    if op == "==":
        return path + op + draw(literals_for_equality)
    return path + op + draw(st.sampled_from(COMPARABLE_LITERALS))


indexed_queries = st.recursive(
    st.one_of(indexed_terms(), indexed_terms(), query_terms()),
    lambda children: st.one_of(
        st.lists(children, min_size=2, max_size=5).map(";".join),
        st.lists(children, min_size=2, max_size=3).map("|".join),
        children.map(lambda child: f"({child})"),
    ),
    max_leaves=7,
)


@given(entities=entity_lists(), text=indexed_queries)
@settings(max_examples=300, deadline=None)
def test_prefilter_keeps_every_match_and_changes_no_result(
    database: Database, entities: list[dict[str, Any]], text: str
) -> None:
    node = q(text)
    expected = {stored["id"] for stored in entities if matches(node, stored)}
    for form in ("drive", "probe"):
        narrowed = database.select(entities, node, prefilter=form, exact=False)
        assert expected <= narrowed, (text, form)
    selected = database.select(entities, node, prefilter="drive")
    if database.dialect == "postgresql" and needs_post_filter(node):
        selected = {stored["id"] for stored in entities if stored["id"] in selected and matches(node, stored)}
    assert selected == expected, text


def _prefilter(text: str) -> sa.ColumnElement[bool] | None:
    values = sa.table(
        "v", *(sa.column(name) for name in ("entity_pk", "ordinal", "attr", "dataset_id", "number", "text"))
    )
    return to_prefilter(q(text), sa.column("pk"), values)


@pytest.mark.parametrize(
    "text",
    [
        "a==1",
        "a>1",
        "a<=1;b.sub==2",
        'a=="x","y",3',
        "a==1..2",
        "a==2026-01-01T00:00:00Z",
        "a<12:00:00",
        "a>=2026-01-01",
        "a==urn:x:1",
        "a>1|b<2",
        "(a>1;b<2)|c==3",
        "!a;b>1",
    ],
)
def test_terms_on_attribute_values_are_prefiltered(text: str) -> None:
    assert _prefilter(text) is not None


@pytest.mark.parametrize(
    "text",
    [
        "a",
        "!a",
        "a!=1",
        "a==true",
        "a~=x",
        "a.sub>1",
        "a.observedAt>2026-01-01T00:00:00Z",
        "a[x]==1",
        "a>1|b!=2",
        "a>1|(b;!c)",
    ],
)
def test_other_terms_are_left_to_the_exact_condition(text: str) -> None:
    assert _prefilter(text) is None


LONG = "绵" * 200
EDGES = [
    entity("urn:e:1", n=instance(value=2**53 + 1), s=instance(value=LONG + "b")),
    entity("urn:e:2", n=instance(value=2**53), s=instance(value=LONG)),
    entity("urn:e:3", n=instance(value=-(2**53) - 1), s=instance(value=LONG[:100])),
    entity("urn:e:4", t=instance(value="2026-01-01T08:00:00.999Z"), c=instance(value="08:00:00.5")),
    entity("urn:e:5", t=instance(value="2026-01-01T08:00:01Z"), c=instance(value="08:00:01Z")),
    entity("urn:e:6", g=instance("VocabProperty", vocab=DEFAULT + "Male"), d=instance(value="2026-01-02")),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("n>9007199254740992", {1}),
        ("n>=9007199254740993", {1}),
        ("n<9007199254740993", {2, 3}),
        ("n<-9007199254740992", {3}),
        ("n==9007199254740993", {1}),
        (f's>"{LONG}"', {1}),
        (f's=="{LONG}b"', {1}),
        (f's<"{LONG}b"', {2, 3}),
        (f's=="{LONG[:100]}"', {3}),
        ("t>2026-01-01T08:00:00.5Z", {4, 5}),
        ("t<=2026-01-01T08:00:00.999Z", {4}),
        ("t==2026-01-01T16:00:00.999+08:00", {4}),
        ("t==2026-01-01T08:00:00Z..2026-01-01T08:00:00.9999Z", {4}),
        ("c>08:00:00.5", {5}),
        ("c==08:00:00.5", {4}),
        ("c<08:00:01", {4}),
        ('g=="Male"', {6}),
        ('g>"Mal"', {6}),
        ('g<"Malf"', {6}),
        ("d>2026-01-01", {6}),
        ('d=="2026-01-02"', {6}),
    ],
)
def test_prefilter_keeps_matches_at_the_limits_of_the_index(
    database: Database, text: str, expected: set[int]
) -> None:
    node = q(text)
    ids = {f"urn:e:{number}" for number in expected}
    assert {stored["id"] for stored in EDGES if matches(node, stored)} == ids
    assert _prefilter(text) is not None
    for form in ("drive", "probe"):
        assert ids <= database.select(EDGES, node, prefilter=form, exact=False), form


def test_prefilter_narrows_down(database: Database) -> None:
    node = q("temperature<20")
    expected = {stored["id"] for stored in ENTITIES if matches(node, stored)}
    assert expected and len(expected) < len(ENTITIES)
    assert database.select(ENTITIES, node, prefilter="drive", exact=False) == expected
    assert database.select(EDGES, q("t>2026-01-01T08:00:00.999Z"), prefilter="probe", exact=False) == {
        "urn:e:4",  # same second: the index cannot tell
        "urn:e:5",
    }
